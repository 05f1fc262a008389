"""kerasopt's test helper: builds files in the Keras layouts with Debian's h5py and numpy.

These files are NOT Keras output. Each is "made by kerasopt's test helper in the <Keras version> layout",
following the sources read for the layouts:
  - tf.keras 2.x  tensorflow/python/keras/saving/hdf5_format.py (save_model_to_hdf5,
    save_optimizer_weights_to_hdf5_group, save_attributes_to_hdf5_group) and saving_utils.model_metadata;
  - tf.keras 2.11-2.15  tf_keras/saving/legacy/hdf5_format.py (save_optimizer_weights_to_hdf5_group takes
    optimizer.variables for the new optimizers) and tf_keras/optimizers/optimizer.py (iteration, then
    add_variable_from_reference's '<slot>/<variable>' m and v per variable; u_product is not in variables);
  - tf.keras 2.13-2.15 .keras  tf_keras/saving/saving_lib.py and Optimizer.save_own_variables (optimizer.variables
    by index: iteration, m0, v0, m1, v1, ...);
  - Keras 2.2.4 / 2.3  keras/engine/saving.py (_serialize_model) and keras/utils/io_utils.py (H5Dict);
  - Keras 3  keras/src/saving/saving_lib.py (H5IOStore, H5Entry, _save_state) and Optimizer.save_own_variables;
    Nadam's variables: iteration, learning_rate, then u_product and m/v interleaved (3.0-3.9) or m/v interleaved
    and u_product (3.10+), see docs/keras-releases.md.

Two string styles exist in real files: h5py 2 (what TF <= 2.4 and Keras 2.2 ran with) stores `bytes` as
fixed-length NULLPAD strings; h5py 3 (TF >= 2.5) stores `bytes` and lists of bytes as variable-length ASCII.
Python `str` attributes are variable-length UTF-8 in both.

usage:  keras_files.py make OUTDIR        writes the files and prints a JSON manifest
        keras_files.py dump FILE          prints every attribute and dataset of FILE as JSON (raw bytes in hex)
"""
import io
import json
import os
import sys
import zipfile
from fractions import Fraction

import h5py
import numpy as np

HEADER_LIMIT = 64512
F32 = np.float32


def fixed(value):
    """h5py 2 style: a bytes value becomes a fixed-length NULLPAD string (numpy 'S')."""
    return np.asarray(value)


def put_attr(obj, name, value, style):
    """What h5py does with Keras's `attrs[name] = bytes or [bytes]` in each h5py generation."""
    if style == 'h5py2' and isinstance(value, (bytes, list)):
        obj.attrs[name] = fixed(value)
    else:
        obj.attrs[name] = value


def save_name_list(group, name, names, style):
    """save_attributes_to_hdf5_group: chunks into name0, name1, ... when the array exceeds 64512 bytes."""
    arr = np.asarray(names)
    chunks = 1
    parts = np.array_split(arr, chunks)
    while any(p.nbytes > HEADER_LIMIT for p in parts):
        chunks += 1
        parts = np.array_split(arr, chunks)
    if chunks > 1:
        for i, p in enumerate(parts):
            group.attrs['%s%d' % (name, i)] = p  # numpy 'S' arrays: fixed length in every h5py
    else:
        put_attr(group, name, list(names), style)


def put_dataset(group, name, value):
    ds = group.create_dataset(name, value.shape, dtype=value.dtype)
    if value.shape:
        ds[:] = value
    else:
        ds[()] = value


def momentum_product(iterations, beta_1, decay, dtype, cast_then_add):
    """prod of mu_1..mu_t, one rounding per op in `dtype` (numpy's own float ops: an independent reading)."""
    t_ = dtype.type
    ms = t_(1)
    b1 = t_(beta_1)
    for k in range(iterations):
        t = t_(k) + t_(1) if cast_then_add else t_(k + 1)
        mu = b1 * (t_(1) - t_(0.5) * np.power(t_(0.96), t_(decay) * t))
        ms = t_(ms * mu)
    return ms


def dense_model(rng, layers, dtype):
    """[(layer_name, [(weight_name, value)])] for a stack of Dense layers."""
    out = []
    for name, (n_in, n_out) in layers:
        out.append((name, [('%s/kernel:0' % name, rng.standard_normal((n_in, n_out)).astype(dtype)),
                           ('%s/bias:0' % name, rng.standard_normal((n_out,)).astype(dtype))]))
    return out


def model_config(layers, dtype):
    cfg = [{'class_name': 'Dense', 'config': {'name': n, 'units': o, 'dtype': dtype, 'trainable': True}}
           for n, (_, o) in layers]
    return {'class_name': 'Sequential', 'config': {'name': 'sequential', 'layers': cfg}}


def write_model_weights(f, model, keras_version, style):
    g = f.create_group('model_weights')
    save_name_list(g, 'layer_names', [n.encode('utf8') for n, _ in model], style)
    put_attr(g, 'backend', b'tensorflow', style)
    put_attr(g, 'keras_version', keras_version.encode('utf8'), style)
    for layer, weights in sorted(model, key=lambda x: x[0]):
        lg = g.create_group(layer)
        save_name_list(lg, 'weight_names', [w.encode('utf8') for w, _ in weights], style)
        for w, value in weights:
            put_dataset(lg, w, value)


