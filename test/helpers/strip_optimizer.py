"""Writes a TF2 checkpoint as TensorFlow would have written it without its optimizer, for kerasopt's tests.

Reads a real (TF-written) single-shard tensor bundle PREFIX and writes OUT (OUT.index, OUT.data-00000-of-00001)
holding the same model without its optimizer: the root's `optimizer` child, every node only it reaches and the
slot variables are dropped, the remaining nodes renumbered breadth first from the root (as TF numbers them),
each node's other fields kept byte for byte; the data shard holds the remaining tensors in node order with the
object graph last (BundleWriter::Add order), and the index is a table laid out as TF's TableBuilder with
BundleWriter's options (block size 256 KiB, restart interval 16, index block restart interval 1, shortest
separators, an empty metaindex block, masked CRC-32C trailers). Our own reading of tensorflow/core/lib/io/
{table_builder,block_builder,format}.cc and tensorflow/core/util/tensor_bundle/tensor_bundle.cc; pure Python,
sharing no code with kerasopt's TypeScript writer it is used to test.

Usage: strip_optimizer.py PREFIX OUT      Prints JSON: the keys kept and dropped.
"""
import json
import struct
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from crc32c import crc32c, mask  # noqa: E402
from wire import read_varint, varint  # noqa: E402






def fields(buf):
    """(number, value or payload, raw bytes of the whole field)."""
    pos, out = 0, []
    while pos < len(buf):
        start = pos
        tag, pos = read_varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            v, pos = read_varint(buf, pos)
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            v, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            v, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            v, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ValueError("wire type %d" % wire)
        out.append((num, v, bytes(buf[start:pos])))
    return out


def ld(num, payload):
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def vf(num, v):
    return varint(num << 3) + varint(v) if v else b""


# --- reading the source table (no CRC checks here: bundle_check.py does those) ---
def read_table(index):
    footer = len(index) - 48
    _, p = read_varint(index, footer)
    _, p = read_varint(index, p)
    idx_off, p = read_varint(index, p)
    idx_size, _ = read_varint(index, p)

    def block(off, size):
        restarts = struct.unpack_from("<I", index, off + size - 4)[0]
        end, pos, last = off + size - 4 - 4 * restarts, off, b""
        while pos < end:
            shared, pos = read_varint(index, pos)
            unshared, pos = read_varint(index, pos)
            vlen, pos = read_varint(index, pos)
            last = last[:shared] + index[pos:pos + unshared]
            pos += unshared
            yield bytes(last), bytes(index[pos:pos + vlen])
            pos += vlen

    out = []
    for _, handle in block(idx_off, idx_size):
        off, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        out.extend(block(off, size))
    return out


# --- writing a table as TF's TableBuilder does ---
BLOCK_SIZE, RESTART = 262144, 16


class Block:
    def __init__(self, interval):
        self.interval, self.buf, self.restarts, self.count, self.last = interval, bytearray(), [0], 0, b""

    def add(self, k, v):
        shared = 0
        if self.count < self.interval:
            while shared < min(len(k), len(self.last)) and k[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.count = 0
        self.buf += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        self.last, self.count = k, self.count + 1

    def estimate(self):
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self):
        out = bytes(self.buf) + b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack("<I", len(self.restarts))
        self.__init__(self.interval)
        return out


def separator(start, limit):
    i = 0
    while i < min(len(start), len(limit)) and start[i] == limit[i]:
        i += 1
    if i < min(len(start), len(limit)) and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def successor(key):
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def write_table(entries):
    out = bytearray()

    def emit(contents):
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + b"\x00" + struct.pack("<I", mask(crc32c(contents + b"\x00"))))
        return handle

    data, index, pending, last = Block(RESTART), Block(1), None, b""
    for k, v in entries:
        if last and len(k) + len(v) >= 2 * BLOCK_SIZE and data.buf:
            pending = emit(data.finish())
        if pending is not None:
            index.add(separator(last, k), pending)
            pending = None
        last = k
        data.add(k, v)
        if data.estimate() >= BLOCK_SIZE:
            pending = emit(data.finish())
    if data.buf:
        pending = emit(data.finish())
    meta = emit(Block(RESTART).finish())
    if pending is not None:
        index.add(successor(last), pending)
    idx = emit(index.finish())
    out.extend((meta + idx).ljust(40, b"\x00") + struct.pack("<II", 0x8B80FB57, 0xDB477524))
    return bytes(out)


