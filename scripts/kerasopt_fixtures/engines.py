"""Engines turn a case into a trajectory (initial records, per-step records) plus a producer string.
All of them share the case's seeded gradients and the one writer."""
import re
import sys

import numpy as np

from . import cases as C
from .reference import ReferenceNadam


def _drive(case, make, step, state):
    """Runs warm-up steps, snapshots the state as `initial`, then records every step's gradients and state."""
    rng = np.random.default_rng(case['seed'])
    init = C.initial_values(case, rng)
    opt = make(init)
    for _ in range(case['warmup']):
        step(opt, C.draw_gradients(case, rng))
    snapshot = state(opt)
    initial = snapshot if case['warmup'] else [(k, a) for k, a in snapshot if k.startswith('var:')]
    steps = []
    for _ in range(case['steps']):
        grads = C.draw_gradients(case, rng)
        step(opt, grads)
        steps.append(C.gradient_records(grads) + state(opt))
    return initial, steps


def run_reference(case):
    def make(init):
        return ReferenceNadam(case['flavour'], case['dtype'], case['config'], init, case['pow'])

    initial, steps = _drive(case, make, lambda o, g: o.step(g), lambda o: o.state())
    producer = (f"scripts/generate_fixtures.py --engine reference (numpy {np.__version__}, Python "
                f"{sys.version.split()[0]}; pow: {case['pow']})")
    return initial, steps, producer


def run_torch(case):
    """torch.optim.NAdam in float64 (torch's Keras-2-like Nadam: same m, v, mu_product, step)."""
    import torch

    if case['dtype'] != 'float64' or case['flavour'] != 'keras2':
        raise SystemExit('the torch engine records float64 runs compared as the keras2 flavour (see cases.py)')
    torch.set_default_dtype(torch.float64)  # else torch 1.13 keeps mu_product in float32
    cfg = case['config']
    names = [v['name'] for v in case['variables']]

    def make(init):
        params = [torch.tensor(init[n], dtype=torch.float64, requires_grad=True) for n in names]
        opt = torch.optim.NAdam(params, lr=cfg['lr'], betas=(cfg['beta_1'], cfg['beta_2']), eps=cfg['epsilon'],
                                momentum_decay=cfg['schedule_decay'], foreach=False)
        return params, opt

    def step(o, grads):
        params, opt = o
        for p, n in zip(params, names):
            p.grad = torch.tensor(grads[n], dtype=torch.float64)
        opt.step()

    def state(o):
        params, opt = o
        s = [opt.state[p] for p in params]
        out = [(f'var:{n}', p.detach().numpy().copy()) for n, p in zip(names, params)]
        out += [(f'slot:m:{n}', st['exp_avg'].numpy().copy()) for n, st in zip(names, s)] if s[0] else []
        out += [(f'slot:v:{n}', st['exp_avg_sq'].numpy().copy()) for n, st in zip(names, s)] if s[0] else []
        if s[0]:
            out.append(('weight:m_schedule', np.array(float(s[0]['mu_product']), dtype=np.float64)))
            out.append(('weight:iterations', np.array(int(s[0]['step']), dtype=np.int64)))
        return out

    initial, steps = _drive(case, make, step, state)
    producer = f'scripts/generate_fixtures.py --engine torch (torch {torch.__version__} torch.optim.NAdam, float64, foreach=False)'
    return initial, steps, producer


