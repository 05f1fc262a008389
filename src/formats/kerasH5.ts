import { FormatError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import { detectDialect } from '../config/detect.js';
import { tfKerasCoefficients } from '../optimizers/nadam/tfKeras.js';
import { nextUProductTf211 } from '../optimizers/nadam/tfKerasNew.js';
import { arith } from '../tensor/arith.js';
import type { FloatDType } from '../tensor/dtype.js';
import { sameShape, shapeToString, Tensor } from '../tensor/tensor.js';
import type { H5File } from './hdf5.js';
import { parseStoredJson, tieByPosition, type KerasOptimizerState, type ModelVariable, type SlotState, type StoredWeight } from './state.js';

/** Options shared by the readers. */
export interface ReadOptions {
  /** Called after each dataset is read (done, total), e.g. to show progress. */
  onProgress?: (done: number, total: number) => void;
  /** Cap on the bytes of any one dataset (default 1 GiB). */
  maxDatasetBytes?: number;
}

/**
 * Reads a name list saved by Keras's save_attributes_to_hdf5_group: the attribute `name`, or the
 * chunks `name0`, `name1`, ... it writes when the list passes 64512 bytes.
 */
export function readNameList(h: H5File, path: string, name: string): string[] | null {
  const whole = h.stringAttribute(path, name);
  if (whole !== null) return Array.isArray(whole) ? whole : [whole];
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const chunk = h.stringAttribute(path, `${name}${i}`);
    if (chunk === null) return i === 0 ? null : out;
    out.push(...(Array.isArray(chunk) ? chunk : [chunk]));
  }
}

/** Every dataset path under `group` (relative to it), recursively. */
function datasetsUnder(h: H5File, group: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const k of h.keys(`${group}/${prefix}`) ?? []) {
    const rel = prefix ? `${prefix}/${k}` : k;
    const kind = h.kind(`${group}/${rel}`);
    if (kind === 'dataset') out.push(rel);
    else if (kind === 'group') out.push(...datasetsUnder(h, group, rel));
  }
  return out;
}

/** The model's weights from `model_weights` (layer_names order, then each layer's weight_names). */
export function readModelWeights(h: H5File, opts: ReadOptions = {}): ModelVariable[] {
  if (h.kind('model_weights') !== 'group') throw new FormatError(h.label, 'no model_weights group: the model variables are needed to tie each slot to its variable (an optimizer-only file cannot be read back alone)');
  const layers = readNameList(h, 'model_weights', 'layer_names') ?? [];
  const out: ModelVariable[] = [];
  for (const layer of layers) {
    const base = `model_weights/${layer}`;
    if (h.kind(base) !== 'group') throw new FormatError(h.label, `layer_names lists '${layer}' but model_weights has no group of that name`);
    for (const w of readNameList(h, base, 'weight_names') ?? []) {
      if (h.kind(`${base}/${w}`) !== 'dataset') throw new FormatError(h.label, `weight_names of layer '${layer}' lists '${w}' but ${base} has no such dataset`);
      out.push({ name: stripIndex(w), value: h.readTensor(`${base}/${w}`, opts.maxDatasetBytes) });
    }
  }
  return out;
}

function stripIndex(name: string): string {
  return name.replace(/:\d+$/, '');
}

/** The training_config root attribute, parsed (null when absent). */
export function readTrainingConfig(h: H5File): Record<string, unknown> | null {
  const text = h.stringAttribute('/', 'training_config');
  if (text === null) return null;
  if (Array.isArray(text)) throw new FormatError(h.label, 'training_config attribute is an array, expected one JSON string');
  return parseStoredJson(text, h.label, 'attribute training_config');
}

