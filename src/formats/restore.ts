import { KerasValueError } from '../errors.js';
import { Nadam, type NadamOptions } from '../optimizers/nadam/index.js';
import { Variable } from '../tensor/variable.js';
import type { KerasOptimizerState } from './state.js';

/**
 * Rebuilds a Nadam of the file's flavour from a read state: the model variables (with the file's
 * values) and an optimizer built on them whose weights equal the file's, bit for bit. For Keras 2.2
 * and TF 2.11-2.15 files the unsaved m_schedule / u_product is set to the state's reconstruction.
 */
export function optimizerFromState(
  state: KerasOptimizerState,
  options: Pick<NadamOptions, 'backend' | 'onWarning'> = {},
): { optimizer: Nadam; variables: Variable[] } {
  const optimizer = Nadam.fromConfig(state.config, { flavour: state.flavour, ...options });
  const variables = state.variables.map((v) => new Variable(v.value.clone(), { name: v.name }));
  optimizer.build(variables);
  const stored = state.weights.map((w) => w.value);
  const weights = state.keras2Layout === '2.3' ? [stored[0]!, ...stored.slice(2)] : stored;
  if (weights.length !== optimizer.weights.length) {
    throw new KerasValueError(`${state.file}: the file holds ${state.weights.length} optimizer weights, a ${state.flavour} Nadam on ${variables.length} variables has ${optimizer.weights.length}`);
  }
  optimizer.setWeights(weights);
  if (state.flavour === 'keras2') optimizer.getWeight('m_schedule').assign(state.schedule.value);
  if (state.flavour === 'tf-keras-new') optimizer.getWeight('u_product').assign(state.schedule.value);
  return { optimizer, variables };
}