def tf_keras_file(path, rng, style, dtype='float32', iterations=7, layers=None, lr=0.001):
    layers = layers or [('dense', (3, 4)), ('dense_1', (4, 2))]
    np_dtype = np.dtype(dtype)
    model = dense_model(rng, layers, dtype)
    variables = [(w, v) for _, ws in model for w, v in ws]
    training = {'loss': 'mse', 'metrics': None, 'weighted_metrics': None, 'loss_weights': None,
                'sample_weight_mode': None,
                'optimizer_config': {'class_name': 'Nadam', 'config': {
                    # after training TF reads learning_rate/beta_1/beta_2 back from float32 hyper variables
                    'name': 'Nadam', 'learning_rate': float(F32(lr)), 'decay': 0.004, 'beta_1': float(F32(0.9)),
                    'beta_2': float(F32(0.999)), 'epsilon': 1e-07}}}
    with h5py.File(path, 'w') as f:
        f.attrs['keras_version'] = '2.4.0'
        f.attrs['backend'] = 'tensorflow'
        put_attr(f, 'model_config', json.dumps(model_config(layers, dtype)).encode('utf8'), style)
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), style)
        write_model_weights(f, model, '2.4.0', style)
        cache = momentum_product(iterations, F32(0.9), 0.004, np_dtype, False)
        weights = [('Nadam/iter:0', np.array(iterations, dtype=np.int64)),
                   ('Nadam/momentum_cache:0', np.array(cache, dtype=np_dtype))]
        for slot in ('m', 'v'):
            for w, v in variables:
                values = rng.standard_normal(v.shape).astype(dtype)
                weights.append(('Nadam/%s/%s:0' % (w[:-2], slot), np.abs(values) if slot == 'v' else values))
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [n.encode('utf8') for n, _ in weights], style)
        for n, v in weights:
            put_dataset(g, n, v)
    return {'flavour': 'tf-keras', 'iterations': iterations, 'slots': 2 * len(variables),
            'momentum_cache': float(cache)}


def keras2_file(path, rng, version, iterations=5):
    layers = [('dense_1', (3, 4)), ('dense_2', (4, 2))]
    model = dense_model(rng, layers, 'float32')
    variables = [(w, v) for _, ws in model for w, v in ws]
    training = {'optimizer_config': {'class_name': 'Nadam', 'config': {
        'lr': float(F32(0.002)), 'beta_1': float(F32(0.9)), 'beta_2': float(F32(0.999)), 'epsilon': 1e-07,
        'schedule_decay': 0.004}},
        'loss': 'mse', 'metrics': [], 'weighted_metrics': None, 'sample_weight_mode': None, 'loss_weights': None}
    m_schedule = momentum_product(iterations, F32(0.9), 0.004, np.dtype('float32'), True)
    with h5py.File(path, 'w') as f:
        put_attr(f, 'keras_version', version.encode('utf8'), 'h5py2')
        put_attr(f, 'backend', b'tensorflow', 'h5py2')
        put_attr(f, 'model_config', json.dumps(model_config(layers, 'float32')).encode('utf8'), 'h5py2')
        write_model_weights(f, model, version, 'h5py2')
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), 'h5py2')
        weights = [('Nadam/iterations:0', np.array(iterations, dtype=np.int64))]
        if version.startswith('2.3'):
            weights.append(('Nadam/m_schedule:0', np.array(m_schedule, dtype=np.float32)))
        n = len(variables)
        for k, (slot, (w, v)) in enumerate([('m', x) for x in variables] + [('v', x) for x in variables]):
            name = 'training/Nadam/%s_%d:0' % (slot, k % n) if version.startswith('2.3') else \
                ('training/Nadam/Variable:0' if k == 0 else 'training/Nadam/Variable_%d:0' % k)
            values = rng.standard_normal(v.shape).astype('float32')
            weights.append((name, np.abs(values) if slot == 'v' else values))
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [x.encode('utf8') for x, _ in weights], 'h5py2')
        for x, v in weights:
            put_dataset(g, x, v)
    return {'flavour': 'keras2', 'iterations': iterations, 'slots': 2 * len(variables),
            'm_schedule': float(m_schedule), 'm_schedule_saved': version.startswith('2.3')}


def u_product_tf211(iterations, beta_1, dtype):
    """TF 2.11's u_product: u *= beta_1 * (1 - 0.5 * 0.96^t), beta_1 and 0.96 via float32, numpy's own ops.

    Powers are exact rationals rounded to the dtype (float32 through float64: a double rounding that only
    a near-tie could notice), i.e. the correctly rounded pow kerasopt promises, not libm's."""
    t_ = dtype.type
    u = t_(1)
    b1, base = t_(F32(beta_1)), t_(F32(0.96))
    for k in range(iterations):
        power = t_(float(Fraction(float(base)) ** (k + 1)))
        u = t_(u * (b1 * (t_(1) - t_(0.5) * power)))
    return u


