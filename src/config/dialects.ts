import type { Flavour } from '../optimizers/flavour.js';

/**
 * The Keras releases whose Nadam `get_config()` kerasopt writes key for key. Each dialect belongs to
 * one flavour (the math); several releases share a flavour but not a key layout.
 * - `tf-2.0`: tf.keras optimizer_v2, TF 1.14 to 2.3 (no global_clipnorm).
 * - `tf-2.4`: tf.keras optimizer_v2, TF 2.4 to 2.10, and `tf.keras.optimizers.legacy.Nadam` after.
 * - `keras-2.2`: standalone Keras 2.2.x (`lr`).
 * - `keras-2.3`: standalone Keras 2.3.x (`learning_rate`).
 * - `tf-2.11`: the tf.keras "new" optimizers of TF 2.11 to 2.15 (`jit_compile`, `is_legacy_optimizer`).
 * - `keras-3`: Keras 3 (3.1 and later write every key listed here).
 */
export type ConfigDialect = 'tf-2.0' | 'tf-2.4' | 'keras-2.2' | 'keras-2.3' | 'tf-2.11' | 'keras-3';

/** Every dialect kerasopt reads and writes, oldest first within each flavour. */
export const DIALECTS: readonly ConfigDialect[] = ['tf-2.0', 'tf-2.4', 'keras-2.2', 'keras-2.3', 'tf-2.11', 'keras-3'];

/** Whether `x` names a {@link ConfigDialect}. */
export function isDialect(x: unknown): x is ConfigDialect {
  return typeof x === 'string' && (DIALECTS as readonly string[]).includes(x);
}

/** How one dialect writes a Nadam config. */
export interface DialectLayout {
  readonly flavour: Flavour;
  /** Human name of the Keras releases. */
  readonly writtenBy: string;
  /** Keys in the order get_config writes them; `?` keys are written only when set (not null). */
  readonly keys: readonly string[];
  /** Keys the constructor accepts besides `keys` (aliases and legacy spellings). */
  readonly accepted: readonly string[];
  /** The serialization envelope: tf.keras/Keras 2 `{class_name, config}`, Keras 3 adds module/registered_name. */
  readonly envelope: 'class-config' | 'module';
}

/** The key layout and envelope of every dialect, from each release's get_config (see README "Configs"). */
export const LAYOUTS: Readonly<Record<ConfigDialect, DialectLayout>> = {
  'tf-2.0': {
    flavour: 'tf-keras',
    writtenBy: 'tf.keras optimizer_v2, TensorFlow 1.14 to 2.3',
    keys: ['name', 'clipnorm?', 'clipvalue?', 'learning_rate', 'decay', 'beta_1', 'beta_2', 'epsilon'],
    accepted: ['lr', 'schedule_decay'],
    envelope: 'class-config',
  },
  'tf-2.4': {
    flavour: 'tf-keras',
    writtenBy: 'tf.keras optimizer_v2, TensorFlow 2.4 to 2.10 (and tf.keras.optimizers.legacy after)',
    keys: ['name', 'clipnorm?', 'clipvalue?', 'global_clipnorm?', 'learning_rate', 'decay', 'beta_1', 'beta_2', 'epsilon'],
    accepted: ['lr', 'schedule_decay'],
    envelope: 'class-config',
  },
  'keras-2.2': {
    flavour: 'keras2',
    writtenBy: 'standalone Keras 2.2.x',
    keys: ['clipnorm?', 'clipvalue?', 'lr', 'beta_1', 'beta_2', 'epsilon', 'schedule_decay'],
    accepted: ['learning_rate'],
    envelope: 'class-config',
  },
  'keras-2.3': {
    flavour: 'keras2',
    writtenBy: 'standalone Keras 2.3.x',
    keys: ['clipnorm?', 'clipvalue?', 'learning_rate', 'beta_1', 'beta_2', 'epsilon', 'schedule_decay'],
    accepted: ['lr'],
    envelope: 'class-config',
  },
  'tf-2.11': {
    flavour: 'tf-keras-new',
    writtenBy: 'tf.keras new optimizers, TensorFlow 2.11 to 2.15',
    keys: [
      'name', 'weight_decay', 'clipnorm', 'global_clipnorm', 'clipvalue', 'use_ema', 'ema_momentum',
      'ema_overwrite_frequency', 'jit_compile', 'is_legacy_optimizer', 'learning_rate', 'beta_1', 'beta_2', 'epsilon',
    ],
    // TF 2.11-2.15 pop `lr`, warn, and ignore it (the learning rate stays learning_rate's).
    accepted: ['lr'],
    envelope: 'class-config',
  },
  'keras-3': {
    flavour: 'keras3',
    writtenBy: 'Keras 3',
    keys: [
      'name', 'learning_rate', 'weight_decay', 'clipnorm', 'global_clipnorm', 'clipvalue', 'use_ema', 'ema_momentum',
      'ema_overwrite_frequency', 'loss_scale_factor', 'gradient_accumulation_steps', 'beta_1', 'beta_2', 'epsilon',
    ],
    accepted: ['decay'],
    envelope: 'module',
  },
};

/** The dialect written for a flavour when nothing says otherwise. */
export const DEFAULT_DIALECT: Readonly<Record<Flavour, ConfigDialect>> = {
  'tf-keras': 'tf-2.4',
  keras2: 'keras-2.2',
  keras3: 'keras-3',
  'tf-keras-new': 'tf-2.11',
};

/** The plain key names of a layout (without the `?` of optional keys). */
export function layoutKeys(dialect: ConfigDialect): string[] {
  return LAYOUTS[dialect].keys.map((k) => k.replace(/\?$/, ''));
}

/** Every key the dialect's Nadam accepts in a config. */
export function acceptedKeys(dialect: ConfigDialect): Set<string> {
  return new Set([...layoutKeys(dialect), ...LAYOUTS[dialect].accepted]);
}

/** Keys whose values are Python floats in every dialect (written `1.0`, never `1`). */
export const FLOAT_KEYS: ReadonlySet<string> = new Set([
  'learning_rate', 'lr', 'decay', 'schedule_decay', 'beta_1', 'beta_2', 'epsilon', 'clipnorm', 'clipvalue',
  'global_clipnorm', 'weight_decay', 'ema_momentum', 'loss_scale_factor',
]);
