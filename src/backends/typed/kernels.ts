import type { KernelSource } from './codegen.js';

/*
 * Kernel sources for the typed-array backend. Each statement mirrors one TF op; `R(...)` marks the
 * rounding to the variable's dtype that the op performs. Do not reassociate: the order is the contract.
 */

/** tf.keras optimizer_v2 `_resource_apply_dense` (and standalone Keras 2's dense update). */
export const NADAM_DENSE_TF_KERAS: KernelSource = {
  name: 'nadamDenseTfKeras',
  params: ['W', 'M', 'V', 'G', 'n', 'lr', 'beta1', 'beta2', 'oneMinusBeta1', 'oneMinusBeta2',
    'oneMinusMuT', 'muT1', 'oneMinusMsNew', 'oneMinusMsNext', 'vDenominator', 'epsilon'],
  floatArrays: ['W', 'M', 'V', 'G'],
  writes: ['W', 'M', 'V'],
  body: `
  for (let i = 0; i < n; i++) {
    const g = G[i];
    const gPrime = R(g / oneMinusMsNew);
    const m = R(R(beta1 * M[i]) + R(oneMinusBeta1 * g));
    M[i] = m;
    const mPrime = R(m / oneMinusMsNext);
    const v = R(R(beta2 * V[i]) + R(oneMinusBeta2 * R(g * g)));
    V[i] = v;
    const vPrime = R(v / vDenominator);
    const mBar = R(R(oneMinusMuT * gPrime) + R(muT1 * mPrime));
    W[i] = R(W[i] - R(R(lr * mBar) / R(R(Math.sqrt(vPrime)) + epsilon)));
  }`,
};

/**
 * tf.keras optimizer_v2 `_resource_apply_sparse` on unique rows: m and v decay on every row, the
 * scaled gradient is scattered into the touched rows, and only those rows of the variable move.
 */
export const NADAM_SPARSE_TF_KERAS: KernelSource = {
  name: 'nadamSparseTfKeras',
  params: ['W', 'M', 'V', 'G', 'rows', 'rowSize', 'negLr', 'beta1', 'beta2', 'oneMinusBeta1', 'oneMinusBeta2',
    'oneMinusMuT', 'muT1', 'oneMinusMsNew', 'oneMinusMsNext', 'vDenominator', 'epsilon'],
  floatArrays: ['W', 'M', 'V', 'G'],
  writes: ['W', 'M', 'V'],
  body: `
  const size = M.length;
  for (let i = 0; i < size; i++) {
    M[i] = R(M[i] * beta1);
    V[i] = R(V[i] * beta2);
  }
  for (let k = 0; k < rows.length; k++) {
    const base = rows[k] * rowSize;
    const gBase = k * rowSize;
    for (let j = 0; j < rowSize; j++) {
      const i = base + j;
      const g = G[gBase + j];
      const gPrime = R(g / oneMinusMsNew);
      const m = R(M[i] + R(g * oneMinusBeta1));
      M[i] = m;
      const mPrime = R(m / oneMinusMsNext);
      const mBar = R(R(oneMinusMuT * gPrime) + R(muT1 * mPrime));
      const v = R(V[i] + R(R(g * g) * oneMinusBeta2));
      V[i] = v;
      const vPrime = R(v / vDenominator);
      const denominator = R(R(Math.sqrt(vPrime)) + epsilon);
      W[i] = R(W[i] + R(R(negLr * mBar) / denominator));
    }
  }`,
};

/** Keras 3 (and TF 2.11+) `Nadam.update_step`, dense. */
export const NADAM_DENSE_KERAS3: KernelSource = {
  name: 'nadamDenseKeras3',
  params: ['W', 'M', 'V', 'G', 'n', 'lr', 'oneMinusBeta1', 'oneMinusBeta2', 'uT1', 'oneMinusUT',
    'oneMinusUProduct', 'oneMinusUProductNext', 'oneMinusBeta2Power', 'epsilon'],
  floatArrays: ['W', 'M', 'V', 'G'],
  writes: ['W', 'M', 'V'],
  body: `
  for (let i = 0; i < n; i++) {
    const g = G[i];
    const m = R(M[i] + R(R(g - M[i]) * oneMinusBeta1));
    M[i] = m;
    const v = R(V[i] + R(R(R(g * g) - V[i]) * oneMinusBeta2));
    V[i] = v;
    const mHat = R(R(R(uT1 * m) / oneMinusUProductNext) + R(R(oneMinusUT * g) / oneMinusUProduct));
    const vHat = R(v / oneMinusBeta2Power);
    W[i] = R(W[i] - R(R(mHat * lr) / R(R(Math.sqrt(vHat)) + epsilon)));
  }`,
};

/**
 * TF 2.11+ `Nadam.update_step` for a sparse gradient, given its unique rows made dense (G is +0 on
 * untouched rows): m.assign_add(-m * (1 - beta_1)) then scatter_add(values * (1 - beta_1)), v likewise
 * with square(values); m_hat uses the dense gradient, so every row of the variable moves. On an
 * untouched row the added +0 changes nothing (m - m * c is never -0), which is why one loop serves all rows.
 */
export const NADAM_SPARSE_TF_KERAS_NEW: KernelSource = {
  name: 'nadamSparseTfKerasNew',
  params: ['W', 'M', 'V', 'G', 'n', 'lr', 'oneMinusBeta1', 'oneMinusBeta2', 'uT1', 'oneMinusUT',
    'oneMinusUProduct', 'oneMinusUProductNext', 'oneMinusBeta2Power', 'epsilon'],
  floatArrays: ['W', 'M', 'V', 'G'],
  writes: ['W', 'M', 'V'],
  body: `
  for (let i = 0; i < n; i++) {
    const g = G[i];
    const m = R(R(M[i] - R(M[i] * oneMinusBeta1)) + R(g * oneMinusBeta1));
    M[i] = m;
    const v = R(R(V[i] - R(V[i] * oneMinusBeta2)) + R(R(g * g) * oneMinusBeta2));
    V[i] = v;
    const mHat = R(R(R(uT1 * m) / oneMinusUProductNext) + R(R(oneMinusUT * g) / oneMinusUProduct));
    const vHat = R(v / oneMinusBeta2Power);
    W[i] = R(W[i] - R(R(mHat * lr) / R(R(Math.sqrt(vHat)) + epsilon)));
  }`,
};

/** Sum of squares accumulated in double, in element order (not rounded: the caller casts). */
export const SUM_OF_SQUARES: KernelSource = {
  name: 'sumOfSquares',
  params: ['X'],
  floatArrays: ['X'],
  writes: [],
  body: `
  let sum = 0;
  for (let i = 0; i < X.length; i++) sum += X[i] * X[i];
  return sum;`,
};

/** TF clip_by_value: minimum(x, hi) then maximum(that, lo); NaN propagates. */
export const CLIP_BY_VALUE: KernelSource = {
  name: 'clipByValue',
  params: ['X', 'Y', 'lo', 'hi'],
  floatArrays: ['X', 'Y'],
  writes: ['Y'],
  body: `
  for (let i = 0; i < X.length; i++) Y[i] = Math.max(Math.min(X[i], hi), lo);`,
};

/** (x * mul) / div with a rounding after each op: clip_by_norm's rescale, or a plain scale when div = 1. */
export const SCALE_DIV: KernelSource = {
  name: 'scaleDiv',
  params: ['X', 'Y', 'mul', 'div'],
  floatArrays: ['X', 'Y'],
  writes: ['Y'],
  body: `
  for (let i = 0; i < X.length; i++) Y[i] = R(R(X[i] * mul) / div);`,
};
