"""A stand-in for `tensorflow` (and Keras 3's `keras`) with just the surface that
scripts/kerasopt_fixtures/engines.py `run_tensorflow` touches, so that its glue runs here, where TF
cannot be installed. The stand-in optimizers step kerasopt's numpy reference Nadam: a fixture it
produces is NOT TensorFlow output (its version string says so) and is only written to a temporary folder.
"""
import sys
import types

import numpy as np

sys.path.insert(0, 'scripts')
from kerasopt_fixtures.reference import ReferenceNadam, Sparse  # noqa: E402

VERSION = '0.0+stand-in (numpy reference, NOT TensorFlow)'


class Tensor:
    def __init__(self, value, dtype=None):
        self.value = np.array(value, dtype=dtype)
        self.shape = self.value.shape

    def numpy(self):
        return self.value.copy()


class Variable(Tensor):
    def __init__(self, value, dtype=None, name=None):
        super().__init__(value, dtype)
        self.name = name


class IndexedSlices:
    def __init__(self, values, indices, dense_shape):
        self.values, self.indices, self.dense_shape = values, indices, dense_shape


class _Optimizer:
    flavour = None

    def __init__(self, config):
        self.config, self.ref, self.names = config, None, None

    @classmethod
    def from_config(cls, config):
        return cls(dict(config))

    def apply_gradients(self, pairs):
        pairs = list(pairs)
        if self.ref is None:
            self.names = [v.name for _, v in pairs]
            self.ref = ReferenceNadam(self.flavour, str(pairs[0][1].value.dtype), self.config, {v.name: v.value for _, v in pairs})
        grads = {}
        for g, v in pairs:
            if isinstance(g, IndexedSlices):
                grads[v.name] = Sparse(g.indices.value.astype(np.int64), g.values.value, int(g.dense_shape.value[0]))
            else:
                grads[v.name] = g.value
        self.ref.step(grads)
        for _, v in pairs:
            v.value = self.ref.vars[v.name].copy()

    @property
    def iterations(self):
        return Tensor(0 if self.ref is None else self.ref.iterations, np.int64)


class LegacyNadam(_Optimizer):
    flavour = 'tf-keras'

    @property
    def weights(self):
        return [] if self.ref is None else [self.iterations]

    def get_slot(self, variable, name):
        return Tensor((self.ref.m if name == 'm' else self.ref.v)[variable.name])

    @property
    def _m_cache(self):
        return Tensor(self.ref.schedule)


class Keras3Nadam(_Optimizer):
    flavour = 'keras3'

    @property
    def built(self):
        return self.ref is not None

    def _get_variable_index(self, variable):
        return self.names.index(variable.name)

    @property
    def _momentums(self):
        return [Tensor(self.ref.m[n]) for n in self.names]

    @property
    def _velocities(self):
        return [Tensor(self.ref.v[n]) for n in self.names]

    @property
    def _u_product(self):
        return Tensor(self.ref.schedule)


class NewNadam(_Optimizer):
    """TF 2.11-2.15's tf.keras.optimizers.experimental.Nadam (attributes as tf_keras/optimizers/nadam.py)."""
    flavour = 'tf-keras-new'

    @property
    def _built(self):
        return self.ref is not None

    @property
    def _index_dict(self):
        return {n: i for i, n in enumerate(self.names)}

    def _var_key(self, variable):
        return variable.name

    @property
    def _momentums(self):
        return [Tensor(self.ref.m[n]) for n in self.names]

    @property
    def _velocities(self):
        return [Tensor(self.ref.v[n]) for n in self.names]

    @property
    def _u_product(self):
        return Tensor(self.ref.schedule)


def install():
    """Puts the stand-in `tensorflow` and `keras` modules in sys.modules."""
    tf = types.ModuleType('tensorflow')
    tf.__version__ = VERSION
    tf.Variable, tf.IndexedSlices, tf.int64 = Variable, IndexedSlices, 'int64'
    tf.constant = lambda value, dtype=None: Tensor(value, dtype)
    tf.keras = types.SimpleNamespace(optimizers=types.SimpleNamespace(legacy=types.SimpleNamespace(Nadam=LegacyNadam), Nadam=Keras3Nadam,
                                                                     experimental=types.SimpleNamespace(Nadam=NewNadam)))
    keras = types.ModuleType('keras')
    keras.optimizers = types.SimpleNamespace(Nadam=Keras3Nadam)
    sys.modules['tensorflow'], sys.modules['keras'] = tf, keras
