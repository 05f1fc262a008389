import type { OptimizerDescriptor, SlotSpec } from './types.js';

/**
 * Standalone Keras 2 (keras/optimizers.py) and TF 1.x's tf.keras v1 optimizers (2.1.x-tf, 2.2.4-tf):
 * `self.weights`, set in get_updates, is what model.save writes as optimizer_weights. Slot lists are
 * blocked (all first slots, then all second slots), tied to variables by position; the names are
 * Keras's K.zeros names ('Variable_3'; Keras 2.3 'moment_0', 'accumulator_0', ...), which carry no
 * variable name. Sources: keras-team/keras 2.0.8, 2.2.4, 2.3.1 keras/optimizers.py; tensorflow r1.13
 * tensorflow/python/keras/optimizers.py.
 */
const K20 = ['2.0.0', '2.1.0'] as const;
const K21_22 = ['2.1.0', '2.3.0'] as const;
/** Adam's amsgrad (and its always-saved vhats) arrived in Keras 2.1.3 (keras-team/keras PR #8693). */
const K213_22 = ['2.1.3', '2.3.0'] as const;
const K23 = ['2.3.0', '2.4.0'] as const;
const SRC20 = 'keras-team/keras 2.0.8 keras/optimizers.py';
const SRC22 = 'keras-team/keras 2.2.4 keras/optimizers.py; tensorflow r1.13 tensorflow/python/keras/optimizers.py';
const SRC23 = 'keras-team/keras 2.3.1 keras/optimizers.py';

const lr = (v: number, key: 'lr' | 'learning_rate' = 'lr') => ({ [key]: v });

function row(className: string, versions: readonly [string, string | null], savesIterations: boolean, slots: OptimizerDescriptor['slotGroups'], config: Record<string, unknown>, source: string, extra: Partial<OptimizerDescriptor> = {}): OptimizerDescriptor {
  return { className, flavour: 'keras2', versions, savesIterations, extras: [], slotGroups: slots, config, source, ...(versions === K23 ? { aliases: { lr: 'learning_rate' } } : {}), ...extra };
}

/** Slots that only ever hold non-negative values (sums or averages of squares, max norms). */
const NON_NEGATIVE = new Set(['v', 'vhat', 'accumulator', 'delta_accumulator', 'u']);
const one = (name: string): SlotSpec[] => [{ name, ...(NON_NEGATIVE.has(name) ? { nonNegative: true } : {}) }];
/** Adam's vhats: real ones with amsgrad, else K.zeros(1) placeholders, saved either way. */
const AMSGRAD: SlotSpec['when'] = { key: 'amsgrad', is: 'truthy', default: false };
const NO_AMSGRAD: SlotSpec['when'] = { key: 'amsgrad', is: 'falsy', default: false };
const PLACEHOLDER_VHATS: SlotSpec[] = [{ name: 'vhat', shape: 'one', when: NO_AMSGRAD }];
const AMSGRAD_VHATS: SlotSpec[] = [{ name: 'vhat', when: AMSGRAD }];

export const KERAS2: readonly OptimizerDescriptor[] = [
  // 2.0.x: iterations is a float variable; RMSprop, Adagrad and Adadelta keep it out of self.weights
  row('SGD', K20, true, [one('moment')], { ...lr(0.01), momentum: 0.0, decay: 0.0, nesterov: false }, SRC20, { notSaved: ['moments are created (zeros) even when momentum is 0'] }),
  row('RMSprop', K20, false, [one('accumulator')], { ...lr(0.001), rho: 0.9, decay: 0.0, epsilon: 1e-8 }, SRC20, { notSaved: ['iterations (used by decay) is not in self.weights'] }),
  row('Adagrad', K20, false, [one('accumulator')], { ...lr(0.01), epsilon: 1e-8, decay: 0.0 }, SRC20, { notSaved: ['iterations'] }),
  row('Adadelta', K20, false, [one('accumulator'), one('delta_accumulator')], { ...lr(1.0), rho: 0.95, decay: 0.0, epsilon: 1e-8 }, SRC20, { notSaved: ['iterations'] }),
  row('Adam', K20, true, [one('m'), one('v')], { ...lr(0.001), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-8 }, SRC20),
  row('Adamax', K20, true, [one('m'), one('u')], { ...lr(0.002), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-8 }, SRC20),
  row('Nadam', K20, true, [one('m'), one('v')], { ...lr(0.002), beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, schedule_decay: 0.004 }, SRC20, { notSaved: ['m_schedule (reconstructed from iterations)'] }),
  // 2.1.0-2.2.5 and tf.keras v1: int64 iterations; Adam gains amsgrad and saves vhats always ([1] placeholders without it)
  row('SGD', K21_22, true, [one('moment')], { ...lr(0.01), momentum: 0.0, decay: 0.0, nesterov: false }, SRC22),
  row('RMSprop', K21_22, false, [one('accumulator')], { ...lr(0.001), rho: 0.9, decay: 0.0, epsilon: 1e-7 }, SRC22, { notSaved: ['iterations'] }),
  row('Adagrad', K21_22, false, [one('accumulator')], { ...lr(0.01), decay: 0.0, epsilon: 1e-7 }, SRC22, { notSaved: ['iterations'] }),
  row('Adadelta', K21_22, false, [one('accumulator'), one('delta_accumulator')], { ...lr(1.0), rho: 0.95, decay: 0.0, epsilon: 1e-7 }, SRC22, { notSaved: ['iterations'] }),
  row('Adam', ['2.1.0', '2.1.3'], true, [one('m'), one('v')], { ...lr(0.001), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-8 }, SRC22),
  row('Adam', K213_22, true, [one('m'), one('v'), PLACEHOLDER_VHATS, AMSGRAD_VHATS], { ...lr(0.001), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-7, amsgrad: false }, SRC22),
  row('Adamax', K21_22, true, [one('m'), one('u')], { ...lr(0.002), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-7 }, SRC22),
  row('Nadam', K21_22, true, [one('m'), one('v')], { ...lr(0.002), beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004 }, SRC22, { notSaved: ['m_schedule (reconstructed from iterations)'] }),
  // 2.3.x: every optimizer saves iterations first; names moment_i, accumulator_i, ...; learning_rate in get_config
  row('SGD', K23, true, [one('moment')], { ...lr(0.01, 'learning_rate'), momentum: 0.0, decay: 0.0, nesterov: false }, SRC23),
  row('RMSprop', K23, true, [one('accumulator')], { ...lr(0.001, 'learning_rate'), rho: 0.9, decay: 0.0, epsilon: 1e-7 }, SRC23),
  row('Adagrad', K23, true, [one('accumulator')], { ...lr(0.01, 'learning_rate'), decay: 0.0, epsilon: 1e-7 }, SRC23),
  row('Adadelta', K23, true, [one('accumulator'), one('delta_accumulator')], { ...lr(1.0, 'learning_rate'), rho: 0.95, decay: 0.0, epsilon: 1e-7 }, SRC23),
  row('Adam', K23, true, [one('m'), one('v'), PLACEHOLDER_VHATS, AMSGRAD_VHATS], { ...lr(0.001, 'learning_rate'), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-7, amsgrad: false }, SRC23),
  row('Adamax', K23, true, [one('m'), one('u')], { ...lr(0.002, 'learning_rate'), beta_1: 0.9, beta_2: 0.999, decay: 0.0, epsilon: 1e-7 }, SRC23),
  row('Nadam', K23, true, [one('m'), one('v')], { ...lr(0.002, 'learning_rate'), beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004 }, SRC23, { extras: ['m_schedule'] }),
];
