import { existsSync, statSync } from 'node:fs';
import { KerasValueError } from '../../errors.js';
import { Archive } from '../archive.js';
import { H5File } from '../hdf5.js';
import { sniff } from '../read.js';

/**
 * Refuses a Keras 3 `.keras` archive whose model was never compiled (no `compile_config` in
 * config.json, hence no `optimizer` group in model.weights.h5), with the reason; returns quietly for
 * anything else.
 *
 * Why it is refused (keras/src/saving/serialization_lib.py, saving_lib.py, trainers/trainer.py): Keras 3
 * restores optimizer variables only into `model.optimizer`, which exists after loading only when
 * `load_model` finds a non-empty `compile_config` and calls `compile_from_config(compile_config)`,
 * i.e. `compile(**compile_config)` then `optimizer.build(trainable_variables)`. So the state could be
 * loaded only if kerasopt also wrote a compile_config, and that holds the loss, metrics, loss_weights,
 * weighted_metrics, run_eagerly, steps_per_execution, jit_compile and auto_scale_loss of a compile()
 * that never happened: none is recorded in the file. Writing `loss: null` would load a model compiled
 * without a loss (fit fails), and compiling it again creates a fresh optimizer, dropping the state.
 */
export async function refuseNeverCompiledArchive(file: string): Promise<void> {
  if (!existsSync(file) || statSync(file).isDirectory()) return;
  if (sniff(file) === 'hdf5') return refuseBareWeightsH5(file);
  let config: unknown;
  const archive = await Archive.open(file);
  try {
    const entry = archive.entry('config.json');
    if (!entry) return;
    config = JSON.parse(await archive.text(entry));
  } catch {
    return; // not a Keras archive kerasopt can describe: the reader's own error stands
  } finally {
    archive.close();
  }
  if (typeof config !== 'object' || config === null) return;
  const cc = (config as Record<string, unknown>)['compile_config'];
  if (cc !== undefined && cc !== null && !(typeof cc === 'object' && Object.keys(cc).length === 0)) return;
  throw new KerasValueError(
    `${file} is a Keras 3 archive whose model was never compiled (config.json has no compile_config, model.weights.h5 no optimizer group). ` +
      'Keras 3 loads optimizer variables only into the optimizer that compile_from_config(compile_config) creates when the archive is loaded, ' +
      'so the state would need a compile_config too: its loss, metrics and other compile() arguments are not in the file, and kerasopt does not invent them ' +
      '(with loss None the model loads compiled without a loss, and compiling it again makes a fresh optimizer). ' +
      'Compile the model with its real loss and save it once (even before training: kerasopt then creates the slots in that archive), and transplant into that file',
  );
}

/**
 * A Keras 3 `.weights.h5` (a `layers` group, no `model_weights`) without an `optimizer` group: refused,
 * since the file records no Keras release and Keras 3.0-3.9 and 3.10+ order u_product differently
 * among the optimizer's variables.
 */
async function refuseBareWeightsH5(file: string): Promise<void> {
  let bare = false;
  const h = await H5File.open(file, 'r');
  try {
    bare = h.kind('layers') === 'group' && h.kind('model_weights') !== 'group' && h.kind('optimizer') !== 'group';
  } catch {
    return;
  } finally {
    h.closeQuietly();
  }
  if (!bare) return;
  throw new KerasValueError(
    `${file} is a Keras 3 .weights.h5 without an optimizer group. It records no Keras release, and Keras 3.0-3.9 and 3.10+ save the optimizer's variables in ` +
      'different orders (u_product before or after the slots), so kerasopt cannot tell which layout model.load_weights will expect. ' +
      'Transplant into a .keras archive of the model (its metadata.json names the release), or into a .weights.h5 saved from the compiled model',
  );
}
