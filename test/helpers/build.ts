import { Tensor, Variable, type FloatDType } from '../../src/index.js';

/** A variable named `name` holding `values` (vector, or `shape`). */
export function variable(name: string, values: number[], dtype: FloatDType = 'float32', shape?: number[]): Variable {
  return new Variable(Tensor.from(values, dtype, shape), { name });
}

/** A dense gradient. */
export function grad(values: number[], dtype: FloatDType = 'float32', shape?: number[]): Tensor {
  return Tensor.from(values, dtype, shape);
}

/** Bit patterns of a tensor's elements, for exact comparisons. */
export function bits(t: Tensor): string[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => x.toString());
}

/**
 * Deterministic pseudo-random floats (xorshift32) in [-scale/2, scale/2), with exact zeros every 97th
 * element and `salt(i, u)` deciding other special elements (tiny values, infinities, ...) when given.
 */
export function xorshiftValues(n: number, seed: number, scale: number, salt?: (i: number, u: number) => number | undefined): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const u = x / 2 ** 32 - 0.5;
    out.push(salt?.(i, u) ?? (i % 97 === 0 ? 0 : u * scale));
  }
  return out;
}
