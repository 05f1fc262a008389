import type { Arith } from '../../tensor/arith.js';

/**
 * The schedule's base 0.96 in the dtype. TF's `math_ops.cast(0.96, dtype)` (tf.keras) and Keras 3's
 * `ops.cast(0.96, dtype)` (tf.cast on the TF backend) first make a float32 tensor of the Python float,
 * so a float64 variable sees float64(float32(0.96)); Keras 2's `K.cast_to_floatx` and Keras 3's
 * `ops.power(0.96, ...)` convert straight to the dtype. float32 is the same either way.
 */
export function decayBase(a: Arith, viaFloat32: boolean): number {
  return a.cast(viaFloat32 ? Math.fround(0.96) : 0.96);
}

/**
 * The Nadam momentum schedule mu_t = beta_1 * (1 - 0.5 * base^(decay * t)), evaluated op by op in
 * the dtype. `decay` is null for Keras 3, whose exponent is t itself (no 0.004 factor).
 */
export function momentumAt(a: Arith, beta1: number, t: number, decay: number | null, base: number = decayBase(a, false)): number {
  const exponent = decay === null ? a.cast(t) : a.mul(a.cast(decay), a.cast(t));
  return a.mul(beta1, a.sub(1, a.mul(0.5, a.pow(base, exponent))));
}
