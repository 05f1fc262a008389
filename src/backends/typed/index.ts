import { arith } from '../../tensor/arith.js';
import type { FloatDType } from '../../tensor/dtype.js';
import { inSharedPool } from '../../tensor/pool.js';
import { Tensor, type FloatTensor } from '../../tensor/tensor.js';
import type { Backend, DenseStep, NadamCoefficients, NadamState, TfKerasNadamCoefficients, UniqueRows } from '../backend.js';
import { compileKernel, type CompiledKernel } from './codegen.js';
import type { ManyCall } from './simd.js';
export { Float32Arena } from './arena.js';
import {
  CLIP_BY_VALUE,
  NADAM_DENSE_KERAS3,
  NADAM_DENSE_TF_KERAS,
  NADAM_SPARSE_TF_KERAS,
  NADAM_SPARSE_TF_KERAS_NEW,
  SCALE_DIV,
  SUM_OF_SQUARES,
} from './kernels.js';

type FloatArray = Float32Array | Float64Array;

/** The dense kernel for `c`'s flavour and its scalar arguments, in the kernel's parameter order. */
function denseKernel(dtype: FloatDType, c: NadamCoefficients): { kernel: CompiledKernel; scalars: number[] } {
  if (c.kind === 'tf-keras') {
    return {
      kernel: compileKernel(NADAM_DENSE_TF_KERAS, dtype),
      scalars: [c.lr, c.beta1, c.beta2, c.oneMinusBeta1, c.oneMinusBeta2, c.oneMinusMuT, c.muT1, c.oneMinusMsNew, c.oneMinusMsNext, c.vDenominator, c.epsilon],
    };
  }
  return {
    kernel: compileKernel(c.moments === 'decay-then-scatter' ? NADAM_SPARSE_TF_KERAS_NEW : NADAM_DENSE_KERAS3, dtype),
    scalars: [c.lr, c.oneMinusBeta1, c.oneMinusBeta2, c.uT1, c.oneMinusUT, c.oneMinusUProduct, c.oneMinusUProductNext, c.oneMinusBeta2Power, c.epsilon],
  };
}

/** Elements per row for a tensor indexed by its first dimension. */
function rowSize(shape: readonly number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * The default backend: plain typed arrays, float32 rounded after every op with Math.fround,
 * float64 natively, float16 emulated on doubles with half rounding. Synchronous.
 */
export class TypedArrayBackend implements Backend {
  readonly name = 'typed';
  readonly synchronous = true;

  supportsDType(dtype: FloatDType): boolean {
    return dtype === 'float16' || dtype === 'float32' || dtype === 'float64';
  }

  nadamDense(state: NadamState, grad: FloatTensor, c: NadamCoefficients): void {
    const { variable: w, m, v } = state;
    const { kernel, scalars } = denseKernel(w.dtype, c);
    kernel(w.data, m.data, v.data, grad.data, w.size, ...scalars);
  }

  /**
   * Every dense variable of a step (one dtype, shared `c`): those whose arrays are all in the managed
   * memory as one job, whose blocks the threads share out together (so many variables, each below
   * the thread threshold, still use every core); the others (small ones, the user's own arrays)
   * one call each, as `nadamDense`.
   */
  nadamDenseBatch(items: readonly DenseStep[], c: NadamCoefficients): void {
    if (items.length === 0) return;
    const dtype = items[0]!.state.variable.dtype;
    const { kernel, scalars } = denseKernel(dtype, c);
    const many = (kernel as { many?: (calls: readonly ManyCall[], scalars: readonly number[]) => boolean }).many;
    const arraysOf = ({ state, grad }: DenseStep) => [state.variable, state.m, state.v, grad];
    const together = items.filter((x) => arraysOf(x).every((t) => t.dtype === dtype && t.size === x.state.variable.size && inSharedPool(t.data)));
    const calls = together.map((x) => ({ arrays: arraysOf(x).map((t) => t.data as FloatArray), n: x.state.variable.size }));
    const done = together.length > 1 && many !== undefined && many(calls, scalars) ? new Set(together) : null;
    for (const item of items) if (!done?.has(item)) this.nadamDense(item.state, item.grad, c);
  }

  nadamSparse(state: NadamState, rows: UniqueRows, c: TfKerasNadamCoefficients): void {
    const { variable: w, m, v } = state;
    compileKernel(NADAM_SPARSE_TF_KERAS, w.dtype)(w.data, m.data, v.data, rows.values.data, rows.indices,
      rowSize(w.shape), c.negLr, c.beta1, c.beta2, c.oneMinusBeta1, c.oneMinusBeta2, c.oneMinusMuT, c.muT1,
      c.oneMinusMsNew, c.oneMinusMsNext, c.vDenominator, c.epsilon);
  }

  sumOfSquares(x: FloatTensor): number {
    return compileKernel(SUM_OF_SQUARES, x.dtype)(x.data) as number;
  }

  clipByValue(x: FloatTensor, lo: number, hi: number): FloatTensor {
    const out = Tensor.zeros(x.dtype, x.shape);
    compileKernel(CLIP_BY_VALUE, x.dtype)(x.data, out.data, lo, hi);
    return out;
  }

  scaleDiv(x: FloatTensor, mul: number, div: number): FloatTensor {
    const out = Tensor.zeros(x.dtype, x.shape);
    compileKernel(SCALE_DIV, x.dtype)(x.data, out.data, mul, div);
    return out;
  }

  segmentSumRows(indices: ArrayLike<number>, values: FloatTensor): UniqueRows {
    const width = rowSize(values.shape);
    const add = arith(values.dtype).add;
    const position = new Map<number, number>();
    const unique: number[] = [];
    for (let k = 0; k < indices.length; k++) {
      const index = indices[k]!;
      if (!position.has(index)) {
        position.set(index, unique.length);
        unique.push(index);
      }
    }
    const summed = Tensor.zeros(values.dtype, [unique.length, ...values.shape.slice(1)]);
    const acc = new Float64Array(summed.size); // +0 start, as unsorted_segment_sum's zero-filled output
    for (let k = 0; k < indices.length; k++) {
      const base = position.get(indices[k]!)! * width;
      for (let j = 0; j < width; j++) acc[base + j] = add(acc[base + j]!, values.get(k * width + j));
    }
    for (let i = 0; i < acc.length; i++) summed.set(i, acc[i]!);
    return { indices: Int32Array.from(unique), values: summed };
  }

  scatterRows(rows: UniqueRows, shape: readonly number[]): FloatTensor {
    const out = Tensor.zeros(rows.values.dtype, shape);
    const width = rowSize(shape);
    const src = rows.values.data as Float32Array;
    const dst = out.data as Float32Array;
    for (let k = 0; k < rows.indices.length; k++) {
      dst.set(src.subarray(k * width, (k + 1) * width), rows.indices[k]! * width);
    }
    return out;
  }
}
