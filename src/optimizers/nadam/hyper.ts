import { HyperparameterError, KerasValueError } from '../../errors.js';
import type { Flavour } from '../flavour.js';
import { isLearningRateSchedule, type LearningRateSchedule } from '../schedules.js';

/** Nadam's hyperparameters after aliases and defaults are resolved. */
export interface NadamHyperparameters {
  readonly learning_rate: number | LearningRateSchedule;
  readonly beta_1: number;
  readonly beta_2: number;
  readonly epsilon: number;
  /** Momentum-schedule exponent factor (tf-keras `decay`, keras2 `schedule_decay`); unused by keras3 and tf-keras-new. */
  readonly schedule_decay: number;
}

function finite(name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new HyperparameterError(name, `${name} must be a number, got ${typeof value === 'number' ? 'NaN' : JSON.stringify(value)}`);
  }
  return value;
}

/** Checks ranges that TF leaves to chance but that can only produce garbage: see README "Bad input". */
export function validateHyperparameters(h: NadamHyperparameters, flavour: Flavour): void {
  if (isLearningRateSchedule(h.learning_rate)) {
    if (flavour === 'tf-keras') {
      throw new HyperparameterError(
        'learning_rate',
        'The Nadam optimizer does not support tf.keras.optimizers.LearningRateSchedules as the learning rate.',
      );
    }
    if (flavour === 'keras2') throw new HyperparameterError('learning_rate', 'standalone Keras 2 Nadam takes a number as lr, not a schedule');
  } else {
    const lr = finite('learning_rate', h.learning_rate);
    if (lr < 0 || !Number.isFinite(lr)) throw new HyperparameterError('learning_rate', `learning_rate must be a finite number >= 0, got ${lr}`);
  }
  for (const key of ['beta_1', 'beta_2'] as const) {
    const b = finite(key, h[key]);
    if (!(b >= 0 && b < 1)) throw new HyperparameterError(key, `${key} must be in [0, 1), got ${b}`);
  }
  const eps = finite('epsilon', h.epsilon);
  if (eps < 0 || !Number.isFinite(eps)) throw new HyperparameterError('epsilon', `epsilon must be a finite number >= 0, got ${eps}`);
  const decay = finite('decay', h.schedule_decay);
  if (decay < 0 || !Number.isFinite(decay)) throw new HyperparameterError('decay', `decay cannot be less than 0: ${decay}`);
}

/** Checks one optional clipping value: absent, or a finite number > 0. */
export function validateClip(name: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const v = finite(name, value);
  if (!(v > 0) || !Number.isFinite(v)) throw new HyperparameterError(name, `${name} must be a finite number > 0, got ${v}`);
  return v;
}

/** Refuses a Keras 3 feature kerasopt does not implement, naming it, rather than ignoring it. */
export function refuseUnimplemented(name: string, value: unknown, inactive: unknown): void {
  if (value !== undefined && value !== inactive) {
    const allowed = inactive === undefined ? 'it must be null (unset)' : `only ${JSON.stringify(inactive)} is`;
    throw new KerasValueError(`${name}=${JSON.stringify(value)} is not supported by kerasopt's Nadam yet; ${allowed}`, 'UNSUPPORTED_FEATURE');
  }
}
