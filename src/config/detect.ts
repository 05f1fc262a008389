import type { Flavour } from '../optimizers/flavour.js';
import { DEFAULT_DIALECT, type ConfigDialect } from './dialects.js';

/** What kerasopt concluded about who wrote a config, and why. */
export interface FlavourDetection {
  readonly flavour: Flavour;
  readonly dialect: ConfigDialect;
  /** The keys or envelope fields that decided it, in words. */
  readonly evidence: string;
  /** False when nothing in the config tells the flavours apart (the default was taken). */
  readonly certain: boolean;
}

const KERAS3_ONLY = ['weight_decay', 'use_ema', 'ema_momentum', 'ema_overwrite_frequency', 'loss_scale_factor', 'gradient_accumulation_steps'];
const TF211_ONLY = ['jit_compile', 'is_legacy_optimizer'];

function has(config: Readonly<Record<string, unknown>>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(config, key);
}

/** The dialect within a known flavour, from the keys only that flavour's releases differ by. */
export function dialectWithin(flavour: Flavour, config: Readonly<Record<string, unknown>>): ConfigDialect {
  if (flavour === 'keras2') return has(config, 'learning_rate') && !has(config, 'lr') ? 'keras-2.3' : 'keras-2.2';
  return DEFAULT_DIALECT[flavour];
}

/**
 * Tells which Keras wrote a Nadam config, from its keys (and from its envelope when given):
 * Keras 3 and TF 2.11+ write the EMA/weight-decay keys (TF 2.11+ also jit_compile, and is the tf-keras-new flavour), standalone Keras 2
 * writes lr or schedule_decay and no name, tf.keras optimizer_v2 writes name and decay.
 */
export function detectDialect(config: Readonly<Record<string, unknown>>, envelope?: Readonly<Record<string, unknown>>): FlavourDetection {
  const found = (keys: string[]): string[] => keys.filter((k) => has(config, k));
  const tf211 = found(TF211_ONLY);
  if (tf211.length > 0) return { flavour: 'tf-keras-new', dialect: 'tf-2.11', evidence: `keys ${tf211.join(', ')} (tf.keras new optimizers, TF 2.11-2.15)`, certain: true };
  if (envelope && envelope['module'] === 'keras.optimizers.legacy') {
    return { flavour: 'tf-keras', dialect: 'tf-2.4', evidence: "module 'keras.optimizers.legacy' (tf.keras optimizer_v2 in a TF 2.13+ archive)", certain: true };
  }
  if (envelope && (has(envelope, 'module') || has(envelope, 'registered_name'))) {
    return { flavour: 'keras3', dialect: 'keras-3', evidence: 'Keras 3 envelope (module, registered_name)', certain: true };
  }
  const k3 = found(KERAS3_ONLY);
  if (k3.length > 0) return { flavour: 'keras3', dialect: 'keras-3', evidence: `Keras 3 keys ${k3.join(', ')}`, certain: true };
  const k2 = found(['schedule_decay', 'lr']);
  if (k2.length > 0 && !has(config, 'name') && !has(config, 'decay')) {
    return { flavour: 'keras2', dialect: dialectWithin('keras2', config), evidence: `key ${k2.join(', ')} and no name (standalone Keras 2)`, certain: true };
  }
  const tf = found(['name', 'decay', 'global_clipnorm']);
  if (tf.length > 0) {
    if (config['name'] === 'nadam' && !has(config, 'decay')) {
      return { flavour: 'keras3', dialect: 'keras-3', evidence: "name 'nadam' (Keras 3's default name) and no decay", certain: false };
    }
    return { flavour: 'tf-keras', dialect: 'tf-2.4', evidence: `keys ${tf.join(', ')} (tf.keras optimizer_v2)`, certain: true };
  }
  if (has(config, 'learning_rate') && has(config, 'epsilon') && !has(config, 'name')) {
    return { flavour: 'keras2', dialect: 'keras-2.3', evidence: 'learning_rate and epsilon without name (standalone Keras 2.3)', certain: false };
  }
  return { flavour: 'tf-keras', dialect: 'tf-2.4', evidence: 'no key tells the flavours apart; took the default (tf-keras)', certain: false };
}

/** The flavour of a Nadam config (see {@link detectDialect} for the dialect and the evidence). */
export function detectFlavour(config: Readonly<Record<string, unknown>>, envelope?: Readonly<Record<string, unknown>>): Flavour {
  return detectDialect(config, envelope).flavour;
}
