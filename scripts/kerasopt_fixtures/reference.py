"""kerasopt's reference Nadam: numpy, op by op, in TF's op order, one rounding per op in the dtype.

Written from a reading of the Keras/TF sources (see README "Nadam flavours"):
- tf-keras: tensorflow/python/keras/optimizer_v2/nadam.py (+ optimizer_v2.py, clip_ops.py), TF 1.14-2.10.
- keras2:   keras-team/keras 2.2.x keras/optimizers.py (Nadam, Optimizer.get_gradients) on the TF backend.
- keras3:   keras-team/keras keras/src/optimizers/nadam.py (+ base_optimizer.py) on the TF backend.
- tf-keras-new: keras-team/tf-keras tf_keras/optimizers/nadam.py (+ optimizer.py), the TF 2.11-2.15
  "new" tf.keras Nadam, run eagerly (no XLA): Keras 3's per-element math, but u_product := u_product * u_t
  in the variable dtype (beta_1, 0.96 through tf.cast), and a sparse branch of its own.
Casting rules that matter for float64/float16 (float32 is unaffected):
- tf-keras keeps learning_rate/beta_1/beta_2 in float32 hyper variables and casts them to the dtype;
  math_ops.cast(0.96, dtype) converts the Python float to a float32 tensor first.
- keras3's ops.cast(python_float, dtype) is tf.cast too (0.96, beta_1, beta_2 in update_step), while
  u_product's update and the epsilon/1.0/0.5 constants convert Python floats straight to the dtype.
- keras2 (floatx = the dtype) holds lr/beta_1/beta_2 in variables of the dtype: no float32 detour.
"""
import math

import numpy as np

from .numerics import Arith

SLOTS = {'tf-keras': ('m', 'v'), 'keras2': ('m', 'v'), 'keras3': ('momentum', 'velocity'), 'tf-keras-new': ('m', 'v')}
SCHEDULE = {'tf-keras': 'momentum_cache', 'keras2': 'm_schedule', 'keras3': 'u_product', 'tf-keras-new': 'u_product'}


def hyperparameters(flavour, config):
    """The numbers the flavour's constructor takes from a Keras config (with Keras's defaults)."""
    if flavour == 'keras2':
        lr = config.get('lr', config.get('learning_rate', 0.002))
        decay = config.get('schedule_decay', 0.004)
    elif flavour == 'tf-keras':
        lr = config.get('lr', config.get('learning_rate', 0.001))
        decay = config.get('schedule_decay', 0.004)  # TF overwrites `decay` with schedule_decay (default 0.004)
    else:
        lr = config.get('learning_rate', 0.001)
        decay = None
    eps = config.get('epsilon')
    if eps is None or (eps == 0 and flavour == 'tf-keras'):  # tf.keras: `epsilon or 1e-7`; Keras 2: only None; Keras 3 keeps it
        eps = 1e-7
    return dict(lr=lr, beta_1=config.get('beta_1', 0.9), beta_2=config.get('beta_2', 0.999), epsilon=eps,
                decay=decay, clipnorm=config.get('clipnorm'), clipvalue=config.get('clipvalue'))


class Sparse:
    """An IndexedSlices: indices (int64, may repeat) and rows of values."""

    def __init__(self, indices, values, rows):
        self.indices, self.values, self.rows = indices, values, rows

    def with_values(self, values):
        return Sparse(self.indices, values, self.rows)


def unsorted_segment_sum(a, indices, values, rows_out):
    """TF's unsorted_segment_sum on CPU: zeros, then rows added in order of occurrence."""
    out = np.zeros((rows_out,) + values.shape[1:], dtype=a.t)
    for i, row in enumerate(indices):
        out[row] = out[row] + values[i]
    return out


