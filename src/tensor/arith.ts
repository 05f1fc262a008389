import type { FloatDType } from './dtype.js';
import { roundToHalf } from './float16.js';

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
   * pow in the dtype. float32: the correctly rounded powf value, which is what glibc's powf (used by
   * TF's CPU Pow kernel) returns for the exponents Nadam uses; test/pow.test.ts checks this against
   * C powf through numpy. float16: computed as float32 then rounded to half, as Eigen does.
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
  float64: makeArith('float64', identity, (a, b) => Math.pow(a, b)),
  float32: makeArith('float32', Math.fround, (a, b) => Math.fround(Math.pow(a, b))),
  float16: makeArith('float16', roundToHalf, (a, b) => roundToHalf(Math.fround(Math.pow(a, b)))),
};

/** The scalar arithmetic of `dtype`. */
export function arith(dtype: FloatDType): Arith {
  return ARITH[dtype];
}