def tf_keras_new_file(path, rng, dtype='float32', iterations=9):
    layers = [('dense', (3, 4)), ('dense_1', (4, 2))]
    model = dense_model(rng, layers, dtype)
    variables = [(w, v) for _, ws in model for w, v in ws]
    training = {'loss': 'mse', 'metrics': None, 'weighted_metrics': None, 'loss_weights': None,
                'optimizer_config': {'class_name': 'Custom>Nadam', 'config': {
                    'name': 'Nadam', 'weight_decay': None, 'clipnorm': None, 'global_clipnorm': None, 'clipvalue': None,
                    'use_ema': False, 'ema_momentum': 0.99, 'ema_overwrite_frequency': None, 'jit_compile': False,
                    'is_legacy_optimizer': False, 'learning_rate': float(F32(0.001)), 'beta_1': 0.9, 'beta_2': 0.999,
                    'epsilon': 1e-07}}}
    with h5py.File(path, 'w') as f:
        f.attrs['keras_version'] = '2.11.0'
        f.attrs['backend'] = 'tensorflow'
        put_attr(f, 'model_config', json.dumps(model_config(layers, dtype)).encode('utf8'), 'h5py3')
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), 'h5py3')
        write_model_weights(f, model, '2.11.0', 'h5py3')
        weights = [('iteration:0', np.array(iterations, dtype=np.int64))]
        for w, v in variables:
            weights.append(('Nadam/m/%s' % w, rng.standard_normal(v.shape).astype(dtype)))
            weights.append(('Nadam/v/%s' % w, np.abs(rng.standard_normal(v.shape)).astype(dtype)))
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [n.encode('utf8') for n, _ in weights], 'h5py3')
        for n, v in weights:
            put_dataset(g, n, v)
    return {'flavour': 'tf-keras-new', 'iterations': iterations, 'slots': 2 * len(variables),
            'u_product': float(u_product_tf211(iterations, 0.9, np.dtype(dtype)))}


def keras3_slots(rng, variables, u, layout):
    """Keras 3's optimizer.variables after iteration and learning_rate: m and v interleaved per variable
    (add_variable_from_reference per variable); u_product assigned before the slots up to 3.9 ('u-first'),
    after them from 3.10 ('u-last', add_optimizer_variables, keras-team/keras PR #21232/#21247)."""
    slots = []
    for v in variables:
        slots += [rng.standard_normal(v.shape).astype('float32'), np.abs(rng.standard_normal(v.shape)).astype('float32')]
    u = [np.array(u, dtype=np.float32)]
    return u + slots if layout == 'u-first' else slots + u


def keras3_weights(h5file, rng, iterations=4, layout='u-last'):
    layers = [('dense', (3, 4)), ('dense_1', (4, 2))]
    model = dense_model(rng, layers, 'float32')
    h5file.create_group('vars')
    for i, (layer, weights) in enumerate(model):
        g = h5file.create_group('layers/%s' % layer).create_group('vars')
        for k, (_, v) in enumerate(weights):
            g[str(k)] = v
    variables = [v for _, ws in model for _, v in ws]
    u = F32(1)
    for k in range(iterations):
        u = F32(u * F32(0.9) * (F32(1) - F32(0.5) * np.power(F32(0.96), F32(k + 1))))
    opt = [np.array(iterations, dtype=np.int64), np.array(0.001, dtype=np.float32)]
    opt += keras3_slots(rng, variables, u, layout)
    g = h5file.create_group('optimizer').create_group('vars')
    for k, v in enumerate(opt):
        g[str(k)] = v
    return {'flavour': 'keras3', 'iterations': iterations, 'slots': 2 * len(variables), 'u_product': float(u),
            'layers': layers}


def tf_keras_new_weights(h5file, rng, iterations=4):
    layers = [('dense', (3, 4)), ('dense_1', (4, 2))]
    model = dense_model(rng, layers, 'float32')
    h5file.create_group('vars')
    for layer, weights in model:
        g = h5file.create_group('layers/%s' % layer).create_group('vars')
        for k, (_, v) in enumerate(weights):
            g[str(k)] = v
    opt = [np.array(iterations, dtype=np.int64)]
    for v in [v for _, ws in model for _, v in ws]:
        opt += [rng.standard_normal(v.shape).astype('float32'), np.abs(rng.standard_normal(v.shape)).astype('float32')]
    g = h5file.create_group('optimizer').create_group('vars')
    for k, v in enumerate(opt):
        g[str(k)] = v
    return {'flavour': 'tf-keras-new', 'iterations': iterations, 'slots': 2 * len(opt[1:]) // 2,
            'u_product': float(u_product_tf211(iterations, 0.9, np.dtype('float32'))), 'layers': layers}


def tf_keras_new_archive_config(layers):
    return {'module': 'keras', 'class_name': 'Sequential', 'config': {'name': 'sequential', 'layers': [
        {'module': 'keras.layers', 'class_name': 'Dense', 'config': {'name': n, 'units': o}} for n, (_, o) in layers]},
        'compile_config': {'optimizer': {'module': 'keras.optimizers', 'class_name': 'Nadam', 'config': {
            'name': 'Nadam', 'weight_decay': None, 'clipnorm': None, 'global_clipnorm': None, 'clipvalue': None,
            'use_ema': False, 'ema_momentum': 0.99, 'ema_overwrite_frequency': None, 'jit_compile': False,
            'is_legacy_optimizer': False, 'learning_rate': 0.0010000000474974513, 'beta_1': 0.9, 'beta_2': 0.999,
            'epsilon': 1e-07}, 'registered_name': None},
            'loss': 'mean_squared_error', 'metrics': None}}