/** Reads the optimizer state of a tf.keras (optimizer_v2 or TF 2.11-2.15) or standalone Keras 2 HDF5 model file. */
export function readLegacyH5(h: H5File, opts: ReadOptions = {}): KerasOptimizerState {
  const label = h.label;
  const training = readTrainingConfig(h);
  const hasWeights = h.kind('optimizer_weights') === 'group';
  if (!hasWeights) {
    throw new FormatError(label, `no optimizer state: no optimizer_weights group${training ? '' : ' and no training_config attribute'} (the model was saved without its optimizer, or never trained)`);
  }
  if (!training) throw new FormatError(label, 'optimizer_weights exists but the training_config attribute (the optimizer config) is missing');
  const optimizerConfig = training.optimizer_config as { class_name?: unknown; config?: unknown } | undefined;
  if (!optimizerConfig || typeof optimizerConfig.class_name !== 'string' || typeof optimizerConfig.config !== 'object' || optimizerConfig.config === null) {
    throw new FormatError(label, 'training_config has no optimizer_config {class_name, config}');
  }
  const className = optimizerConfig.class_name;
  // TF 2.11-2.15 save the registered name of their Nadam, 'Custom>Nadam'.
  if (className.toLowerCase().replace(/^custom>/, '') !== 'nadam') throw new FormatError(label, `training_config.optimizer_config has class_name '${className}'; kerasopt reads Nadam state only`);
  const config = optimizerConfig.config as Record<string, unknown>;

  const names = readNameList(h, 'optimizer_weights', 'weight_names');
  if (!names || names.length === 0) throw new FormatError(label, 'optimizer_weights has no weight_names attribute (nor weight_names0, ...)');
  const present = new Set(datasetsUnder(h, 'optimizer_weights'));
  for (const n of names) if (!present.has(n)) throw new FormatError(label, `weight_names lists '${n}' but optimizer_weights has no such dataset`);
  const listed = new Set(names);
  for (const p of present) if (!listed.has(p)) throw new FormatError(label, `optimizer_weights holds dataset '${p}' that weight_names does not list`);

  const weights: StoredWeight[] = names.map((n, i) => {
    const value = h.readTensor(`optimizer_weights/${n}`, opts.maxDatasetBytes);
    opts.onProgress?.(i + 1, names.length);
    return { name: n, value };
  });
  const model = readModelWeights(h, opts);
  const kerasVersion = textAttr(h, 'keras_version');
  const stringStyle = h.attributeInfo('/', 'training_config').vlen ? 'vlen' : 'fixed';
  const first = stripIndex(names[0]!);
  const iterations = iterationsOf(label, weights[0]!);
  const read: LegacyH5Read = { label, config, className, kerasVersion, weights, model, iterations, stringStyle };
  if (first.endsWith('/iter') || first === 'iter') {
    return tfKerasState(read);
  }
  if (first.endsWith('/iterations') || first === 'iterations') {
    return keras2State(read);
  }
  if (first.endsWith('iteration')) {
    const second = weights[1] ? stripIndex(weights[1].name) : '';
    if (detectDialect(config).flavour === 'tf-keras-new' && !second.endsWith('learning_rate')) {
      return tfKerasNewState(read);
    }
    throw new FormatError(label, `optimizer_weights were written by a Keras 3 optimizer or one kerasopt cannot place (first weight '${names[0]}', second '${weights[1]?.name ?? 'none'}', config without TF 2.11-2.15's jit_compile / is_legacy_optimizer): kerasopt reads the TF 2.11-2.15 layout of .h5 files (iteration, then m and v of each variable in turn); save a Keras 3 model as .keras or .weights.h5`);
  }
  throw new FormatError(label, `first optimizer weight '${names[0]}' is neither tf.keras's iter nor Keras 2's iterations`);
}

function textAttr(h: H5File, name: string): string | null {
  const v = h.stringAttribute('/', name);
  return v === null ? null : Array.isArray(v) ? v.join(',') : v;
}

function iterationsOf(label: string, w: StoredWeight): number {
  if (w.value.dtype !== 'int64' && w.value.dtype !== 'int32') throw new FormatError(label, `optimizer weight '${w.name}' (iterations) is ${w.value.dtype}, expected int64`);
  if (w.value.size !== 1) throw new FormatError(label, `optimizer weight '${w.name}' (iterations) has shape ${shapeToString(w.value.shape)}, expected a scalar`);
  const n = Number(w.value.data[0]);
  if (!Number.isSafeInteger(n) || n < 0) throw new FormatError(label, `optimizer weight '${w.name}' holds ${n} iterations`);
  return n;
}

function scalarFloat(label: string, w: StoredWeight, what: string): void {
  if (!w.value.dtype.startsWith('float') || w.value.size !== 1 || w.value.rank !== 0) {
    throw new FormatError(label, `optimizer weight '${w.name}' (${what}) is ${w.value.dtype}${shapeToString(w.value.shape)}, expected a float scalar`);
  }
}

/** What every legacy .h5 layout shares once the optimizer weights and the model are read. */
interface LegacyH5Read {
  readonly label: string;
  readonly config: Record<string, unknown>;
  readonly className: string;
  readonly kerasVersion: string | null;
  readonly weights: StoredWeight[];
  readonly model: ModelVariable[];
  readonly iterations: number;
  readonly stringStyle: 'fixed' | 'vlen';
}

