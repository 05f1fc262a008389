"""Fixture cases: what to run (flavour, dtype, config, variables, gradients), seeded so that a
regenerated fixture is byte-identical. Engines turn a case into a trajectory."""
import numpy as np

from .numerics import DTYPES
from .reference import Sparse

EXACT = {'kind': 'exact'}


def keras_config(flavour, lr=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clipnorm=None, clipvalue=None):
    """The optimizer config exactly as the flavour's get_config() writes it for a fresh optimizer."""
    if flavour == 'keras2':
        base = {k: v for k, v in (('clipnorm', clipnorm), ('clipvalue', clipvalue)) if v is not None}
        return {**base, 'lr': 0.002 if lr is None else lr, 'beta_1': beta_1, 'beta_2': beta_2, 'epsilon': epsilon,
                'schedule_decay': 0.004}
    if flavour == 'keras3':
        return {'name': 'nadam', 'learning_rate': 0.001 if lr is None else lr, 'weight_decay': None,
                'clipnorm': clipnorm, 'global_clipnorm': None, 'clipvalue': clipvalue, 'use_ema': False,
                'ema_momentum': 0.99, 'ema_overwrite_frequency': None, 'loss_scale_factor': None,
                'gradient_accumulation_steps': None, 'beta_1': beta_1, 'beta_2': beta_2, 'epsilon': epsilon}
    if flavour == 'tf-keras-new':
        # TF 2.11-2.15 get_config: learning_rate is the float32 variable's value; jit_compile False without a GPU.
        return {'name': 'Nadam', 'weight_decay': None, 'clipnorm': clipnorm, 'global_clipnorm': None, 'clipvalue': clipvalue,
                'use_ema': False, 'ema_momentum': 0.99, 'ema_overwrite_frequency': None, 'jit_compile': False,
                'is_legacy_optimizer': False, 'learning_rate': float(np.float32(0.001 if lr is None else lr)),
                'beta_1': beta_1, 'beta_2': beta_2, 'epsilon': epsilon}
    base = {k: v for k, v in (('clipnorm', clipnorm), ('clipvalue', clipvalue)) if v is not None}
    return {'name': 'Nadam', **base, 'learning_rate': 0.001 if lr is None else lr, 'decay': 0.004,
            'beta_1': beta_1, 'beta_2': beta_2, 'epsilon': epsilon}


def case(name, flavour, dtype, variables, steps, seed, description, values='normal', tolerance=EXACT,
         warmup=0, pow_mode='correctly-rounded', **hyper):
    return dict(name=name, flavour=flavour, dtype=dtype, variables=variables, steps=steps, seed=seed,
                description=description, values=values, tolerance=tolerance, warmup=warmup, pow=pow_mode,
                config=keras_config(flavour, **hyper))


def dense(name, shape):
    return {'name': name, 'shape': list(shape), 'gradient': 'dense'}


def sparse(name, shape, rows, duplicates=True):
    return {'name': name, 'shape': list(shape), 'gradient': 'sparse', 'rows': rows, 'duplicates': duplicates}


# -- value generators ---------------------------------------------------------------------------

def _tiny(t):
    """A subnormal of the dtype."""
    return float(np.finfo(t).tiny) / 64


def _huge(t):
    """Large but with g*g finite in the dtype (v stays finite, Keras 3's (g*g - v) never meets inf - inf)."""
    return {np.float16: 100.0, np.float32: 1e18, np.float64: 1e150}[t]


def draw(rng, shape, kind, t):
    shape = tuple(shape)
    if kind == 'fewbits':
        # k/8 with |k| <= 8: squares and their partial sums are exact in the dtype, so TF's
        # reduction order cannot change the clip_by_norm norm.
        return (rng.integers(-8, 9, size=shape) / 8.0).astype(t)
    x = rng.standard_normal(shape)
    if kind == 'awkward':
        pick = rng.integers(0, 8, size=shape)
        x = np.select([pick == 0, pick == 1, pick == 2, pick == 3, pick == 4, pick == 5],
                      [np.zeros(shape), -np.zeros(shape), np.sign(x) * _tiny(t) * (1 + np.abs(x)),
                       x * 1e-30 if t is not np.float16 else x * 1e-6, x * _huge(t), x * 1e-3], x)
    return x.astype(t)


