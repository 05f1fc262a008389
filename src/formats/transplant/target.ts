import { chmodSync, copyFileSync, cpSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { detectDialect } from '../../config/detect.js';
import { DEFAULT_DIALECT, LAYOUTS as DIALECTS, type ConfigDialect } from '../../config/dialects.js';
import { KerasValueError } from '../../errors.js';
import type { Flavour } from '../../optimizers/flavour.js';
import { bareCheckpointVariables } from '../checkpoint/addOptimizer.js';
import { checkpointPrefix } from '../checkpoint/nadam.js';
import { H5File } from '../hdf5.js';
import { readModelWeights, readNameList } from '../kerasH5.js';
import { versionNumbers } from '../layouts.js';
import { readOptimizerState, sniff } from '../read.js';
import { isNadamState } from '../restore.js';
import type { KerasFileFormat, KerasOptimizerState, ModelVariable } from '../state.js';
import { refuseNeverCompiledArchive } from './uncompiled.js';

/** What a transplant target is: its optimizer state (if any), its trainable variables in saving order, its release. */
export interface TargetInfo {
  readonly file: string;
  /** The optimizer state the target holds (possibly saved before its first build), or null when it holds none. */
  readonly state: KerasOptimizerState | null;
  /** The trainable model variables the optimizer holds slots for, in the target release's saving order. */
  readonly variables: readonly ModelVariable[];
  readonly format: KerasFileFormat;
  /** The flavour of the Keras release that wrote the target. */
  readonly flavour: Flavour;
  /** The config layout of that release. */
  readonly dialect: ConfigDialect;
  /** Keras 2 .h5 without a state: whether the release saves m_schedule (2.3) or not (2.0-2.2). */
  readonly keras2Layout?: '2.2' | '2.3';
  /** .h5 without a state: the string style of its root attributes (keras_version), kept for training_config. */
  readonly stringStyle?: 'fixed' | 'vlen';
  /** .h5 without a state: the style of its layers' weight_names lists, kept for the optimizer's. */
  readonly nameListStyle?: 'fixed' | 'vlen';
  /** How the release was told. */
  readonly evidence: string;
}


/** Reads what a target file is. A target without optimizer state must be a tf.keras / Keras 2 / TF 2.11+ .h5 model. */
export async function describeTarget(file: string): Promise<TargetInfo> {
  let state: KerasOptimizerState;
  try {
    state = await readOptimizerState(file);
  } catch (e) {
    const bare = (await modelOnlyH5(file)) ?? bareCheckpoint(file);
    if (bare) return bare;
    await refuseNeverCompiledArchive(file);
    throw e;
  }
  if (!isNadamState(state)) {
    throw new KerasValueError(`${file} already holds the state of another optimizer ('${state.className ?? state.fits?.join(' or ') ?? 'unknown'}'): kerasopt transplants a Nadam state and cannot replace another optimizer's in place`);
  }
  const owners = new Set(state.slots.filter((s) => s.inModel).map((s) => s.variable));
  const variables = owners.size > 0 ? state.variables.filter((v) => owners.has(v.name)) : state.variables.filter((v) => v.trainable !== false);
  const detected = detectDialect(state.config);
  const dialect = DIALECTS[detected.dialect].flavour === state.flavour ? detected.dialect : DEFAULT_DIALECT[state.flavour];
  return { file, state, variables, format: state.format, flavour: state.flavour, dialect, evidence: `its optimizer state (${state.release.range}, layout ${state.release.layout})` };
}

/**
 * A TF2 checkpoint saved without optimizer (model.save_weights before compile): its trainable variables
 * by object path. A checkpoint records no Keras release; kerasopt creates the tf.keras optimizer_v2
 * layout there (src/formats/checkpoint/addOptimizer.ts), and refuses SavedModels and the rest with the reason.
 */
function bareCheckpoint(file: string): TargetInfo | null {
  const prefix = checkpointPrefix(file);
  if (prefix === null) return null;
  const found = bareCheckpointVariables(file, prefix);
  if (!found) return null;
  return {
    file, state: null, variables: found.variables, format: 'tf-checkpoint', flavour: 'tf-keras', dialect: DEFAULT_DIALECT['tf-keras'],
    evidence: `a TF checkpoint without optimizer state (no release recorded): the tf.keras optimizer_v2 layout (TF 2.0-2.10) is created; variables from ${found.how}`,
  };
}

/** A legacy .h5 model saved without optimizer state: its trainable weights, and its release from keras_version. */
async function modelOnlyH5(file: string): Promise<TargetInfo | null> {
  if (checkpointPrefix(file) !== null || !existsSync(file) || sniff(file) !== 'hdf5') return null;
  const h = await H5File.open(file, 'r');
  try {
    if (h.kind('model_weights') !== 'group' || h.kind('optimizer_weights') === 'group') return null;
    const version = h.stringAttribute('/', 'keras_version');
    if (typeof version !== 'string') throw new KerasValueError(`${file} holds no optimizer state and no keras_version attribute: kerasopt cannot tell which release's layout to create`);
    const release = legacyRelease(version);
    if (!release) throw new KerasValueError(`${file} holds no optimizer state and its keras_version '${version}' is not a tf.keras / Keras 2 .h5 release kerasopt writes (2.0-2.15)`);
    const variables = readModelWeights(h).filter((v) => v.trainable !== false);
    const stringStyle = h.attributeInfo('/', 'keras_version').vlen ? 'vlen' : 'fixed';
    const lists = (readNameList(h, 'model_weights', 'layer_names') ?? []).map((l) => `model_weights/${l}`).filter((g) => h.attributeNames(g).includes('weight_names') && h.attributeInfo(g, 'weight_names').string);
    const nameListStyle = lists.length > 0 ? (h.attributeInfo(lists[0]!, 'weight_names').vlen ? 'vlen' : 'fixed') : stringStyle;
    return { file, state: null, variables, ...release, stringStyle, nameListStyle, evidence: `keras_version '${version}' (no optimizer state in the file)` };
  } finally {
    h.closeQuietly();
  }
}

/** The flavour, format and config layout a tf.keras / Keras 2 .h5 of `version` writes. */
export function legacyRelease(version: string): Pick<TargetInfo, 'format' | 'flavour' | 'dialect' | 'keras2Layout'> | null {
  const v = versionNumbers(version);
  if (!v || v[0] !== 2) return null;
  const at = (minor: number): boolean => v[1]! >= minor;
  if (at(11)) return { format: 'tf-keras-new-h5', flavour: 'tf-keras-new', dialect: 'tf-2.11' };
  if (at(4) || version.endsWith('-tf')) return { format: 'tf-keras-h5', flavour: 'tf-keras', dialect: at(4) ? 'tf-2.4' : 'tf-2.0' };
  return { format: 'keras2-h5', flavour: 'keras2', dialect: at(3) ? 'keras-2.3' : 'keras-2.2', keras2Layout: at(3) ? '2.3' : '2.2' };
}

/**
 * Copies a target (a file, a checkpoint prefix with its shards, or a SavedModel folder) to `out`,
 * writable, and returns the path to write into. `out` must not exist.
 */
export function copyTarget(target: string, out: string): string {
  const prefix = checkpointPrefix(target);
  if (prefix === null) {
    if (existsSync(out)) throw new KerasValueError(`${out} exists: transplant writes a new output file (or omit -o to update ${target} in place)`);
    copyFileSync(target, out);
    chmodSync(out, 0o644);
    return out;
  }
  if (existsSync(target) && statSync(target).isDirectory()) {
    if (existsSync(out)) throw new KerasValueError(`${out} exists: transplant writes a new SavedModel folder (or omit -o to update ${target} in place)`);
    cpSync(target, out, { recursive: true });
    const walk = (d: string): void => {
      chmodSync(d, 0o755);
      for (const n of readdirSync(d)) (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : chmodSync(join(d, n), 0o644));
    };
    walk(out);
    return out;
  }
  const outPrefix = out.endsWith('.index') ? out.slice(0, -'.index'.length) : out;
  const base = basename(prefix);
  const files = readdirSync(dirname(prefix)).filter((n) => n === `${base}.index` || n.startsWith(`${base}.data-`));
  for (const n of files) {
    const to = `${outPrefix}${n.slice(base.length)}`;
    if (existsSync(to)) throw new KerasValueError(`${to} exists: transplant writes a new checkpoint (or omit -o to update ${target} in place)`);
  }
  for (const n of files) {
    const to = `${outPrefix}${n.slice(base.length)}`;
    copyFileSync(join(dirname(prefix), n), to);
    chmodSync(to, 0o644);
  }
  return outPrefix;
}

/** Removes what {@link copyTarget} made at `written` (a file, a SavedModel folder, or a prefix's .index and shards). */
export function removeCopy(target: string, written: string): void {
  if (checkpointPrefix(target) === null || (existsSync(target) && statSync(target).isDirectory())) {
    rmSync(written, { recursive: true, force: true });
    return;
  }
  const base = basename(written);
  for (const n of readdirSync(dirname(written))) if (n === `${base}.index` || n.startsWith(`${base}.data-`)) rmSync(join(dirname(written), n), { force: true });
}