def keras3_config(layers):
    return {'module': 'keras', 'class_name': 'Sequential', 'config': {'name': 'sequential', 'layers': [
        {'module': 'keras.layers', 'class_name': 'Dense', 'config': {'name': n, 'units': o}} for n, (_, o) in layers]},
        'compile_config': {'optimizer': {'module': 'keras.optimizers', 'class_name': 'Nadam', 'config': {
            'name': 'nadam', 'learning_rate': 0.0010000000474974513, 'weight_decay': None, 'clipnorm': None,
            'global_clipnorm': None, 'clipvalue': None, 'use_ema': False, 'ema_momentum': 0.99,
            'ema_overwrite_frequency': None, 'loss_scale_factor': None, 'gradient_accumulation_steps': None,
            'beta_1': 0.9, 'beta_2': 0.999, 'epsilon': 1e-07}, 'registered_name': None},
            'loss': 'mean_squared_error', 'metrics': None}}


# --- files for test/formats.layouts.test.ts (each follows a row of docs/keras-releases.md) ---------------

def keras3_u_product(iterations):
    """Keras 3's u_product after `iterations` steps, in float32 with numpy's own ops."""
    u = F32(1)
    for k in range(iterations):
        u = F32(u * F32(0.9) * (F32(1) - F32(0.5) * np.power(F32(0.96), F32(k + 1))))
    return u


def keras3_layer_config(cls, name, trainable, extra):
    cfg = {'name': name, 'trainable': trainable, 'dtype': 'float32'}
    cfg.update(extra)
    return {'module': 'keras.layers', 'class_name': cls, 'config': cfg, 'registered_name': None}


def keras3_bn_model(rng, frozen=()):
    """Sequential [Dense(3->4), BatchNormalization(4), Dense(4->2)] as Keras 3 saves it: each layer's
    `vars` are its trainable then non-trainable variables (Layer.save_own_variables), so BatchNormalization
    stores gamma, beta, moving_mean, moving_variance. Returns (layers, config layers, trainable variables
    in model order: what the optimizer was built on). `frozen` names layers with trainable=False."""
    d0k, d0b = rng.standard_normal((3, 4)).astype('float32'), rng.standard_normal(4).astype('float32')
    gamma, beta = (1 + 0.1 * rng.standard_normal(4)).astype('float32'), rng.standard_normal(4).astype('float32')
    mean, var = rng.standard_normal(4).astype('float32'), np.abs(rng.standard_normal(4)).astype('float32')
    d1k, d1b = rng.standard_normal((4, 2)).astype('float32'), rng.standard_normal(2).astype('float32')
    layers = [('dense', 'Dense', [d0k, d0b], 2, {'units': 4}),
              ('batch_normalization', 'BatchNormalization', [gamma, beta, mean, var], 2,
               {'axis': -1, 'momentum': 0.99, 'epsilon': 0.001, 'center': True, 'scale': True}),
              ('dense_1', 'Dense', [d1k, d1b], 2, {'units': 2})]
    config = [{'module': 'keras.layers', 'class_name': 'InputLayer', 'registered_name': None,
               'config': {'batch_shape': [None, 3], 'dtype': 'float32', 'sparse': False, 'name': 'input_layer'}}]
    trainable = []
    for name, cls, values, n_trainable, extra in layers:
        config.append(keras3_layer_config(cls, name, name not in frozen, extra))
        if name not in frozen:
            trainable += values[:n_trainable]
    return layers, config, trainable


def keras3_optimizer_config(learning_rate):
    return {'module': 'keras.optimizers', 'class_name': 'Nadam', 'config': {
        'name': 'nadam', 'learning_rate': learning_rate, 'weight_decay': None, 'clipnorm': None,
        'global_clipnorm': None, 'clipvalue': None, 'use_ema': False, 'ema_momentum': 0.99,
        'ema_overwrite_frequency': None, 'loss_scale_factor': None, 'gradient_accumulation_steps': None,
        'beta_1': 0.9, 'beta_2': 0.999, 'epsilon': 1e-07}, 'registered_name': None}


def keras3_bn_archive(path, rng, version, layout, iterations, frozen=(), schedule=False):
    """A Keras 3 .keras archive of keras3_bn_model: optimizer/vars = iteration, learning_rate (absent with a
    schedule), then u_product and the interleaved slots in `layout` order (keras3_slots)."""
    layers, config_layers, trainable = keras3_bn_model(rng, frozen)
    buf = io.BytesIO()
    with h5py.File(buf, 'w') as f:
        f.create_group('vars')
        for name, _, values, _, _ in layers:
            g = f.create_group('layers/%s/vars' % name)
            for k, v in enumerate(values):
                g[str(k)] = v
        opt = [np.array(iterations, dtype=np.int64)]
        if not schedule:
            opt.append(np.array(0.001, dtype=np.float32))
        opt += keras3_slots(rng, trainable, keras3_u_product(iterations), layout)
        g = f.create_group('optimizer/vars')
        for k, v in enumerate(opt):
            g[str(k)] = v
    lr = {'module': 'keras.optimizers.schedules', 'class_name': 'ExponentialDecay', 'config': {
        'initial_learning_rate': 0.001, 'decay_steps': 1000, 'decay_rate': 0.96, 'staircase': False,
        'name': 'ExponentialDecay'}, 'registered_name': None} if schedule else 0.0010000000474974513
    config = {'module': 'keras', 'class_name': 'Sequential', 'registered_name': None,
              'config': {'name': 'sequential', 'trainable': True, 'dtype': 'float32', 'layers': config_layers},
              'build_config': {'input_shape': [None, 3]},
              'compile_config': {'optimizer': keras3_optimizer_config(lr), 'loss': 'mean_squared_error',
                                 'loss_weights': None, 'metrics': None, 'weighted_metrics': None,
                                 'run_eagerly': False, 'steps_per_execution': 1, 'jit_compile': False}}
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('metadata.json', json.dumps({'keras_version': version, 'date_saved': '2025-06-01@10:00:00'}))
        zf.writestr('config.json', json.dumps(config))
        zf.writestr('model.weights.h5', buf.getvalue())
    return {'flavour': 'keras3', 'iterations': iterations, 'slots': 2 * len(trainable),
            'u_product': float(keras3_u_product(iterations))}


