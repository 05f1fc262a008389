/**
 * IEEE 754 binary16 emulation. JavaScript has no half type, so values are kept as doubles that are
 * exactly representable in half precision, and stored as their 16-bit patterns.
 *
 * TF's CPU kernels compute a half op as float32 and round the result to half. Rounding the exact
 * double result straight to half gives the same bits for + - * / and sqrt: a double carries more
 * than 2p+2 bits for both float32 (p=24) and half (p=11), so no double-rounding error can arise.
 */

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** Unbiased binary exponent of a finite non-zero double (floor(log2|x|)); -1023 for double subnormals. */
function exponentOf(x: number): number {
  f64[0] = x;
  return ((u32[HIGH]! >>> 20) & 0x7ff) - 1023; // double subnormals only matter as "far below half's range"
}

/** POW2[k + 1075] = 2^k for every k a double can hold (powers by table: Math.pow per element is slow). */
const POW2 = new Float64Array(2100);
for (let k = -1074; k <= 1023; k++) POW2[k + 1075] = 2 ** k;

const HALF_MAX_PLUS_HALF_ULP = 65520; // ties to even above 65504 round to 65536, which overflows

/**
 * Rounds a double to the nearest half value (ties to even), returned as a double. The quantum of
 * half at |x|'s exponent e (2^(max(e, -14) - 10)) is the ulp of c = 2^(max(e, -14) + 42), and |x| < c:
 * so |x| + c, rounded by the FPU to nearest-even, is |x| rounded to that quantum, plus c (exactly).
 */
export function roundToHalf(x: number): number {
  const a = Math.abs(x);
  if (a >= HALF_MAX_PLUS_HALF_ULP) return x > 0 ? Infinity : -Infinity;
  if (a === 0 || a !== a) return x; // signed zeros and NaN
  const e = exponentOf(a);
  const c = POW2[(e < -14 ? -14 : e) + 42 + 1075]!;
  const r = a + c - c;
  return x < 0 ? -r : r;
}

/** The 16-bit pattern of a double, rounded to half first. */
export function toHalfBits(x: number): number {
  if (x !== x) return 0x7e00;
  const h = roundToHalf(x);
  const sign = h < 0 || Object.is(h, -0) ? 0x8000 : 0;
  const a = Math.abs(h);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | (a * 2 ** 24);
  const e = exponentOf(a);
  return sign | ((e + 15) << 10) | (a * POW2[10 - e + 1075]! - 1024);
}

let halfValues: Float64Array | null = null;

/** The double value of a 16-bit half pattern (one table of all 65536, made on first use). */
export function fromHalfBits(bits: number): number {
  if (!halfValues) {
    halfValues = new Float64Array(0x10000);
    for (let b = 0; b < 0x10000; b++) halfValues[b] = decodeHalf(b);
  }
  return halfValues[bits & 0xffff]!;
}

/** The double value of a 16-bit half pattern, computed from its fields. */
function decodeHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}
