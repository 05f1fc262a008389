"""tf-golden fixtures: numbers TF/Keras printed in a public test or doc, transcribed with their setup.
Only the variables are recorded (that is all the sources print); the tolerance is the source's own."""
import numpy as np

from .cases import keras_config

F32 = np.float32


def _fixture(name, flavour, description, source, config, var, grads, expected, tolerance, notes):
    initial = [('var:x', np.array(var, dtype=F32))]
    steps = [[('grad:x', np.array(g, dtype=F32)), ('var:x', np.array(e, dtype=F32))] for g, e in zip(grads, expected)]
    spec = {
        'name': name, 'description': description, 'flavour': flavour, 'dtype': 'float32', 'config': config,
        'variables': [{'name': 'x', 'shape': list(np.shape(var)), 'gradient': 'dense'}], 'tolerance': tolerance,
        'provenance': {'kind': 'tf-golden', 'producer': 'transcribed by hand from the source below',
                       'source': source, 'command': 'python3 scripts/generate_fixtures.py --golden', 'notes': notes},
    }
    return spec, initial, steps


def keras3_golden():
    first = [0.01] * 10
    grads = [round(0.1 * k, 1) for k in range(1, 11)]  # ops.arange(0.1, 1.1, 0.1): 10 values 0.1 .. 1.0
    golden = [
        [0.4281] * 10,
        [-0.1738, -0.1731, -0.1726, -0.1723, -0.1721, -0.172, -0.1719, -0.1718, -0.1718, -0.1717],
        [-0.7115, -0.7103, -0.7096, -0.7092, -0.709, -0.7088, -0.7086, -0.7085, -0.7085, -0.7084],
        [-1.2335, -1.2322, -1.2313, -1.2309, -1.2306, -1.2304, -1.2302, -1.2301, -1.23, -1.2299],
        [-1.7492, -1.7478, -1.7469, -1.7464, -1.7461, -1.7459, -1.7457, -1.7456, -1.7455, -1.7454],
    ]
    return _fixture(
        'tf-golden-keras3-correctness', 'keras3',
        'Keras 3 NadamTest.test_correctness_with_golden: x = ones(10); one step of 0.01 gradients, then four of arange(0.1, 1.1, 0.1)',
        'keras-team/keras, keras/src/optimizers/nadam_test.py, NadamTest.test_correctness_with_golden',
        keras_config('keras3', lr=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5),
        [1.0] * 10, [first] + [grads] * 4, golden,
        {'kind': 'allclose', 'rtol': 5e-4, 'atol': 5e-4},
        'golden[i] is asserted after the (i+1)-th apply_gradients, with assertAllClose(rtol=5e-4, atol=5e-4).')


def keras3_single_step():
    return _fixture(
        'tf-golden-keras3-single-step', 'keras3',
        'Keras 3 NadamTest.test_single_step: Nadam(learning_rate=0.5), one step',
        'keras-team/keras, keras/src/optimizers/nadam_test.py, NadamTest.test_single_step',
        keras_config('keras3', lr=0.5), [1.0, 2.0, 3.0, 4.0], [[1.0, 6.0, 7.0, 2.0]],
        [[0.4686, 1.4686, 2.4686, 3.4686]], {'kind': 'allclose', 'rtol': 1e-4, 'atol': 1e-4},
        'asserted with assertAllClose(rtol=1e-4, atol=1e-4).')


def tf_keras_docstring():
    return _fixture(
        'tf-golden-tf-keras-docstring', 'tf-keras',
        'tf.keras.optimizers.Nadam docstring: Nadam(learning_rate=0.2), var1 = 10.0, loss var1**2 / 2 (gradient 10.0), one minimize',
        'tensorflow/tensorflow, tensorflow/python/keras/optimizer_v2/nadam.py, class Nadam docstring "Usage Example" (later TF 2.x sources; the r1.14 seed page has no usage example)',
        keras_config('tf-keras', lr=0.2), 10.0, [10.0], [9.8],
        {'kind': 'allclose', 'rtol': 0, 'atol': 0.05},
        'TF printed "{:.1f}".format(var1.numpy()) == "9.8", i.e. a value in [9.75, 9.85]: atol 0.05 around 9.8 and no more.')


GOLDEN = [keras3_golden, keras3_single_step, tf_keras_docstring]