def main(prefix, out_prefix):
    table = read_table(open(prefix + ".index", "rb").read())
    header = table[0][1]
    assert table[0][0] == b""
    if next(v for n, v, _ in fields(header) if n == 1) != 1:
        raise SystemExit("single-shard bundles only")
    entries = {k.decode(): dict((n, v) for n, v, _ in fields(v)) | {"raw": v} for k, v in table[1:]}
    shard = open(prefix + ".data-00000-of-00001", "rb").read()

    def payload(key):
        e = entries[key]
        return shard[e.get(4, 0):e.get(4, 0) + e.get(5, 0)]

    g = payload("_CHECKPOINTABLE_OBJECT_GRAPH")
    n, p = read_varint(g, 0)
    graph = g[p + 4:p + 4 + n]
    nodes = [fields(v) for _, v, _ in fields(graph)]

    def children(node):
        out = []
        for num, v, _ in node:
            if num == 1:
                sub = fields(v)
                out.append((next((x for m, x, _ in sub if m == 1), 0), next((bytes(x) for m, x, _ in sub if m == 2), b""), b"".join(r for m, _, r in sub if m not in (1, 2))))
        return out

    root = nodes[0]
    optimizer = [c for c in children(root) if c[1] == b"optimizer"]
    assert len(optimizer) == 1, "the root has no optimizer child"
    # breadth first without the optimizer
    order, seen = [0], {0}
    for i in range(len(nodes)):
        if i >= len(order):
            break
        for cid, name, _ in children(nodes[order[i]]):
            if order[i] == 0 and name == b"optimizer":
                continue
            if cid not in seen:
                seen.add(cid)
                order.append(cid)
    new_id = {old: i for i, old in enumerate(order)}
    out_graph = b""
    kept_keys = []
    for old in order:
        body = b""
        for num, v, raw in nodes[old]:
            if num == 1:
                sub = fields(v)
                cid = next((x for m, x, _ in sub if m == 1), 0)
                name = next((bytes(x) for m, x, _ in sub if m == 2), b"")
                if old == 0 and name == b"optimizer":
                    continue
                extra = b"".join(r for m, _, r in sub if m not in (1, 2))
                body += ld(1, vf(1, new_id[cid]) + (ld(2, name) if name else b"") + extra)
            elif num == 3:
                continue
            else:
                body += raw
                if num == 2:
                    key = next(bytes(x) for m, x, _ in fields(v) if m == 3).decode()
                    if key in entries and key not in kept_keys:
                        kept_keys.append(key)
        out_graph += ld(1, body)
    dropped = [k for k in entries if k not in kept_keys and k != "_CHECKPOINTABLE_OBJECT_GRAPH"]

    # data in node order, the graph last
    data = bytearray()
    new_entries = []

    def entry(e, offset, size, crc):
        shape = next((r for m, _, r in fields(e["raw"]) if m == 2), b"")
        return vf(1, e[1]) + shape + vf(4, offset) + vf(5, size) + (varint((6 << 3) | 5) + struct.pack("<I", crc) if crc else b"")

    for key in kept_keys:
        raw = payload(key)
        e = entries[key]
        new_entries.append((key.encode(), entry(e, len(data), len(raw), struct.unpack("<I", e[6])[0])))
        data += raw
    crc = crc32c(struct.pack("<I", len(out_graph)))
    checksum = struct.pack("<I", mask(crc))
    crc = crc32c(out_graph, crc32c(checksum, crc))
    raw = varint(len(out_graph)) + checksum + out_graph
    new_entries.append((b"_CHECKPOINTABLE_OBJECT_GRAPH", entry(entries["_CHECKPOINTABLE_OBJECT_GRAPH"], len(data), len(raw), mask(crc))))
    data += raw
    new_entries.sort()
    with open(out_prefix + ".index", "wb") as f:
        f.write(write_table([(b"", header)] + new_entries))
    with open(out_prefix + ".data-00000-of-00001", "wb") as f:
        f.write(bytes(data))
    json.dump({"kept": kept_keys, "dropped": dropped, "nodes": len(order)}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