def keras3_bare_weights(path, rng, shapes, iterations, layout='u-first'):
    """A Keras 3 .weights.h5 (no version, no config) of one layer per shape in `shapes`, each holding one
    variable: 'layers/<name>/vars/0'. The optimizer has learning_rate and `layout`'s u_product place."""
    variables = [rng.standard_normal(s).astype('float32') for s in shapes]
    with h5py.File(path, 'w') as f:
        f.create_group('vars')
        for i, v in enumerate(variables):
            f.create_group('layers/%s/vars' % ('scale' if i == 0 else 'scale_%d' % i))['0'] = v
        opt = [np.array(iterations, dtype=np.int64), np.array(0.001, dtype=np.float32)]
        opt += keras3_slots(rng, variables, keras3_u_product(iterations), layout)
        g = f.create_group('optimizer/vars')
        for k, v in enumerate(opt):
            g[str(k)] = v
    return {'flavour': 'keras3', 'iterations': iterations, 'slots': 2 * len(variables),
            'u_product': float(keras3_u_product(iterations))}


def keras2_model_file(path, rng, version, layers, trainable, opt_weights, iterations, model_cfg, training):
    """A standalone Keras 2 .h5: `layers` = [(layer, [(weight_name, value)])] in model order, `trainable` the
    weights the optimizer's params held (in the order get_updates received them); optimizer weights are
    opt_weights[0] (iterations) then all m then all v, named by `opt_weights[1](k)`."""
    with h5py.File(path, 'w') as f:
        put_attr(f, 'keras_version', version.encode('utf8'), 'h5py2')
        put_attr(f, 'backend', b'tensorflow', 'h5py2')
        put_attr(f, 'model_config', json.dumps(model_cfg).encode('utf8'), 'h5py2')
        write_model_weights(f, layers, version, 'h5py2')
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), 'h5py2')
        weights = [opt_weights[0]]
        for k, (slot, v) in enumerate([('m', v) for v in trainable] + [('v', v) for v in trainable]):
            values = rng.standard_normal(v.shape).astype('float32')
            weights.append((opt_weights[1](k), np.abs(values) if slot == 'v' else values))
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [x.encode('utf8') for x, _ in weights], 'h5py2')
        for x, v in weights:
            put_dataset(g, x, v)
    return {'flavour': 'keras2', 'iterations': iterations, 'slots': 2 * len(trainable)}


def keras2_bn_frozen_file(path, rng, iterations=5):
    """Keras 2.2.4: Sequential [dense_1 (frozen), batch_normalization_1, dense_2]. The optimizer's params are
    model._collected_trainable_weights: the frozen layer's weights and BatchNormalization's moving statistics
    are not among them. Keras 2.2 Sequential.get_config is {'name', 'layers'}, each with 'trainable'."""
    v = lambda *s: rng.standard_normal(s).astype('float32')
    layers = [('dense_1', [('dense_1/kernel:0', v(3, 4)), ('dense_1/bias:0', v(4))]),
              ('batch_normalization_1', [('batch_normalization_1/gamma:0', v(4)), ('batch_normalization_1/beta:0', v(4)),
                                         ('batch_normalization_1/moving_mean:0', v(4)),
                                         ('batch_normalization_1/moving_variance:0', np.abs(v(4)))]),
              ('dense_2', [('dense_2/kernel:0', v(4, 2)), ('dense_2/bias:0', v(2))])]
    trainable = [w for w in layers[1][1][:2] + layers[2][1]]
    cfg = {'class_name': 'Sequential', 'config': {'name': 'sequential_1', 'layers': [
        {'class_name': 'Dense', 'config': {'name': 'dense_1', 'trainable': False, 'units': 4, 'batch_input_shape': [None, 3], 'dtype': 'float32'}},
        {'class_name': 'BatchNormalization', 'config': {'name': 'batch_normalization_1', 'trainable': True, 'axis': -1, 'momentum': 0.99, 'epsilon': 0.001}},
        {'class_name': 'Dense', 'config': {'name': 'dense_2', 'trainable': True, 'units': 2}}]}}
    training = {'optimizer_config': {'class_name': 'Nadam', 'config': {
        'lr': float(F32(0.002)), 'beta_1': float(F32(0.9)), 'beta_2': float(F32(0.999)), 'epsilon': 1e-07,
        'schedule_decay': 0.004}},
        'loss': 'mse', 'metrics': [], 'weighted_metrics': None, 'sample_weight_mode': None, 'loss_weights': None}
    iters = ('Nadam/iterations:0', np.array(iterations, dtype=np.int64))
    name = lambda k: 'training/Nadam/Variable:0' if k == 0 else 'training/Nadam/Variable_%d:0' % k
    info = keras2_model_file(path, rng, '2.2.4', layers, [x for _, x in trainable], (iters, name), iterations, cfg, training)
    info['tied'] = [w[:-2] for w, _ in trainable]
    return info


