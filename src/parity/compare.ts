import type { FloatDType } from '../tensor/dtype.js';
import { toHalfBits } from '../tensor/float16.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tolerance } from './fixture.js';

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/**
 * Position of a value on the dtype's number line, so that neighbouring floats differ by 1 and
 * +0 / -0 coincide: the usual sign-magnitude to two's-complement mapping of the bit pattern.
 * A BigInt, because float64 positions exceed 2^53 (as Numbers, neighbours would round together).
 */
function ordinal(x: number, dtype: FloatDType | 'int32' | 'int64'): bigint {
  if (dtype === 'float32') {
    f32[0] = x;
    const b = i32[0]!;
    return BigInt(b >= 0 ? b : -(b & 0x7fffffff));
  }
  if (dtype === 'float16') {
    const b = toHalfBits(x);
    return BigInt(b & 0x8000 ? -(b & 0x7fff) : b);
  }
  f64[0] = x;
  const b = i64[0]!;
  return b >= 0n ? b : -(b & 0x7fffffffffffffffn);
}

/** Distance in units in the last place of `dtype` between two values of that dtype (Infinity if one is NaN). */
export function ulpDistance(a: number, b: number, dtype: FloatDType | 'int32' | 'int64'): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  const d = ordinal(a, dtype) - ordinal(b, dtype);
  return Number(d < 0n ? -d : d);
}

/** How far an actual tensor is from an expected one. */
export interface Difference {
  readonly maxAbs: number;
  readonly maxRel: number;
  readonly maxUlp: number;
  /** Elements whose bit patterns differ (0 means bit-identical, -0 vs +0 included). */
  readonly differing: number;
  /** Elements outside the tolerance. */
  readonly failing: number;
  /** Flat index of the worst element by ULP (-1 when identical). */
  readonly worst: number;
  readonly elements: number;
}

function within(t: Tolerance, actual: number, expected: number, ulp: number, sameBits: boolean): boolean {
  // As numpy's isclose: an infinity is close only to itself (Inf - Inf is NaN, and Inf <= rtol * Inf would
  // let -Inf pass for +Inf); a NaN or an infinity where a finite value was expected is outside every tolerance.
  if (sameBits) return true;
  if (!Number.isFinite(actual) || !Number.isFinite(expected)) return false;
  switch (t.kind) {
    case 'exact':
      return sameBits;
    case 'ulp':
      return ulp <= t.maxUlp;
    case 'allclose':
      return Math.abs(actual - expected) <= t.atol + t.rtol * Math.abs(expected);
    case 'relative':
      return Math.abs(actual - expected) <= t.rtol * Math.max(Math.abs(expected), t.floor ?? 0);
  }
}

/**
 * Compares `actual` with `expected` element by element. ULPs are counted in the actual tensor's
 * dtype (the expected values are rounded to it first when they are wider, as golden numbers are).
 */
export function compareTensors(actual: Tensor, expected: Tensor, tolerance: Tolerance): Difference {
  if (actual.size !== expected.size) throw new RangeError(`cannot compare ${actual.toString()} with ${expected.toString()}`);
  const dtype = actual.dtype;
  let maxAbs = 0, maxRel = 0, maxUlp = 0, differing = 0, failing = 0, worst = -1;
  const sameDtype = actual.dtype === expected.dtype;
  for (let i = 0; i < actual.size; i++) {
    const a = actual.get(i);
    const e = expected.get(i);
    // float16 data are bit patterns; for the others Object.is tells -0 from +0 (=== does not).
    const sameBits = sameDtype && dtype === 'float16' ? actual.data[i] === expected.data[i] : Object.is(a, e);
    if (!sameBits) differing++;
    const abs = a === e ? 0 : Math.abs(a - e);
    const rel = abs === 0 ? 0 : e === 0 ? Infinity : abs / Math.abs(e);
    const ulp = ulpDistance(a, e, dtype);
    if (ulp > maxUlp || (worst < 0 && !sameBits)) {
      maxUlp = Math.max(maxUlp, ulp);
      worst = i;
    }
    maxAbs = Math.max(maxAbs, Number.isNaN(abs) ? Infinity : abs);
    maxRel = Math.max(maxRel, Number.isNaN(rel) ? Infinity : rel);
    if (!within(tolerance, a, e, ulp, sameBits)) failing++;
  }
  return { maxAbs, maxRel, maxUlp, differing, failing, worst, elements: actual.size };
}
