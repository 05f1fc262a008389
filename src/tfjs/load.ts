import * as tf from '@tensorflow/tfjs';
import { KerasValueError } from '../errors.js';
import { readOptimizerState, type ReadStateOptions } from '../formats/read.js';
import { optimizerFromState, type RestoreOptions } from '../formats/restore.js';
import type { KerasOptimizerState } from '../formats/state.js';
import { compileChoice } from './compile.js';
import { toTfjsTopology } from './config.js';
import { UnsupportedModelError } from './errors.js';
import { TfjsNadam } from './nadam.js';
import { setOrigin } from './origin.js';
import { readModelSource } from './source.js';
import { setWeightsFromFile } from './weights.js';

/** Options of {@link loadKerasModel}. */
export interface LoadKerasModelOptions extends RestoreOptions {
  /** Compile the model with the file's loss and metrics when tfjs has them (default true). */
  compile?: boolean;
  /** Passed to readOptimizerState (deadline, limits, label). */
  read?: ReadStateOptions;
}

/** What {@link loadKerasModel} returns. */
export interface LoadedKerasModel {
  /** The model, built from the file's config, every weight set from the file bit for bit. */
  model: tf.LayersModel;
  /** The file's Nadam state, ready to resume: pass it to saveKerasModel after training. */
  optimizer: TfjsNadam;
  /** The optimizer state as readOptimizerState read it (format, flavour, release, notes). */
  state: KerasOptimizerState;
  /** Whether the model was compiled with the file's loss (else call `model.compile({ optimizer, loss })`). */
  compiled: boolean;
  /** What the caller should know: why the model was not compiled, metrics left out. */
  notes: string[];
}

const isRegistered = (className: string): boolean => className in tf.serialization.SerializationMap.getMap().classNameMap;

/**
 * Loads a Keras model file into TensorFlow.js to resume its training: a tf.keras / Keras 2 `.h5`
 * model or a Keras 3 / TF 2.13+ `.keras` archive whose optimizer is a Nadam. The tfjs model is built
 * from the file's model config (Keras 3 configs translated), its weights set from the file bit for
 * bit, and the file's Nadam state (slots, iterations, schedule, config, flavour) loaded into a
 * {@link TfjsNadam}. The model is compiled with the file's loss and metrics when tfjs has them.
 *
 * Throws UnsupportedModelError naming the layer and its class when tfjs cannot build or run the
 * model (Lambda, custom classes, GRU with reset_after, non-float32 dtypes, a file without a model
 * config), and KerasValueError when the optimizer is not a Nadam.
 *
 * @example
 * ```ts
 * const { model, optimizer } = await loadKerasModel('model.h5');
 * await model.fit(xs, ys, { epochs: 2 });
 * await saveKerasModel('model.h5', model, optimizer, { output: 'resumed.h5' });
 * ```
 */
export async function loadKerasModel(file: string, options: LoadKerasModelOptions = {}): Promise<LoadedKerasModel> {
  const { compile = true, read, ...restore } = options;
  const state = await readOptimizerState(file, read);
  const source = await readModelSource(file);
  const topology = toTfjsTopology(source.modelConfig, file, isRegistered);
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON(topology as Parameters<typeof tf.models.modelFromJSON>[0]);
  } catch (e) {
    throw new UnsupportedModelError(file, 'build', `tfjs cannot build the model from its config: ${(e as Error).message.split('\n')[0]}`);
  }
  const weights = setWeightsFromFile(model, source, file);
  const { optimizer: nadam, variables } = optimizerFromState(state, restore);
  const optimizer = new TfjsNadam(nadam);
  const byName = new Map(weights.map((w) => [w.name, w.variable]));
  for (const v of variables) {
    const tfjs = byName.get(v.name);
    if (!tfjs) throw new KerasValueError(`${file}: the optimizer holds slots of '${v.name}', which the tfjs model does not have`);
    optimizer.bind((tfjs.read() as tf.Variable).name, v);
  }
  setOrigin(model, { file, state, weights });
  const notes: string[] = [];
  let compiled = false;
  const choice = compile ? compileChoice(source.compile) : { loss: null, why: 'compile: false' };
  if (choice.loss !== null) {
    model.compile({ optimizer, loss: choice.loss, metrics: choice.metrics });
    notes.push(...choice.notes);
    compiled = true;
  } else notes.push(`not compiled: ${choice.why}`);
  return { model, optimizer, state, compiled, notes };
}
