import { copyFileSync, existsSync } from 'node:fs';
import { dumpsPython } from '../config/pyjson.js';
import { FormatError, KerasValueError } from '../errors.js';
import { replaceFileAtomically } from '../io/atomic.js';
import { shapeToString, type Tensor } from '../tensor/tensor.js';
import { updateArchive } from './archiveUpdate.js';
import { checkpointPrefix } from './checkpoint/nadam.js';
import { updateBundleTensors } from './checkpoint/update.js';
import { H5File } from './hdf5.js';
import { optimizerFromModelConfig } from './keras3.js';
import { readTrainingConfig } from './kerasH5.js';
import { readOptimizerState } from './read.js';
import { sameBits, type KerasOptimizerState, type StoredWeight } from './state.js';
import { verify, writeModelVariables, type SaveOptions } from './write.js';

/** The dataset of a saved weight in its HDF5 file. */
function datasetOf(w: StoredWeight): string {
  return w.name.startsWith('optimizer/vars/') ? w.name : `optimizer_weights/${w.name}`;
}

const describe = (t: Tensor): string => `${t.dtype}${shapeToString(t.shape)}`;

/**
 * Writes a read state back into `file`, which must hold the same optimizer's state (same weights by
 * name, dtype and shape: a state read from it, or from a copy of it). Changed weights are overwritten
 * in place, a changed config replaces the stored one (class name kept), `options.modelVariables`
 * are written too; everything else keeps its bytes, and an unchanged state writes nothing. The write
 * is atomic (a temporary file checked bit for bit, then renamed); TF checkpoints are updated in place
 * by tensor (see updateBundleTensors).
 */
export async function saveStateInto(file: string, state: KerasOptimizerState, options: SaveOptions = {}): Promise<void> {
  const prefix = checkpointPrefix(file);
  if (prefix === null && !existsSync(file)) {
    throw new KerasValueError(`${file} does not exist: a read state is written back into a file holding the same optimizer's state (a copy of the file it was read from)`);
  }
  // read in the reader worker under its deadline: a file that makes libhdf5 loop fails here, before this thread opens it
  const current = await readOptimizerState(file, { ...(state.className !== null ? { optimizer: state.className } : {}), ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }) });
  if (current.weights.length !== state.weights.length) {
    throw new KerasValueError(`${file} holds ${current.weights.length} optimizer weights and the state ${state.weights.length}: it is not the same optimizer's state`);
  }
  state.weights.forEach((w, i) => {
    const c = current.weights[i]!;
    if (c.name !== w.name || describe(c.value) !== describe(w.value)) {
      throw new KerasValueError(`${file}: optimizer weight ${i} is '${c.name}' ${describe(c.value)} in the file and '${w.name}' ${describe(w.value)} in the state: not the same optimizer's state`);
    }
  });
  const changed = state.weights.filter((w, i) => !sameBits(w.value, current.weights[i]!.value));
  const configChanged = current.format !== 'tf-checkpoint' && current.format !== 'keras3-weights-h5' && dumpsPython(state.config) !== dumpsPython(current.config);
  const model = options.modelVariables ?? [];
  const stored = new Map(current.variables.map((v) => [v.name, v.value]));
  const modelChanged = model.some((v) => !stored.has(v.name) || !sameBits(stored.get(v.name)!, v.value));
  if (changed.length === 0 && !configChanged && !modelChanged) return;

  if (current.format === 'tf-checkpoint') {
    const key = (name: string): string => `${name}/.ATTRIBUTES/VARIABLE_VALUE`;
    const updates = new Map<string, Tensor>(changed.map((w) => [key(w.name), w.value]));
    for (const v of model) updates.set(key(v.name), v.value);
    return updateBundleTensors(prefix!, prefix!, updates, file);
  }
  if (current.format === 'keras3-archive') return saveArchiveState(file, state, changed, configChanged, options);
  await replaceFileAtomically(file, async (tmp) => {
    copyFileSync(file, tmp);
    const h = await H5File.open(tmp, 'a', file);
    try {
      for (const w of changed) {
        h.overwriteTensor(datasetOf(w), w.value);
        options.afterWrite?.(w.name);
      }
      if (configChanged) writeLegacyConfig(h, state.config);
      writeModelVariables(h, model);
    } catch (e) {
      h.closeQuietly();
      throw h.asFormatError(e, 'updating');
    }
    h.close();
    await verify(tmp, file, [...state.weights], false);
  });
}

/** Replaces optimizer_config.config in training_config, keeping its class name and string style. */
function writeLegacyConfig(h: H5File, config: Record<string, unknown>): void {
  const training = readTrainingConfig(h);
  if (!training) throw new FormatError(h.label, 'no training_config attribute to hold the optimizer config');
  const style = h.attributeInfo('/', 'training_config').vlen ? 'vlen' : 'fixed';
  const optimizerConfig = { ...(training.optimizer_config as Record<string, unknown>), config };
  h.writeStringAttribute('/', 'training_config', dumpsPython({ ...training, optimizer_config: optimizerConfig }), style);
}

async function saveArchiveState(file: string, state: KerasOptimizerState, changed: readonly StoredWeight[], configChanged: boolean, options: SaveOptions): Promise<void> {
  await updateArchive(file, options, {
    weights: (h) => {
      for (const w of changed) h.overwriteTensor(datasetOf(w), w.value);
      writeModelVariables(h, options.modelVariables ?? []);
    },
    config: (config) => {
      if (!configChanged) return null;
      if (!optimizerFromModelConfig(config)?.envelope) throw new KerasValueError(`${file}: config.json holds no optimizer config object to update`);
      const compile = config.compile_config as Record<string, unknown>;
      compile.optimizer = { ...(compile.optimizer as Record<string, unknown>), config: state.config };
      return config;
    },
    verify: (tmp) => verify(tmp, file, [...state.weights]),
  });
}
