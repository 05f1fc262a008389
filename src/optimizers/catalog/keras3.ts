import type { OptimizerDescriptor, SlotSpec } from './types.js';

/**
 * Keras 3 (keras-team/keras keras/src/optimizers/*.py). `variables` is [iterations, learning_rate
 * (absent with a schedule), extras, slots in build() order]; save_own_variables stores them as
 * optimizer/vars/0..N, read back by position. Nadam's u_product sits before the slots in 3.0-3.9 and
 * after them from 3.10 (a layout row, src/formats/layouts.ts, not a descriptor, says where).
 */
const K3 = ['3.0.0', null] as const;
const SRC = 'keras-team/keras 3.x keras/src/optimizers';
const BASE = { weight_decay: null, clipnorm: null, global_clipnorm: null, clipvalue: null, use_ema: false, ema_momentum: 0.99, ema_overwrite_frequency: null, loss_scale_factor: null, gradient_accumulation_steps: null };

/**
 * What the base build() adds before any optimizer's own slots: an EMA copy per variable with use_ema,
 * a gradient accumulator with gradient_accumulation_steps, interleaved per variable (3.10+ blocks them
 * when both are on: a rare case, read as interleaved).
 */
const BASE_SLOTS: readonly SlotSpec[] = [
  { name: 'average', when: { key: 'use_ema', is: 'truthy', default: false } },
  { name: 'gradient_accumulator', when: { key: 'gradient_accumulation_steps', is: 'nonzero', default: null } },
];

function row(className: string, slots: readonly (readonly SlotSpec[])[], config: Record<string, unknown>, extra: Partial<OptimizerDescriptor> = {}): OptimizerDescriptor {
  return {
    className, flavour: 'keras3', versions: K3, savesIterations: true, extras: [], slotGroups: [BASE_SLOTS, ...slots],
    config: { name: className.toLowerCase(), learning_rate: 0.001, ...BASE, ...config }, source: `${SRC}/${className.toLowerCase()}.py`, ...extra,
  };
}

/** Slots that only ever hold non-negative values (sums or averages of squares, max norms). */
const NON_NEGATIVE = new Set(['v', 'vhat', 'velocity', 'velocity_hat', 'accumulator', 'accumulated_grad', 'accumulated_delta_var', 'u', 'norm', 'r', 'c']);
const s = (name: string, when?: SlotSpec['when']): SlotSpec => ({ name, ...(when ? { when } : {}), ...(NON_NEGATIVE.has(name) ? { nonNegative: true } : {}) });
const AMSGRAD = { key: 'amsgrad', is: 'truthy', default: false } as const;

export const KERAS3: readonly OptimizerDescriptor[] = [
  row('SGD', [[s('momentum', { key: 'momentum', is: 'nonzero', default: 0.0 })]], { learning_rate: 0.01, momentum: 0.0, nesterov: false }),
  row('RMSprop', [[s('velocity')], [s('momentum', { key: 'momentum', is: 'nonzero', default: 0.0 })], [s('average_gradient', { key: 'centered', is: 'truthy', default: false })]], { rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }),
  row('Adagrad', [[s('accumulator')]], { initial_accumulator_value: 0.1, epsilon: 1e-7 }),
  row('Adadelta', [[s('accumulated_grad'), s('accumulated_delta_var')]], { rho: 0.95, epsilon: 1e-7 }),
  row('Adam', [[s('momentum'), s('velocity')], [s('velocity_hat', AMSGRAD)]], { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }),
  row('AdamW', [[s('momentum'), s('velocity')], [s('velocity_hat', AMSGRAD)]], { weight_decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }),
  row('Adamax', [[s('momentum'), s('norm')]], { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }),
  row('Nadam', [[s('momentum'), s('velocity')]], { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, { extras: ['u_product'] }),
  row('Ftrl', [[s('accumulator'), s('linear')]], { learning_rate_power: -0.5, initial_accumulator_value: 0.1, l1_regularization_strength: 0.0, l2_regularization_strength: 0.0, l2_shrinkage_regularization_strength: 0.0, beta: 0.0 }),
  row('Lion', [[s('momentum')]], { beta_1: 0.9, beta_2: 0.99 }),
  row('Lamb', [[s('momentum'), s('velocity')]], { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }),
  row('Adafactor', [[{ name: 'r', shape: 'row', nonNegative: true }, { name: 'c', shape: 'col', nonNegative: true }, s('velocity')]], { beta_2_decay: -0.8, epsilon_1: 1e-30, epsilon_2: 0.001, clip_threshold: 1.0, relative_step: true }),
];

/** Keras 3 optimizers kerasopt does not describe yet, and why (docs/optimizers.md). */
export const KERAS3_NOT_DESCRIBED: Readonly<Record<string, string>> = {
  LossScaleOptimizer: 'a wrapper: its own iteration, learning_rate, step_counter and dynamic_scale, then the inner optimizer\'s variables',
  Muon: 'whether a variable gets a velocity slot depends on its rank and path (the AdamW fallback)',
  ScheduleFreeAdamW: 'newest Keras only; not read from a released source yet',
  ScheduleFreeSGD: 'newest Keras only; not read from a released source yet',
};
