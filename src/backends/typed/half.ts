import { OP, SIMD, simd, sleb, uleb } from './wasmBinary.js';

/*
 * float16 in wasm: halves are loaded as four u16 lanes and widened to f32x4, every op runs in f32 and
 * its result is rounded to half, and results are narrowed back to u16 on store. Why these are the
 * bits of the JavaScript kernel (doubles rounded to half after every op): both are the correctly
 * rounded half result of the exact operation, because a float32 result rounded again to half is
 * (24 >= 2 * 11 + 2 significand bits, as a double is for the JavaScript kernel). With half inputs, f32
 * never overflows nor goes subnormal in + - * / sqrt; the widening and narrowing scale by 2^112 and
 * 2^-112, which are exact (wasm keeps subnormals). Each sequence below uses three v128 scratch locals.
 */

/** v128.const with the same 32-bit pattern in all four lanes. */
function splat32(bits: number): number[] {
  const lane = [bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff];
  return [...simd(SIMD.v128Const), ...lane, ...lane, ...lane, ...lane];
}

const ABS = 0x7fffffff;
const SIGN = 0x80000000;
const EXPONENT = 0x7f800000; // also +Infinity
const TWO_POW_112 = 0x77800000;
const TWO_POW_MINUS_112 = 0x07800000;
const HALF_MIN_NORMAL_EXPONENT = (127 - 14) << 23;
const THIRTEEN_BINADES = 13 << 23;
const HALF_OVERFLOW = 0x477ff000; // 65520: ties above 65504 round to 65536, which overflows

const get = (l: number) => [OP.localGet, ...uleb(l)];
const set = (l: number) => [OP.localSet, ...uleb(l)];
const tee = (l: number) => [OP.localTee, ...uleb(l)];
const shift = (n: number, op: number) => [OP.i32Const, ...sleb(n), ...simd(op)];

/** Loads four halves at the address on the stack as f32x4. */
export function loadHalf(t: readonly [number, number, number]): number[] {
  const [h, f] = t;
  return [
    ...simd(SIMD.load16x4U, { align: 1, offset: 0 }), ...tee(h),
    // magnitude bits moved into f32's field and scaled by 2^112: exact for normal and subnormal halves
    ...splat32(0x7fff), ...simd(SIMD.v128And), ...shift(13, SIMD.i32x4Shl), ...splat32(TWO_POW_112), ...simd(SIMD.f32x4Mul), ...set(f),
    // exponent 31 (infinity, NaN): f32 exponent 255, the mantissa kept
    ...splat32(EXPONENT), ...get(f), ...simd(SIMD.v128Or), ...get(f),
    ...get(h), ...splat32(0x7c00), ...simd(SIMD.v128And), ...splat32(0x7c00), ...simd(SIMD.i32x4Eq), ...simd(SIMD.v128Bitselect),
    ...get(h), ...splat32(0x8000), ...simd(SIMD.v128And), ...shift(16, SIMD.i32x4Shl), ...simd(SIMD.v128Or),
  ];
}

/**
 * Rounds the f32x4 on the stack to half (ties to even), as f32x4. With a = |x| of exponent e, c =
 * 2^(max(e, -14) + 13) has f32 ulp 2^(max(e, -14) - 10), half's quantum there, and a < c: so a + c
 * rounded to nearest even is a rounded to half, plus c exactly. 65520 and above overflow to infinity.
 */
export function roundHalf(t: readonly [number, number, number]): number[] {
  const [x, a, c] = t;
  return [
    ...tee(x), ...splat32(ABS), ...simd(SIMD.v128And), ...tee(a),
    ...splat32(EXPONENT), ...simd(SIMD.v128And), ...splat32(HALF_MIN_NORMAL_EXPONENT), ...simd(SIMD.i32x4MaxU),
    ...splat32(THIRTEEN_BINADES), ...simd(SIMD.i32x4Add), ...set(c),
    ...splat32(EXPONENT),
    ...get(a), ...get(c), ...simd(SIMD.f32x4Add), ...get(c), ...simd(SIMD.f32x4Sub),
    ...get(a), ...splat32(HALF_OVERFLOW), ...simd(SIMD.f32x4Ge), ...simd(SIMD.v128Bitselect),
    ...get(x), ...splat32(SIGN), ...simd(SIMD.v128And), ...simd(SIMD.v128Or),
  ];
}

/** Stores the f32x4 on the stack (half values, infinities or NaN) as four halves at the address below it. */
export function storeHalf(t: readonly [number, number, number]): number[] {
  const [v, a, b] = t;
  return [
    ...tee(v), ...splat32(ABS), ...simd(SIMD.v128And), ...tee(a),
    ...splat32(TWO_POW_MINUS_112), ...simd(SIMD.f32x4Mul), ...shift(13, SIMD.i32x4ShrU), ...set(b),
    ...splat32(0x7c00), ...get(b), ...get(a), ...splat32(EXPONENT), ...simd(SIMD.i32x4Eq), ...simd(SIMD.v128Bitselect), ...set(b),
    ...splat32(0x7e00), ...get(b), ...get(v), ...get(v), ...simd(SIMD.f32x4Ne), ...simd(SIMD.v128Bitselect),
    ...get(v), ...splat32(SIGN), ...simd(SIMD.v128And), ...shift(16, SIMD.i32x4ShrU), ...simd(SIMD.v128Or),
    ...tee(b), ...get(b), ...simd(SIMD.i16x8NarrowI32x4U),
    ...simd(SIMD.store64Lane, { align: 0, offset: 0 }), 0,
  ];
}
