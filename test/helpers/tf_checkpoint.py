"""Writes a TF2 object-based checkpoint holding a tf.keras optimizer_v2 Nadam, for kerasopt's tests.

The files are made by kerasopt's test helper in the TF tensor-bundle layout, NOT by TensorFlow
(TensorFlow cannot be installed here). The layout follows our own reading of TensorFlow's sources
(Apache-2.0): tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc,proto},
tensorflow/core/lib/io/{table_builder,block_builder,format}.cc, tensorflow/core/lib/hash/crc32c.h,
tensorflow/core/protobuf/trackable_object_graph.proto and tensorflow/python/training/tracking/ for the
key names. It shares no code with the TypeScript reader it tests.

Usage: tf_checkpoint.py PREFIX [--root checkpoint|model] [--no-optimizer] [--shards N] [--block-size B]
                        [--set-dtype KEY=N] [--compression N] [--epsilon-hyper] [--lr-schedule]
                        [--dtype float16|float32|float64] [--optimizer-class adam|rmsprop|adagrad]
       tf_checkpoint.py PREFIX --new-optimizer [--root checkpoint|model|savedmodel] [--lr-schedule] [--no-u-product]
                        [--no-lists] [--unbuilt] [--odd-slots] [--bad-shape] [--bad-pair] [--keras3] [--iterations N] [other options as above]
(--lr-schedule saves no learning_rate variable, as with a LearningRateSchedule; --epsilon-hyper saves epsilon as a hyper variable, as early optimizer_v2 Nadams did;
--set-dtype records dtype enum N for KEY and --compression writes block type N, both for bad-input tests.)
--new-optimizer writes the TF 2.11-2.15 tf.keras "new" Nadam instead (see new_optimizer_graph): made by kerasopt's
test helper in the TF 2.11+ checkpoint layout, not by TensorFlow.
Prints a JSON manifest: every entry written (key, dtype, shape, hex of its bytes) and the hypers.
"""
import json
import struct
import sys

import numpy as np

sys.path.insert(0, __import__('os').path.dirname(__file__))
from crc32c import crc32c, mask  # noqa: E402
from wire import varint  # noqa: E402


# --- protobuf wire format, by hand ------------------------------------------------------------------


def f_varint(num, v):
    return varint(num << 3) + varint(v) if v else b""


def f_bytes(num, payload, always=False):
    if not payload and not always:
        return b""
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def f_fixed32(num, v):
    return varint((num << 3) | 5) + struct.pack("<I", v)


DT = {"float32": 1, "float64": 2, "int32": 3, "string": 7, "int64": 9, "float16": 19}
NP = {"float32": "<f4", "float64": "<f8", "int32": "<i4", "int64": "<i8", "float16": "<f2"}


def shape_proto(shape):
    return b"".join(f_bytes(2, f_varint(1, d), always=True) for d in shape)


# --- SSTable (LevelDB-style table as tensorflow/core/lib/io writes it) -------------------------------
def block(entries, restart_interval=16):
    out = bytearray()
    restarts = []
    last = b""
    for i, (k, v) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(k), len(last)) and k[shared] == last[shared]:
                shared += 1
        out += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        last = k
    if not restarts:
        restarts = [0]
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def table(entries, block_size, compression=0, blocks=None):
    out = bytearray()
    index = []

    def emit(contents):
        if blocks is not None:
            blocks.append([len(out), len(contents)])
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents)
        out.append(compression)  # 0: none (what TF's bundle writer uses)
        out.extend(struct.pack("<I", mask(crc32c(contents + bytes([compression])))))
        return handle

    pending = []
    size = 0
    for k, v in entries:
        pending.append((k, v))
        size += len(k) + len(v) + 8
        if size >= block_size:
            index.append((pending[-1][0], emit(block(pending))))
            pending, size = [], 0
    if pending:
        index.append((pending[-1][0], emit(block(pending))))
    meta = emit(block([]))
    idx = emit(block(index))
    footer = (meta + idx).ljust(40, b"\x00") + struct.pack("<II", 0x8B80FB57, 0xDB477524)
    out.extend(footer)
    return bytes(out)


