import type { Backend } from '../backends/backend.js';
import { arith } from '../tensor/arith.js';
import { IndexedSlices, type FloatTensor } from '../tensor/tensor.js';
import { isNewStyle, type Flavour } from './flavour.js';
import { settle, type Flow } from './steps.js';

/** A gradient after validation: dense, or sparse rows (indices may repeat). */
export type AnyGradient = FloatTensor | IndexedSlices;

/** The clipping hyperparameters shared by every flavour (null = not set). */
export interface ClipOptions {
  readonly clipnorm: number | null;
  readonly clipvalue: number | null;
  readonly global_clipnorm: number | null;
}

function valuesOf(g: AnyGradient): FloatTensor {
  return g instanceof IndexedSlices ? g.values : g;
}

function withValues(g: AnyGradient, values: FloatTensor): AnyGradient {
  return g instanceof IndexedSlices ? new IndexedSlices(g.indices, values, g.denseShape) : values;
}

/** Sum of squares of one gradient, rounded to its dtype (float64 accumulation: see README). */
function* squaredNorm(backend: Backend, g: AnyGradient): Flow<number> {
  const values = valuesOf(g);
  return arith(values.dtype).cast(yield* settle(backend.sumOfSquares(values)));
}

/** TF clip_by_value: applied to the values of a sparse gradient. */
function* clipByValue(backend: Backend, g: AnyGradient, clip: number): Flow<AnyGradient> {
  const values = valuesOf(g);
  const c = arith(values.dtype).cast(clip);
  return withValues(g, yield* settle(backend.clipByValue(values, -c, c)));
}

/**
 * TF clip_by_norm: (g * c) / max(norm, c), always evaluated (so g may change by one rounding even
 * when its norm is below c); a zero norm is kept as 0 rather than sqrt(0).
 */
function* clipByNorm(backend: Backend, g: AnyGradient, clip: number): Flow<AnyGradient> {
  const values = valuesOf(g);
  const a = arith(values.dtype);
  const c = a.cast(clip);
  const l2sum = yield* squaredNorm(backend, g);
  const l2norm = l2sum > 0 ? a.sqrt(l2sum) : l2sum;
  return withValues(g, yield* settle(backend.scaleDiv(values, c, Math.max(l2norm, c))));
}

/** Global norm of all gradients: per-tensor sums rounded to the dtype, added in order, then sqrt. */
function* globalNorm(backend: Backend, grads: readonly AnyGradient[], a: ReturnType<typeof arith>): Flow<number> {
  let total = 0;
  for (const g of grads) total = a.add(total, yield* squaredNorm(backend, g));
  return a.sqrt(total);
}

/** clip_by_global_norm (TF and Keras 3): g * (c * min(1 / norm, 1 / c)); NaN when the norm is not finite. */
function* clipByGlobalNorm(backend: Backend, grads: readonly AnyGradient[], clip: number): Flow<AnyGradient[]> {
  if (grads.length === 0) return [];
  const a = arith(valuesOf(grads[0]!).dtype);
  const c = a.cast(clip);
  const norm = yield* globalNorm(backend, grads, a);
  const scale = Number.isFinite(norm) ? a.mul(c, Math.min(a.div(1, norm), a.div(1, c))) : NaN;
  const out: AnyGradient[] = [];
  for (const g of grads) out.push(withValues(g, yield* settle(backend.scaleDiv(valuesOf(g), scale, 1))));
  return out;
}

/**
 * Standalone Keras 2 clipnorm: one norm over all gradients, and each gradient scaled by c / norm only
 * when norm >= c.
 */
function* clipKeras2Norm(backend: Backend, grads: readonly AnyGradient[], clip: number): Flow<AnyGradient[]> {
  if (grads.length === 0) return [];
  const a = arith(valuesOf(grads[0]!).dtype);
  const c = a.cast(clip);
  // K.square densifies an IndexedSlices (duplicate rows summed) before K.sum: the norm is the dense gradient's.
  const dense: AnyGradient[] = [];
  for (const g of grads) dense.push(g instanceof IndexedSlices ? yield* densify(backend, g) : g);
  const norm = yield* globalNorm(backend, dense, a);
  if (!(norm >= c)) return [...grads];
  const scale = a.div(c, norm);
  const out: AnyGradient[] = [];
  for (const g of grads) out.push(withValues(g, yield* settle(backend.scaleDiv(valuesOf(g), scale, 1))));
  return out;
}

function* each(grads: readonly AnyGradient[], f: (g: AnyGradient) => Flow<AnyGradient>): Flow<AnyGradient[]> {
  const out: AnyGradient[] = [];
  for (const g of grads) out.push(yield* f(g));
  return out;
}

/**
 * Applies the flavour's gradient clipping, in the flavour's order:
 * - tf-keras (TF >= 2.4, inside apply_gradients): clipvalue, then clipnorm per tensor, then global_clipnorm.
 * - keras2 (get_gradients): clipnorm over all gradients, then clipvalue.
 * - keras3 and tf-keras-new (`_clip_gradients`): only the first set of clipnorm (per tensor), global_clipnorm, clipvalue.
 */
export function* clipGradients(
  flavour: Flavour,
  backend: Backend,
  grads: readonly AnyGradient[],
  o: ClipOptions,
): Flow<AnyGradient[]> {
  let out = [...grads];
  const { clipnorm, clipvalue, global_clipnorm } = o;
  if (flavour === 'keras2') {
    if (clipnorm !== null && clipnorm > 0) out = yield* clipKeras2Norm(backend, out, clipnorm);
    if (clipvalue !== null && clipvalue > 0) out = yield* each(out, (g) => clipByValue(backend, g, clipvalue));
    return out;
  }
  if (isNewStyle(flavour)) {
    if (clipnorm !== null) return yield* each(out, (g) => clipByNorm(backend, g, clipnorm));
    if (global_clipnorm !== null) return yield* clipByGlobalNorm(backend, out, global_clipnorm);
    if (clipvalue !== null) return yield* each(out, (g) => clipByValue(backend, g, clipvalue));
    return out;
  }
  if (clipvalue !== null) out = yield* each(out, (g) => clipByValue(backend, g, clipvalue));
  if (clipnorm !== null) out = yield* each(out, (g) => clipByNorm(backend, g, clipnorm));
  if (global_clipnorm !== null) out = yield* clipByGlobalNorm(backend, out, global_clipnorm);
  return out;
}

/** Makes a sparse gradient dense (duplicate rows summed), as TF does when an op needs a Tensor. */
export function* densify(backend: Backend, g: IndexedSlices): Flow<FloatTensor> {
  const rows = yield* settle(backend.segmentSumRows(g.indexArray(), g.values));
  return yield* settle(backend.scatterRows(rows, g.denseShape));
}