/** The state fields that do not depend on the layout. */
function common(read: LegacyH5Read) {
  const { label, config, className, kerasVersion, weights, iterations, stringStyle } = read;
  return { file: label, config, className, kerasVersion, weights, iterations, stringStyle };
}

function tfKerasState(read: LegacyH5Read): KerasOptimizerState {
  const { label, config, weights, model, iterations } = read;
  const cache = weights[1];
  if (!cache || !stripIndex(cache.name).endsWith('momentum_cache')) throw new FormatError(label, `second optimizer weight '${cache?.name}' should be tf.keras Nadam's momentum_cache`);
  scalarFloat(label, cache, 'momentum_cache');
  const optName = typeof config.name === 'string' ? config.name : 'Nadam';
  const byName = new Map(model.map((v) => [v.name, v]));
  const slotWeights = weights.slice(2);
  const slots: SlotState[] = slotWeights.map((w) => {
    const path = stripIndex(w.name);
    const slot = path.slice(path.lastIndexOf('/') + 1);
    const at = path.indexOf(`${optName}/`);
    const variable = at < 0 ? '' : path.slice(at + optName.length + 1, path.lastIndexOf('/'));
    if (at < 0 || !variable || (slot !== 'm' && slot !== 'v')) throw new FormatError(label, `optimizer weight '${w.name}' is not named '<${optName}>/<variable>/m:0' or '/v:0'`);
    const owner = byName.get(variable);
    if (!owner) throw new FormatError(label, `optimizer weight '${w.name}' is the ${slot} slot of '${variable}', which the model weights do not have`);
    if (!sameShape(owner.value.shape, w.value.shape) || owner.value.dtype !== w.value.dtype) {
      throw new FormatError(label, `optimizer weight '${w.name}' is ${w.value.dtype}${shapeToString(w.value.shape)} but model variable '${variable}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
    }
    return { variable, slot, weightName: w.name, value: w.value };
  });
  const n = slots.length / 2;
  const ok = slots.length % 2 === 0 && slots.every((s, k) => s.slot === (k < n ? 'm' : 'v') && s.variable === slots[k % n]!.variable);
  if (!ok) throw new FormatError(label, 'optimizer weights are not in tf.keras Nadam order (iter, momentum_cache, every m, then every v in the same variable order)');
  const variables = slots.slice(0, n).map((s) => byName.get(s.variable)!);
  return {
    ...common(read), format: 'tf-keras-h5', flavour: 'tf-keras', slots, variables,
    schedule: { name: 'momentum_cache', value: cache.value, reconstructed: false },
    notes: ['slots tied to model variables by name, shapes checked'],
  };
}

function keras2State(read: LegacyH5Read): KerasOptimizerState {
  const { label, config, weights, model, iterations } = read;
  const second = weights[1];
  const saved = second !== undefined && stripIndex(second.name).endsWith('m_schedule');
  if (saved) scalarFloat(label, second, 'm_schedule');
  const { slots, variables } = tieByPosition(label, weights.slice(saved ? 2 : 1), ['m', 'v'], model);
  const notes = ['slots tied to model variables by position, shapes checked (Keras 2 names carry no variable name)'];
  let schedule: KerasOptimizerState['schedule'];
  if (saved) {
    schedule = { name: 'm_schedule', value: second.value, reconstructed: false };
  } else {
    const dtype: FloatDType = 'float32';
    schedule = { name: 'm_schedule', value: Tensor.scalar(reconstructMSchedule(config, iterations, dtype), dtype), reconstructed: true };
    notes.push(`m_schedule is not saved by Keras 2.2: reconstructed as the float32 product of mu_1..mu_${iterations} from the config (schedule_decay, beta_1)`);
  }
  return {
    ...common(read), format: 'keras2-h5', flavour: 'keras2' satisfies Flavour, slots, variables,
    schedule, keras2Layout: saved ? '2.3' : '2.2', notes,
  };
}

/**
 * TF 2.11-2.15 (tf_keras/optimizers/nadam.py): `variables` is [iteration, m/<var>, v/<var>, ...], m and v
 * interleaved per variable as build() creates them; u_product is a plain tf.Variable outside that list,
 * so it is not saved, nor is the learning_rate variable. Slots are tied to model variables by name
 * ('<optimizer>/m/<variable>:0' or 'm/<variable>:0'), shapes and dtypes checked.
 */
function tfKerasNewState(read: LegacyH5Read): KerasOptimizerState {
  const { label, config, weights, model, iterations } = read;
  const slotWeights = weights.slice(1);
  if (slotWeights.length === 0 || slotWeights.length % 2 !== 0) {
    throw new FormatError(label, `a TF 2.11+ Nadam saves iteration then m and v per variable; this file has ${slotWeights.length} weights after '${weights[0]!.name}'`);
  }
  const slots: SlotState[] = slotWeights.map((w, k) => {
    const slot = k % 2 === 0 ? 'm' : 'v';
    const path = stripIndex(w.name);
    const owner = model
      .filter((v) => path === `${slot}/${v.name}` || path.endsWith(`/${slot}/${v.name}`))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (!owner) {
      throw new FormatError(label, `optimizer weight '${w.name}' (weight ${k + 2}) should be the ${slot} slot of a model variable, named '<optimizer>/${slot}/<variable>:0' (TF 2.11+ interleaves m and v per variable), but no model variable matches`);
    }
    if (!sameShape(owner.value.shape, w.value.shape) || owner.value.dtype !== w.value.dtype) {
      throw new FormatError(label, `optimizer weight '${w.name}' is ${w.value.dtype}${shapeToString(w.value.shape)} but model variable '${owner.name}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
    }
    return { variable: owner.name, slot, weightName: w.name, value: w.value };
  });
  const variables: ModelVariable[] = [];
  for (let k = 0; k < slots.length; k += 2) {
    const [m, v] = [slots[k]!, slots[k + 1]!];
    if (m.variable !== v.variable || variables.some((x) => x.name === m.variable)) {
      throw new FormatError(label, `optimizer weights '${m.weightName}' and '${v.weightName}' are not in TF 2.11+ Nadam order (iteration, then m and v of each variable in turn, each variable once)`);
    }
    variables.push(model.find((x) => x.name === m.variable)!);
  }
  const dtype = slots[0]!.value.dtype as FloatDType;
  if (!dtype.startsWith('float')) throw new FormatError(label, `optimizer weight '${slots[0]!.weightName}' is ${dtype}, expected a float dtype`);
  const beta1 = typeof config.beta_1 === 'number' ? config.beta_1 : 0.9;
  return {
    ...common(read), format: 'tf-keras-new-h5', flavour: 'tf-keras-new', slots, variables,
    schedule: { name: 'u_product', value: Tensor.scalar(reconstructUProduct(beta1, iterations, dtype), dtype), reconstructed: true },
    notes: [
      'slots tied to model variables by name, shapes checked',
      `u_product is not saved by TF 2.11-2.15 (it is not among optimizer.variables): reconstructed as the ${dtype} product of u_1..u_${iterations} from iterations and beta_1, op by op as TF's update_step computes it, with kerasopt's arithmetic (TF itself restarts it at 1.0 when it loads this file)`,
      'learning_rate is not saved by TF 2.11-2.15 either: it comes from the config',
    ],
  };
}

/**
 * TF 2.11-2.15's u_product after `iterations` steps: u_product * u_t for t = 1..iterations in the
 * dtype of the first variable, exactly as the optimizer's first update_step of each step does.
 */
export function reconstructUProduct(beta1: number, iterations: number, dtype: FloatDType = 'float32'): number {
  const a = arith(dtype);
  let u = a.cast(1);
  for (let k = 0; k < iterations && u !== 0; k++) u = nextUProductTf211(a, u, beta1, k);
  return u;
}

/**
 * Keras 2.2's m_schedule after `iterations` steps: the running product of mu_1..mu_t in float32,
 * op by op as Keras 2 computes it each step (t = float(iterations) + 1), with kerasopt's arithmetic.
 */
export function reconstructMSchedule(config: Record<string, unknown>, iterations: number, dtype: FloatDType = 'float32'): number {
  const num = (k: string, d: number): number => (typeof config[k] === 'number' ? (config[k] as number) : d);
  const a = arith(dtype);
  let cache = 1;
  for (let k = 0; k < iterations; k++) {
    cache = tfKerasCoefficients(a, {
      lr: num('lr', num('learning_rate', 0.002)), beta_1: num('beta_1', 0.9), beta_2: num('beta_2', 0.999), epsilon: num('epsilon', 1e-7),
      schedule_decay: num('schedule_decay', 0.004), iterations: k, cache, stepForm: 'cast-then-add',
    }).msNew;
  }
  return cache;
}
