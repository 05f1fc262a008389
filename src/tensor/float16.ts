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

/** Unbiased binary exponent of a finite non-zero double (floor(log2|x|)). */
function exponentOf(x: number): number {
  f64[0] = x;
  const e = ((u32[HIGH]! >>> 20) & 0x7ff) - 1023;
  return e === -1023 ? -1023 : e; // double subnormals only matter as "far below half's range"
}

const HALF_MAX_PLUS_HALF_ULP = 65520; // ties to even above 65504 round to 65536, which overflows

/** Rounds a double to the nearest half value (ties to even), returned as a double. */
export function roundToHalf(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= HALF_MAX_PLUS_HALF_ULP) return x > 0 ? Infinity : -Infinity;
  const e = exponentOf(a);
  const quantum = e < -14 ? 2 ** -24 : 2 ** (e - 10);
  const scaled = a / quantum; // exact: division by a power of two
  const floor = Math.floor(scaled);
  const rest = scaled - floor;
  const rounded = rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  const result = rounded * quantum;
  return x < 0 ? -result : result;
}

/** The 16-bit pattern of a double, rounded to half first. */
export function toHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const h = roundToHalf(x);
  const sign = h < 0 || Object.is(h, -0) ? 0x8000 : 0;
  const a = Math.abs(h);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  const e = exponentOf(a);
  return sign | ((e + 15) << 10) | (a / 2 ** (e - 10) - 1024);
}

/** The double value of a 16-bit half pattern. */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}
