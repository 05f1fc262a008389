import type { FloatDType } from '../tensor/dtype.js';
import type { FloatTensor } from '../tensor/tensor.js';

/** A kernel result: backends that run elsewhere (onnxruntime) answer with a promise. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Per-step scalars of the tf.keras optimizer_v2 Nadam (also used by standalone Keras 2, whose
 * per-element math is the same), each already rounded to the variable's dtype.
 */
export interface TfKerasNadamCoefficients {
  readonly kind: 'tf-keras';
  readonly lr: number;
  readonly negLr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly oneMinusBeta1: number;
  readonly oneMinusBeta2: number;
  /** 1 - mu_t */
  readonly oneMinusMuT: number;
  /** mu_{t+1} */
  readonly muT1: number;
  /** 1 - prod(mu_1..mu_t) */
  readonly oneMinusMsNew: number;
  /** 1 - prod(mu_1..mu_{t+1}) */
  readonly oneMinusMsNext: number;
  /** 1 - beta_2^t */
  readonly vDenominator: number;
  readonly epsilon: number;
}

/** Per-step scalars of the Keras 3 and TF 2.11+ Nadam, rounded to the variable's dtype. */
export interface Keras3NadamCoefficients {
  readonly kind: 'keras3';
  /**
   * How m and v move. 'interpolate' (the default; every dense update): m + (g - m) * (1 - beta_1).
   * 'decay-then-scatter' (TF 2.11+ sparse gradients, `grad` being the unique rows made dense):
   * (m - m * (1 - beta_1)) + g * (1 - beta_1), and likewise v with g * g; the rest is unchanged.
   */
  readonly moments?: 'interpolate' | 'decay-then-scatter';
  readonly lr: number;
  readonly oneMinusBeta1: number;
  readonly oneMinusBeta2: number;
  /** u_{t+1} */
  readonly uT1: number;
  /** 1 - u_t */
  readonly oneMinusUT: number;
  /** 1 - u_product (after this step's update) */
  readonly oneMinusUProduct: number;
  /** 1 - u_product * u_{t+1} */
  readonly oneMinusUProductNext: number;
  /** 1 - beta_2^t */
  readonly oneMinusBeta2Power: number;
  readonly epsilon: number;
}

export type NadamCoefficients = TfKerasNadamCoefficients | Keras3NadamCoefficients;

/** The tensors one Nadam step updates in place. */
export interface NadamState {
  readonly variable: FloatTensor;
  readonly m: FloatTensor;
  readonly v: FloatTensor;
}

/** One variable's dense step in a batch. */
export interface DenseStep {
  readonly state: NadamState;
  readonly grad: FloatTensor;
}

/** A sparse gradient whose row indices are unique (duplicates already summed). */
export interface UniqueRows {
  /** Row indices into the variable's first dimension, each at most once. */
  readonly indices: Int32Array;
  /** Shape [indices.length, ...variable.shape.slice(1)]. */
  readonly values: FloatTensor;
}

/**
 * The seam between optimizers and arithmetic: the few kernels an optimizer needs, on tensors that
 * carry dtype and shape. Every float kernel rounds to the tensor's dtype after each operation, in
 * the op order documented on the kernel, so that two backends that honour the contract agree bit for bit.
 */
export interface Backend {
  readonly name: string;
  /** True when no kernel ever returns a promise (allows `applyGradientsSync`). */
  readonly synchronous: boolean;
  supportsDType(dtype: FloatDType): boolean;

  /** Dense Nadam step on `state`, in place, in the op order of the coefficients' flavour. */
  nadamDense(state: NadamState, grad: FloatTensor, c: NadamCoefficients): MaybePromise<void>;
  /**
   * Optional: the dense step of several variables of one dtype that share `c`, as if `nadamDense`
   * were called on each (they are distinct variables, so order does not matter). Backends with a
   * per-call cost (a graph run) implement it to pay that cost once per step instead of per variable.
   */
  nadamDenseBatch?(items: readonly DenseStep[], c: NadamCoefficients): MaybePromise<void>;
  /**
   * TF's sparse Nadam step (`_resource_apply_sparse`): m and v decay on every row, the gradient is
   * scattered into the touched rows, and only those rows of the variable move.
   */
  nadamSparse(state: NadamState, rows: UniqueRows, c: TfKerasNadamCoefficients): MaybePromise<void>;

  /** Sum of squares, accumulated in float64 in row-major order (the caller rounds it to the dtype). */
  sumOfSquares(x: FloatTensor): MaybePromise<number>;
  /** New tensor: max(min(x, hi), lo) elementwise (TF's clip_by_value order; NaN propagates). */
  clipByValue(x: FloatTensor, lo: number, hi: number): MaybePromise<FloatTensor>;
  /** New tensor: (x * mul) / div, each rounded to the dtype (clip_by_norm's rescale; div = 1 scales). */
  scaleDiv(x: FloatTensor, mul: number, div: number): MaybePromise<FloatTensor>;
  /**
   * Sums the rows of `values` that share an index, as TF's unsorted_segment_sum: unique indices in
   * order of first appearance, each sum starting from +0 and adding rows in order of occurrence.
   */
  segmentSumRows(indices: ArrayLike<number>, values: FloatTensor): MaybePromise<UniqueRows>;
  /** Scatters unique rows into a new zero tensor of `shape` (an IndexedSlices made dense). */
  scatterRows(rows: UniqueRows, shape: readonly number[]): MaybePromise<FloatTensor>;
}
