import type { OptimizerDescriptor, SlotSpec } from './types.js';

/**
 * tf.keras optimizer_v2, TF 1.14-2.10 (tensorflow/python/keras/optimizer_v2/*.py to TF 2.5, then
 * keras-team/keras keras/optimizer_v2/*.py 2.6-2.10). `weights` is [iter, extras..., slots] where each
 * `_create_slots` loop adds one slot name for every variable (blocked; Ftrl's two per variable); a slot is saved as
 * '<optimizer>/<variable>/<slot>:0' and tied by that name. Hyperparameters (learning_rate, beta_1,
 * decay, ...) are variables too, but outside `weights`: h5 files do not hold them, checkpoints do.
 */
const V2 = ['2.2.4', '2.11.0'] as const;
const SRC = 'tensorflow/tensorflow r2.4 tensorflow/python/keras/optimizer_v2; keras-team/keras 2.6-2.10 keras/optimizer_v2';
const NOT_SAVED = ['hyperparameter variables (learning_rate, decay, ...): the config holds them'];

function row(className: string, slots: readonly (readonly SlotSpec[])[], config: Record<string, unknown>, extras: string[] = []): OptimizerDescriptor {
  return { className, flavour: 'tf-keras', versions: V2, savesIterations: true, extras, slotGroups: slots, config: { name: className, ...config }, notSaved: NOT_SAVED, source: `${SRC}/${className.toLowerCase()}.py` };
}

/** Slots that only ever hold non-negative values (sums or averages of squares, max norms). */
const NON_NEGATIVE = new Set(['v', 'vhat', 'rms', 'accumulator', 'accum_grad', 'accum_var']);
const one = (name: string, when?: SlotSpec['when']): SlotSpec[] => [{ name, ...(when ? { when } : {}), ...(NON_NEGATIVE.has(name) ? { nonNegative: true } : {}) }];

export const TF_KERAS: readonly OptimizerDescriptor[] = [
  row('SGD', [one('momentum', { key: 'momentum', is: 'nonzero', default: 0.0 })], { learning_rate: 0.01, decay: 0.0, momentum: 0.0, nesterov: false }),
  row('RMSprop', [one('rms'), one('momentum', { key: 'momentum', is: 'nonzero', default: 0.0 }), one('mg', { key: 'centered', is: 'truthy', default: false })], { learning_rate: 0.001, decay: 0.0, rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }),
  row('Adagrad', [one('accumulator')], { learning_rate: 0.001, decay: 0.0, initial_accumulator_value: 0.1, epsilon: 1e-7 }),
  row('Adadelta', [one('accum_grad'), one('accum_var')], { learning_rate: 0.001, decay: 0.0, rho: 0.95, epsilon: 1e-7 }),
  row('Adam', [one('m'), one('v'), one('vhat', { key: 'amsgrad', is: 'truthy', default: false })], { learning_rate: 0.001, decay: 0.0, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }),
  row('Adamax', [one('m'), one('v')], { learning_rate: 0.001, decay: 0.0, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }),
  row('Nadam', [one('m'), one('v')], { learning_rate: 0.001, decay: 0.0, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, ['momentum_cache']),
  row('Ftrl', [[{ name: 'accumulator', nonNegative: true }, { name: 'linear' }]], { learning_rate: 0.001, decay: 0.0, initial_accumulator_value: 0.1, learning_rate_power: -0.5, l1_regularization_strength: 0.0, l2_regularization_strength: 0.0, l2_shrinkage_regularization_strength: 0.0, beta: 0.0 }),
];
