"""kerasopt's test helper for the multi-GB state (test/formats.big.test.ts), with Debian's h5py and numpy.

NOT Keras output: a tf.keras 2.4 (optimizer_v2) Nadam .h5 in the layout of keras_files.tf_keras_file, whose
model is an embedding table [ROWS, COLS] float32 (over 4 GiB) and a small dense layer. The three big datasets
(the table, its m and its v) are allocated in the file at creation (HDF5 early allocation, contiguous) but
never filled (fill time 'never'): the file declares and addresses every byte, while the disk holds only the
sampled rows written here, so the test costs little disk and time to make. Readers see zeros elsewhere;
kerasopt reads and writes every element all the same.

usage:  big_state.py make FILE ROWS COLS        makes the file; prints the sampled row ranges as JSON
        big_state.py small SRC OUT RANGES_JSON  a small file of the same layout holding only those rows of SRC
        big_state.py rows FILE DATASET RANGES_JSON   prints the rows' raw bytes (hex) of a dataset
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_files import F32, momentum_product, put_attr, save_name_list  # noqa: E402

ITERATIONS = 7
STYLE = 'h5py3'
TABLE = 'embedding/embeddings:0'
DENSE = [('dense/kernel:0', (3, 4)), ('dense/bias:0', (4,))]


def model_config(rows, cols):
    return {'class_name': 'Sequential', 'config': {'name': 'sequential', 'layers': [
        {'class_name': 'Embedding', 'config': {'name': 'embedding', 'input_dim': rows, 'output_dim': cols,
                                               'dtype': 'float32', 'trainable': True}},
        {'class_name': 'Dense', 'config': {'name': 'dense', 'units': 4, 'dtype': 'float32', 'trainable': True}}]}}


def training_config():
    return {'loss': 'mse', 'metrics': None, 'weighted_metrics': None, 'loss_weights': None,
            'sample_weight_mode': None,
            'optimizer_config': {'class_name': 'Nadam', 'config': {
                'name': 'Nadam', 'learning_rate': float(F32(0.001)), 'decay': 0.004, 'beta_1': float(F32(0.9)),
                'beta_2': float(F32(0.999)), 'epsilon': 1e-07}}}


def unfilled(group, name, shape):
    """A contiguous float32 dataset whose space is allocated now and never written (a hole in the file)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    space = h5py.h5s.create_simple(shape)
    h5py.h5d.create(group.id, name.encode('utf8'), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
    return group[name]


def write(path, rows, cols, table, dense):
    """The file; `table(group, name, role)` makes each big dataset (role: 'value', 'm', 'v')."""
    with h5py.File(path, 'w') as f:
        f.attrs['keras_version'] = '2.4.0'
        f.attrs['backend'] = 'tensorflow'
        put_attr(f, 'model_config', json.dumps(model_config(rows, cols)).encode('utf8'), STYLE)
        put_attr(f, 'training_config', json.dumps(training_config()).encode('utf8'), STYLE)
        g = f.create_group('model_weights')
        save_name_list(g, 'layer_names', [b'embedding', b'dense'], STYLE)
        put_attr(g, 'backend', b'tensorflow', STYLE)
        put_attr(g, 'keras_version', b'2.4.0', STYLE)
        e = g.create_group('embedding')
        save_name_list(e, 'weight_names', [TABLE.encode('utf8')], STYLE)
        table(e.require_group('embedding'), 'embeddings:0', 'value')
        d = g.create_group('dense')
        save_name_list(d, 'weight_names', [n.encode('utf8') for n, _ in DENSE], STYLE)
        for (n, _), v in zip(DENSE, dense['value']):
            d[n] = v
        cache = momentum_product(ITERATIONS, F32(0.9), 0.004, np.dtype('float32'), False)
        names = ['Nadam/iter:0', 'Nadam/momentum_cache:0']
        o = f.create_group('optimizer_weights')
        o.create_group('Nadam')
        o['Nadam']['iter:0'] = np.array(ITERATIONS, dtype=np.int64)
        o['Nadam']['momentum_cache:0'] = np.array(cache, dtype=np.float32)
        for slot in ('m', 'v'):
            names.append('Nadam/embedding/embeddings/%s:0' % slot)
            table(o.require_group('Nadam/embedding/embeddings'), '%s:0' % slot, slot)
            for (n, _), v in zip(DENSE, dense[slot]):
                names.append('Nadam/%s/%s:0' % (n[:-2], slot))
                o.require_group('Nadam/' + n[:-2])['%s:0' % slot] = v
        save_name_list(o, 'weight_names', [n.encode('utf8') for n in names], STYLE)


def dense_values():
    rng = np.random.default_rng(11)
    value = [rng.standard_normal(s).astype('float32') for _, s in DENSE]
    return {'value': value, 'm': [rng.standard_normal(s).astype('float32') for _, s in DENSE],
            'v': [np.abs(rng.standard_normal(s)).astype('float32') for _, s in DENSE]}


def sampled(rows, cols):
    """Row ranges written with data: the start, the rows around byte offset 4 GiB of the table, the end."""
    around = (1 << 30) // cols
    middle = [[around - 64, around + 64]] if 128 <= around - 64 and around + 128 <= rows else []
    return [[0, 64]] + middle + [[rows - 64, rows]]


def make(path, rows, cols):
    ranges = sampled(rows, cols)
    rng = np.random.default_rng(20250101)

    def table(group, name, role):
        d = unfilled(group, name, (rows, cols))
        for a, b in ranges:
            x = rng.standard_normal((b - a, cols)).astype('float32')
            d[a:b] = np.abs(x) if role == 'v' else x
        return d

    write(path, rows, cols, table, dense_values())
    print(json.dumps({'ranges': ranges, 'iterations': ITERATIONS}))


def small(src, out, ranges):
    """The same state with only `ranges` rows of the table (concatenated): what the in-memory path steps."""
    with h5py.File(src, 'r') as s:
        parts = {
            'value': s['model_weights/embedding/embedding/embeddings:0'],
            'm': s['optimizer_weights/Nadam/embedding/embeddings/m:0'],
            'v': s['optimizer_weights/Nadam/embedding/embeddings/v:0'],
        }
        cols = parts['value'].shape[1]
        rows = sum(b - a for a, b in ranges)

        def table(group, name, role):
            group[name] = np.concatenate([parts[role][a:b] for a, b in ranges])

        write(out, rows, cols, table, dense_values())


def rows_hex(path, dataset, ranges):
    with h5py.File(path, 'r') as f:
        d = f[dataset]
        print(json.dumps([d[a:b].tobytes().hex() for a, b in ranges]))


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == 'small':
        small(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif cmd == 'rows':
        rows_hex(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        sys.exit(__doc__)
