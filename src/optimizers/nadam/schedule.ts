import type { Arith } from '../../tensor/arith.js';

/**
 * The Nadam momentum schedule mu_t = beta_1 * (1 - 0.5 * 0.96^(decay * t)), evaluated op by op in
 * the dtype. `decay` is null for Keras 3, whose exponent is t itself (no 0.004 factor).
 */
export function momentumAt(a: Arith, beta1: number, t: number, decay: number | null): number {
  const exponent = decay === null ? a.cast(t) : a.mul(a.cast(decay), a.cast(t));
  return a.mul(beta1, a.sub(1, a.mul(0.5, a.pow(a.cast(0.96), exponent))));
}
