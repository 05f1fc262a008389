/**
 * Correctly rounded pow for float64 and float32, from a double-double evaluation of exp(y * ln x).
 *
 * Why not Math.pow: V8's Math.pow is not correctly rounded; for the exponents Nadam uses it differs
 * from glibc's pow (what TF's CPU kernels call) in about 7% of float64 results, and rounding it to
 * float32 is only safe away from float32 midpoints. See README "Numerical promises" for how glibc
 * itself compares with the correctly rounded value.
 */

/** A double-double: the unevaluated sum hi + lo with |lo| <= ulp(hi) / 2. */
interface DD {
  hi: number;
  lo: number;
}

const SPLITTER = 134217729; // 2^27 + 1, Dekker's split

function twoSum(a: number, b: number): DD {
  const s = a + b;
  const bb = s - a;
  return { hi: s, lo: a - (s - bb) + (b - bb) };
}

function quickTwoSum(a: number, b: number): DD {
  const s = a + b;
  return { hi: s, lo: b - (s - a) };
}

function twoProd(a: number, b: number): DD {
  const p = a * b;
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return { hi: p, lo: ah * bh - p + ah * bl + al * bh + al * bl };
}

function add(x: DD, y: DD): DD {
  const s = twoSum(x.hi, y.hi);
  const t = twoSum(x.lo, y.lo);
  const u = quickTwoSum(s.hi, s.lo + t.hi);
  return quickTwoSum(u.hi, u.lo + t.lo);
}

function mul(x: DD, y: DD): DD {
  const p = twoProd(x.hi, y.hi);
  return quickTwoSum(p.hi, p.lo + (x.hi * y.lo + x.lo * y.hi));
}

function mulNumber(x: DD, b: number): DD {
  const p = twoProd(x.hi, b);
  return quickTwoSum(p.hi, p.lo + x.lo * b);
}

function div(x: DD, y: DD): DD {
  const q1 = x.hi / y.hi;
  let r = add(x, mulNumber(y, -q1));
  const q2 = r.hi / y.hi;
  r = add(r, mulNumber(y, -q2));
  const q3 = r.hi / y.hi;
  return add(quickTwoSum(q1, q2), { hi: q3, lo: 0 });
}

const LN2: DD = { hi: 0.6931471805599453, lo: 2.3190468138462996e-17 };
/** 1 / (2k + 1) for the atanh series, as double-doubles. */
const ATANH_COEFFICIENTS: DD[] = Array.from({ length: 24 }, (_, k) => div({ hi: 1, lo: 0 }, { hi: 2 * k + 1, lo: 0 }));
/** 1 / k! for the exp series. */
const INVERSE_FACTORIALS: DD[] = [];
for (let k = 0, f: DD = { hi: 1, lo: 0 }; k < 14; k++) {
  if (k > 0) f = mulNumber(f, k);
  INVERSE_FACTORIALS.push(div({ hi: 1, lo: 0 }, f));
}

const view = new DataView(new ArrayBuffer(8));

/** x = m * 2^k with m in [sqrt(1/2), sqrt(2)), for finite x > 0. */
function decompose(x: number): { m: number; k: number } {
  let scale = 0;
  if (x < 2 ** -1000) {
    x *= 2 ** 600; // lift subnormals into the normal range (exact)
    scale = -600;
  }
  view.setFloat64(0, x);
  const e = ((view.getUint32(0) >>> 20) & 0x7ff) - 1023;
  let m = x / 2 ** e; // exact: division by a power of two within range
  let k = e + scale;
  if (m >= Math.SQRT2) {
    m /= 2;
    k += 1;
  }
  return { m, k };
}

/** ln(x) as a double-double, x finite and > 0: k ln 2 + 2 atanh((m - 1) / (m + 1)). */
function logDD(x: number): DD {
  const { m, k } = decompose(x);
  const s = div({ hi: m - 1, lo: 0 }, twoSum(m, 1)); // m - 1 is exact (Sterbenz)
  const s2 = mul(s, s);
  let sum = ATANH_COEFFICIENTS[ATANH_COEFFICIENTS.length - 1]!;
  for (let i = ATANH_COEFFICIENTS.length - 2; i >= 0; i--) sum = add(mul(sum, s2), ATANH_COEFFICIENTS[i]!);
  return add(mulNumber(LN2, k), mulNumber(mul(s, sum), 2));
}

