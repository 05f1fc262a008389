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
