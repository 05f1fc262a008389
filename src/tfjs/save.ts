import type * as tf from '@tensorflow/tfjs';
import { copyFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KerasValueError } from '../errors.js';
import { saveOptimizerState } from '../formats/write.js';
import { replaceFileAtomically } from '../io/atomic.js';
import { Variable } from '../tensor/variable.js';
import { copyOf, type TfjsNadam } from './nadam.js';
import { originOf } from './origin.js';

/** Options of {@link saveKerasModel}. */
export interface SaveKerasModelOptions {
  /** Write to this path instead of updating `file` in place (the file is copied, then updated; atomically). */
  output?: string;
}

/**
 * Writes a model loaded by loadKerasModel back into its Keras file, in the file's own layout: every
 * model weight (by the name the file gives it) and the optimizer's state (iterations, slots, schedule,
 * config), everything else in the file kept. In place by default, atomically (a failure leaves the
 * file as it was); with `output`, into a copy. Keras in Python loads the result and trains on.
 */
export async function saveKerasModel(file: string, model: tf.LayersModel, optimizer: TfjsNadam, options: SaveKerasModelOptions = {}): Promise<void> {
  const origin = originOf(model);
  if (!origin) throw new KerasValueError('saveKerasModel: the model was not made by loadKerasModel, so kerasopt does not know where its weights live in a Keras file');
  const modelVariables = origin.weights.map((w) => new Variable(copyOf(w.variable.read() as tf.Tensor, `weight '${w.name}'`), { name: w.name }));
  const save = (path: string): Promise<void> => saveOptimizerState(path, optimizer.nadam, { like: origin.state, modelVariables });
  const output = options.output ?? file;
  if (resolve(output) === resolve(file)) return save(file);
  // the copy is made and updated beside `output`, then renamed: `output` never holds a half-written file
  await replaceFileAtomically(output, async (tmp) => {
    copyFileSync(file, tmp);
    await save(tmp);
  });
}