/** exp(z) = 2^n * exp(r)^(2^10), r = (z - n ln 2) / 2^10, returned as {dd, n}; |z.hi| < 746. */
function expDD(z: DD): { v: DD; n: number } {
  const n = Math.round(z.hi / LN2.hi);
  const r = add(z, mulNumber(LN2, -n));
  const small = { hi: r.hi / 1024, lo: r.lo / 1024 };
  let sum = INVERSE_FACTORIALS[INVERSE_FACTORIALS.length - 1]!;
  for (let i = INVERSE_FACTORIALS.length - 2; i >= 0; i--) sum = add(mul(sum, small), INVERSE_FACTORIALS[i]!);
  for (let i = 0; i < 10; i++) sum = mul(sum, sum);
  return { v: sum, n };
}

/** Rounds hi + lo (a normalised double-double) times 2^n to the nearest double, subnormals included. */
function scaleAndRound(v: DD, n: number): number {
  if (n > 1024) return Infinity;
  const value = v.hi * 2 ** Math.max(n, -1022); // exact while the result stays normal
  if (n >= -1022 && Math.abs(value) >= 2 ** -1022) {
    return n > 1023 ? v.hi * 2 ** 1023 * 2 ** (n - 1023) : value;
  }
  // Subnormal result: round (hi + lo) * 2^(n + 1074) to an integer, ties to even.
  const shift = n + 1074;
  if (shift < -2) return 0;
  const X = v.hi * 2 ** shift; // exact (no bits lost: v.hi has a normal exponent near 0)
  const f = Math.floor(X);
  const frac = X - f + v.lo * 2 ** shift;
  const q = frac > 0.5 || (frac === 0.5 && f % 2 === 1) ? f + 1 : frac < -0.5 ? f - 1 : f;
  return q * 2 ** -1074;
}

/** pow(x, y) for the cases the double-double path handles: x finite > 0, y finite, result not trivially 1. */
function powDD(x: number, y: number): { v: DD; n: number } | null {
  if (!(x > 0) || !Number.isFinite(x) || !Number.isFinite(y) || x === 1 || y === 0) return null;
  const z = mulNumber(logDD(x), y);
  if (z.hi > 710) return { v: { hi: Infinity, lo: 0 }, n: 0 };
  if (z.hi < -746) return { v: { hi: 0, lo: 0 }, n: 0 };
  return expDD(z);
}

/** x^y correctly rounded to double (special cases as Math.pow, which follows IEEE 754 pow there). */
export function powFloat64(x: number, y: number): number {
  const r = powDD(x, y);
  if (!r) return Math.pow(x, y);
  if (!Number.isFinite(r.v.hi) || r.v.hi === 0) return r.v.hi;
  return scaleAndRound(quickTwoSum(r.v.hi, r.v.lo), r.n);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 next to `r` (a float32 value) in the direction of `toward`. */
function neighbour32(r: number, toward: number): number {
  f32[0] = r;
  if (r === 0) {
    u32[0] = 1;
    return toward > 0 ? f32[0]! : -f32[0]!;
  }
  u32[0] = u32[0]! + ((toward > r) === (r > 0) ? 1 : -1);
  return f32[0]!;
}

/** x^y (x, y float32 values) correctly rounded to float32: glibc's powf differs at some inputs (README). */
export function powFloat32(x: number, y: number): number {
  const r = powDD(x, y);
  if (!r) return Math.fround(Math.pow(x, y));
  if (!Number.isFinite(r.v.hi) || r.v.hi === 0) return Math.fround(r.v.hi);
  // float32 results are normal doubles (n >= -160 here), so this scaling is exact.
  const hi = r.v.hi * 2 ** r.n;
  const lo = r.v.lo * 2 ** r.n;
  const rounded = Math.fround(hi);
  if (rounded === hi || !Number.isFinite(rounded)) return rounded;
  const other = neighbour32(rounded, hi);
  if ((rounded + other) / 2 !== hi || lo === 0) return rounded;
  return lo > 0 ? Math.max(rounded, other) : Math.min(rounded, other);
}