def initial_values(case_, rng):
    t = DTYPES[case_['dtype']]
    out = {}
    for v in case_['variables']:
        x = draw(rng, v['shape'], 'awkward' if case_['values'] == 'awkward' else 'normal', t)
        out[v['name']] = x
    return out


def draw_gradients(case_, rng):
    t = DTYPES[case_['dtype']]
    out = {}
    for v in case_['variables']:
        if v['gradient'] == 'dense':
            out[v['name']] = draw(rng, v['shape'], case_['values'], t)
            continue
        rows = v['shape'][0]
        if v.get('duplicates', True):
            idx = rng.integers(0, rows, size=v['rows'])
            idx[-1] = idx[0]  # at least one duplicate every step
        else:
            idx = rng.choice(rows, size=v['rows'], replace=False)
        values = draw(rng, [v['rows']] + v['shape'][1:], case_['values'], t)
        out[v['name']] = Sparse(idx.astype(np.int64), values, rows)
    return out


def gradient_records(grads):
    out = []
    for name, g in grads.items():
        if isinstance(g, Sparse):
            out += [(f'grad_indices:{name}', g.indices), (f'grad_values:{name}', g.values)]
        else:
            out.append((f'grad:{name}', g))
    return out


def manifest_variables(case_):
    return [{'name': v['name'], 'shape': v['shape'], 'gradient': v['gradient']} for v in case_['variables']]


# -- the shipped cases --------------------------------------------------------------------------

