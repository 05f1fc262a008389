import { detectDialect } from '../config/detect.js';
import { FormatError } from '../errors.js';
import type { FloatDType } from '../tensor/dtype.js';
import { shapeToString, Tensor } from '../tensor/tensor.js';
import type { H5File } from './hdf5.js';
import { reconstructUProduct, type ReadOptions } from './kerasH5.js';
import { tieByPosition, type KerasFileFormat, type KerasOptimizerState, type ModelVariable, type StoredWeight } from './state.js';

/** Keras 3's to_snake_case, which names the entries of the saved `layers` list. */
export function toSnakeCase(name: string): string {
  const s = name.replace(/\W+/g, '').replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/** The `layers/<name>` paths in model order, from a Keras 3 model config (null when it lists no layers). */
export function layerPathsFromConfig(config: Record<string, unknown> | null): string[] | null {
  const inner = config?.config as { layers?: unknown } | undefined;
  if (!inner || !Array.isArray(inner.layers)) return null;
  const used = new Map<string, number>();
  const out: string[] = [];
  for (const layer of inner.layers as Array<{ class_name?: unknown }>) {
    if (typeof layer?.class_name !== 'string' || layer.class_name === 'InputLayer') continue;
    const base = toSnakeCase(layer.class_name);
    const k = used.get(base);
    used.set(base, k === undefined ? 0 : k + 1);
    out.push(k === undefined ? base : `${base}_${k + 1}`);
  }
  return out;
}

/** Natural order of layer names: dense, dense_1, dense_2, ..., dense_10. */
function naturalOrder(a: string, b: string): number {
  const pa = /^(.*?)(?:_(\d+))?$/.exec(a)!;
  const pb = /^(.*?)(?:_(\d+))?$/.exec(b)!;
  if (pa[1] !== pb[1]) return pa[1]! < pb[1]! ? -1 : 1;
  return Number(pa[2] ?? -1) - Number(pb[2] ?? -1);
}

function indexedVars(h: H5File, group: string): string[] | null {
  const keys = h.keys(group);
  if (keys === null) return null;
  const sorted = [...keys].sort((a, b) => Number(a) - Number(b));
  sorted.forEach((k, i) => {
    if (k !== String(i)) throw new FormatError(h.label, `${group} should hold datasets named 0..${keys.length - 1}; found '${k}'`);
  });
  return sorted;
}

function modelVariables(h: H5File, modelConfig: Record<string, unknown> | null, opts: ReadOptions, notes: string[]): ModelVariable[] {
  const present = h.keys('layers');
  if (present === null) throw new FormatError(h.label, 'no layers group: the model variables are needed to tie each slot to its variable (an optimizer-only file cannot be read back alone)');
  let order = layerPathsFromConfig(modelConfig);
  if (!order || !order.every((p) => present.includes(p))) {
    order = [...present].sort(naturalOrder);
    notes.push('model layer order taken from the layer names (dense, dense_1, ...), as no model config lists them');
  }
  const out: ModelVariable[] = [];
  const visit = (base: string, layers: readonly string[]): void => {
    for (const layer of layers) {
      const at = `${base}/${layer}`;
      for (const k of indexedVars(h, `${at}/vars`) ?? []) out.push({ name: `${at}/vars/${k}`, value: h.readTensor(`${at}/vars/${k}`, opts.maxDatasetBytes) });
      // a nested model saves its own layers under <layer>/layers, visited after its own variables
      const inner = h.keys(`${at}/layers`);
      if (inner) visit(`${at}/layers`, [...inner].sort(naturalOrder));
    }
  };
  visit('layers', order);
  return out;
}

/** What the caller knows beside the weights file (a .keras archive's config.json and metadata.json). */
export interface Keras3Context {
  readonly label: string;
  readonly format: KerasFileFormat;
  readonly modelConfig: Record<string, unknown> | null;
  readonly kerasVersion: string | null;
}

/** The optimizer entry of a Keras 3 model config's compile_config (null when absent). */
export function optimizerFromModelConfig(modelConfig: Record<string, unknown> | null): { class_name: string; config: Record<string, unknown> } | null {
  const opt = (modelConfig?.compile_config as { optimizer?: unknown } | undefined)?.optimizer as { class_name?: unknown; config?: unknown } | undefined;
  if (!opt || typeof opt.class_name !== 'string' || !opt.config || typeof opt.config !== 'object') return null;
  return { class_name: opt.class_name, config: opt.config as Record<string, unknown> };
}

/**
 * Reads a Keras 3 weights file: `optimizer/vars/0..N` holds iteration, learning_rate (absent with a
 * schedule), the momentums, the velocities and u_product, in that order.
 */
export function readKeras3Weights(h: H5File, ctx: Keras3Context, opts: ReadOptions = {}): KerasOptimizerState {
  const label = ctx.label;
  const keys = indexedVars(h, 'optimizer/vars');
  if (keys === null) throw new FormatError(label, 'no optimizer state: no optimizer/vars group (the model was saved without an optimizer, or before it was built)');
  const weights: StoredWeight[] = keys.map((k, i) => {
    const value = h.readTensor(`optimizer/vars/${k}`, opts.maxDatasetBytes);
    opts.onProgress?.(i + 1, keys.length);
    return { name: `optimizer/vars/${k}`, value };
  });
  const opt = optimizerFromModelConfig(ctx.modelConfig);
  if (opt && opt.class_name.toLowerCase() !== 'nadam') throw new FormatError(label, `compile_config.optimizer has class_name '${opt.class_name}'; kerasopt reads Nadam state only`);
  if (opt && detectDialect(opt.config).flavour === 'tf-keras-new') return tfKerasNewWeights(h, ctx, weights, opt, opts);
  const notes: string[] = [];
  const hasLearningRate = weights.length % 2 === 1;
  const head = hasLearningRate ? 2 : 1;
  if (weights.length < head + 1) throw new FormatError(label, `optimizer/vars holds ${weights.length} variables; a built Nadam has iteration, ${hasLearningRate ? 'learning_rate, ' : ''}slots and u_product`);
  const iteration = weights[0]!;
  if (iteration.value.dtype !== 'int64' || iteration.value.size !== 1) {
    throw new FormatError(label, `optimizer/vars/0 (iteration) is ${iteration.value.dtype}${shapeToString(iteration.value.shape)}, expected an int64 scalar`);
  }
  const uProduct = weights[weights.length - 1]!;
  if (!uProduct.value.dtype.startsWith('float') || uProduct.value.size !== 1) throw new FormatError(label, `${uProduct.name} (u_product) should be a float scalar`);
  const config: Record<string, unknown> = opt ? { ...opt.config } : {};
  if (!opt) notes.push('no optimizer config in the file (a .weights.h5 holds none): Nadam assumed from its variables; pass the config to rebuild it exactly');
  if (hasLearningRate) {
    const lr = weights[1]!.value;
    if (lr.dtype !== 'float32' || lr.size !== 1) throw new FormatError(label, 'optimizer/vars/1 (learning_rate) should be a float32 scalar');
    if (!opt) config.learning_rate = lr.get(0);
  }
  const model = modelVariables(h, ctx.modelConfig, opts, notes);
  const { slots, variables } = tieByPosition(label, weights.slice(head, -1), ['momentum', 'velocity'], model);
  notes.push('slots tied to model variables by position, shapes checked (Keras 3 stores no names)');
  return {
    file: label, format: ctx.format, flavour: 'keras3', kerasVersion: ctx.kerasVersion, className: opt?.class_name ?? 'Nadam', config,
    iterations: Number(iteration.value.data[0]), weights, slots, variables,
    schedule: { name: 'u_product', value: uProduct.value, reconstructed: false }, stringStyle: null, notes,
  };
}

/**
 * A TF 2.13-2.15 `.keras` archive (tf_keras saving_lib) holding a TF 2.11+ Nadam: its
 * `save_own_variables` stores `optimizer.variables` by index, i.e. iteration, then m and v of each
 * variable in turn; u_product and learning_rate are not among them (reconstructed / from the config).
 */
function tfKerasNewWeights(
  h: H5File,
  ctx: Keras3Context,
  weights: StoredWeight[],
  opt: { class_name: string; config: Record<string, unknown> },
  opts: ReadOptions,
): KerasOptimizerState {
  const label = ctx.label;
  const iteration = weights[0]!;
  if (iteration.value.dtype !== 'int64' || iteration.value.size !== 1) {
    throw new FormatError(label, `optimizer/vars/0 (iteration) is ${iteration.value.dtype}${shapeToString(iteration.value.shape)}, expected an int64 scalar`);
  }
  const slotWeights = weights.slice(1);
  if (slotWeights.length === 0 || slotWeights.length % 2 !== 0) {
    throw new FormatError(label, `optimizer/vars holds ${weights.length} variables; a built TF 2.11+ Nadam (config with jit_compile / is_legacy_optimizer) has iteration, then m and v per variable`);
  }
  const notes: string[] = [];
  const model = modelVariables(h, ctx.modelConfig, opts, notes);
  const n = slotWeights.length / 2;
  const firsts = slotWeights.filter((_, k) => k % 2 === 0);
  const seconds = slotWeights.filter((_, k) => k % 2 === 1);
  const tied = tieByPosition(label, [...firsts, ...seconds], ['m', 'v'], model);
  const slots = tied.variables.flatMap((_, i) => [tied.slots[i]!, tied.slots[i + n]!]);
  const dtype = slots[0]!.value.dtype as FloatDType;
  if (!dtype.startsWith('float')) throw new FormatError(label, `${slots[0]!.weightName} (m) is ${dtype}, expected a float dtype`);
  const iterations = Number(iteration.value.data[0]);
  const beta1 = typeof opt.config.beta_1 === 'number' ? opt.config.beta_1 : 0.9;
  notes.push(
    'slots tied to model variables by position (m and v interleaved per variable, as TF 2.11+ optimizer.variables), shapes checked',
    `u_product is not saved by TF 2.11-2.15: reconstructed as the ${dtype} product of u_1..u_${iterations} from iterations and beta_1, with kerasopt's arithmetic (TF itself restarts it at 1.0 when it loads this file)`,
  );
  return {
    file: label, format: ctx.format, flavour: 'tf-keras-new', kerasVersion: ctx.kerasVersion, className: opt.class_name, config: { ...opt.config },
    iterations, weights, slots, variables: tied.variables,
    schedule: { name: 'u_product', value: Tensor.scalar(reconstructUProduct(beta1, iterations, dtype), dtype), reconstructed: true }, stringStyle: null, notes,
  };
}
