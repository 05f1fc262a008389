import type { FloatDType, Tensor } from '../src/index.js';

/** A small deterministic generator (mulberry32), so failures reproduce. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values over many magnitudes, both signs, a few exact zeros. */
export function values(rand: () => number, n: number): number[] {
  return Array.from({ length: n }, () => (rand() < 0.05 ? 0 : (rand() - 0.5) * 10 ** (rand() * 8 - 5)));
}

/**
 * Element bit patterns (so -0 and +0 differ), every NaN written 'NaN': the promises cover values,
 * not NaN sign or payload (x86 makes a negative default NaN, V8 a positive one).
 */
export function bits(t: Tensor): string[] {
  const view = t.dtype === 'float16' ? new Uint16Array(t.data.buffer, t.data.byteOffset, t.size)
    : t.dtype === 'float32' ? new Uint32Array(t.data.buffer, t.data.byteOffset, t.size)
      : new BigUint64Array(t.data.buffer, t.data.byteOffset, t.size);
  return Array.from(view as ArrayLike<number | bigint>, (b, i) => (Number.isNaN(t.get(i)) ? 'NaN' : b.toString(16)));
}

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/** Exact ULP distance in `dtype` (BigInt ordinals: float64 distances are exact, not rounded to 2^-53 of the ordinal). */
export function ulp(a: number, b: number, dtype: FloatDType): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  const ord = (x: number): bigint => {
    if (dtype === 'float64') {
      f64[0] = x;
      const v = i64[0]!;
      return v >= 0n ? v : -(v & 0x7fffffffffffffffn);
    }
    f32[0] = x;
    const v = i32[0]!;
    return BigInt(v >= 0 ? v : -(v & 0x7fffffff));
  };
  const d = ord(a) - ord(b);
  return Number(d < 0n ? -d : d);
}

/** The largest ULP distance between two tensors of the same dtype and size. */
export function maxUlp(actual: Tensor, expected: Tensor): number {
  let worst = 0;
  for (let i = 0; i < expected.size; i++) worst = Math.max(worst, ulp(actual.get(i), expected.get(i), expected.dtype as FloatDType));
  return worst;
}