def _shipped_reference():
    c = []
    for dt, seed in (('float32', 1), ('float64', 2)):
        c.append(case(f'tf-keras-{dt}-dense', 'tf-keras', dt, [dense('kernel', [4, 3]), dense('bias', [5])], 60, seed,
                      'tf.keras optimizer_v2 Nadam, two dense variables, lr 0.01', lr=0.01))
        c.append(case(f'tf-keras-{dt}-sparse', 'tf-keras', dt, [sparse('embedding', [10, 4], 6), dense('bias', [3])], 40,
                      seed + 10, 'tf.keras sparse path (IndexedSlices with a duplicate index every step) beside a dense variable',
                      lr=0.01))
        c.append(case(f'keras2-{dt}-dense-sparse', 'keras2', dt, [dense('kernel', [3, 3]), sparse('embedding', [8, 2], 5)], 50,
                      seed + 20, 'standalone Keras 2.2 Nadam (m_schedule, sparse gradients made dense first)'))
        c.append(case(f'keras3-{dt}-dense-sparse', 'keras3', dt,
                      [dense('kernel', [3, 4]), sparse('embedding', [8, 2], 4, duplicates=False)], 50, seed + 30,
                      'Keras 3 Nadam (u_product); sparse rows unique (see README on duplicates)', lr=0.01))
        c.append(case(f'tf-keras-new-{dt}-dense-sparse', 'tf-keras-new', dt,
                      [dense('kernel', [3, 4]), sparse('embedding', [8, 2], 5)], 50, seed + 40,
                      'TF 2.11-2.15 tf.keras Nadam (u_product * u_t; sparse: duplicates summed, m and v decayed on all rows '
                      'then scatter-added, every row moves)', lr=0.01))
    c.append(case('tf-keras-float32-long', 'tf-keras', 'float32', [dense('w', [8])], 1500, 5,
                  '1500 steps with the default hyperparameters (the schedule warms up over thousands of steps)'))
    c.append(case('tf-keras-float32-clipnorm', 'tf-keras', 'float32', [dense('kernel', [4, 4]), sparse('embedding', [6, 3], 5)],
                  40, 6, 'clipnorm=1.0 per tensor (sparse: the norm of the values, duplicates counted apart); k/8 gradients',
                  values='fewbits', lr=0.01, clipnorm=1.0))
    c.append(case('tf-keras-float32-clipvalue', 'tf-keras', 'float32', [dense('kernel', [4, 4]), sparse('embedding', [6, 3], 5)],
                  40, 7, 'clipvalue=0.5 then nothing else', lr=0.01, clipvalue=0.5))
    c.append(case('tf-keras-float32-clip-both', 'tf-keras', 'float32', [dense('kernel', [5, 3])], 30, 8,
                  'clipvalue=0.75 then clipnorm=1.5, in TF\'s order', values='fewbits', lr=0.01, clipnorm=1.5, clipvalue=0.75))
    c.append(case('keras2-float32-clipnorm', 'keras2', 'float32', [dense('kernel', [4, 3]), dense('bias', [6]),
                                                                sparse('embedding', [6, 2], 4)], 30, 9,
                  'Keras 2 clipnorm=2.0: one norm over all gradients (sparse ones made dense first, duplicates summed), '
                  'scaled only when norm >= clipnorm; then clipvalue=0.875',
                  values='fewbits', clipnorm=2.0, clipvalue=0.875))
    c.append(case('keras3-float32-clipnorm', 'keras3', 'float32', [dense('kernel', [4, 3])], 30, 10,
                  'Keras 3 clipnorm=1.0 (clip_by_norm per tensor)', values='fewbits', lr=0.01, clipnorm=1.0))
    c.append(case('keras3-float32-clipvalue', 'keras3', 'float32', [dense('kernel', [4, 3])], 30, 11,
                  'Keras 3 clipvalue=0.5', lr=0.01, clipvalue=0.5))
    c.append(case('tf-keras-new-float32-clipnorm', 'tf-keras-new', 'float32', [dense('kernel', [4, 3]), sparse('embedding', [6, 3], 5)],
                  30, 19, 'TF 2.11+ clipnorm=1.0 (clip_by_norm per tensor, before duplicates are summed)', values='fewbits',
                  lr=0.01, clipnorm=1.0))
    for fl, seed in (('tf-keras', 12), ('keras2', 13), ('keras3', 14), ('tf-keras-new', 20)):
        for dt in ('float32', 'float64'):
            c.append(case(f'{fl}-{dt}-awkward', fl, dt, [dense('w', [24])], 60, seed,
                          'awkward values: zeros, -0, subnormals, tiny and huge gradients and initial values', values='awkward',
                          lr=0.01))
    c.append(case('tf-keras-float16-dense', 'tf-keras', 'float16', [dense('kernel', [4, 3]), dense('bias', [5])], 40, 15,
                  'float16 variables (half ops as Eigen does them: float32 then rounded, pow via powf)', lr=0.01))
    # float16: beta_2 = 0.999 rounds to 1.0 in half (1 - beta_2^t = 0); Keras users of half variables raise epsilon
    c.append(case('keras2-float16-dense-sparse', 'keras2', 'float16', [dense('kernel', [4, 3]), sparse('embedding', [6, 2], 3)],
                  40, 17, 'Keras 2 with floatx=float16', lr=0.01, beta_2=0.99, epsilon=1e-3))
    c.append(case('keras3-float16-dense', 'keras3', 'float16', [dense('kernel', [4, 3])], 40, 18,
                  'Keras 3 float16 variables (u_product in float16)', lr=0.01, beta_2=0.99, epsilon=1e-3))
    c.append(case('tf-keras-new-float16-dense-sparse', 'tf-keras-new', 'float16', [dense('kernel', [4, 3]), sparse('embedding', [6, 2], 3)],
                  40, 21, 'TF 2.11+ float16 variables (u_product in float16)', lr=0.01, beta_2=0.99, epsilon=1e-3))
    return c


def _shipped_torch():
    # Keras 2 with floatx=float64 holds 0.96, beta_1, beta_2 and lr as float64, as torch does; tf.keras would route
    # them through float32 (see README). torch 1.13 computes mu_product_next with mu counted twice (fixed upstream
    # in pytorch/pytorch#92699); that term is below 1e-16 relative once prod(mu) is, so the trajectory starts
    # from torch's own state after 100 warm-up steps.
    return [case('torch-keras2-float64-1000', 'keras2', 'float64', [dense('w', [6]), dense('b', [3])], 1000, 16,
                 'torch 1.13 torch.optim.NAdam (momentum_decay=0.004), float64, from its state after 100 warm-up steps',
                 tolerance={'kind': 'relative', 'rtol': 1e-12, 'floor': 0.01}, warmup=100,
                 lr=2.0 ** -8, beta_1=0.875, beta_2=0.9990234375, epsilon=1e-7)]


SHIPPED = {'reference': _shipped_reference, 'torch': _shipped_torch}


def shipped(engine):
    return SHIPPED[engine]()