# --- TrackableObjectGraph ----------------------------------------------------------------------------
class Graph:
    def __init__(self):
        self.nodes = []  # dicts: children [(id, name)], attrs [(name, full, key)], slots [(orig, name, slot)]

    def add(self):
        self.nodes.append({"children": [], "attrs": [], "slots": []})
        return len(self.nodes) - 1

    def encode(self):
        out = b""
        for n in self.nodes:
            body = b""
            for nid, name in n["children"]:
                body += f_bytes(1, f_varint(1, nid) + f_bytes(2, name.encode()), always=True)
            for name, full, key in n["attrs"]:
                body += f_bytes(2, f_bytes(1, name.encode()) + f_bytes(2, full.encode()) + f_bytes(3, key.encode()), always=True)
            for orig, name, slot in n["slots"]:
                body += f_bytes(3, f_varint(1, orig) + f_bytes(2, name.encode()) + f_varint(3, slot), always=True)
            out += f_bytes(1, body, always=True)
        return out


# --- TF 2.11-2.15 tf.keras "new" Nadam ---------------------------------------------------------------
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

# The model of every --new-optimizer checkpoint: Dense(4) on 3 inputs, BatchNormalization, Dense(2).
# (layer name, [(variable, shape, trainable)]) in layer order, each layer's variables in creation order.
NEW_MODEL = [
    ("dense", [("kernel", (3, 4), True), ("bias", (4,), True)]),
    ("batch_normalization", [("gamma", (4,), True), ("beta", (4,), True), ("moving_mean", (4,), False), ("moving_variance", (4,), False)]),
    ("dense_1", [("kernel", (4, 2), True), ("bias", (2,), True)]),
]


