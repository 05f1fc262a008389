import { copyFileSync, existsSync } from 'node:fs';
import { dumpsPython } from '../config/pyjson.js';
import { FormatError, KerasValueError } from '../errors.js';
import { replaceFileAtomically } from '../io/atomic.js';
import { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../tensor/variable.js';
import type { ArchiveLimits } from './archive.js';
import { H5File } from './hdf5.js';
import { optimizerFromModelConfig } from './keras3.js';
import { legacyFamily, readNameList, readTrainingConfig } from './kerasH5.js';
import { readOptimizerState, sniff } from './read.js';
import { checkpointPrefix } from './checkpoint/nadam.js';
import { updateBundleTensors } from './checkpoint/update.js';
import { saveStateInto } from './writeState.js';
import { updateArchive } from './archiveUpdate.js';
import { LAYOUTS, rolesOf, type LayoutRow } from './layouts.js';
import { Nadam } from '../optimizers/nadam/index.js';
import type { Flavour } from '../optimizers/flavour.js';
import { sameBits, type KerasFileFormat, type KerasOptimizerState, type StoredWeight, type WeightRole } from './state.js';

/** Options of {@link saveOptimizerState}. */
export interface SaveOptions extends ArchiveLimits {
  /**
   * The layout to write (default: the existing file's; for a new file, from the extension:
   * `.weights.h5` Keras 3, other `.h5` the optimizer's flavour: tf.keras, Keras 2 or TF 2.11-2.15 layout).
   */
  format?: KerasFileFormat;
  /** Names for the optimizer weights in order (default: Keras's, from the optimizer and variable names). */
  weightNames?: readonly string[];
  /** String attribute style of a new file: 'fixed' (h5py 2) or 'vlen' (h5py 3). Existing files keep theirs. */
  stringStyle?: 'fixed' | 'vlen';
  /**
   * Style of a new optimizer_weights `weight_names` list, when it differs from `stringStyle` (Keras writes
   * name lists as arrays of bytes, which h5py stores fixed-length, beside a variable-length training_config).
   */
  nameListStyle?: 'fixed' | 'vlen';
  /**
   * The Keras release layout of a .keras / .weights.h5 file (a row id of docs/keras-releases.md, e.g.
   * 'keras-3.0-u-first'). Default: an existing file's own, else the latest release's.
   */
  layout?: string;
  /** Keras 2 layout: '2.2' (m_schedule not saved, the default) or '2.3' (saved after iterations). */
  keras2Layout?: '2.2' | '2.3';
  /**
   * The state this optimizer was read from: its weight names, Keras 2 layout and format are kept,
   * so that a read-write round trip writes the same objects.
   */
  like?: KerasOptimizerState;
  /**
   * Model variables to write back too (e.g. after training in JavaScript), by the names the read
   * state gives them ('dense/kernel', or 'layers/dense/vars/0' for Keras 3). Each must exist in the
   * file with the same dtype and shape; it is overwritten in place.
   */
  modelVariables?: readonly Variable[];
  /**
   * Deadline (ms) for reading the existing file in the reader worker before it is written (default
   * as readOptimizerState's: 10 s plus 1 s per 50 MB). A file that makes libhdf5 loop fails there
   * with a FormatError, and is not opened by the write.
   */
  deadlineMs?: number;
  /** @internal Test hook called after each dataset write; a throw aborts the save midway. */
  afterWrite?: (name: string) => void;
}

/** The flavours whose state each layout holds (TF 2.13-2.15 write TF 2.11+ optimizers into .keras archives too). */
export const FORMAT_FLAVOURS: Readonly<Record<KerasFileFormat, readonly Flavour[]>> = {
  'tf-keras-h5': ['tf-keras'],
  'keras2-h5': ['keras2'],
  'tf-keras-new-h5': ['tf-keras-new'],
  'keras3-weights-h5': ['keras3', 'tf-keras-new'],
  'keras3-archive': ['keras3', 'tf-keras-new'],
  'tf-checkpoint': ['tf-keras', 'tf-keras-new'],
};

/**
 * Writes an optimizer's state into `file`. Given a Nadam, its weights and config in Keras's layout
 * (below). Given a state read by readOptimizerState (any described optimizer; its weights' values
 * and its config may have been changed), its weights over the same optimizer's state in `file`, in
 * place (see saveStateInto).
 *
 * A Nadam's state (its weights and its config) is written into `file` in Keras's layout: into an
 * existing model file without touching anything else in it, or into a new file. The write is atomic
 * (temporary file beside `file`, checked by reading it back, then renamed), so a failure leaves
 * `file` as it was. An existing optimizer state is updated in place and must have the same weights
 * (names, dtypes, shapes); h5wasm cannot delete HDF5 objects, so a different one is refused.
 */
export async function saveOptimizerState(file: string, optimizer: Nadam | KerasOptimizerState, saveOptions: SaveOptions = {}): Promise<void> {
  // a read state (any optimizer, changed or not) is written back over the same optimizer's state
  if (!(optimizer instanceof Nadam)) return saveStateInto(file, optimizer, saveOptions);
  const like = saveOptions.like;
  const options: SaveOptions = like
    ? { format: like.format, ...(like.weights.every((w) => w.role) ? {} : { weightNames: like.weights.map((w) => w.name) }), ...(like.keras2Layout ? { keras2Layout: like.keras2Layout } : {}), ...saveOptions }
    : saveOptions;
  if (!optimizer.built && !(like && like.slots.length === 0)) throw new KerasValueError(`optimizer ${optimizer.name} has no slots yet: build it on its variables (or take a step) before saving`);
  const exists = existsSync(file) || checkpointPrefix(file) !== null;
  const kind = exists && checkpointPrefix(file) === null ? sniff(file) : null;
  // An existing state fixes the order, names and dtypes its release saves in: the new values follow it.
  // The existing file is read in the reader worker first, under its deadline: a file that makes libhdf5
  // loop fails there, before this thread opens it (the write's own HDF5 calls cannot be interrupted).
  const existing = exists ? await readTarget(file, saveOptions.deadlineMs) : null;
  const current = like ? null : existing;
  if (current && options.layout === undefined) options.layout = current.release.layout;
  const format = options.format ?? (exists ? (checkpointPrefix(file) !== null ? 'tf-checkpoint' : await formatOf(file, kind!)) : file.endsWith('.keras') ? 'keras3-archive' : file.endsWith('.weights.h5') ? 'keras3-weights-h5' : optimizer.flavour === 'keras2' ? 'keras2-h5' : optimizer.flavour === 'tf-keras-new' ? 'tf-keras-new-h5' : 'tf-keras-h5');
  if (!FORMAT_FLAVOURS[format].includes(optimizer.flavour)) throw new KerasValueError(`a ${optimizer.flavour} Nadam cannot be written in the ${format} layout (it holds ${FORMAT_FLAVOURS[format].join(' or ')} state)`);
  const weights = weightsToWrite(optimizer, format, current && !options.weightNames ? { ...options, like: current } : options);
  // An unchanged state is not written at all, so the file keeps every byte (a write would move HDF5 metadata).
  if (exists && existing && (await alreadyHolds(file, optimizer, weights, options, existing))) return;
  if (format === 'tf-checkpoint') return saveCheckpoint(file, optimizer, weights, options);
  if (format === 'keras3-archive') return saveArchive(file, optimizer, weights, options);
  await replaceFileAtomically(file, async (tmp) => {
    if (exists) copyFileSync(file, tmp);
    const h = await H5File.open(tmp, exists ? 'a' : 'w', file);
    let sameLayoutInPlace: boolean;
    try {
      sameLayoutInPlace = format === 'keras3-weights-h5' ? writeKeras3(h, weights, options) : writeLegacy(h, optimizer, weights, format, options);
      writeModelVariables(h, options.modelVariables ?? []);
    } catch (e) {
      h.closeQuietly(); // the temporary file is discarded; the error says what failed
      throw h.asFormatError(e, 'updating');
    }
    h.close();
    await verify(tmp, file, weights, !sameLayoutInPlace);
  });
}

/**
 * The optimizer state of an existing target, read in the reader worker with its deadline; null when
 * the file holds none (a model saved without its optimizer: the write adds one). Any other failure
 * (a read stopped at its deadline, a corrupt file on which libhdf5 aborts) is rethrown: this thread
 * does not open a file the worker could not read.
 */
async function readTarget(file: string, deadlineMs: number | undefined): Promise<KerasOptimizerState | null> {
  try {
    return await readOptimizerState(file, deadlineMs === undefined ? {} : { deadlineMs });
  } catch (e) {
    if (e instanceof FormatError && /: no optimizer state|: no optimizer in the checkpoint/.test(e.message)) return null;
    throw e;
  }
}

async function formatOf(file: string, kind: 'hdf5' | 'zip'): Promise<KerasFileFormat> {
  if (kind === 'zip') return 'keras3-archive';
  const h = await H5File.open(file, 'r');
  try {
    return legacyOrKeras3(h);
  } catch (e) {
    throw h.asFormatError(e);
  } finally {
    h.closeQuietly();
  }
}

function legacyOrKeras3(h: H5File): KerasFileFormat {
  if (h.kind('optimizer') === 'group' || h.kind('layers') === 'group') return 'keras3-weights-h5';
  const names = h.kind('optimizer_weights') === 'group' ? readNameList(h, 'optimizer_weights', 'weight_names') : null;
  const family = names?.[0] ? legacyFamily(names[0]) : null;
  if (family === 'keras2') return 'keras2-h5';
  if (family === 'tf-keras-new') return 'tf-keras-new-h5';
  const version = h.stringAttribute('/', 'keras_version');
  return typeof version === 'string' && /^2\.[0-3]\.\d+$/.test(version) && !names ? 'keras2-h5' : 'tf-keras-h5';
}

/**
 * The optimizer's current value for a saved weight of the given role, in the saved weight's dtype
 * (Keras 2.0.x saves iterations as float32); null for a slot the optimizer does not hold (a variable
 * the saved model lacks: written back as read).
 */
function valueForRole(optimizer: Nadam, role: WeightRole, like: Tensor): Tensor | null {
  if (role.kind === 'iterations') return Tensor.scalar(like.dtype === 'int64' ? BigInt(optimizer.iterations) : optimizer.iterations, like.dtype);
  if (role.kind === 'learning_rate') return optimizer.getWeight('learning_rate').value;
  if (role.kind === 'schedule') return optimizer.getWeight(optimizer.recipe.scheduleWeight).value;
  return optimizer.weights.find((w) => w.name === `${role.variable}/${role.slot}`)?.value ?? null;
}

/** The optimizer's slotted variables in creation order, by the names of their first slots. */
function slottedVariables(optimizer: Nadam): string[] {
  const first = `/${optimizer.recipe.slotNames[0]}`;
  return optimizer.weights.filter((w) => w.name.endsWith(first)).map((w) => w.name.slice(0, -first.length));
}

/**
 * The saved list of `like`, refilled from `optimizer` weight by weight (same names, order and dtypes),
 * when every weight of `like` has a role and every slot the optimizer holds is among them; else null.
 */
function refill(optimizer: Nadam, like: KerasOptimizerState): StoredWeight[] | null {
  if (!like.weights.every((w) => w.role)) return null;
  const held = new Set(like.weights.map((w) => (w.role?.kind === 'slot' ? `${w.role.variable}/${w.role.slot}` : '')));
  const slotNames = new Set(optimizer.recipe.slotNames.map((n) => `/${n}`));
  const mine = optimizer.weights.filter((w) => [...slotNames].some((n) => w.name.endsWith(n)));
  if (!mine.every((w) => held.has(w.name))) return null;
  // and every slot of a variable the saved model has must be one the optimizer holds (only the others are kept as read)
  const names = new Set(mine.map((w) => w.name));
  if (!like.slots.every((s) => !s.inModel || names.has(`${s.variable}/${s.slot}`))) return null;
  return like.weights.map((w) => ({ name: w.name, value: valueForRole(optimizer, w.role!, w.value) ?? w.value, role: w.role! }));
}

/** A positional layout (Keras 3, TF 2.12+ archives) composed for the optimizer's variables, as its release orders them. */
function composeRow(optimizer: Nadam, row: LayoutRow): StoredWeight[] {
  const variables = slottedVariables(optimizer);
  const learningRate = optimizer.weights.some((w) => w.name === 'learning_rate');
  const roles = rolesOf(row, variables.length, { learningRate, built: optimizer.built });
  return roles.map((r, i) => {
    const role: WeightRole = r.kind === 'slot' ? { kind: 'slot', variable: variables[r.variable]!, slot: optimizer.recipe.slotNames[r.slot] } : { kind: r.kind };
    // every role of a row is one the optimizer holds; iterations keeps its int64
    return { name: `optimizer/vars/${i}`, value: valueForRole(optimizer, role, optimizer.iterationsVariable.value)!, role };
  });
}

/** The layout row to write a positional file in: the one named, else the latest release's for the optimizer's flavour. */
function positionalRow(optimizer: Nadam, format: KerasFileFormat, id: string | undefined): LayoutRow {
  const rows = LAYOUTS.filter((r) => r.tie === 'position' && r.formats.includes(format) && r.flavour === optimizer.flavour);
  const row = id === undefined ? rows[rows.length - 1] : rows.find((r) => r.id === id);
  if (!row) throw new KerasValueError(`no ${format} layout ${id === undefined ? '' : `'${id}' `}for a ${optimizer.flavour} Nadam; layouts: ${rows.map((r) => r.id).join(', ') || 'none'}`);
  return row;
}

/** The optimizer's weights in the order and with the names Keras saves them. */
export function weightsToWrite(optimizer: Nadam, format: KerasFileFormat, options: SaveOptions = {}): StoredWeight[] {
  const like = options.like;
  if (like && !options.weightNames) {
    const same = refill(optimizer, like);
    if (same) return same;
    const row = LAYOUTS.find((r) => r.id === like.release?.layout);
    if (row && row.tie === 'position' && row.formats.includes(format) && row.flavour === optimizer.flavour) return composeRow(optimizer, row);
  }
  const all = optimizer.weights;
  const prefix = optimizer.name;
  let list: StoredWeight[];
  if (format === 'keras3-weights-h5' || format === 'keras3-archive') {
    list = composeRow(optimizer, positionalRow(optimizer, format, options.layout));
  } else if (format === 'tf-keras-h5') {
    list = all.map((v) => ({ name: `${prefix}/${v.name}:0`, value: v.value }));
  } else if (format === 'tf-keras-new-h5') {
    // TF 2.11+: 'iteration' is made outside any name scope, the slots in build() under the optimizer's
    // name scope as '<slot>/<variable>' (kerasopt names a slot '<variable>/<slot>').
    const [iterations, ...slots] = all;
    list = [{ name: 'iteration:0', value: iterations!.value }];
    for (const v of slots) {
      const cut = v.name.lastIndexOf('/');
      list.push({ name: `${prefix}/${v.name.slice(cut + 1)}/${v.name.slice(0, cut)}:0`, value: v.value });
    }
  } else {
    const [iterations, ...slots] = all;
    const n = slots.length / 2;
    const with23 = options.keras2Layout === '2.3';
    list = [{ name: `${prefix}/iterations:0`, value: iterations!.value }];
    if (with23) list.push({ name: `${prefix}/m_schedule:0`, value: optimizer.getWeight('m_schedule').value });
    slots.forEach((v, k) => {
      const name = with23 ? `training/${prefix}/${k < n ? 'm' : 'v'}_${k % n}:0` : `training/${prefix}/Variable${k === 0 ? '' : `_${k}`}:0`;
      list.push({ name, value: v.value });
    });
  }
  if (options.weightNames) {
    if (options.weightNames.length !== list.length) throw new KerasValueError(`weightNames has ${options.weightNames.length} names for ${list.length} optimizer weights`);
    list = list.map((w, i) => ({ name: options.weightNames![i]!, value: w.value }));
  }
  return list;
}

const HEADER_LIMIT = 64512;

/** Writes a legacy .h5 optimizer state; true when an existing one was overwritten in place (same datasets). */
function writeLegacy(h: H5File, optimizer: Nadam, weights: StoredWeight[], format: KerasFileFormat, options: SaveOptions): boolean {
  const existing = readTrainingConfig(h);
  const style = h.attributeNames('/').includes('training_config')
    ? (h.attributeInfo('/', 'training_config').vlen ? 'vlen' : 'fixed')
    : (options.stringStyle ?? (format === 'keras2-h5' ? 'fixed' : 'vlen'));
  // An existing file, or the state given as template, keeps its class name (TF 2.11-2.15 save 'Custom>Nadam', the registered name).
  const stored = typeof existing?.optimizer_config === 'object' && existing.optimizer_config !== null ? (existing.optimizer_config as { class_name?: unknown }).class_name : undefined;
  const className = stored ?? options.like?.className;
  const optimizerConfig = { class_name: typeof className === 'string' && /^(custom>)?nadam$/i.test(className) ? className : 'Nadam', config: optimizer.getConfig() };
  const storedConfig = (existing?.optimizer_config as { config?: unknown } | undefined)?.config;
  const sameConfig = existing !== null && (dumpsPython(existing.optimizer_config) === dumpsPython(optimizerConfig) || describesOptimizer(storedConfig, optimizer));
  if (!sameConfig) {
    const training = existing
      ? { ...existing, optimizer_config: optimizerConfig }
      : { optimizer_config: optimizerConfig, loss: null, metrics: null, weighted_metrics: null, loss_weights: null, sample_weight_mode: null };
    h.writeStringAttribute('/', 'training_config', dumpsPython(training), style);
  }
  if (h.kind('optimizer_weights') === 'group') {
    overwriteInPlace(h, 'optimizer_weights', weights, readNameList(h, 'optimizer_weights', 'weight_names') ?? [], options);
    return true;
  }
  h.ensureGroups('optimizer_weights');
  writeNameList(h, 'optimizer_weights', 'weight_names', weights.map((w) => w.name), options.nameListStyle ?? style);
  for (const w of weights) {
    h.createTensor(`optimizer_weights/${w.name}`, w.value);
    options.afterWrite?.(w.name);
  }
  return false;
}

/** save_attributes_to_hdf5_group: one attribute, or fixed-length chunks name0, name1, ... past 64512 bytes. */
function writeNameList(h: H5File, path: string, name: string, names: string[], style: 'fixed' | 'vlen'): void {
  const width = Math.max(1, ...names.map((s) => Buffer.byteLength(s, 'utf8')));
  let chunks = 1;
  const split = (k: number): string[][] => {
    const out: string[][] = [];
    const base = Math.floor(names.length / k);
    const extra = names.length % k;
    let at = 0;
    for (let i = 0; i < k; i++) {
      const len = base + (i < extra ? 1 : 0);
      out.push(names.slice(at, at + len));
      at += len;
    }
    return out;
  };
  while (split(chunks).some((c) => c.length * width > HEADER_LIMIT)) chunks++;
  if (chunks === 1) h.writeStringAttribute(path, name, names, style);
  else split(chunks).forEach((c, i) => h.writeStringAttribute(path, `${name}${i}`, c, 'fixed'));
}

function overwriteInPlace(h: H5File, group: string, weights: StoredWeight[], names: readonly string[], options: SaveOptions): void {
  const wanted = weights.map((w) => w.name);
  if (names.length !== wanted.length || names.some((n, i) => n !== wanted[i])) {
    throw new KerasValueError(
      `${h.label} already holds a different optimizer state (${names.length} weights: ${names.slice(0, 3).join(', ')}...; writing ${wanted.length}: ${wanted.slice(0, 3).join(', ')}...). ` +
        'kerasopt updates an existing state in place but cannot replace it (h5wasm cannot delete HDF5 objects): write to a new file, or pass weightNames matching the file',
    );
  }
  for (const w of weights) {
    h.overwriteTensor(`${group}/${w.name}`, w.value);
    options.afterWrite?.(w.name);
  }
}

/** Writes a Keras 3 optimizer state; true when an existing one was overwritten in place (same datasets). */
function writeKeras3(h: H5File, weights: StoredWeight[], options: SaveOptions): boolean {
  if (h.kind('optimizer/vars') === 'group') {
    const keys = (h.keys('optimizer/vars') ?? []).sort((a, b) => Number(a) - Number(b));
    // An optimizer saved before its first build holds iteration (and learning_rate) only: those are
    // updated, and what build() adds (u_product, the slots) is created after them, in the release's order.
    const grown = keys.length < weights.length && keys.every((k, i) => weights[i]!.name === `optimizer/vars/${k}` && h.readTensor(`optimizer/vars/${k}`).dtype === weights[i]!.value.dtype);
    overwriteInPlace(h, '', grown ? weights.slice(0, keys.length) : weights, keys.map((k) => `optimizer/vars/${k}`), options);
    for (const w of grown ? weights.slice(keys.length) : []) {
      h.createTensor(w.name, w.value);
      options.afterWrite?.(w.name);
    }
    return !grown;
  }
  for (const w of weights) {
    h.createTensor(w.name, w.value);
    options.afterWrite?.(w.name);
  }
  return false;
}

/** Overwrites model weights in place, found by the names readOptimizerState gives them. */
export function writeModelVariables(h: H5File, variables: readonly Variable[]): void {
  if (variables.length === 0) return;
  const paths = new Map<string, string>();
  if (h.kind('model_weights') === 'group') {
    for (const layer of readNameList(h, 'model_weights', 'layer_names') ?? []) {
      for (const w of readNameList(h, `model_weights/${layer}`, 'weight_names') ?? []) paths.set(w.replace(/:\d+$/, ''), `model_weights/${layer}/${w}`);
    }
  }
  for (const v of variables) {
    // saving_lib files name a variable by its dataset path ('layers/dense/vars/0'; 'layers\\dense/vars/0' from Windows)
    const path = paths.get(v.name) ?? (/\/vars\/\d+$/.test(v.name) && !v.name.startsWith('optimizer/') && h.kind(v.name) === 'dataset' ? v.name : undefined);
    if (!path) throw new KerasValueError(`${h.label} has no model weight named '${v.name}' to write back`);
    h.overwriteTensor(path, v.value);
  }
}

async function saveArchive(file: string, optimizer: Nadam, weights: StoredWeight[], options: SaveOptions): Promise<void> {
  if (!existsSync(file)) throw new KerasValueError(`${file} does not exist: kerasopt updates the optimizer state of an existing .keras archive (it holds the model), it does not create one`);
  await updateArchive(file, options, {
    weights: (h) => {
      writeKeras3(h, weights, options);
      writeModelVariables(h, options.modelVariables ?? []);
    },
    config: (config) => {
      const current = optimizerFromModelConfig(config);
      const next = optimizer.getConfig();
      if (!current || dumpsPython(current.config) === dumpsPython(next) || describesOptimizer(current.config, optimizer)) return null;
      const compile = config.compile_config as Record<string, unknown>;
      compile.optimizer = { ...(compile.optimizer as Record<string, unknown>), config: next };
      return config;
    },
    verify: (tmp) => verify(tmp, file, weights),
  });
}

/** Reads the written file back: the state must parse (slots tie to the model) and hold our exact bits. */
export async function verify(tmp: string, label: string, weights: StoredWeight[], wholeState = true): Promise<void> {
  const h = sniff(tmp, label) === 'hdf5' ? await H5File.open(tmp, 'r', label) : null;
  // values overwritten in place cannot change how slots tie: the bits suffice; a new layout is read back whole
  const hasModel = wholeState && (h ? h.kind('model_weights') === 'group' || h.kind('layers') === 'group' : true);
  if (h) {
    try {
      for (const w of weights) {
        const path = w.name.startsWith('optimizer/vars/') ? w.name : `optimizer_weights/${w.name}`;
        if (!sameBits(h.readTensor(path), w.value as Tensor)) throw new FormatError(label, `written weight '${w.name}' does not read back bit for bit`);
      }
    } catch (e) {
      throw h.asFormatError(e);
    } finally {
      h.closeQuietly();
    }
  }
  if (hasModel) {
    const back = await readOptimizerState(tmp, { label });
    back.weights.forEach((w, i) => {
      if (w.name !== weights[i]?.name || !sameBits(w.value, weights[i]!.value)) throw new FormatError(label, `written weight '${weights[i]?.name}' does not read back as written`);
    });
  }
}

/**
 * Whether a stored optimizer config, read back by kerasopt, gives the optimizer's own config: then it
 * is kept as Keras wrote it (key order, defaults left out, the 'nadam' string) rather than rewritten.
 */
function describesOptimizer(stored: unknown, optimizer: Nadam): boolean {
  if (!stored || typeof stored !== 'object' || Array.isArray(stored)) return false;
  try {
    return dumpsPython(Nadam.fromConfig(stored as Record<string, unknown>, { flavour: optimizer.flavour, onWarning: () => {} }).getConfig()) === dumpsPython(optimizer.getConfig());
  } catch {
    return false;
  }
}

/** Whether `file` already holds exactly these weights, an equivalent config and the given model variables' values. */
async function alreadyHolds(file: string, optimizer: Nadam, weights: readonly StoredWeight[], options: SaveOptions, known: KerasOptimizerState | null): Promise<boolean> {
  // HDF5: compare dataset by dataset first, and stop at the first difference (after a step, iterations
  // differs at once), so that a real save does not pay a whole read of the file
  if (checkpointPrefix(file) === null && sniff(file) === 'hdf5' && !(await sameDatasets(file, weights))) return false;
  let current: KerasOptimizerState;
  try {
    current = known ?? (await readOptimizerState(file)); // the state the save already read, if any
  } catch {
    return false; // no readable state there yet: the write decides what to do
  }
  if (current.weights.length !== weights.length || current.weights.some((w, i) => w.name !== weights[i]!.name || !sameBits(w.value, weights[i]!.value))) return false;
  if (current.format !== 'tf-checkpoint' && !describesOptimizer(current.config, optimizer)) return false;
  const model = new Map(current.variables.map((v) => [v.name, v.value]));
  return (options.modelVariables ?? []).every((v) => {
    const stored = model.get(v.name);
    return stored !== undefined && sameBits(stored, v.value);
  });
}

/** Whether the HDF5 file holds each weight at its dataset with the same bits (false at the first that differs or is missing). */
async function sameDatasets(file: string, weights: readonly StoredWeight[]): Promise<boolean> {
  const h = await H5File.open(file, 'r').catch(() => null);
  if (!h) return false;
  try {
    for (const w of weights) {
      const path = w.name.startsWith('optimizer/vars/') ? w.name : `optimizer_weights/${w.name}`;
      if (h.kind(path) !== 'dataset' || !sameBits(h.readTensor(path), w.value)) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    h.closeQuietly();
  }
}

/** Writes the optimizer's weights (and model variables) into an existing TF checkpoint, every other byte kept. */
async function saveCheckpoint(file: string, optimizer: Nadam, weights: readonly StoredWeight[], options: SaveOptions): Promise<void> {
  const prefix = checkpointPrefix(file);
  if (prefix === null) throw new KerasValueError(`${file} is no TF checkpoint: kerasopt updates an existing checkpoint (or SavedModel variables) in place, it does not create one`);
  const current = await readOptimizerState(file);
  const key = (name: string): string => `${name}/.ATTRIBUTES/VARIABLE_VALUE`;
  const updates = new Map<string, Tensor>();
  weights.forEach((w, i) => {
    if (current.weights[i]?.name !== w.name) throw new KerasValueError(`${file} holds a different optimizer state (weight ${i} is '${current.weights[i]?.name}', writing '${w.name}')`);
    if (!sameBits(current.weights[i]!.value, w.value)) updates.set(key(w.name), w.value);
  });
  for (const v of options.modelVariables ?? []) {
    if (!current.variables.some((m) => m.name === v.name)) throw new KerasValueError(`${file} has no model variable named '${v.name}' to write back`);
    updates.set(key(v.name), v.value);
  }
  await updateBundleTensors(prefix, prefix, updates, file);
  void optimizer;
}
