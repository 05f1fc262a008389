import type { Keras3NadamCoefficients } from '../../backends/backend.js';
import type { Arith } from '../../tensor/arith.js';
import { keras3Coefficients, type Keras3StepInputs } from './keras3.js';
import { decayBase, momentumAt } from './schedule.js';

/**
 * TF 2.11-2.15 `Nadam.update_step` (tf_keras/optimizers/nadam.py), first variable of a step:
 * u_t = beta_1 * (1 - 0.5 * 0.96^t) with beta_1 and 0.96 passed through tf.cast (so float32 first)
 * and t = cast(iterations + 1), then u_product := u_product * u_t, all in the variable's dtype.
 * Keras 3 rounds differently: (u_product * beta_1) * factor, Python floats straight to the dtype.
 */
export function nextUProductTf211(a: Arith, uProduct: number, beta1: number, iterations: number): number {
  const uT = momentumAt(a, a.cast(Math.fround(beta1)), a.cast(iterations + 1), null, decayBase(a, true));
  return a.mul(a.cast(uProduct), uT);
}

/**
 * The step's scalars: the same as Keras 3's (each is computed by the same ops from the same
 * tf.cast inputs), plus which moment update the kernel runs. TF 2.11's sparse branch decays m and v
 * on every row first (m - m * (1 - beta_1)) and then scatter-adds the gradient's share, where the
 * dense branch interpolates (m + (g - m) * (1 - beta_1)).
 */
export function tfKerasNewCoefficients(a: Arith, s: Keras3StepInputs, sparse: boolean): Keras3NadamCoefficients {
  const c = keras3Coefficients(a, s);
  return sparse ? { ...c, moments: 'decay-then-scatter' } : c;
}
