"""Makes Keras-layout files of optimizers other than Nadam, in each lineage's saving order, for
test/catalog.test.ts. Written by kerasopt's tests from reading the Keras sources (docs/optimizers.md),
never by Keras: they test the engine's ties, not what Keras writes (the real corpora do that).

stdin: JSON list of jobs {path, lineage, class_name, config, groups, orphan?}; `groups` lists slot
groups in saving order, each a list of [slot name, shape kind] ('variable' or 'one' for a [1]
placeholder). stdout: JSON list, per job, of the truth {weight name or index: [variable, slot]}.
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from keras_files import dense_model, model_config, put_attr, put_dataset, save_name_list, write_model_weights  # noqa: E402

LAYERS = [('dense', (3, 4)), ('dense_1', (4, 2))]


def slot_value(rng, shape, kind):
    return np.zeros((1,), np.float32) if kind == 'one' else np.abs(rng.standard_normal(shape)).astype('float32') + 0.5


def legacy(job, rng):
    lineage, cls, groups = job['lineage'], job['class_name'], job['groups']
    opt = job['config'].get('name', cls)
    model = dense_model(rng, LAYERS, 'float32')
    variables = [(w[:-2], v) for _, ws in model for w, v in ws]
    if job.get('orphan'):
        variables.append(('old_dense/kernel', rng.standard_normal((5, 5)).astype('float32')))
    version = {'tf-keras': '2.4.0', 'tf-keras-new': '2.12.0', 'keras2': '2.3.1'}[lineage]
    class_name = 'Custom>' + cls if lineage == 'tf-keras-new' else cls
    training = {'loss': 'mse', 'metrics': None, 'optimizer_config': {'class_name': class_name, 'config': job['config']}}
    weights = [({'tf-keras': '%s/iter:0' % opt, 'tf-keras-new': 'iteration:0', 'keras2': '%s/iterations:0' % opt}[lineage],
                np.array(11, dtype=np.int64), None)]
    for group in groups:
        for i, (var, value) in enumerate(variables):
            for slot, kind in group:
                if lineage == 'tf-keras':
                    name = '%s/%s/%s:0' % (opt, var, slot)
                elif lineage == 'tf-keras-new':
                    name = '%s/%s/%s:0' % (opt, slot, var)
                else:
                    name = '%s_%d:0' % (slot, i)
                weights.append((name, slot_value(rng, value.shape, kind), [var, slot]))
    with h5py.File(job['path'], 'w') as f:
        f.attrs['keras_version'] = version
        f.attrs['backend'] = 'tensorflow'
        put_attr(f, 'model_config', json.dumps(model_config(LAYERS, 'float32')).encode('utf8'), 'h5py3')
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), 'h5py3')
        write_model_weights(f, model, version, 'h5py3')
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [n.encode('utf8') for n, _, _ in weights], 'h5py3')
        for n, v, _ in weights:
            put_dataset(g, n, v)
    return {n: t for n, _, t in weights if t}


def keras3(job, rng):
    variables = [('layers/dense/vars/0', (3, 4)), ('layers/dense/vars/1', (4,)), ('layers/dense_1/vars/0', (4, 2)), ('layers/dense_1/vars/1', (2,))]
    with h5py.File(job['path'], 'w') as f:
        f.create_group('vars')
        for path, shape in variables:
            f[path] = rng.standard_normal(shape).astype('float32')
        opt = [(np.array(11, dtype=np.int64), None), (np.array(0.001, dtype=np.float32), None)]
        for group in job['groups']:
            for path, shape in variables:
                for slot, kind in group:
                    opt.append((slot_value(rng, shape, kind), [path, slot]))
        g = f.create_group('optimizer/vars')
        for k, (v, _) in enumerate(opt):
            g[str(k)] = v
    return {'optimizer/vars/%d' % k: t for k, (_, t) in enumerate(opt) if t}


def main():
    jobs = json.loads(sys.stdin.read())
    rng = np.random.default_rng(7)
    out = [keras3(j, rng) if j['lineage'] == 'keras3' else legacy(j, rng) for j in jobs]
    print(json.dumps(out))


if __name__ == '__main__':
    main()
