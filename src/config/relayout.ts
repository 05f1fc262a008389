import { KerasValueError } from '../errors.js';
import { LAYOUTS, layoutKeys, type ConfigDialect } from './dialects.js';
import { copyFloatMark } from './pyjson.js';

/** Values Keras writes for keys the source dialect does not have (all inactive). */
const INACTIVE: Readonly<Record<string, unknown>> = {
  weight_decay: null,
  clipnorm: null,
  global_clipnorm: null,
  clipvalue: null,
  use_ema: false,
  ema_momentum: 0.99,
  ema_overwrite_frequency: null,
  loss_scale_factor: null,
  gradient_accumulation_steps: null,
  jit_compile: true,
  is_legacy_optimizer: false,
};

/** Keys whose value changes no number, so dropping them loses nothing. */
const HARMLESS = new Set(['jit_compile', 'is_legacy_optimizer', 'ema_momentum', 'ema_overwrite_frequency', 'use_ema']);

/**
 * Rewrites a config from one release's layout to another's of the same flavour (e.g. Keras 2.2's
 * `lr` to Keras 2.3's `learning_rate`, Keras 3 to TF 2.11's keys). Nothing about the optimizer's
 * behaviour changes; a set value the target cannot hold (global_clipnorm before TF 2.4) is an error.
 */
export function relayout(config: Readonly<Record<string, unknown>>, from: ConfigDialect, to: ConfigDialect): Record<string, unknown> {
  if (LAYOUTS[from].flavour !== LAYOUTS[to].flavour) throw new KerasValueError(`relayout works within a flavour; ${from} and ${to} differ (use convertConfig)`);
  const source: Record<string, unknown> = { ...config };
  for (const k of Object.keys(config)) copyFloatMark(config, k, source, k);
  for (const [a, b] of [['lr', 'learning_rate'], ['learning_rate', 'lr'], ['schedule_decay', 'decay'], ['decay', 'schedule_decay']] as const) {
    if (source[a] === undefined && config[b] !== undefined) {
      source[a] = config[b];
      copyFloatMark(config, b, source, a);
    }
  }
  const target = layoutKeys(to);
  const out: Record<string, unknown> = {};
  LAYOUTS[to].keys.forEach((spec, i) => {
    const key = target[i]!;
    const v = source[key] === undefined ? INACTIVE[key] : source[key];
    if (v === undefined || (spec.endsWith('?') && v === null)) return;
    out[key] = v;
    copyFloatMark(source, key, out, key);
  });
  const aliases = new Set(['lr', 'learning_rate', 'decay', 'schedule_decay']);
  for (const key of Object.keys(config)) {
    if (key in out || aliases.has(key) || HARMLESS.has(key)) continue;
    const v = config[key];
    if (v !== null && v !== INACTIVE[key]) {
      throw new KerasValueError(`${key}=${JSON.stringify(v)} cannot be written in the ${to} layout (${LAYOUTS[to].writtenBy} has no ${key})`);
    }
  }
  return out;
}