def deduplicate(a, g):
    """optimizer_v2._deduplicate_indexed_slices: tf.unique (first-appearance order) + unsorted_segment_sum."""
    unique, positions = [], []
    for i in g.indices.tolist():
        if i not in unique:
            unique.append(i)
        positions.append(unique.index(i))
    summed = unsorted_segment_sum(a, positions, g.values, len(unique))
    return np.array(unique, dtype=np.int64), summed


def densify(a, g, shape):
    """convert_to_tensor(IndexedSlices): unsorted_segment_sum into the dense shape."""
    return unsorted_segment_sum(a, g.indices.tolist(), g.values, shape[0])


def values_of(g):
    return g.values if isinstance(g, Sparse) else g


def with_values(g, values):
    return g.with_values(values) if isinstance(g, Sparse) else values


def sum_of_squares(a, x):
    """reduce_sum(x * x): squares rounded in the dtype, then summed exactly and rounded once.

    TF sums in Eigen's reduction order, which we do not reproduce; shipped clipnorm fixtures use
    gradients whose squares and partial sums are exact in the dtype, so any order gives these bits.
    """
    sq = (x * x).astype(a.t)
    return a.c(math.fsum(float(v) for v in sq.ravel()))


def clip_by_value(a, g, clip):
    hi, lo = a.c(clip), a.c(-clip)
    return with_values(g, np.maximum(np.minimum(values_of(g), hi), lo))


def clip_by_norm(a, g, clip):
    x = values_of(g)
    c = a.c(clip)
    l2sum = sum_of_squares(a, x)
    l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
    return with_values(g, (x * c) / np.maximum(l2norm, c))


def clip_gradients(flavour, a, grads, shapes, h):
    clipnorm, clipvalue = h['clipnorm'], h['clipvalue']
    if flavour == 'keras2':
        # Optimizer.get_gradients: one norm over all gradients (K.square densifies IndexedSlices), then clipvalue.
        if clipnorm:
            total = None
            for g, shape in zip(grads, shapes):
                dense = densify(a, g, shape) if isinstance(g, Sparse) else g
                s = sum_of_squares(a, dense)
                total = s if total is None else total + s
            norm = np.sqrt(np.maximum(total, a.c(0.0)))
            c = a.c(clipnorm)
            if norm >= c:
                scale = c / norm
                grads = [with_values(g, values_of(g) * scale) for g in grads]
        if clipvalue:
            grads = [clip_by_value(a, g, clipvalue) for g in grads]
        return grads
    if flavour in ('keras3', 'tf-keras-new'):  # _clip_gradients: the first set option only
        if clipnorm:
            return [clip_by_norm(a, g, clipnorm) for g in grads]
        if clipvalue:
            return [clip_by_value(a, g, clipvalue) for g in grads]
        return grads
    if clipvalue:  # optimizer_v2._transform_gradients: clipvalue, then clipnorm, per tensor
        grads = [clip_by_value(a, g, clipvalue) for g in grads]
    if clipnorm:
        grads = [clip_by_norm(a, g, clipnorm) for g in grads]
    return grads


