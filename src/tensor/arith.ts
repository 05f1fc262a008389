import type { FloatDType } from './dtype.js';
import { roundToHalf } from './float16.js';
import { powFloat32, powFloat64 } from './pow.js';

/**
 * Scalar arithmetic in one float dtype, one rounding per operation, as TF evaluates a graph of
 * scalar ops in that dtype. Used for the per-step coefficients (schedules, bias corrections).
 *
 * Every + - * / sqrt is computed in double and rounded once to the dtype, which equals the
 * dtype's own correctly rounded operation (double has more than 2p+2 bits for p = 24 and 11).
 */
export interface Arith {
  readonly dtype: FloatDType;
  /** Rounds a double to the dtype (a cast). */
  readonly cast: (x: number) => number;
  add(a: number, b: number): number;
  sub(a: number, b: number): number;
  mul(a: number, b: number): number;
  div(a: number, b: number): number;
  sqrt(a: number): number;
  /**
   * pow in the dtype, correctly rounded (src/tensor/pow.ts). TF's CPU Pow kernel calls the C library
   * (powf / pow); glibc's are not always correctly rounded, and test/pow.test.ts measures where they
   * differ for the exponents Nadam uses (README "Numerical promises"). float16: the float32 result
   * rounded to half, as Eigen computes half pow through powf.
   */
  pow(a: number, b: number): number;
}

function makeArith(dtype: FloatDType, cast: (x: number) => number, pow: (a: number, b: number) => number): Arith {
  return {
    dtype,
    cast,
    add: (a, b) => cast(a + b),
    sub: (a, b) => cast(a - b),
    mul: (a, b) => cast(a * b),
    div: (a, b) => cast(a / b),
    sqrt: (a) => cast(Math.sqrt(a)),
    pow,
  };
}

const identity = (x: number): number => x;

const ARITH: Record<FloatDType, Arith> = {
  float64: makeArith('float64', identity, powFloat64),
  float32: makeArith('float32', Math.fround, powFloat32),
  float16: makeArith('float16', roundToHalf, (a, b) => roundToHalf(powFloat32(a, b))),
};

/** The scalar arithmetic of `dtype`. */
export function arith(dtype: FloatDType): Arith {
  return ARITH[dtype];
}
