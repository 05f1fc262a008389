import type { ClipOptions } from '../clipping.js';
import type { Flavour } from '../flavour.js';
import { isLearningRateSchedule } from '../schedules.js';
import type { NadamHyperparameters } from './hyper.js';

/** Python's float() of a float32 variable: the double nearest the float32 value (0.002 -> 0.0020000000949949026). */
const f32 = Math.fround;

function clipEntries(clip: ClipOptions, keys: readonly (keyof ClipOptions)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) if (clip[k] !== null) out[k] = clip[k]!;
  return out;
}

/**
 * The Keras config of a Nadam, keys in the order each flavour's get_config writes them:
 * - tf-keras (TF 2.4-2.10): name, clipnorm/clipvalue/global_clipnorm when set, learning_rate, decay, beta_1, beta_2, epsilon.
 * - keras2 (2.2.x): clipnorm/clipvalue when set, then lr, beta_1, beta_2 (read back from float32 variables), epsilon, schedule_decay.
 * - keras3: name, learning_rate (float32 variable), weight_decay, clipnorm, global_clipnorm, clipvalue, use_ema,
 *   ema_momentum, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, beta_1, beta_2, epsilon.
 */
export function nadamConfig(
  flavour: Flavour,
  name: string,
  h: NadamHyperparameters,
  clip: ClipOptions,
  learningRate: number,
): Record<string, unknown> {
  const lr = isLearningRateSchedule(h.learning_rate)
    ? { class_name: h.learning_rate.className, config: h.learning_rate.getConfig() }
    : learningRate;
  if (flavour === 'keras2') {
    return {
      ...clipEntries(clip, ['clipnorm', 'clipvalue']),
      lr: f32(learningRate),
      beta_1: f32(h.beta_1),
      beta_2: f32(h.beta_2),
      epsilon: h.epsilon,
      schedule_decay: h.schedule_decay,
    };
  }
  if (flavour === 'keras3') {
    return {
      name,
      learning_rate: typeof lr === 'number' ? f32(lr) : lr,
      weight_decay: null,
      clipnorm: clip.clipnorm,
      global_clipnorm: clip.global_clipnorm,
      clipvalue: clip.clipvalue,
      use_ema: false,
      ema_momentum: 0.99,
      ema_overwrite_frequency: null,
      loss_scale_factor: null,
      gradient_accumulation_steps: null,
      beta_1: h.beta_1,
      beta_2: h.beta_2,
      epsilon: h.epsilon,
    };
  }
  return {
    name,
    ...clipEntries(clip, ['clipnorm', 'clipvalue', 'global_clipnorm']),
    learning_rate: lr,
    decay: h.schedule_decay,
    beta_1: h.beta_1,
    beta_2: h.beta_2,
    epsilon: h.epsilon,
  };
}