def run_tensorflow(case):
    """Drives TensorFlow's own Nadam and records every step (for users who have TF; not run in kerasopt's CI)."""
    try:
        import tensorflow as tf
    except ImportError as e:
        raise SystemExit(f'the tensorflow engine needs TensorFlow in this Python ({sys.executable}): {e}')

    flavour = case['flavour']
    if flavour == 'keras2':
        raise SystemExit('the tensorflow engine drives tf.keras (tf-keras, tf-keras-new flavours) or Keras 3 (keras3); standalone Keras 2 needs TF 1.x')
    dtype = case['dtype']
    cfg = dict(case['config'])
    if flavour == 'tf-keras':
        legacy = getattr(getattr(tf.keras.optimizers, 'legacy', None), 'Nadam', None)
        cls = legacy or tf.keras.optimizers.Nadam  # TF 2.11+ moved optimizer_v2 Nadam to optimizers.legacy
        slots, schedule = ('m', 'v'), 'momentum_cache'
    elif flavour == 'tf-keras-new':
        # TF 2.11-2.15 export their new Nadam as tf.keras.optimizers.Nadam and .experimental.Nadam; TF 2.16+ has Keras 3.
        version = re.match(r'(\d+)\.(\d+)', tf.__version__)
        cls = getattr(getattr(tf.keras.optimizers, 'experimental', None), 'Nadam', None)
        if cls is None or (version and version[1] == '2' and not 11 <= int(version[2]) <= 15):
            raise SystemExit(f'the tf-keras-new flavour is the Nadam of TensorFlow 2.11-2.15; this is TensorFlow {tf.__version__}')
        slots, schedule = ('m', 'v'), 'u_product'
    else:
        import keras
        cls = keras.optimizers.Nadam
        slots, schedule = ('momentum', 'velocity'), 'u_product'
    names = [v['name'] for v in case['variables']]

    def make(init):
        variables = [tf.Variable(init[n], dtype=dtype, name=n) for n in names]
        return variables, cls.from_config(cfg)

    def step(o, grads):
        variables, opt = o
        pairs = []
        for v, n in zip(variables, names):
            g = grads[n]
            if isinstance(g, C.Sparse):
                g = tf.IndexedSlices(tf.constant(g.values), tf.constant(g.indices), tf.constant(v.shape, dtype=tf.int64))
            else:
                g = tf.constant(g)
            pairs.append((g, v))
        opt.apply_gradients(pairs)

    def state(o):
        variables, opt = o
        out = [(f'var:{n}', v.numpy().copy()) for n, v in zip(names, variables)]
        if flavour == 'tf-keras-new':
            if not getattr(opt, '_built', False):
                return out
            index = [opt._index_dict[opt._var_key(v)] for v in variables]
            out += [(f'slot:m:{n}', opt._momentums[i].numpy()) for n, i in zip(names, index)]
            out += [(f'slot:v:{n}', opt._velocities[i].numpy()) for n, i in zip(names, index)]
            out.append(('weight:u_product', np.array(opt._u_product.numpy(), dtype=dtype)))
        elif flavour == 'tf-keras':
            if not opt.weights:
                return out
            out += [(f'slot:{slots[0]}:{n}', opt.get_slot(v, 'm').numpy()) for n, v in zip(names, variables)]
            out += [(f'slot:{slots[1]}:{n}', opt.get_slot(v, 'v').numpy()) for n, v in zip(names, variables)]
            out.append((f'weight:{schedule}', np.array(opt._m_cache.numpy(), dtype=dtype)))
        else:
            if not opt.built:
                return out
            out += [(f'slot:{slots[0]}:{n}', opt._momentums[opt._get_variable_index(v)].numpy()) for n, v in zip(names, variables)]
            out += [(f'slot:{slots[1]}:{n}', opt._velocities[opt._get_variable_index(v)].numpy()) for n, v in zip(names, variables)]
            out.append((f'weight:{schedule}', np.array(opt._u_product.numpy(), dtype=dtype)))
        out.append(('weight:iterations', np.array(int(opt.iterations.numpy()), dtype=np.int64)))
        return out

    initial, steps = _drive(case, make, step, state)
    return initial, steps, f'scripts/generate_fixtures.py --engine tensorflow (TensorFlow {tf.__version__})'


ENGINES = {'reference': run_reference, 'torch': run_torch, 'tensorflow': run_tensorflow}
KINDS = {'reference': 'reference', 'torch': 'torch', 'tensorflow': 'tensorflow'}
