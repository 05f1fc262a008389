import { DEFAULT_DIALECT, DIALECTS, FLOAT_KEYS, isDialect, LAYOUTS, layoutKeys, type ConfigDialect } from '../../config/dialects.js';
import { KerasValueError } from '../../errors.js';
import type { Flavour } from '../flavour.js';
import { markFloat } from '../../config/pyjson.js';
import { serializeSchedule } from '../../config/scheduleSerde.js';
import type { ClipOptions } from '../clipping.js';
import { isLearningRateSchedule } from '../schedules.js';
import type { NadamHyperparameters } from './hyper.js';

/** Python's float() of a float32 variable: the double nearest the float32 value (0.002 -> 0.0020000000949949026). */
const f32 = Math.fround;

/** Config values that change nothing in the math but that Keras writes back, so kerasopt keeps them. */
export interface NadamConfigExtras {
  readonly dialect: ConfigDialect;
  readonly ema_momentum: number;
  readonly ema_overwrite_frequency: number | null;
  readonly jit_compile: boolean;
  readonly is_legacy_optimizer: boolean;
}

/** The extras from constructor options (Keras defaults where absent). */
export function configExtras(o: {
  dialect?: ConfigDialect;
  ema_momentum?: number;
  ema_overwrite_frequency?: number | null;
  jit_compile?: boolean;
  is_legacy_optimizer?: boolean;
}, flavour: Flavour): NadamConfigExtras {
  if (o.dialect !== undefined && (!isDialect(o.dialect) || LAYOUTS[o.dialect].flavour !== flavour)) {
    throw new KerasValueError(`dialect '${String(o.dialect)}' is not one of the ${flavour} dialects (${DIALECTS.filter((d) => LAYOUTS[d].flavour === flavour).join(', ')})`);
  }
  return {
    dialect: o.dialect ?? DEFAULT_DIALECT[flavour],
    ema_momentum: o.ema_momentum ?? 0.99,
    ema_overwrite_frequency: o.ema_overwrite_frequency ?? null,
    jit_compile: o.jit_compile ?? true,
    is_legacy_optimizer: o.is_legacy_optimizer ?? false,
  };
}

/** What a Nadam's getConfig() reads. */
export interface NadamConfigState {
  readonly name: string;
  readonly hyper: NadamHyperparameters;
  readonly clip: ClipOptions;
  /** The learning rate now (a keras3 float32 variable's value, or the raw number). */
  readonly learningRate: number;
  /** Whether slots exist: tf.keras turns hyperparameters into float32 variables at the first step. */
  readonly built: boolean;
  readonly extras: NadamConfigExtras;
}

/**
 * The Keras config of a Nadam, keys in the order its dialect's get_config writes them (see
 * src/config/dialects.ts), with numbers as Keras produces them: values read back from float32
 * variables (tf.keras after the first step; Keras 2 always; Keras 3 learning_rate) are the double
 * nearest the float32, and float hyperparameters are marked as Python floats for {@link dumpsPython}.
 */
export function nadamConfig(s: NadamConfigState): Record<string, unknown> {
  const { dialect } = s.extras;
  const h = s.hyper;
  const schedule = isLearningRateSchedule(h.learning_rate) ? h.learning_rate : null;
  const tfHypers = LAYOUTS[dialect].flavour === 'tf-keras' && s.built;
  const asVariable = LAYOUTS[dialect].flavour === 'keras2' || tfHypers;
  const lr = schedule ? serializeSchedule(schedule, dialect) : LAYOUTS[dialect].flavour === 'tf-keras' && !s.built ? s.learningRate : f32(s.learningRate);
  const values: Record<string, unknown> = {
    name: s.name,
    clipnorm: s.clip.clipnorm,
    clipvalue: s.clip.clipvalue,
    global_clipnorm: s.clip.global_clipnorm,
    learning_rate: lr,
    lr,
    decay: h.schedule_decay,
    schedule_decay: h.schedule_decay,
    beta_1: asVariable ? f32(h.beta_1) : h.beta_1,
    beta_2: asVariable ? f32(h.beta_2) : h.beta_2,
    epsilon: h.epsilon,
    weight_decay: null,
    use_ema: false,
    ema_momentum: s.extras.ema_momentum,
    ema_overwrite_frequency: s.extras.ema_overwrite_frequency,
    jit_compile: s.extras.jit_compile,
    is_legacy_optimizer: s.extras.is_legacy_optimizer,
    loss_scale_factor: null,
    gradient_accumulation_steps: null,
  };
  const out: Record<string, unknown> = {};
  LAYOUTS[dialect].keys.forEach((spec, i) => {
    const key = layoutKeys(dialect)[i]!;
    const v = values[key];
    if (spec.endsWith('?') && (v === null || v === undefined)) return;
    out[key] = v;
    if (typeof v === 'number' && FLOAT_KEYS.has(key)) markFloat(out, key);
  });
  return out;
}
