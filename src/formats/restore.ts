import { KerasValueError } from '../errors.js';
import { Nadam, type NadamOptions } from '../optimizers/nadam/index.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import type { KerasOptimizerState } from './state.js';

/** Options of {@link optimizerFromState}. */
export interface RestoreOptions extends Pick<NadamOptions, 'backend' | 'onWarning'> {
  /**
   * What to do with a momentum-schedule scalar the file does not save (Keras 2.2's m_schedule,
   * TF 2.11-2.15's u_product):
   * - `'reconstruct'` (default): the state's reconstruction from the iteration count, i.e. the value
   *   uninterrupted training would hold, so the next steps continue the original trajectory;
   * - `'restart'`: 1, exactly what Keras itself does when it loads such a file, so the next steps
   *   match what Keras would compute after its own reload.
   */
  readonly unsavedSchedule?: 'reconstruct' | 'restart';
}

/**
 * Rebuilds a Nadam of the file's flavour from a read state: the model variables (with the file's
 * values) and an optimizer built on them whose weights equal the file's, bit for bit. For Keras 2.2
 * and TF 2.11-2.15 files the unsaved m_schedule / u_product is set as `options.unsavedSchedule` says.
 */
export function optimizerFromState(
  state: KerasOptimizerState,
  options: RestoreOptions = {},
): { optimizer: Nadam; variables: Variable[] } {
  const { unsavedSchedule = 'reconstruct', ...nadamOptions } = options;
  if (unsavedSchedule !== 'reconstruct' && unsavedSchedule !== 'restart') {
    throw new KerasValueError(`unsavedSchedule must be 'reconstruct' or 'restart', got ${JSON.stringify(unsavedSchedule)}`);
  }
  const optimizer = Nadam.fromConfig(state.config, { flavour: state.flavour, ...nadamOptions });
  const variables = state.variables.map((v) => new Variable(v.value.clone(), { name: v.name }));
  optimizer.build(variables);
  const stored = state.weights.map((w) => w.value);
  const weights = state.keras2Layout === '2.3' ? [stored[0]!, ...stored.slice(2)] : stored;
  if (weights.length !== optimizer.weights.length) {
    throw new KerasValueError(`${state.file}: the file holds ${state.weights.length} optimizer weights, a ${state.flavour} Nadam on ${variables.length} variables has ${optimizer.weights.length}`);
  }
  optimizer.setWeights(weights);
  // These flavours keep their schedule scalar outside `weights` (saved by Keras 2.3 only), so set it here.
  if (state.flavour === 'keras2' || state.flavour === 'tf-keras-new') {
    const restart = state.schedule.reconstructed && unsavedSchedule === 'restart';
    const schedule = optimizer.getWeight(state.schedule.name);
    schedule.assign(restart ? Tensor.scalar(1, schedule.dtype) : state.schedule.value);
  }
  return { optimizer, variables };
}