def keras2_sorted_file(path, rng, iterations=6):
    """Keras 2.0.4: iterations a float32 K.variable(0.) (TF names it 'iterations_3' when others exist), slots
    unnamed K.zeros ('Variable_N'), and the params _collect_trainable_weights sorted by variable name."""
    v = lambda *s: rng.standard_normal(s).astype('float32')
    layers = [('conv2d_1', [('conv2d_1/kernel:0', v(3, 3, 1, 2)), ('conv2d_1/bias:0', v(2))]),
              ('dense_2', [('dense_2/kernel:0', v(8, 4)), ('dense_2/bias:0', v(4))]),
              ('dense_10', [('dense_10/kernel:0', v(4, 3)), ('dense_10/bias:0', v(3))])]
    trainable = sorted([w for _, ws in layers for w in ws], key=lambda x: x[0])
    cfg = {'class_name': 'Sequential', 'config': [  # Keras 2.0 Sequential.get_config: the layer list
        {'class_name': 'Conv2D', 'config': {'name': 'conv2d_1', 'trainable': True, 'filters': 2, 'kernel_size': [3, 3], 'batch_input_shape': [None, 4, 4, 1]}},
        {'class_name': 'Flatten', 'config': {'name': 'flatten_1', 'trainable': True}},
        {'class_name': 'Dense', 'config': {'name': 'dense_2', 'trainable': True, 'units': 4}},
        {'class_name': 'Dense', 'config': {'name': 'dense_10', 'trainable': True, 'units': 3}}]}
    training = {'optimizer_config': {'class_name': 'Nadam', 'config': {
        'lr': float(F32(0.002)), 'beta_1': float(F32(0.9)), 'beta_2': float(F32(0.999)), 'epsilon': 1e-08,
        'schedule_decay': 0.004}}, 'loss': 'mse', 'metrics': [], 'sample_weight_mode': None, 'loss_weights': None}
    iters = ('iterations_3:0', np.array(iterations, dtype=np.float32))
    name = lambda k: 'Variable_%d:0' % (k + 4)  # other unnamed variables were made before
    info = keras2_model_file(path, rng, '2.0.4', layers, [x for _, x in trainable], (iters, name), iterations, cfg, training)
    info['tied'] = [w[:-2] for w, _ in trainable]
    return info


def tf_keras_orphans_file(path, rng, iterations=8):
    """tf.keras 2.9 optimizer_v2: an optimizer first trained another model (variables other_a, other_b) then
    this one (dense). _create_all_weights runs per batch of new variables, appending their m then their v,
    so weights = [iter, momentum_cache, m(other_a), m(other_b), v(other_a), v(other_b), m(dense/kernel),
    m(dense/bias), v(dense/kernel), v(dense/bias)]; the .h5 saves optimizer.weights named w.name."""
    model = dense_model(rng, [('dense', (3, 4))], 'float32')
    others = [('other_a', rng.standard_normal((5,)).astype('float32')), ('other_b', rng.standard_normal((2, 2)).astype('float32'))]
    training = {'loss': 'mse', 'metrics': None, 'weighted_metrics': None, 'loss_weights': None,
                'optimizer_config': {'class_name': 'Nadam', 'config': {
                    'name': 'Nadam', 'learning_rate': float(F32(0.001)), 'decay': 0.004, 'beta_1': float(F32(0.9)),
                    'beta_2': float(F32(0.999)), 'epsilon': 1e-07}}}
    with h5py.File(path, 'w') as f:
        f.attrs['keras_version'] = '2.9.0'
        f.attrs['backend'] = 'tensorflow'
        put_attr(f, 'model_config', json.dumps(model_config([('dense', (3, 4))], 'float32')).encode('utf8'), 'h5py3')
        put_attr(f, 'training_config', json.dumps(training).encode('utf8'), 'h5py3')
        write_model_weights(f, model, '2.9.0', 'h5py3')
        cache = momentum_product(iterations, F32(0.9), 0.004, np.dtype('float32'), False)
        weights = [('Nadam/iter:0', np.array(iterations, dtype=np.int64)),
                   ('Nadam/momentum_cache:0', np.array(cache, dtype=np.float32))]
        for batch in (others, [(w[:-2], v) for w, v in model[0][1]]):
            for slot in ('m', 'v'):
                for name, v in batch:
                    values = rng.standard_normal(v.shape).astype('float32')
                    weights.append(('Nadam/%s/%s:0' % (name, slot), np.abs(values) if slot == 'v' else values))
        g = f.create_group('optimizer_weights')
        save_name_list(g, 'weight_names', [n.encode('utf8') for n, _ in weights], 'h5py3')
        for n, v in weights:
            put_dataset(g, n, v)
    return {'flavour': 'tf-keras', 'iterations': iterations, 'slots': len(weights) - 2}


