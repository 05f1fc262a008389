import type { OptimizerDescriptor, SlotSpec } from './types.js';

/**
 * The TF 2.11-2.15 tf.keras optimizers (keras-team/keras keras/optimizers/*.py 2.11-2.15,
 * keras-team/tf-keras tf_keras/optimizers). `variables` is [iteration, slots] in build() order: one
 * loop over the variables creating each of a group's slots in turn (interleaved), conditional slots in
 * their own later loop. A slot is saved in .h5 as '<optimizer>/<slot>/<variable>:0' (tied by name),
 * in .keras / .weights.h5 by position. The learning_rate variable is not among `variables`.
 */
const NEW = ['2.11.0', '2.16.0'] as const;
const SRC = 'keras-team/keras 2.11-2.15 keras/optimizers';
const BASE = { weight_decay: null, clipnorm: null, global_clipnorm: null, clipvalue: null, use_ema: false, ema_momentum: 0.99, ema_overwrite_frequency: null, jit_compile: true, is_legacy_optimizer: false };

/** The base build() makes an EMA copy of each variable first, with use_ema. */
const BASE_SLOTS: readonly SlotSpec[] = [{ name: 'average', when: { key: 'use_ema', is: 'truthy', default: false } }];

function row(className: string, slots: readonly (readonly SlotSpec[])[], config: Record<string, unknown>, extra: Partial<OptimizerDescriptor> = {}): OptimizerDescriptor {
  return {
    className, flavour: 'tf-keras-new', versions: NEW, savesIterations: true, extras: [], slotGroups: [BASE_SLOTS, ...slots],
    config: { name: className, ...BASE, ...config }, notSaved: ['the learning_rate variable'], source: `${SRC}/${className.toLowerCase()}.py`, ...extra,
  };
}

/** Slots that only ever hold non-negative values (sums or averages of squares, max norms). */
const NON_NEGATIVE = new Set(['v', 'vhat', 'velocity', 'velocity_hat', 'accumulator', 'accumulated_grad', 'accumulated_delta_var', 'u', 'norm', 'r', 'c']);
const s = (name: string, when?: SlotSpec['when']): SlotSpec => ({ name, ...(when ? { when } : {}), ...(NON_NEGATIVE.has(name) ? { nonNegative: true } : {}) });
const AMSGRAD = { key: 'amsgrad', is: 'truthy', default: false } as const;

export const TF_KERAS_NEW: readonly OptimizerDescriptor[] = [
  row('SGD', [[s('m')]], { learning_rate: 0.01, momentum: 0.0, nesterov: false }),
  row('RMSprop', [[s('velocity')], [s('momentum', { key: 'momentum', is: 'nonzero', default: 0.0 })], [s('average_gradient', { key: 'centered', is: 'truthy', default: false })]], { learning_rate: 0.001, rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false, ema_overwrite_frequency: 100 }),
  row('Adagrad', [[s('accumulator')]], { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7 }),
  row('Adadelta', [[s('accumulated_grad'), s('accumulated_delta_var')]], { learning_rate: 0.001, rho: 0.95, epsilon: 1e-7 }),
  row('Adam', [[s('m'), s('v')], [s('vhat', AMSGRAD)]], { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }),
  row('AdamW', [[s('m'), s('v')], [s('vhat', AMSGRAD)]], { learning_rate: 0.001, weight_decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }),
  row('Adamax', [[s('m'), s('u')]], { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }),
  row('Nadam', [[s('m'), s('v')]], { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, { notSaved: ['the learning_rate variable', 'u_product (a tf.Variable outside `variables`)'] }),
  row('Ftrl', [[s('accumulator'), s('linear')]], { learning_rate: 0.001, learning_rate_power: -0.5, initial_accumulator_value: 0.1, l1_regularization_strength: 0.0, l2_regularization_strength: 0.0, l2_shrinkage_regularization_strength: 0.0, beta: 0.0 }),
  row('Lion', [[s('m')]], { learning_rate: 0.0001, beta_1: 0.9, beta_2: 0.99 }, { versions: ['2.13.0', '2.16.0'] }),
  row('Adafactor', [[{ name: 'r', shape: 'row-or-none', nonNegative: true }, { name: 'c', shape: 'col-or-none', nonNegative: true }, s('v')]], { learning_rate: 0.001, beta_2_decay: -0.8, epsilon_1: 1e-30, epsilon_2: 0.001, clip_threshold: 1.0, relative_step: true }, { versions: ['2.13.0', '2.16.0'] }),
];