def new_optimizer_graph(args, g, root, tensors, vdt):
    """Adds a model and a TF 2.11-2.15 tf.keras Nadam ("new" optimizer) to the graph, as our reading of
    the Keras sources (keras-team/keras keras/optimizers/optimizer.py and nadam.py, 2.11-2.15;
    keras-team/tf-keras tf_keras/optimizers/) says TF saves them. Made by kerasopt's test helper in the
    TF 2.11+ checkpoint layout, not by TensorFlow.

    The optimizer is an AutoTrackable, so its tracked attributes are its children, in the order they were
    first assigned: _variables (a list: iteration, then m and v of each variable in the order build()
    created them), _iterations, _learning_rate (a variable; with a schedule there is none, but a
    _current_learning_rate variable), _index_dict (a dict of ints: a node without children), _momentums and
    _velocities (lists of the same slot nodes), _u_product (Nadam.build's bare tf.Variable, in no list).
    A key comes from a node's first breadth-first path from the root, so the iteration is saved as
    optimizer/_iterations and the slots as optimizer/_variables/<i>. There are no slot_variables.
    The model has layer_with_weights-<i> and layer-<i> children per layer (Functional's
    _layer_checkpoint_dependencies), each layer its variables by name in creation order; a SavedModel
    root (--root savedmodel) lists `variables` (model.weights) and `trainable_variables` first.

    Options: --root checkpoint|model|savedmodel, --lr-schedule, --no-u-product, --no-lists (no
    _momentums/_velocities), --iterations N, --unbuilt (saved before build(): no slots, no _u_product), and for bad-input tests --odd-slots (the last v missing),
    --bad-shape (m and v of the second variable float[5]), --bad-pair (v of the first variable float[2]), --keras3 (learning_rate as _variables/1, as
    Keras 3 keeps it). Returns the manifest's "new_optimizer" entry: what each slot belongs to.
    """
    rng = np.random.default_rng(11)
    dt = np.dtype(NP[vdt]).type
    root_kind = args[args.index("--root") + 1] if "--root" in args else "checkpoint"
    iterations = int(args[args.index("--iterations") + 1]) if "--iterations" in args else 0 if "--unbuilt" in args else 7

    def child(parent, name, nid=None):
        nid = g.add() if nid is None else nid
        g.nodes[parent]["children"].append((nid, name))
        return nid

    def store(nid, path, dtype, value, full):
        arr = np.asarray(value, dtype=NP[dtype])
        key = path + SUFFIX
        g.nodes[nid]["attrs"].append(("VARIABLE_VALUE", full, key))
        tensors[key] = (dtype, list(arr.shape), arr.tobytes())
        return path

    model, mpath = (child(root, "model"), "model/") if root_kind == "checkpoint" else (root, "")
    weights = []
    for li, (lname, variables) in enumerate(NEW_MODEL):
        for vname, shape, trainable in variables:
            value = rng.standard_normal(shape)
            if vname == "moving_variance":
                value = np.abs(value) + 0.5
            weights.append({"layer": li, "lname": lname, "name": vname, "trainable": trainable, "value": value.astype(NP[vdt]), "id": g.add()})
    trainable = [w for w in weights if w["trainable"]]
    if root_kind == "savedmodel":
        listed = child(model, "variables")
        for i, w in enumerate(trainable + [w for w in weights if not w["trainable"]]):
            child(listed, str(i), w["id"])
            w["path"] = store(w["id"], f"variables/{i}", vdt, w["value"], f"{w['lname']}/{w['name']}:0")
        listed = child(model, "trainable_variables")
        for i, w in enumerate(trainable):
            child(listed, str(i), w["id"])
        child(model, "keras_api")
    for li, (lname, _) in enumerate(NEW_MODEL):
        layer = child(model, f"layer_with_weights-{li}")
        child(model, f"layer-{li}", layer)
        for w in (w for w in weights if w["layer"] == li):
            child(layer, w["name"], w["id"])
            if "path" not in w:
                w["path"] = store(w["id"], f"{mpath}layer_with_weights-{li}/{w['name']}", vdt, w["value"], f"{lname}/{w['name']}:0")

    if root_kind == "checkpoint":
        store(child(root, "save_counter"), "save_counter", "int64", 1, "save_counter:0")
    opt = child(root, "optimizer")
    listed = child(opt, "_variables")
    it = child(opt, "_iterations")
    store(it, "optimizer/_iterations", "int64", iterations, "iteration:0")
    child(listed, "0", it)
    learning_rate = None
    if "--lr-schedule" in args:
        store(child(opt, "_current_learning_rate"), "optimizer/_current_learning_rate", "float32", 0.0005, "current_learning_rate:0")
    else:
        learning_rate = float(np.float32(0.0025))
        lr = child(opt, "_learning_rate")
        store(lr, "optimizer/_learning_rate", "float32", learning_rate, "learning_rate:0")
        if "--keras3" in args:
            child(listed, "1", lr)
    if "--unbuilt" in args:  # saved before the first apply_gradients: build() has not run
        return {"iterations": iterations, "learning_rate": learning_rate, "u_product": None, "ties": [],
                "trainable": [w["path"] for w in trainable], "non_trainable": [w["path"] for w in weights if not w["trainable"]]}
    child(opt, "_index_dict")
    lists = "--no-lists" not in args
    momentums = child(opt, "_momentums") if lists else None
    velocities = child(opt, "_velocities") if lists else None
    u_product = dt(1)
    for t in range(1, iterations + 1):  # Nadam.update_step: u_t = beta_1 * (1 - 0.5 * 0.96 ** t), in the first variable's dtype
        u_product = dt(u_product * (dt(0.9) * (dt(1) - dt(0.5) * np.power(dt(0.96), dt(t)))))
    if "--no-u-product" not in args:
        store(child(opt, "_u_product"), "optimizer/_u_product", vdt, u_product, "Variable:0")
    ties = []
    k = 2 if "--keras3" in args and learning_rate is not None else 1
    for i, w in enumerate(trainable):
        shape = (5,) if "--bad-shape" in args and i == 1 else w["value"].shape
        tie = {"variable": w["path"], "layer": w["lname"], "name": w["name"]}
        for slot in ("m", "v"):
            if "--odd-slots" in args and i == len(trainable) - 1 and slot == "v":
                break
            if "--bad-pair" in args and i == 0 and slot == "v":
                shape = (2,)
            value = rng.standard_normal(shape) * 0.1 if slot == "m" else np.abs(rng.standard_normal(shape)) * 0.01
            sid = child(listed, str(k))
            if lists:
                child(momentums if slot == "m" else velocities, str(i), sid)
            tie[slot] = store(sid, f"optimizer/_variables/{k}", vdt, value, f"Nadam/{slot}/{w['lname']}/{w['name']}:0")
            k += 1
        ties.append(tie)
    return {
        "iterations": iterations, "learning_rate": learning_rate, "u_product": float(u_product), "ties": ties,
        "trainable": [w["path"] for w in trainable], "non_trainable": [w["path"] for w in weights if not w["trainable"]],
    }