class ReferenceNadam:
    """The state of one Nadam run and its step function."""

    def __init__(self, flavour, dtype, config, variables, pow_mode='correctly-rounded'):
        self.flavour, self.a, self.h = flavour, Arith(dtype, pow_mode), hyperparameters(flavour, config)
        t = self.a.t
        self.vars = {name: np.array(value, dtype=t) for name, value in variables.items()}
        self.m = {k: np.zeros_like(v) for k, v in self.vars.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.vars.items()}
        self.schedule = t(1.0)
        self.iterations = 0

    def state(self):
        """State records in fixture order: vars, first slot per var, second slot per var, schedule weight, iterations."""
        a_slot, b_slot = SLOTS[self.flavour]
        out = [(f'var:{k}', v.copy()) for k, v in self.vars.items()]
        out += [(f'slot:{a_slot}:{k}', v.copy()) for k, v in self.m.items()]
        out += [(f'slot:{b_slot}:{k}', v.copy()) for k, v in self.v.items()]
        out.append((f'weight:{SCHEDULE[self.flavour]}', np.array(self.schedule, dtype=self.a.t)))
        out.append(('weight:iterations', np.array(self.iterations, dtype=np.int64)))
        return out

    def step(self, grads):
        """grads: {name: ndarray | Sparse}, in variable order."""
        names = list(grads)
        clipped = clip_gradients(self.flavour, self.a, [grads[n] for n in names], [self.vars[n].shape for n in names], self.h)
        if self.flavour == 'keras3':
            self._keras3(dict(zip(names, clipped)))
        elif self.flavour == 'tf-keras-new':
            self._tf_keras_new(dict(zip(names, clipped)))
        else:
            self._tf_keras(dict(zip(names, clipped)))
        self.iterations += 1

    # -- tf.keras optimizer_v2 (and standalone Keras 2, whose per-element math is the same) --
    def _coefficients(self):
        a, h, it = self.a, self.h, self.iterations
        keras2 = self.flavour == 'keras2'
        hyper = a.c if keras2 else (lambda x: a.t(np.float32(x)))  # float32 hyper variables cast to the dtype
        lr, b1, b2 = hyper(h['lr']), hyper(h['beta_1']), hyper(h['beta_2'])
        one, half = a.c(1.0), a.c(0.5)
        if keras2:
            t = a.c(it) + one                       # K.cast(iterations, floatx) + 1
            t_next = t + one
            base = a.c(0.96)                        # K.cast_to_floatx(0.96)
        else:
            t, t_next = a.c(it + 1), a.c(it + 2)    # cast(iterations + 1, dtype)
            base = a.via32(0.96)                    # math_ops.cast(0.96, dtype)
        decay = a.c(h['decay'])
        mu_t = b1 * (one - half * a.pow(base, decay * t))
        mu_t1 = b1 * (one - half * a.pow(base, decay * t_next))
        ms_new = self.schedule * mu_t
        self.schedule = ms_new
        ms_next = ms_new * mu_t1
        c = dict(lr=lr, neg_lr=-lr, b1=b1, b2=b2, omb1=one - b1, omb2=one - b2, om_mt=one - mu_t, mt1=mu_t1,
                 omsn=one - ms_new, omsnext=one - ms_next, vden=one - a.pow(b2, t), eps=a.c(self.h['epsilon']))
        a.check(*c.values())
        return c

    def _tf_keras(self, grads):
        c = self._coefficients()
        for name, g in grads.items():
            if isinstance(g, Sparse) and self.flavour == 'tf-keras':
                self._tf_keras_sparse(name, g, c)
            else:
                dense = densify(self.a, g, self.vars[name].shape) if isinstance(g, Sparse) else g
                self._tf_keras_dense(name, dense, c)

    def _tf_keras_dense(self, name, g, c):
        m, v, var = self.m[name], self.v[name], self.vars[name]
        g_prime = g / c['omsn']
        m = c['b1'] * m + c['omb1'] * g
        m_prime = m / c['omsnext']
        v = c['b2'] * v + c['omb2'] * (g * g)
        v_prime = v / c['vden']
        m_bar = c['om_mt'] * g_prime + c['mt1'] * m_prime
        self.vars[name] = var - (c['lr'] * m_bar) / (np.sqrt(v_prime) + c['eps'])
        self.m[name], self.v[name] = m, v

    def _tf_keras_sparse(self, name, g, c):
        idx, u = deduplicate(self.a, g)
        g_prime = u / c['omsn']
        m = self.m[name] * c['b1']
        m[idx] = m[idx] + u * c['omb1']
        m_prime = m[idx] / c['omsnext']
        m_bar = c['om_mt'] * g_prime + c['mt1'] * m_prime
        v = self.v[name] * c['b2']
        v[idx] = v[idx] + (u * u) * c['omb2']
        v_prime = v[idx] / c['vden']
        denominator = np.sqrt(v_prime) + c['eps']
        var = self.vars[name]
        var[idx] = var[idx] + (c['neg_lr'] * m_bar) / denominator
        self.m[name], self.v[name] = m, v

    # -- Keras 3 (TF backend) --
    def _keras3(self, grads):
        a, h, it = self.a, self.h, self.iterations
        one, half = a.c(1.0), a.c(0.5)
        # _backend_update_step: u_product * beta_1 * (1 - 0.5 * power(0.96, t)), Python floats straight to the dtype
        self.schedule = (self.schedule * a.c(h['beta_1'])) * (one - half * a.pow(a.c(0.96), a.c(it + 1)))
        lr = a.t(np.float32(h['lr']))               # the float32 learning_rate variable, cast
        t, t_next = a.c(it + 1), a.c(it + 2)
        decay, b1, b2 = a.via32(0.96), a.via32(h['beta_1']), a.via32(h['beta_2'])  # ops.cast == tf.cast
        u_t = b1 * (one - half * a.pow(decay, t))
        u_t1 = b1 * (one - half * a.pow(decay, t_next))
        u_product = self.schedule
        u_product_t1 = u_product * u_t1
        b2_power = a.pow(b2, t)
        eps = a.c(h['epsilon'])
        for name, g in grads.items():
            if isinstance(g, Sparse):
                g = densify(a, g, self.vars[name].shape)
            m, v, var = self.m[name], self.v[name], self.vars[name]
            m = m + (g - m) * (one - b1)
            v = v + ((g * g) - v) * (one - b2)
            m_hat = (u_t1 * m) / (one - u_product_t1) + ((one - u_t) * g) / (one - u_product)
            v_hat = v / (one - b2_power)
            self.vars[name] = var - (m_hat * lr) / (np.sqrt(v_hat) + eps)
            self.m[name], self.v[name] = m, v

    # -- TF 2.11-2.15 tf.keras "new" optimizer (tf_keras/optimizers/nadam.py), eager --
    def _tf_keras_new(self, grads):
        a, h, it = self.a, self.h, self.iterations
        one, half = a.c(1.0), a.c(0.5)
        t, t_next = a.c(it + 1), a.c(it + 2)        # tf.cast(iterations + 1, var_dtype)
        decay, b1, b2 = a.via32(0.96), a.via32(h['beta_1']), a.via32(h['beta_2'])  # tf.cast(python float)
        u_t = b1 * (one - half * a.pow(decay, t))
        u_t1 = b1 * (one - half * a.pow(decay, t_next))
        self.schedule = self.schedule * u_t         # the step's first update_step: u_product * u_t
        u_product = self.schedule
        u_product_t1 = u_product * u_t1
        b2_power = a.pow(b2, t)
        lr = a.t(np.float32(h['lr']))               # the float32 learning_rate variable, cast
        eps = a.c(h['epsilon'])
        omb1, omb2 = one - b1, one - b2
        for name, g in grads.items():
            m, v, var = self.m[name], self.v[name], self.vars[name]
            if isinstance(g, Sparse):
                # apply_gradients deduplicates (tf.unique + unsorted_segment_sum), then:
                # m.assign_add(-m * (1 - beta_1)); m.scatter_add(values * (1 - beta_1)); v likewise.
                idx, u = deduplicate(a, g)
                m = m + (-m) * omb1
                m[idx] = m[idx] + u * omb1
                v = v + (-v) * omb2
                v[idx] = v[idx] + (u * u) * omb2
                g = unsorted_segment_sum(a, idx.tolist(), u, var.shape[0])  # (1 - u_t) * gradient makes it dense
            else:
                m = m + (g - m) * omb1
                v = v + ((g * g) - v) * omb2
            m_hat = (u_t1 * m) / (one - u_product_t1) + ((one - u_t) * g) / (one - u_product)
            v_hat = v / (one - b2_power)
            self.vars[name] = var - (m_hat * lr) / (np.sqrt(v_hat) + eps)
            self.m[name], self.v[name] = m, v
