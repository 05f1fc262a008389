import type { Keras3NadamCoefficients } from '../../backends/backend.js';
import type { Arith } from '../../tensor/arith.js';
import { decayBase, momentumAt } from './schedule.js';

/**
 * Keras 3 `_backend_update_step`: u_product := (u_product * beta_1) * (1 - 0.5 * 0.96^(t)), once per
 * step in u_product's dtype, before any variable is updated.
 */
export function nextUProduct(a: Arith, uProduct: number, beta1: number, iterations: number): number {
  const factor = a.sub(1, a.mul(0.5, a.pow(a.cast(0.96), a.cast(iterations + 1))));
  return a.mul(a.mul(uProduct, a.cast(beta1)), factor);
}

/** Inputs of one step's coefficients in the Keras 3 Nadam. */
export interface Keras3StepInputs {
  /** The learning rate as Keras 3 holds it: a float32 variable (or a schedule's float32 value). */
  readonly lr: number;
  readonly beta_1: number;
  readonly beta_2: number;
  readonly epsilon: number;
  readonly iterations: number;
  /** u_product after this step's update */
  readonly uProduct: number;
}

/**
 * Keras 3 `Nadam.update_step` scalars for one dtype. Its `ops.cast(python_float, dtype)` is tf.cast on
 * the TF backend, which goes through a float32 tensor: beta_1, beta_2 and 0.96 reach a float64
 * variable as float64(float32(x)) here (u_product's update above converts them directly).
 */
export function keras3Coefficients(a: Arith, s: Keras3StepInputs): Keras3NadamCoefficients {
  const beta1 = a.cast(Math.fround(s.beta_1));
  const beta2 = a.cast(Math.fround(s.beta_2));
  const t = a.cast(s.iterations + 1);
  const base = decayBase(a, true);
  const uT = momentumAt(a, beta1, t, null, base);
  const uT1 = momentumAt(a, beta1, a.cast(s.iterations + 2), null, base);
  const uProduct = a.cast(s.uProduct);
  return {
    kind: 'keras3',
    lr: a.cast(Math.fround(s.lr)),
    oneMinusBeta1: a.sub(1, beta1),
    oneMinusBeta2: a.sub(1, beta2),
    uT1,
    oneMinusUT: a.sub(1, uT),
    oneMinusUProduct: a.sub(1, uProduct),
    oneMinusUProductNext: a.sub(1, a.mul(uProduct, uT1)),
    oneMinusBeta2Power: a.sub(1, a.pow(beta2, t)),
    epsilon: a.cast(s.epsilon),
  };
}