# Other optimizer_v2 classes: hypers (_set_hyper, saved as variables) and slots in _create_slots order.
OTHER_OPTIMIZERS = {
    "adam": {"name": "Adam", "hypers": [("learning_rate", 0.01), ("decay", 0.0), ("beta_1", 0.9), ("beta_2", 0.999)], "slots": ["m", "v"]},
    "rmsprop": {"name": "RMSprop", "hypers": [("learning_rate", 0.001), ("decay", 0.0), ("rho", 0.9), ("momentum", 0.5)], "slots": ["rms", "momentum", "mg"]},
    "adagrad": {"name": "Adagrad", "hypers": [("learning_rate", 0.001), ("decay", 0.0)], "slots": ["accumulator"]},
}


def main():
    args = sys.argv[1:]
    prefix = args[0]
    root_kind = args[args.index("--root") + 1] if "--root" in args else "checkpoint"
    with_optimizer = "--no-optimizer" not in args
    shards = int(args[args.index("--shards") + 1]) if "--shards" in args else 1
    block_size = int(args[args.index("--block-size") + 1]) if "--block-size" in args else 300
    compression = int(args[args.index("--compression") + 1]) if "--compression" in args else 0
    set_dtype = args[args.index("--set-dtype") + 1].split("=") if "--set-dtype" in args else None

    rng = np.random.default_rng(7)
    vdt = args[args.index("--dtype") + 1] if "--dtype" in args else "float32"  # the model's (and slots') dtype
    kernel = rng.standard_normal((3, 2)).astype(NP[vdt])
    bias = rng.standard_normal((2,)).astype(NP[vdt])
    g = Graph()
    root = g.add()
    tensors = {}  # key -> (dtype, shape, bytes)

    def variable(parent, name, path, dtype, value, full):
        nid = g.add()
        g.nodes[parent]["children"].append((nid, name))
        key = f"{path}/.ATTRIBUTES/VARIABLE_VALUE"
        g.nodes[nid]["attrs"].append(("VARIABLE_VALUE", full, key))
        arr = np.asarray(value, dtype=NP[dtype])
        tensors[key] = (dtype, list(arr.shape), arr.tobytes())
        return nid, key

    new_layout = None
    if "--new-optimizer" in args:
        new_layout = new_optimizer_graph(args, g, root, tensors, vdt)
        hypers = {}
    else:
        if root_kind == "checkpoint":
            model = g.add()
            g.nodes[root]["children"].append((model, "model"))
            mpath = "model/"
            variable(root, "save_counter", "save_counter", "int64", 1, "save_counter")
        else:
            model, mpath = root, ""
        layer = g.add()
        g.nodes[model]["children"].append((layer, "layer_with_weights-0"))
        lpath = f"{mpath}layer_with_weights-0"
        k_id, _ = variable(layer, "kernel", f"{lpath}/kernel", vdt, kernel, "dense/kernel")
        b_id, _ = variable(layer, "bias", f"{lpath}/bias", vdt, bias, "dense/bias")
        hypers = {}
        other = args[args.index("--optimizer-class") + 1] if "--optimizer-class" in args else None
        if with_optimizer and other:
            # another optimizer_v2 class (tests of src/formats/checkpoint/described.ts): its hypers and slots,
            # as its _create_hypers / _create_slots make them (docs/optimizers.md); no momentum_cache
            spec = OTHER_OPTIMIZERS[other]
            opt = g.add()
            g.nodes[root]["children"].append((opt, "optimizer"))
            variable(opt, "iter", "optimizer/iter", "int64", 5, f"{spec['name']}/iter")
            for name, v in spec["hypers"]:
                variable(opt, name, f"optimizer/{name}", "float32", v, f"{spec['name']}/{name}")
                hypers[name] = float(np.float32(v))
            for slot in spec["slots"]:
                for orig, path, shape in ((k_id, f"{lpath}/kernel", (3, 2)), (b_id, f"{lpath}/bias", (2,))):
                    value = (np.abs(rng.standard_normal(shape)) * 0.1).astype(NP[vdt])
                    sid = g.add()
                    key = f"{path}/.OPTIMIZER_SLOT/optimizer/{slot}/.ATTRIBUTES/VARIABLE_VALUE"
                    g.nodes[sid]["attrs"].append(("VARIABLE_VALUE", f"{spec['name']}/{path}/{slot}", key))
                    g.nodes[opt]["slots"].append((orig, slot, sid))
                    tensors[key] = (vdt, list(shape), value.tobytes())
        elif with_optimizer:
            opt = g.add()
            g.nodes[root]["children"].append((opt, "optimizer"))
            variable(opt, "iter", "optimizer/iter", "int64", 3, "Nadam/iter")
            saved = [("beta_1", 0.9), ("beta_2", 0.999), ("decay", 0.004)]
            # optimizer_v2's _create_hypers makes no variable for a callable hyper (a LearningRateSchedule).
            saved += [] if "--lr-schedule" in args else [("learning_rate", 0.01)]
            for name, v in saved + ([("epsilon", 1e-5)] if "--epsilon-hyper" in args else []):
                variable(opt, name, f"optimizer/{name}", "float32", v, f"Nadam/{name}")
                hypers[name] = float(np.float32(v))
            variable(opt, "momentum_cache", "optimizer/momentum_cache", vdt, 0.7129, "Nadam/momentum_cache")
            for slot in ("m", "v"):
                for orig, path, shape in ((k_id, f"{lpath}/kernel", (3, 2)), (b_id, f"{lpath}/bias", (2,))):
                    value = (np.abs(rng.standard_normal(shape)) * (0.1 if slot == "m" else 0.01)).astype(NP[vdt])
                    sid = g.add()
                    key = f"{path}/.OPTIMIZER_SLOT/optimizer/{slot}/.ATTRIBUTES/VARIABLE_VALUE"
                    g.nodes[sid]["attrs"].append(("VARIABLE_VALUE", f"Nadam/{path}/{slot}", key))
                    g.nodes[opt]["slots"].append((orig, slot, sid))
                    tensors[key] = (vdt, list(shape), value.tobytes())
    # Entries no optimizer reads, for the dtype coverage of the bundle reader.
    for dtype, value in [("float16", [[1.5, -2.0]]), ("float64", [np.pi, -1e-300]), ("int32", [[-7], [2**31 - 1]]), ("int64", -(2**40))]:
        arr = np.asarray(value, dtype=NP[dtype])
        tensors[f"extra/{dtype}"] = (dtype, list(arr.shape), arr.tobytes())
    strings = [b"", b"abc", bytes(range(200))]
    tensors["extra/strings"] = ("string", [3], strings)
    tensors["_CHECKPOINTABLE_OBJECT_GRAPH"] = ("string", [], [g.encode()])

    # Data shards: entries go to shard i % shards in key order, aligned as written one after another.
    data = [bytearray() for _ in range(shards)]
    entries = []
    manifest = {"tensors": {}, "hypers": hypers, "root": root_kind, "blocks": []}  # blocks: [offset, size] in file order
    if new_layout is not None:
        manifest["new_optimizer"] = new_layout
    for i, key in enumerate(sorted(tensors, key=lambda k: k.encode())):
        dtype, shape, payload = tensors[key]
        if dtype == "string":
            # [varint64 lengths][masked crc32c of the lengths][bytes]; the checksums run over each length
            # as a little-endian uint32 (uint64 past 2^32), not over its varint bytes.
            crc = 0
            for s in payload:
                crc = crc32c(struct.pack("<I" if len(s) <= 0xFFFFFFFF else "<Q", len(s)), crc)
            length_checksum = struct.pack("<I", mask(crc))
            crc = crc32c(length_checksum, crc)
            for s in payload:
                crc = crc32c(s, crc)
            raw = b"".join(varint(len(s)) for s in payload) + length_checksum + b"".join(payload)
        else:
            raw = payload
            crc = crc32c(raw)
        shard = i % shards
        offset = len(data[shard])
        data[shard] += raw
        code = int(set_dtype[1]) if set_dtype and set_dtype[0] == key else DT[dtype]
        entry = (f_varint(1, code) + f_bytes(2, shape_proto(shape), always=True) + f_varint(3, shard)
                 + f_varint(4, offset) + f_varint(5, len(raw)) + f_fixed32(6, mask(crc)))
        entries.append((key.encode(), entry))
        shown = [s.hex() for s in payload] if dtype == "string" else payload.hex()
        manifest["tensors"][key] = {"dtype": dtype, "shape": shape, "data": shown, "shard": shard, "offset": offset, "size": len(raw)}
    header = f_varint(1, shards) + f_bytes(3, f_varint(1, 1), always=True)  # num_shards, version{producer: 1}
    entries.insert(0, (b"", header))
    with open(prefix + ".index", "wb") as f:
        f.write(table(entries, block_size, compression, manifest["blocks"]))
    for s in range(shards):
        with open(f"{prefix}.data-{s:05d}-of-{shards:05d}", "wb") as f:
            f.write(bytes(data[s]))
    json.dump(manifest, sys.stdout)


if __name__ == "__main__":
    main()