def make_layout_files(out, entry):
    """The files of test/formats.layouts.test.ts, from their own generator (the other files keep their bytes)."""
    rng = np.random.default_rng(20250601)
    j = lambda name: os.path.join(out, name)
    entry('keras3_bn_3.5.0.keras', keras3_bn_archive(j('keras3_bn_3.5.0.keras'), rng, '3.5.0', 'u-first', 7),
          'Keras 3.5.0 .keras archive (Dense, BatchNormalization, Dense)')
    entry('keras3_bn_3.11.0.keras', keras3_bn_archive(j('keras3_bn_3.11.0.keras'), rng, '3.11.0', 'u-last', 7),
          'Keras 3.11.0 .keras archive (Dense, BatchNormalization, Dense)')
    entry('keras3_bn_frozen.keras', keras3_bn_archive(j('keras3_bn_frozen.keras'), rng, '3.11.0', 'u-last', 4, frozen=('dense',)),
          'Keras 3.11.0 .keras archive (first Dense frozen)')
    entry('keras3_schedule.keras', keras3_bn_archive(j('keras3_schedule.keras'), rng, '3.5.0', 'u-first', 5, schedule=True),
          'Keras 3.5.0 .keras archive (learning-rate schedule)')
    entry('keras3_u_first.weights.h5', keras3_bare_weights(j('keras3_u_first.weights.h5'), rng, [(3, 4), (4,)], 3),
          'Keras 3.0-3.9 .weights.h5 (no version)')
    entry('keras3_ambiguous.weights.h5', keras3_bare_weights(j('keras3_ambiguous.weights.h5'), rng, [()], 2),
          'Keras 3.0-3.9 .weights.h5 (one scalar variable: fits u-first and u-last)')
    entry('keras2_bn_frozen_2.2.4.h5', keras2_bn_frozen_file(j('keras2_bn_frozen_2.2.4.h5'), rng),
          'Keras 2.2.4 (BatchNormalization, frozen layer)')
    entry('keras2_2.0.4_sorted.h5', keras2_sorted_file(j('keras2_2.0.4_sorted.h5'), rng), 'Keras 2.0.4')
    entry('tf_keras_orphans_2.9.h5', tf_keras_orphans_file(j('tf_keras_orphans_2.9.h5'), rng),
          'tf.keras 2.9 (optimizer reused across models)')


