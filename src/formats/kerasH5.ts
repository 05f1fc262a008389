import { FormatError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import { tfKerasCoefficients } from '../optimizers/nadam/tfKeras.js';
import { nextUProductTf211 } from '../optimizers/nadam/tfKerasNew.js';
import { arith } from '../tensor/arith.js';
import type { FloatDType } from '../tensor/dtype.js';
import { sameShape, shapeToString, Tensor } from '../tensor/tensor.js';
import type { H5File } from './hdf5.js';
import { layoutById, rowCovers, rowsFor, type LayoutRow } from './layouts.js';
import { parseStoredJson, type KerasOptimizerState, type ModelVariable, type ReleaseDetection, type SlotState, type StoredWeight } from './state.js';
import { tieInOrder } from './tie.js';
import { canonicalClassName, OPTIMIZERS } from '../optimizers/catalog/index.js';
import { describedLegacyState } from './kerasH5Other.js';

/** Options shared by the readers. */
export interface ReadOptions {
  /** Called after each dataset is read (done, total), e.g. to show progress. */
  onProgress?: (done: number, total: number) => void;
  /** Cap on the bytes of any one dataset (default 1 GiB). */
  maxDatasetBytes?: number;
  /**
   * The optimizer's class ('Adam') for a file that records none (a Keras 3 .weights.h5): its layout is
   * read as that optimizer's. A file that records a class must agree with it.
   */
  optimizer?: string;
}

/**
 * Reads a name list saved by Keras's save_attributes_to_hdf5_group: the attribute `name`, or the
 * chunks `name0`, `name1`, ... it writes when the list passes 64512 bytes. An empty list is saved as
 * `np.asarray([])`, a float64 array of shape [0] (layers without weights: Dropout, pooling, ...).
 */
export function readNameList(h: H5File, path: string, name: string): string[] | null {
  const present = h.attributeNames(path);
  if (present.includes(name)) return listAttribute(h, path, name);
  const out: string[] = [];
  for (let i = 0; present.includes(`${name}${i}`); i++) out.push(...listAttribute(h, path, `${name}${i}`));
  return present.includes(`${name}0`) ? out : null;
}

function listAttribute(h: H5File, path: string, name: string): string[] {
  const info = h.attributeInfo(path, name);
  if (!info.string && info.shape.length === 1 && info.shape[0] === 0) return [];
  const v = h.stringAttribute(path, name)!;
  return Array.isArray(v) ? v : [v];
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

/** BatchNormalization's moving statistics: weights of a layer that no optimizer slots (Keras names them so in every release). */
const MOVING_STATISTIC = /(^|\/)moving_(mean|variance)(_\d+)?$/;

/** The names of the layers the model_config root attribute marks `trainable: false` (frozen). */
function frozenLayers(h: H5File): Set<string> {
  const text = h.attributeNames('/').includes('model_config') ? h.stringAttribute('/', 'model_config') : null;
  const out = new Set<string>();
  if (typeof text !== 'string') return out;
  let config: Record<string, unknown>;
  try {
    config = parseStoredJson(text, h.label, 'attribute model_config');
  } catch {
    return out; // the model config only refines the tie; a file whose model_config does not parse is still read
  }
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    const c = o.config as Record<string, unknown> | undefined;
    if (typeof o.class_name === 'string' && c && typeof c === 'object' && !Array.isArray(c)) {
      if (c.trainable === false && typeof c.name === 'string') out.add(c.name);
      visit(c.layers);
    } else if (Array.isArray(c)) visit(c); // Keras 2.0-2.1 Sequential: config is the layer list
  };
  visit(config);
  return out;
}

/** The model's weights from `model_weights` (layer_names order, then each layer's weight_names). */
export function readModelWeights(h: H5File, opts: ReadOptions = {}): ModelVariable[] {
  if (h.kind('model_weights') !== 'group') throw new FormatError(h.label, 'no model_weights group: the model variables are needed to tie each slot to its variable (an optimizer-only file cannot be read back alone)');
  const layers = readNameList(h, 'model_weights', 'layer_names') ?? [];
  const frozen = frozenLayers(h);
  const out: ModelVariable[] = [];
  for (const layer of layers) {
    const base = `model_weights/${layer}`;
    if (h.kind(base) !== 'group') throw new FormatError(h.label, `layer_names lists '${layer}' but model_weights has no group of that name`);
    for (const w of readNameList(h, base, 'weight_names') ?? []) {
      if (h.kind(`${base}/${w}`) !== 'dataset') throw new FormatError(h.label, `weight_names of layer '${layer}' lists '${w}' but ${base} has no such dataset`);
      const name = stripIndex(w);
      const trainable = frozen.has(layer) || MOVING_STATISTIC.test(name) ? { trainable: false } : {};
      out.push({ name, value: h.readTensor(`${base}/${w}`, opts.maxDatasetBytes), ...trainable });
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

/** The legacy .h5 layout family the first optimizer weight's name shows (each family's writers name it differently). */
export function legacyFamily(firstWeight: string): 'tf-keras-v2' | 'keras2' | 'tf-keras-new' | null {
  const name = stripIndex(firstWeight);
  if (/(^|\/)iter$/.test(name)) return 'tf-keras-v2'; // optimizer_v2: '<name>/iter'
  if (/(^|\/)iterations(_\d+)?$/.test(name)) return 'keras2'; // Keras 2 / TF 1.x v1: 'Nadam/iterations', 2.0.x 'iterations_35'
  if (/(^|\/)iteration$/.test(name)) return 'tf-keras-new'; // TF 2.11+: 'iteration', made outside any name scope
  return null;
}

/** Keras 2's slot names: K.zeros's 'Variable_3' (up to 2.2), 2.3's 'moment_0', 'accumulator_0', 'delta_accumulator_0', 'm_0', 'vhat_0'. */
const KERAS2_SLOT_NAME = /(^|\/)(Variable|moment|accumulator|delta_accumulator|m|v|vhat|u)(_\d+)?:\d+$/;

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
  // TF 2.11-2.15 save the registered name, 'Custom>Nadam', 'Custom>Adam'.
  const canonical = canonicalClassName(className);
  if (canonical === null) throw new FormatError(label, `training_config.optimizer_config has class_name '${className}', which is no built-in Keras optimizer kerasopt describes (${[...new Set(OPTIMIZERS.map((d) => d.className))].join(', ')})`);
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
  const family = legacyFamily(names[0]!) ?? (names.every((n) => KERAS2_SLOT_NAME.test(n)) ? 'keras2' : null);
  if (canonical !== 'Nadam') {
    if (family === null) throw new FormatError(label, `first optimizer weight '${names[0]}' is none of tf.keras optimizer_v2's iter, Keras 2's iterations or TF 2.11+'s iteration, and the names are not Keras 2's unnamed slots`);
    const evidence = family === 'keras2' ? `first optimizer weight '${names[0]}' (${legacyFamily(names[0]!) ? "Keras 2's iterations" : "a Keras 2 slot: iterations not saved"})` : `first optimizer weight '${names[0]}' (${family === 'tf-keras-v2' ? "optimizer_v2's iter" : "TF 2.11+'s iteration"})`;
    return describedLegacyState({ label, config, className, canonical, kerasVersion, weights, model, stringStyle }, family, evidence);
  }
  const iterations = iterationsOf(label, weights[0]!);
  const read: LegacyH5Read = { label, config, className, kerasVersion, weights, model, iterations, stringStyle };
  const versionEvidence = kerasVersion ? `root attribute keras_version '${kerasVersion}'` : 'no keras_version attribute';
  if (family === 'tf-keras-v2') return tfKerasState(read, [`first optimizer weight '${names[0]}' (optimizer_v2's iter)`, versionEvidence]);
  if (family === 'keras2') return keras2State(read, versionEvidence);
  if (family === 'tf-keras-new') {
    const second = weights[1] ? stripIndex(weights[1].name) : '';
    if (second.endsWith('learning_rate')) {
      throw new FormatError(label, `optimizer_weights were written by a Keras 3 optimizer (first weight '${names[0]}', second '${weights[1]!.name}'): Keras 3 saves models as .keras or .weights.h5, which kerasopt reads`);
    }
    return tfKerasNewState(read, [`first optimizer weight '${names[0]}' (TF 2.11+'s iteration)`, versionEvidence]);
  }
  throw new FormatError(label, `first optimizer weight '${names[0]}' is none of tf.keras optimizer_v2's iter, Keras 2's iterations or TF 2.11+'s iteration`);
}

function textAttr(h: H5File, name: string): string | null {
  const v = h.stringAttribute('/', name);
  return v === null ? null : Array.isArray(v) ? v.join(',') : v;
}

/** The iteration count; Keras 2.0.x saves it as a float32 scalar, later releases as int64. */
function iterationsOf(label: string, w: StoredWeight): number {
  const ok = w.value.dtype === 'int64' || w.value.dtype === 'int32' || w.value.dtype === 'float32' || w.value.dtype === 'float64';
  if (!ok) throw new FormatError(label, `optimizer weight '${w.name}' (iterations) is ${w.value.dtype}, expected int64 (or float32, Keras 2.0.x)`);
  if (w.value.size !== 1) throw new FormatError(label, `optimizer weight '${w.name}' (iterations) has shape ${shapeToString(w.value.shape)}, expected a scalar`);
  const n = Number(w.value.data[0]);
  if (!Number.isSafeInteger(n) || n < 0) throw new FormatError(label, `optimizer weight '${w.name}' holds ${n} iterations, expected a whole number >= 0`);
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
  const { label, config, className, kerasVersion, iterations, stringStyle } = read;
  return { file: label, config, className, kerasVersion, iterations, stringStyle };
}

function release(row: LayoutRow, evidence: string[]): ReleaseDetection {
  return { layout: row.id, range: row.releases, evidence };
}

/**
 * Slots named after their variable ('<optimizer>/<variable>/m:0' in optimizer_v2, '<optimizer>/m/<variable>:0'
 * in TF 2.11+), tied by name. A slot whose variable the saved model lacks is kept (inModel false):
 * an optimizer reused across models saves the slots of every model it trained.
 */
function tieByName(label: string, slotWeights: readonly StoredWeight[], model: readonly ModelVariable[], parse: (path: string) => { variable: string; slot: string } | null, pattern: string): SlotState[] {
  const byName = new Map(model.map((v) => [v.name, v]));
  return slotWeights.map((w) => {
    const parsed = parse(stripIndex(w.name));
    if (!parsed || (parsed.slot !== 'm' && parsed.slot !== 'v')) throw new FormatError(label, `optimizer weight '${w.name}' is not named ${pattern}`);
    const owner = byName.get(parsed.variable);
    if (owner && (!sameShape(owner.value.shape, w.value.shape) || owner.value.dtype !== w.value.dtype)) {
      throw new FormatError(label, `optimizer weight '${w.name}' is ${w.value.dtype}${shapeToString(w.value.shape)} but model variable '${parsed.variable}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
    }
    return { variable: parsed.variable, slot: parsed.slot, weightName: w.name, value: w.value, inModel: owner !== undefined };
  });
}

/** Each variable has exactly one m and one v of the same shape and dtype; returns the variables in order of their m. */
function pairUp(label: string, slots: readonly SlotState[], order: string): string[] {
  const seen = new Map<string, { m?: SlotState; v?: SlotState }>();
  for (const s of slots) {
    const pair = seen.get(s.variable) ?? {};
    if (pair[s.slot as 'm' | 'v']) throw new FormatError(label, `optimizer weight '${s.weightName}' is a second ${s.slot} slot of '${s.variable}'`);
    if (s.slot === 'v' && !pair.m) throw new FormatError(label, `optimizer weight '${s.weightName}' (v of '${s.variable}') comes before that variable's m: not in ${order}`);
    pair[s.slot as 'm' | 'v'] = s;
    seen.set(s.variable, pair);
  }
  for (const [variable, pair] of seen) {
    if (!pair.v) throw new FormatError(label, `optimizer weight '${pair.m!.weightName}' (m of '${variable}') has no v slot beside it`);
    if (!sameShape(pair.m!.value.shape, pair.v.value.shape) || pair.m!.value.dtype !== pair.v.value.dtype) {
      throw new FormatError(label, `optimizer weights '${pair.m!.weightName}' and '${pair.v.weightName}' are m and v of '${variable}' but differ in shape or dtype`);
    }
  }
  return [...seen.keys()];
}

function withRoles(weights: readonly StoredWeight[], head: readonly ('iterations' | 'schedule')[], slots: readonly SlotState[]): StoredWeight[] {
  const bySlot = new Map(slots.map((s) => [s.weightName, s]));
  return weights.map((w, i) => {
    const slot = bySlot.get(w.name);
    const role = i < head.length ? { kind: head[i]! } : slot ? { kind: 'slot' as const, variable: slot.variable, slot: slot.slot } : undefined;
    return role ? { ...w, role } : w;
  });
}

function orphanNote(slots: readonly SlotState[]): string[] {
  const orphans = [...new Set(slots.filter((s) => !s.inModel).map((s) => s.variable))];
  if (orphans.length === 0) return [];
  const shown = orphans.slice(0, 4).join(', ') + (orphans.length > 4 ? `, ... ${orphans.length} in all` : '');
  return [`${orphans.length} variables have slots but are not in the saved model (the optimizer was reused across models): ${shown}; kept as read, written back unchanged, not stepped`];
}

function tfKerasState(read: LegacyH5Read, evidence: string[]): KerasOptimizerState {
  const { label, config, weights, model } = read;
  const cache = weights[1];
  if (!cache || !stripIndex(cache.name).endsWith('momentum_cache')) throw new FormatError(label, `second optimizer weight '${cache?.name}' should be tf.keras Nadam's momentum_cache`);
  scalarFloat(label, cache, 'momentum_cache');
  const optName = typeof config.name === 'string' ? config.name : 'Nadam';
  // optimizer_v2 names a slot '<optimizer>/<variable>/<slot>:0'; each call of _create_all_weights on new
  // variables appends all their m, then all their v, so the list is blocked per batch of variables.
  const names = model.map((v) => v.name);
  const slots = tieByName(label, weights.slice(2), model, (path) => {
    const cut = path.lastIndexOf('/');
    if (cut <= 0) return null;
    const [rest, slot] = [path.slice(0, cut), path.slice(cut + 1)];
    // the longest model variable the path ends with (scopes such as 'training/' or 'Nadam_1/' may precede it);
    // else the part after the optimizer's name scope (a variable the saved model lacks)
    const owner = names.filter((n) => rest.endsWith(`/${n}`)).sort((a, b) => b.length - a.length)[0];
    if (owner) return { variable: owner, slot };
    const at = rest.indexOf(`${optName}/`);
    const variable = at >= 0 ? rest.slice(at + optName.length + 1) : rest.slice(rest.indexOf('/') + 1);
    return rest.includes('/') && variable ? { variable, slot } : null;
  }, `'<${optName}>/<variable>/m:0' or '/v:0'`);
  const order = pairUp(label, slots, 'tf.keras Nadam order (iter, momentum_cache, then the m of a batch of variables followed by their v)');
  const byName = new Map(model.map((v) => [v.name, v]));
  const row = layoutById('tf-keras-v2');
  return {
    ...common(read), weights: withRoles(weights, ['iterations', 'schedule'], slots), format: 'tf-keras-h5', flavour: 'tf-keras', slots,
    variables: order.filter((n) => byName.has(n)).map((n) => byName.get(n)!),
    schedule: { name: 'momentum_cache', value: cache.value, reconstructed: false },
    notes: ['slots tied to model variables by name, shapes checked', ...orphanNote(slots)],
    release: release(row, [...evidence, `second weight '${cache.name}' (momentum_cache)`]),
  };
}

/** The Keras 2 row the version names, refined by what the file shows (m_schedule saved or not). */
function keras2Row(version: string | null, scheduleSaved: boolean): { row: LayoutRow; evidence: string } {
  const rows = rowsFor('keras2-h5', version).filter((r) => r.order.includes('schedule') === scheduleSaved);
  const byVersion = version ? rows.filter((r) => rowCovers(r, version)) : [];
  if (byVersion.length > 0) return { row: byVersion[0]!, evidence: `keras_version ${version} is in ${byVersion[0]!.releases}` };
  const fallback = scheduleSaved ? layoutById('keras-2.3') : layoutById('keras-2.1-2.2');
  return { row: fallback, evidence: `${version ? `keras_version ${version} names no Keras 2 release that writes this layout` : 'no keras_version'}: layout ${fallback.id} taken from the weights (m_schedule ${scheduleSaved ? '' : 'not '}saved)` };
}

function keras2State(read: LegacyH5Read, versionEvidence: string): KerasOptimizerState {
  const { label, config, weights, model, iterations, kerasVersion } = read;
  const second = weights[1];
  const saved = second !== undefined && stripIndex(second.name).endsWith('m_schedule');
  if (saved) scalarFloat(label, second, 'm_schedule');
  const { row, evidence: rowEvidence } = keras2Row(kerasVersion, saved);
  const slotWeights = weights.slice(saved ? 2 : 1);
  if (slotWeights.length % 2 !== 0) throw new FormatError(label, `optimizer has ${slotWeights.length} slot weights; Nadam keeps two per variable, so the count must be even`);
  const n = slotWeights.length / 2;
  for (let i = 0; i < n; i++) {
    const [m, v] = [slotWeights[i]!, slotWeights[i + n]!];
    if (!sameShape(m.value.shape, v.value.shape) || m.value.dtype !== v.value.dtype) {
      throw new FormatError(label, `slot weights '${m.name}' ${shapeToString(m.value.shape)} and '${v.name}' ${shapeToString(v.value.shape)} should be m and v of the same variable (Keras 2 saves all m, then all v) but differ in shape or dtype`);
    }
  }
  const tied = tieInOrder(label, slotWeights.slice(0, n), model, row.tie === 'position-sorted-by-name' ? 'position-sorted-by-name' : 'position');
  const slots: SlotState[] = slotWeights.map((w, k) => ({ variable: tied.owners[k % n]!.name, slot: k < n ? 'm' : 'v', weightName: w.name, value: w.value, inModel: true }));
  const notes = [...tied.notes, '(Keras 2 slot names carry no variable name)'];
  const iterDtype = weights[0]!.value.dtype;
  if ((iterDtype === 'float32') !== (row.iterationsDtype === 'float32')) notes.push(`iterations is saved as ${iterDtype}, where ${row.releases} saves ${row.iterationsDtype}`);
  let schedule: KerasOptimizerState['schedule'];
  if (saved) {
    schedule = { name: 'm_schedule', value: second.value, reconstructed: false };
  } else {
    const dtype: FloatDType = 'float32';
    schedule = { name: 'm_schedule', value: Tensor.scalar(reconstructMSchedule(config, iterations, dtype), dtype), reconstructed: true };
    notes.push(`m_schedule is not saved by ${row.releases}: reconstructed as the float32 product of mu_1..mu_${iterations} from the config (schedule_decay, beta_1)`);
  }
  return {
    ...common(read), weights: withRoles(weights, saved ? ['iterations', 'schedule'] : ['iterations'], slots), format: 'keras2-h5', flavour: 'keras2' satisfies Flavour, slots, variables: tied.owners,
    schedule, keras2Layout: saved ? '2.3' : '2.2', notes,
    release: release(row, [`first optimizer weight '${weights[0]!.name}' (Keras 2's iterations, ${iterDtype})`, versionEvidence, rowEvidence, saved ? `second weight '${second.name}' (m_schedule saved)` : 'no m_schedule weight']),
  };
}

/**
 * TF 2.11-2.15 (tf_keras/optimizers/nadam.py): `variables` is [iteration, m/<var>, v/<var>, ...], m and v
 * interleaved per variable as build() creates them; u_product is a plain tf.Variable outside that list,
 * so it is not saved, nor is the learning_rate variable. Slots are tied to model variables by name
 * ('<optimizer>/m/<variable>:0' or 'm/<variable>:0'), shapes and dtypes checked.
 */
function tfKerasNewState(read: LegacyH5Read, evidence: string[]): KerasOptimizerState {
  const { label, config, weights, model, iterations } = read;
  const slotWeights = weights.slice(1);
  if (slotWeights.length === 0 || slotWeights.length % 2 !== 0) {
    throw new FormatError(label, `a TF 2.11+ Nadam saves iteration then m and v per variable; this file has ${slotWeights.length} weights after '${weights[0]!.name}'`);
  }
  const names = model.map((v) => v.name);
  const slots = tieByName(label, slotWeights, model, (path) => {
    for (const slot of ['m', 'v']) {
      // the longest model variable name that ends the path wins; else the part after '<slot>/' (a variable the model lacks)
      const owner = names.filter((n) => path === `${slot}/${n}` || path.endsWith(`/${slot}/${n}`)).sort((a, b) => b.length - a.length)[0];
      if (owner) return { variable: owner, slot };
    }
    const m = /(?:^|\/)(m|v)\/(.+)$/.exec(path);
    return m ? { variable: m[2]!, slot: m[1]! } : null;
  }, "'<optimizer>/m/<variable>:0' or '/v/<variable>:0' (TF 2.11+ interleaves m and v per variable)");
  for (let k = 0; k < slots.length; k += 2) {
    const [m, v] = [slots[k]!, slots[k + 1]!];
    if (m.slot !== 'm' || v.slot !== 'v' || m.variable !== v.variable) {
      throw new FormatError(label, `optimizer weights '${m.weightName}' and '${v.weightName}' are not in TF 2.11+ Nadam order (iteration, then m and v of each variable in turn)`);
    }
  }
  const order = pairUp(label, slots, 'TF 2.11+ Nadam order');
  const byName = new Map(model.map((v) => [v.name, v]));
  const dtype = slots[0]!.value.dtype as FloatDType;
  if (!dtype.startsWith('float')) throw new FormatError(label, `optimizer weight '${slots[0]!.weightName}' is ${dtype}, expected a float dtype`);
  const beta1 = typeof config.beta_1 === 'number' ? config.beta_1 : 0.9;
  return {
    ...common(read), weights: withRoles(weights, ['iterations'], slots), format: 'tf-keras-new-h5', flavour: 'tf-keras-new', slots,
    variables: order.filter((n) => byName.has(n)).map((n) => byName.get(n)!),
    schedule: { name: 'u_product', value: Tensor.scalar(reconstructUProduct(beta1, iterations, dtype), dtype), reconstructed: true },
    notes: [
      'slots tied to model variables by name, shapes checked',
      ...orphanNote(slots),
      `u_product is not saved by TF 2.11-2.15 (it is not among optimizer.variables): reconstructed as the ${dtype} product of u_1..u_${iterations} from iterations and beta_1, op by op as TF's update_step computes it, with kerasopt's arithmetic (TF itself restarts it at 1.0 when it loads this file)`,
      'learning_rate is not saved by TF 2.11-2.15 either: it comes from the config',
    ],
    release: release(layoutById('tf-keras-new-h5'), evidence),
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
