"""Protobuf wire-format varints, shared by the Python test helpers that read and write TF tensor bundles
(tf_checkpoint.py, strip_optimizer.py, bundle_check.py). Our own reading of the protobuf encoding docs;
no code shared with kerasopt's TypeScript."""


def varint(n):
    """The varint encoding of a non-negative integer."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, pos):
    """(value, position after it) of the varint at `pos`."""
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