def make(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    manifest = {}

    def entry(name, info, layout):
        info.update({'file': os.path.join(out, name),
                     'provenance': "made by kerasopt's test helper in the %s layout" % layout})
        manifest[name] = info

    entry('tf_keras_h5py2.h5', tf_keras_file(os.path.join(out, 'tf_keras_h5py2.h5'), rng, 'h5py2'),
          'tf.keras 2.4 (h5py 2)')
    entry('tf_keras_h5py3.h5', tf_keras_file(os.path.join(out, 'tf_keras_h5py3.h5'), rng, 'h5py3'),
          'tf.keras 2.4 (h5py 3)')
    entry('tf_keras_f64.h5', tf_keras_file(os.path.join(out, 'tf_keras_f64.h5'), rng, 'h5py3', 'float64'),
          'tf.keras 2.4 (float64 model)')
    entry('tf_keras_f16.h5', tf_keras_file(os.path.join(out, 'tf_keras_f16.h5'), rng, 'h5py3', 'float16'),
          'tf.keras 2.4 (float16 model)')
    many = [('layer_with_a_rather_long_name_to_fill_the_optimizer_weights_object_header_%04d' % i, (1, 1)) for i in range(210)]
    entry('tf_keras_chunked.h5',
          tf_keras_file(os.path.join(out, 'tf_keras_chunked.h5'), rng, 'h5py2', iterations=3, layers=many),
          'tf.keras 2.4 (weight_names chunked past 64512 bytes)')
    entry('keras2_2.2.4.h5', keras2_file(os.path.join(out, 'keras2_2.2.4.h5'), rng, '2.2.4'), 'Keras 2.2.4')
    entry('keras2_2.3.1.h5', keras2_file(os.path.join(out, 'keras2_2.3.1.h5'), rng, '2.3.1'), 'Keras 2.3.1')
    with h5py.File(os.path.join(out, 'keras3.weights.h5'), 'w') as f:
        info = keras3_weights(f, rng)
    entry('keras3.weights.h5', dict(info), 'Keras 3 .weights.h5')
    buf = io.BytesIO()
    with h5py.File(buf, 'w') as f:
        info = keras3_weights(f, rng, iterations=6, layout='u-first')
    with zipfile.ZipFile(os.path.join(out, 'keras3.keras'), 'w') as zf:
        zf.writestr('metadata.json', json.dumps({'keras_version': '3.3.3', 'date_saved': '2024-06-11@10:00:00'}))
        zf.writestr('config.json', json.dumps(keras3_config(info['layers'])))
        zf.writestr('model.weights.h5', buf.getvalue())
    entry('keras3.keras', dict(info), 'Keras 3 .keras archive')
    with h5py.File(os.path.join(out, 'keras3_nested.weights.h5'), 'w') as f:
        # a Sequential nested in a model: its layers live under layers/<model>/layers/<layer>/vars
        f.create_group('vars')
        inner = dense_model(rng, [('dense', (3, 4))], 'float32')
        outer = dense_model(rng, [('dense_1', (4, 2))], 'float32')
        f.create_group('layers/dense_1/vars')
        for k, (_, v) in enumerate(outer[0][1]):
            f['layers/dense_1/vars'][str(k)] = v
        f.create_group('layers/sequential/vars')
        f.create_group('layers/sequential/layers/dense/vars')
        for k, (_, v) in enumerate(inner[0][1]):
            f['layers/sequential/layers/dense/vars'][str(k)] = v
        variables = [v for _, v in outer[0][1]] + [v for _, v in inner[0][1]]
        opt = [np.array(2, dtype=np.int64), np.array(0.001, dtype=np.float32)]
        u = F32(1)
        for k in range(2):  # the u_product of 2 steps with beta_1 0.9, as Keras 3 computes it
            u = F32(u * F32(0.9) * (F32(1) - F32(0.5) * np.power(F32(0.96), F32(k + 1))))
        opt += keras3_slots(rng, variables, u, 'u-last')
        g = f.create_group('optimizer/vars')
        for k, v in enumerate(opt):
            g[str(k)] = v
    entry('keras3_nested.weights.h5', {'flavour': 'keras3', 'iterations': 2, 'slots': 8},
          'Keras 3 .weights.h5 (nested model)')
    with h5py.File(os.path.join(out, 'no_optimizer.h5'), 'w') as f:
        f.attrs['keras_version'] = '2.4.0'
        f.attrs['backend'] = 'tensorflow'
        layers = [('dense', (3, 4))]
        put_attr(f, 'model_config', json.dumps(model_config(layers, 'float32')).encode('utf8'), 'h5py3')
        write_model_weights(f, dense_model(rng, layers, 'float32'), '2.4.0', 'h5py3')
    manifest['no_optimizer.h5'] = {'file': os.path.join(out, 'no_optimizer.h5'), 'flavour': None}
    entry('tf_keras_new.h5', tf_keras_new_file(os.path.join(out, 'tf_keras_new.h5'), rng), 'tf.keras 2.11 (new optimizer)')
    buf = io.BytesIO()
    with h5py.File(buf, 'w') as f:
        info = tf_keras_new_weights(f, rng, iterations=11)
    with zipfile.ZipFile(os.path.join(out, 'tf_keras_new.keras'), 'w') as zf:
        zf.writestr('metadata.json', json.dumps({'keras_version': '2.13.1', 'date_saved': '2024-06-11@10:00:00'}))
        zf.writestr('config.json', json.dumps(tf_keras_new_archive_config(info['layers'])))
        zf.writestr('model.weights.h5', buf.getvalue())
    entry('tf_keras_new.keras', dict(info), 'tf.keras 2.13 .keras archive (new optimizer)')
    entry('tf_keras_new_f64.h5', tf_keras_new_file(os.path.join(out, 'tf_keras_new_f64.h5'), rng, 'float64', 40),
          'tf.keras 2.11 (new optimizer, float64 model)')
    make_layout_files(out, entry)
    for m in manifest.values():
        m.pop('layers', None)
    print(json.dumps(manifest))


def describe_type(t):
    if t.get_class() == h5py.h5t.STRING:
        vlen = t.is_variable_str()
        return {'class': 'string', 'vlen': bool(vlen), 'size': None if vlen else t.get_size(),
                'cset': 'utf8' if t.get_cset() == h5py.h5t.CSET_UTF8 else 'ascii',
                'strpad': {0: 'nullterm', 1: 'nullpad', 2: 'spacepad'}[t.get_strpad()]}
    return {'class': {h5py.h5t.INTEGER: 'int', h5py.h5t.FLOAT: 'float'}.get(t.get_class(), 'other'),
            'size': t.get_size()}


def attr_json(obj):
    out = {}
    for name in obj.attrs:
        aid = h5py.h5a.open(obj.id, name.encode())
        t = aid.get_type()
        v = obj.attrs[name]
        if isinstance(v, np.ndarray):
            v = [x.decode('utf8') if isinstance(x, bytes) else str(x) for x in v.tolist()]
        elif isinstance(v, bytes):
            v = v.decode('utf8')
        else:
            v = v if isinstance(v, str) else str(v)
        out[name] = {'type': describe_type(t), 'shape': list(aid.shape), 'value': v}
    return out


def dump(path):
    """h5py's reading of an HDF5 file, or of the model.weights.h5 inside a .keras archive."""
    out = {'attrs': {}, 'datasets': {}, 'groups': []}
    source = path
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            source = io.BytesIO(zf.read('model.weights.h5'))
    with h5py.File(source, 'r') as f:
        out['attrs']['/'] = attr_json(f)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                arr = obj[()]
                out['datasets'][name] = {'dtype': arr.dtype.str, 'shape': list(obj.shape),
                                         'hex': np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder('<')).tobytes().hex()}
            else:
                out['groups'].append(name)
            if len(obj.attrs):
                out['attrs'][name] = attr_json(obj)
        f.visititems(visit)
    print(json.dumps(out))


if __name__ == '__main__':
    if sys.argv[1] == 'make':
        make(sys.argv[2])
    elif sys.argv[1] == 'dump':
        dump(sys.argv[2])
    else:
        raise SystemExit(__doc__)
