"""Independent checker of a TF tensor bundle (PREFIX.index + PREFIX.data-*), for kerasopt's tests.

Pure Python (no numpy, no TensorFlow), sharing no code with the TypeScript reader and writer it
checks. Follows our own reading of TensorFlow's sources: tensorflow/core/lib/io/{format,block,
table_builder}.cc (SSTable footer, blocks, 5-byte trailers holding the masked CRC-32C of the contents
plus the type byte), tensorflow/core/util/tensor_bundle/tensor_bundle.cc (each entry's crc32c is the
masked CRC-32C of its data bytes; strings checksum their lengths as uint32, then the masked length
checksum, then the bytes) and tensorflow/core/lib/hash/crc32c.h (the mask).

Usage: bundle_check.py PREFIX
Prints JSON: every block (offset, size, type, absolute offset of its trailer CRC), every entry (dtype,
shape, shard, offset, size, absolute offset of its crc32c field in the .index) and a list of errors.
"""
import json
import struct
import sys

sys.path.insert(0, __import__('os').path.dirname(__file__))
from crc32c import crc32c, mask  # noqa: E402
from wire import read_varint as varint  # noqa: E402




def fields(buf, start, end):
    """Yields (field number, wire type, value, absolute offset of the value) of a protobuf message."""
    pos = start
    while pos < end:
        tag, pos = varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        at = pos
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            at = pos
            value, pos = (pos, pos + n), pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError("wire type %d" % wire)
        yield num, wire, value, at


ITEM = {1: 4, 2: 8, 3: 4, 9: 8, 19: 2}  # float32, float64, int32, int64, float16
STRING = 7


def main(prefix):
    index = open(prefix + ".index", "rb").read()
    errors, blocks, entries = [], [], {}
    footer = len(index) - 48
    if struct.unpack_from("<Q", index, footer + 40)[0] != 0xDB4775248B80FB57:
        raise SystemExit("bad magic")
    meta_off, p = varint(index, footer)
    meta_size, p = varint(index, p)
    idx_off, p = varint(index, p)
    idx_size, p = varint(index, p)

    def block(off, size):
        kind = index[off + size]
        stored = struct.unpack_from("<I", index, off + size + 1)[0]
        if mask(crc32c(index[off:off + size + 1])) != stored:
            errors.append("block at %d: trailer CRC mismatch" % off)
        if kind != 0:
            errors.append("block at %d: compression type %d" % (off, kind))
        blocks.append({"offset": off, "size": size, "type": kind, "trailer_crc_at": off + size + 1})
        restarts = struct.unpack_from("<I", index, off + size - 4)[0]
        end, pos, last = off + size - 4 - 4 * restarts, off, b""
        while pos < end:
            shared, pos = varint(index, pos)
            unshared, pos = varint(index, pos)
            vlen, pos = varint(index, pos)
            last = last[:shared] + index[pos:pos + unshared]
            pos += unshared
            yield last, pos, pos + vlen
            pos += vlen

    def handle(pos):
        off, pos = varint(index, pos)
        return off, varint(index, pos)[0]

    handles = [handle(start) for _, start, _ in block(idx_off, idx_size)]
    list(block(meta_off, meta_size))
    num_shards = None
    for off, size in handles:
        for key, start, end in block(off, size):
            if key == b"":
                num_shards = next(v for n, _, v, _ in fields(index, start, end) if n == 1)
                continue
            e = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0, "crc": None, "crc_at": None, "block": off}
            for n, _, v, at in fields(index, start, end):
                if n == 1:
                    e["dtype"] = v
                elif n == 2:
                    dims = [d for dn, _, d, _ in fields(index, *v) if dn == 2]
                    e["shape"] = [next((s for sn, _, s, _ in fields(index, *d) if sn == 1), 0) for d in dims]
                elif n in (3, 4, 5):
                    e[{3: "shard", 4: "offset", 5: "size"}[n]] = v
                elif n == 6:
                    e["crc"], e["crc_at"] = v, at
                elif n == 7:
                    errors.append("%s: sliced entry" % key.decode())
            entries[key.decode()] = e
    for key, e in entries.items():
        shard = open("%s.data-%05d-of-%05d" % (prefix, e["shard"], num_shards), "rb").read()
        data = shard[e["offset"]:e["offset"] + e["size"]]
        count = 1
        for d in e["shape"]:
            count *= d
        if e["dtype"] == STRING:
            crc, pos = 0, 0
            for _ in range(count):
                n, pos = varint(data, pos)
                crc = crc32c(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n), crc)
            if struct.unpack_from("<I", data, pos)[0] != mask(crc):
                errors.append("%s: string length checksum mismatch" % key)
            actual = mask(crc32c(data[pos:], crc))
        else:
            if len(data) != count * ITEM[e["dtype"]]:
                errors.append("%s: %d bytes for %d elements of dtype %d" % (key, len(data), count, e["dtype"]))
            actual = mask(crc32c(data))
        if actual != e["crc"]:
            errors.append("%s: data CRC mismatch" % key)
        del e["crc"]
    print(json.dumps({"num_shards": num_shards, "blocks": blocks, "entries": entries, "errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1])
