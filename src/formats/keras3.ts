import { detectDialect } from '../config/detect.js';
import { FormatError } from '../errors.js';
import type { FloatDType } from '../tensor/dtype.js';
import { sameShape, shapeToString, Tensor } from '../tensor/tensor.js';
import type { H5File } from './hdf5.js';
import { reconstructUProduct, type ReadOptions } from './kerasH5.js';
import { LAYOUTS, rolesOf, rowsFor, type LayoutRow, type Role } from './layouts.js';
import type { KerasFileFormat, KerasOptimizerState, ModelVariable, SlotState, StoredWeight, WeightRole } from './state.js';
import { tieInOrder } from './tie.js';
import { canonicalClassName, classNamesOf } from '../optimizers/catalog/index.js';
import { describedKeras3, negativeScan, unrecordedKeras3 } from './keras3Other.js';

/** Keras 3's to_snake_case, which names the entries of the saved `layers` list. */
export function toSnakeCase(name: string): string {
  const s = name.replace(/\W+/g, '').replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/** A top-level layer of a Keras 3 model config: its saved path, class and trainable flag. */
interface ConfigLayer {
  readonly path: string;
  readonly className: string;
  readonly trainable: boolean;
}

/** The `layers/<name>` entries in model order, from a Keras 3 model config (null when it lists no layers). */
function layersFromConfig(config: Record<string, unknown> | null): ConfigLayer[] | null {
  const inner = config?.config as { layers?: unknown } | undefined;
  if (!inner || !Array.isArray(inner.layers)) return null;
  const used = new Map<string, number>();
  const out: ConfigLayer[] = [];
  for (const layer of inner.layers as Array<{ class_name?: unknown; config?: { trainable?: unknown } }>) {
    if (typeof layer?.class_name !== 'string' || layer.class_name === 'InputLayer') continue;
    const base = toSnakeCase(layer.class_name);
    const k = used.get(base);
    used.set(base, k === undefined ? 0 : k + 1);
    out.push({ path: k === undefined ? base : `${base}_${k + 1}`, className: layer.class_name, trainable: layer.config?.trainable !== false });
  }
  return out;
}

/** The `layers/<name>` paths in model order, from a Keras 3 model config (null when it lists no layers). */
export function layerPathsFromConfig(config: Record<string, unknown> | null): string[] | null {
  return layersFromConfig(config)?.map((l) => l.path) ?? null;
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

/**
 * Layers whose saved variables (trainable first, then non-trainable, as Layer.save_own_variables
 * stores them) end with variables no optimizer slots: how many of the last ones are not trainable.
 */
const NON_TRAINABLE_TAIL: Readonly<Record<string, number | 'all'>> = { BatchNormalization: 2, Normalization: 'all' };

function nonTrainableTail(className: string | undefined, path: string): number | 'all' {
  if (className) return NON_TRAINABLE_TAIL[className] ?? 0;
  const base = path.replace(/_\d+$/, ''); // without a config, the saved name is the class in snake case
  const hit = Object.entries(NON_TRAINABLE_TAIL).find(([cls]) => toSnakeCase(cls) === base);
  return hit ? hit[1] : 0;
}

/** The note that says the model's layer order is a guess (no model config lists the layers). */
export const ORDER_GUESSED = 'model layer order taken from the layer names (dense, dense_1, ...), as no model config lists them';

/** Top-level groups of a saving_lib weights file that hold no model variable. */
const NOT_MODEL = /^(optimizer|metrics|compile_metrics|_?compile_metrics|loss_tracker|_loss_tracker)$/;

/**
 * The model's variables of a saving_lib weights file, in the order the optimizer's variable list
 * most likely has (model.trainable_variables): the layers in model order (from the config, else by
 * name), each layer's own `vars` before its sublayers', nested paths in natural order. TF 2.13-2.15
 * archives written on Windows join paths with '\' inside one group name ('layers\dense'), so both
 * separators are read as one.
 */
function modelVariables(h: H5File, modelConfig: Record<string, unknown> | null, opts: ReadOptions, notes: string[]): ModelVariable[] {
  const found: { path: string; parts: string[] }[] = [];
  const walk = (group: string): void => {
    for (const k of h.keys(group) ?? []) {
      const path = group ? `${group}/${k}` : k;
      if (!group && NOT_MODEL.test(k.split('\\')[0]!)) continue;
      const kind = h.kind(path);
      const parts = path.split(/[/\\]/);
      if (kind === 'group') walk(path);
      else if (kind === 'dataset' && parts[parts.length - 2] === 'vars') found.push({ path, parts });
    }
  };
  walk('');
  if (found.length === 0) throw new FormatError(h.label, 'no model variables (no layers/<name>/vars datasets): the model variables are needed to tie each slot to its variable');
  const fromConfig = layersFromConfig(modelConfig);
  const present = new Set(found.filter((f) => f.parts[0] === 'layers').map((f) => f.parts[1]!));
  const configOrder = fromConfig && [...present].every((p) => fromConfig.some((l) => l.path === p)) ? fromConfig : null;
  if (!configOrder) notes.push(ORDER_GUESSED);
  const rank = (name: string): number => configOrder?.findIndex((l) => l.path === name) ?? -1;
  found.sort((a, b) => {
    for (let i = 0; i < Math.min(a.parts.length, b.parts.length); i++) {
      const [x, y] = [a.parts[i]!, b.parts[i]!];
      if (x === y) continue;
      if (x === 'vars' || y === 'vars') return x === 'vars' ? -1 : 1; // own variables before sublayers'
      if (i === 0 && (x === 'layers' || y === 'layers')) return x === 'layers' ? -1 : 1;
      if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y);
      if (i === 1 && a.parts[0] === 'layers' && configOrder) return rank(x) - rank(y);
      return naturalOrder(x, y);
    }
    return a.parts.length - b.parts.length;
  });
  // the non-trainable tail (BatchNormalization's moving statistics) is counted per variable-holding group
  const byGroup = new Map<string, number>();
  for (const f of found) byGroup.set(f.path.slice(0, f.path.lastIndexOf('/')), (byGroup.get(f.path.slice(0, f.path.lastIndexOf('/'))) ?? 0) + 1);
  const out: ModelVariable[] = [];
  for (const f of found) {
    const dtype = h.datasetDtype(f.path);
    if (dtype === null || !dtype.startsWith('float')) continue; // seed states, counters: never slotted, and not Keras weight dtypes
    const group = f.path.slice(0, f.path.lastIndexOf('/'));
    const owner = f.parts[f.parts.length - 3] ?? '';
    const top = f.parts[0] === 'layers' ? configOrder?.find((l) => l.path === f.parts[1]) : undefined;
    const direct = f.parts.length === 4 ? top : undefined; // the config's class names the top-level layer only
    const tail = top && !top.trainable ? 'all' : nonTrainableTail(direct?.className, owner);
    const index = Number(f.parts[f.parts.length - 1]);
    const frozen = tail === 'all' || index >= byGroup.get(group)! - tail;
    out.push({ name: f.path, value: h.readTensor(f.path, opts.maxDatasetBytes), ...(frozen ? { trainable: false } : {}) });
  }
  return out;
}

/** What the caller knows beside the weights file (a .keras archive's config.json and metadata.json, a keras-tuner trial.json). */
export interface Keras3Context {
  readonly label: string;
  readonly format: KerasFileFormat;
  readonly modelConfig: Record<string, unknown> | null;
  readonly kerasVersion: string | null;
  /** Where the keras_version came from ('metadata.json'). */
  readonly versionSource?: string;
  /** The optimizer a keras-tuner trial.json beside a .weights.h5 names (its `optimizer` hyperparameter), and the file. */
  readonly trial?: { readonly optimizer: string; readonly file: string };
}

/**
 * The optimizer entry of a Keras 3 model config's compile_config (null when absent). A string
 * ('nadam', as `compile(optimizer='nadam')` saves it) stands for that optimizer with its defaults.
 */
export function optimizerFromModelConfig(modelConfig: Record<string, unknown> | null): { class_name: string; config: Record<string, unknown>; envelope: Record<string, unknown> | null } | null {
  const opt = (modelConfig?.compile_config as { optimizer?: unknown } | undefined)?.optimizer;
  // compile(optimizer='nadam') saves the alias; Keras resolves it to the class Nadam
  if (typeof opt === 'string') return { class_name: opt.toLowerCase() === 'nadam' ? 'Nadam' : opt, config: {}, envelope: null };
  const o = opt as { class_name?: unknown; config?: unknown } | undefined;
  if (!o || typeof o.class_name !== 'string' || !o.config || typeof o.config !== 'object') return null;
  return { class_name: o.class_name, config: o.config as Record<string, unknown>, envelope: o as Record<string, unknown> };
}

/** One way to read `optimizer/vars`: a layout row, with or without the learning_rate variable. */
interface Candidate {
  readonly row: LayoutRow;
  readonly learningRate: boolean;
}

/**
 * Reads a Keras 3 (or TF 2.12-2.15 saving_lib) weights file: `optimizer/vars/0..N` holds the
 * optimizer's variables in the order its release tracks them (src/formats/layouts.ts). The release
 * comes from keras_version when the archive records it; a bare .weights.h5 records none, so every
 * layout is tried against the model's variables and exactly one must fit.
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
  if (weights.length === 0) throw new FormatError(label, 'no optimizer state: optimizer/vars is empty');
  const opt = optimizerFromModelConfig(ctx.modelConfig);
  const evidence: string[] = [];
  const recorded = opt?.class_name ?? ctx.trial?.optimizer ?? null;
  if (recorded !== null && opts.optimizer !== undefined && canonicalClassName(recorded) !== canonicalClassName(opts.optimizer)) {
    throw new FormatError(label, `${opt ? 'compile_config.optimizer' : `${ctx.trial!.file} (keras-tuner trial)`} names the optimizer '${recorded}', not '${opts.optimizer}' as the caller says`);
  }
  const named = recorded ?? opts.optimizer ?? null;
  const canonical = named === null ? null : canonicalClassName(named);
  // the caller's 'adam' is Keras's Adam; a name the file records is kept as written
  const className = recorded ?? canonical ?? named;
  if (className !== null && canonical === null) {
    throw new FormatError(label, `${opt ? 'compile_config.optimizer names' : ctx.trial ? `${ctx.trial.file} (keras-tuner trial) names` : 'the caller names'} the optimizer '${className}', which is no built-in Keras optimizer kerasopt describes (${classNamesOf('keras3').join(', ')})`);
  }
  for (const [key, off] of [['use_ema', false], ['gradient_accumulation_steps', null]] as const) {
    const v = opt?.config[key];
    if (v !== undefined && v !== off && v !== null) throw new FormatError(label, `the optimizer config sets ${key}=${JSON.stringify(v)}: its extra variables (EMA averages, gradient accumulators) sit between learning_rate and the slots, and kerasopt does not read that state yet`);
  }
  if (opt) evidence.push(`compile_config.optimizer is ${typeof opt.envelope === 'object' && opt.envelope ? `class '${opt.class_name}'` : `the string '${opt.class_name}'`}`);
  else if (ctx.trial) evidence.push(`no optimizer config in the file; ${ctx.trial.file} (keras-tuner) names the optimizer '${ctx.trial.optimizer}'`);
  else if (opts.optimizer !== undefined) evidence.push(`no optimizer config in the file: the caller says it is '${opts.optimizer}'`);
  const notes: string[] = [];
  const model = modelVariables(h, ctx.modelConfig, opts, notes);
  const config: Record<string, unknown> = opt ? { ...opt.config } : {};
  if (canonical !== null && canonical !== 'Nadam') return describedKeras3(ctx, weights, model, { className: className!, canonical, config, configRecorded: opt !== null && Object.keys(opt.config).length > 0, evidence, notes, scan: negativeScan(h) });
  if (canonical === null) {
    // no class recorded: every described optimizer whose layout fits is a candidate, Nadam among them
    let nadam: KerasOptimizerState | null = null;
    let nadamMisfit: FormatError | null = null;
    try {
      nadam = readNadamKeras3(ctx, weights, model, opt, null, [...evidence, 'no optimizer config in the file (a .weights.h5 holds none)'], [...notes]);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      nadamMisfit = e;
    }
    return unrecordedKeras3(ctx, weights, model, nadam, nadamMisfit, evidence, notes, negativeScan(h));
  }
  return readNadamKeras3(ctx, weights, model, opt, className, evidence, notes);
}

/** The Nadam reading of a saving_lib file (className null: not recorded, Nadam tried as one candidate). */
function readNadamKeras3(ctx: Keras3Context, weights: readonly StoredWeight[], model: readonly ModelVariable[], opt: ReturnType<typeof optimizerFromModelConfig>, className: string | null, evidence: string[], notes: string[]): KerasOptimizerState {
  const label = ctx.label;

  let rows = LAYOUTS.filter((r) => r.formats.includes(ctx.format));
  if (ctx.kerasVersion) {
    rows = rowsFor(ctx.format, ctx.kerasVersion);
    evidence.push(`keras_version '${ctx.kerasVersion}' (${ctx.versionSource ?? 'metadata.json'}): ${rows.map((r) => r.releases).join(' or ')}`);
  } else if (opt) {
    const flavour = detectDialect(opt.config, opt.envelope ?? undefined).flavour;
    const byConfig = rows.filter((r) => r.flavour === flavour);
    if (byConfig.length > 0 && Object.keys(opt.config).length > 0) {
      rows = byConfig;
      evidence.push(`config keys say ${flavour}`);
    }
  } else {
    evidence.push('no keras_version recorded: every Keras 3 / TF 2.12+ layout was tried against the model variables');
  }
  const lrKnown = opt && Object.keys(opt.config).length > 0 ? [typeof opt.config.learning_rate === 'number'] : opt ? [true] : [true, false];
  const candidates: Candidate[] = rows.flatMap((row) => (row.order.includes('learning_rate') ? lrKnown.map((learningRate) => ({ row, learningRate })) : [{ row, learningRate: false }]));

  const fits: { c: Candidate; parsed: Parsed }[] = [];
  const misfits: string[] = [];
  for (const c of candidates) {
    try {
      fits.push({ c, parsed: parsePositional(label, c, weights, model, !ctx.modelConfig) });
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      misfits.push(`${c.row.id}${c.row.order.includes('learning_rate') ? (c.learningRate ? ' with learning_rate' : ' without learning_rate') : ''}: ${e.message.slice(label.length + 2)}`);
    }
  }
  if (fits.length === 0) throw new FormatError(label, `optimizer/vars (${weights.length} variables) fits no Nadam layout of ${rows.map((r) => r.releases).join(', ')}: ${misfits.join('; ')}`);
  if (fits.length > 1) {
    throw new FormatError(label, `optimizer/vars fits more than one Nadam layout (${fits.map((f) => f.c.row.id).join(', ')}) and the file records no keras_version to choose: save it as a .keras archive, or read it with the model's release known`);
  }
  const { c, parsed } = fits[0]!;
  if (!ctx.kerasVersion && candidates.length > 1) evidence.push(`only layout ${c.row.id} fits the variables (${misfits.length} other readings refused)`);
  const iterations = Number(weights[0]!.value.data[0]);
  const config: Record<string, unknown> = opt ? { ...opt.config } : {};
  if (className === null) evidence.push('of the described optimizers only Nadam fits the variables');
  if (!opt || Object.keys(opt.config).length === 0) notes.push(opt ? `the config is the string '${opt.class_name}': Nadam with its defaults` : 'no optimizer config in the file: Nadam with its defaults; pass the config to rebuild it exactly');
  if (c.learningRate && Object.keys(config).length === 0) config.learning_rate = parsed.learningRate!;
  notes.push(...parsed.notes);
  let schedule: KerasOptimizerState['schedule'];
  if (c.row.flavour === 'tf-keras-new') {
    const dtype = (parsed.slots[0]?.value.dtype ?? 'float32') as FloatDType;
    const beta1 = typeof config.beta_1 === 'number' ? config.beta_1 : 0.9;
    schedule = { name: 'u_product', value: Tensor.scalar(reconstructUProduct(beta1, iterations, dtype), dtype), reconstructed: true };
    notes.push(`u_product is not saved by TF 2.11-2.15: reconstructed as the ${dtype} product of u_1..u_${iterations} from iterations and beta_1, with kerasopt's arithmetic (TF itself restarts it at 1.0 when it loads this file)`);
  } else if (parsed.schedule) {
    schedule = { name: 'u_product', value: parsed.schedule, reconstructed: false };
  } else {
    schedule = { name: 'u_product', value: Tensor.scalar(1, 'float32'), reconstructed: true };
    notes.push('the optimizer was saved before it was built (no step taken): no slots and no u_product yet (1.0, its initial value); a resumed optimizer builds on the trainable model variables');
  }
  return {
    file: label, format: ctx.format, flavour: c.row.flavour, kerasVersion: ctx.kerasVersion, className: className ?? 'Nadam', config,
    iterations, weights: parsed.weights, slots: parsed.slots, variables: parsed.variables,
    schedule, stringStyle: null, notes,
    release: { layout: c.row.id, range: c.row.releases, evidence },
  };
}

/**
 * The largest u_product a Keras 3 Nadam can hold after `steps` steps: the product of u_t = beta_1 *
 * (1 - 0.5 * 0.96^t) (keras/src/optimizers/nadam.py, see nextUProduct) is largest as beta_1 tends to 1.
 * A saved value above it is not a Nadam's (another optimizer's variable in that position: an Adam's
 * learning rate, say).
 */
function uProductBound(steps: number): number {
  let bound = 1;
  for (let t = 1; t <= steps && bound > 0; t++) bound *= 1 - 0.5 * Math.pow(0.96, t);
  return bound;
}

interface Parsed {
  readonly weights: StoredWeight[];
  readonly slots: SlotState[];
  readonly variables: ModelVariable[];
  readonly schedule: Tensor | null;
  readonly learningRate: number | null;
  readonly notes: string[];
}

/** Reads `weights` as `c` lays them out, tying the slots to `model` by position; a FormatError says why it does not fit. */
function parsePositional(label: string, c: Candidate, weights: readonly StoredWeight[], model: readonly ModelVariable[], reorder: boolean): Parsed {
  const fixed = 1 + (c.learningRate ? 1 : 0);
  const built = weights.length > fixed;
  const scheduleCount = c.row.order.includes('schedule') ? 1 : 0;
  const rest = weights.length - fixed - (built ? scheduleCount : 0);
  if (built && (rest <= 0 || rest % 2 !== 0)) throw new FormatError(label, `${weights.length} variables leave ${rest} for the slots, not a positive even count`);
  if (!built && weights.length !== fixed) throw new FormatError(label, `${weights.length} variables, expected ${fixed} before the first build`);
  const n = built ? rest / 2 : 0;
  const roles = rolesOf(c.row, n, { learningRate: c.learningRate, built });
  const at = (pred: (r: Role) => boolean): StoredWeight => weights[roles.findIndex(pred)]!;
  const iteration = at((r) => r.kind === 'iterations');
  if (iteration.value.dtype !== 'int64' || iteration.value.size !== 1) throw new FormatError(label, `${iteration.name} (iteration) is ${iteration.value.dtype}${shapeToString(iteration.value.shape)}, expected an int64 scalar`);
  let learningRate: number | null = null;
  if (c.learningRate) {
    const lr = at((r) => r.kind === 'learning_rate');
    if (lr.value.dtype !== 'float32' || lr.value.rank !== 0) throw new FormatError(label, `${lr.name} (learning_rate) is ${lr.value.dtype}${shapeToString(lr.value.shape)}, expected a float32 scalar`);
    learningRate = lr.value.get(0);
  }
  let schedule: Tensor | null = null;
  if (built && scheduleCount) {
    const u = at((r) => r.kind === 'schedule');
    if (!u.value.dtype.startsWith('float') || u.value.rank !== 0) throw new FormatError(label, `${u.name} (u_product) is ${u.value.dtype}${shapeToString(u.value.shape)}, expected a float scalar`);
    const steps = Number(iteration.value.data[0]);
    const most = uProductBound(steps);
    const value = u.value.get(0);
    if (!(value >= 0 && value <= most * (1 + 1e-4))) {
      throw new FormatError(label, `${u.name} holds ${value}, which no Nadam's u_product can hold after ${steps} steps (at most ${most.toPrecision(6)} for any beta_1 < 1): not a Nadam state in this layout`);
    }
    schedule = u.value;
  }
  const slotOf = (v: number, k: 0 | 1): StoredWeight => at((r) => r.kind === 'slot' && r.variable === v && r.slot === k);
  const firsts: StoredWeight[] = [];
  for (let v = 0; v < n; v++) {
    const [m, s] = [slotOf(v, 0), slotOf(v, 1)];
    if (!m.value.dtype.startsWith('float') || !sameShape(m.value.shape, s.value.shape) || m.value.dtype !== s.value.dtype) {
      throw new FormatError(label, `${m.name} ${m.value.dtype}${shapeToString(m.value.shape)} and ${s.name} ${s.value.dtype}${shapeToString(s.value.shape)} should be the two slots of one variable`);
    }
    firsts.push(m);
  }
  const slotNames = c.row.flavour === 'keras3' ? (['momentum', 'velocity'] as const) : (['m', 'v'] as const);
  if (!built) {
    const trainable = model.filter((v) => v.trainable !== false);
    return { weights: withPositionalRoles(weights, roles, [], slotNames), slots: [], variables: trainable, schedule, learningRate, notes: [] };
  }
  const tied = tieInOrder(label, firsts, model, 'position', undefined, reorder);
  const slots: SlotState[] = [];
  roles.forEach((r, i) => {
    if (r.kind === 'slot') slots.push({ variable: tied.owners[r.variable]!.name, slot: slotNames[r.slot], weightName: weights[i]!.name, value: weights[i]!.value, inModel: true });
  });
  return { weights: withPositionalRoles(weights, roles, tied.owners, slotNames), slots, variables: tied.owners, schedule, learningRate, notes: tied.notes };
}

function withPositionalRoles(weights: readonly StoredWeight[], roles: readonly Role[], owners: readonly ModelVariable[], slotNames: readonly [string, string]): StoredWeight[] {
  return weights.map((w, i) => {
    const r = roles[i]!;
    const role: WeightRole = r.kind === 'slot' ? { kind: 'slot', variable: owners[r.variable]!.name, slot: slotNames[r.slot] } : { kind: r.kind };
    return { ...w, role };
  });
}
