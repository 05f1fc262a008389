import {
  ExponentialDecay,
  InverseTimeDecay,
  PiecewiseConstantDecay,
  PolynomialDecay,
  SCHEDULE_CLASSES,
  isLearningRateSchedule,
  type LearningRateSchedule,
} from '../optimizers/schedules.js';
import { LAYOUTS, type ConfigDialect } from './dialects.js';
import { lookupCustom, type CustomObjects } from './customObjects.js';
import { refusePrototypeKeys } from './document.js';
import { ConfigError, joinPath } from './errors.js';
import { copyFloatMark, markFloat } from './pyjson.js';
import { checkSchema } from './validate.js';

/** The Keras 3 module of built-in schedules, as serialize_keras_object writes it. */
export const SCHEDULES_MODULE = 'keras.optimizers.schedules';

/** The config each deserialized schedule was read from, so that its Python float marks survive. */
const sources = new WeakMap<LearningRateSchedule, Record<string, unknown>>();

/** The Keras 3 envelope fields of custom schedules as read, so they are written back as they were. */
const customEnvelopes = new WeakMap<LearningRateSchedule, { module: string | null; registered_name: string | null }>();

/**
 * Schedules read in Keras 3's module form. TF 2.13-2.15's tf.keras writes that form inside its
 * `{class_name, config}` optimizer (TF 2.11-2.12 wrote `{class_name, config}`), so a tf-2.11 config
 * keeps the form it was read in.
 */
const readInModuleForm = new WeakSet<LearningRateSchedule>();

/** Schedule config keys that Keras documents as Python floats. */
const FLOAT_SCHEDULE_KEYS = new Set(['initial_learning_rate', 'decay_rate', 'end_learning_rate', 'power']);

function plain(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(config)) {
    const v = config[k];
    out[k] = Array.isArray(v) ? [...v] : v;
    copyFloatMark(config, k, out, k);
    if (Array.isArray(v)) v.forEach((_, i) => copyFloatMark(v, i, out[k] as unknown[], i));
  }
  return out;
}

/**
 * A schedule as `dialect` serializes it: `{class_name, config}` for tf.keras, and Keras 3's
 * `{module: "keras.optimizers.schedules", class_name, config, registered_name: null}`.
 */
export function serializeSchedule(schedule: LearningRateSchedule, dialect: ConfigDialect): Record<string, unknown> {
  const config = plain(schedule.getConfig());
  const source = sources.get(schedule);
  for (const k of Object.keys(config)) {
    const v = config[k];
    if (typeof v === 'number' && FLOAT_SCHEDULE_KEYS.has(k)) markFloat(config, k);
    if (source && source[k] === v) copyFloatMark(source, k, config, k);
    const s = source?.[k];
    if (Array.isArray(v) && Array.isArray(s)) v.forEach((x, i) => s[i] === x && copyFloatMark(s, i, v, i));
  }
  const builtIn = Object.prototype.hasOwnProperty.call(SCHEDULE_CLASSES, schedule.className);
  if (LAYOUTS[dialect].envelope === 'class-config' && !readInModuleForm.has(schedule)) return { class_name: schedule.className, config };
  const custom = customEnvelopes.get(schedule);
  return {
    module: custom ? custom.module : builtIn ? SCHEDULES_MODULE : null,
    class_name: schedule.className,
    config,
    registered_name: custom ? custom.registered_name : builtIn ? null : schedule.className,
  };
}

/** Options of {@link deserializeSchedule}. */
export interface ScheduleReadOptions {
  readonly customObjects?: CustomObjects;
  /** The JSON path of the schedule in the document, for error messages. */
  readonly path?: string;
  readonly file?: string;
}

/**
 * Recreates a schedule from its serialized form (either envelope). Built-in classes are the four
 * kerasopt implements; any other name must be registered in `customObjects`.
 */
export function deserializeSchedule(value: unknown, options: ScheduleReadOptions = {}): LearningRateSchedule {
  const path = options.path ?? '';
  refusePrototypeKeys(value, path, options.file);
  checkSchema('schedule-envelope.schema.json', value, path, options.file, 'learning-rate schedule');
  const env = value as { module?: string | null; class_name: string; config: Record<string, unknown>; registered_name?: string | null };
  const name = env.registered_name ?? env.class_name;
  const custom = lookupCustom(options.customObjects, name) ?? lookupCustom(options.customObjects, env.class_name);
  if (custom) {
    const made = custom.fromConfig(plain(env.config));
    if (!isLearningRateSchedule(made)) throw new ConfigError(joinPath(path, 'class_name'), `customObjects['${name}'].fromConfig did not return a learning-rate schedule (call and getConfig)`, options.file);
    if ('module' in env || 'registered_name' in env) {
      customEnvelopes.set(made, { module: env.module ?? null, registered_name: env.registered_name ?? null });
      readInModuleForm.add(made);
    }
    return made;
  }
  const builtIn = env.registered_name == null && Object.prototype.hasOwnProperty.call(SCHEDULE_CLASSES, env.class_name);
  if (!builtIn) {
    throw new ConfigError(
      joinPath(path, 'class_name'),
      `unknown learning-rate schedule '${name}' at ${joinPath(path, 'class_name')}: kerasopt implements ${Object.keys(SCHEDULE_CLASSES).join(', ')}; register other classes in customObjects`,
      options.file,
    );
  }
  if (env.module != null && env.module !== SCHEDULES_MODULE) {
    throw new ConfigError(joinPath(path, 'module'), `schedule module '${env.module}' at ${joinPath(path, 'module')} is not ${SCHEDULES_MODULE}`, options.file);
  }
  const c = plain(env.config);
  const made = build(env.class_name, c);
  sources.set(made, c);
  if ('module' in env || 'registered_name' in env) readInModuleForm.add(made);
  return made;
}

function build(className: string, c: Record<string, unknown>): LearningRateSchedule {
  switch (className) {
    case 'ExponentialDecay':
      return new ExponentialDecay(c as never);
    case 'InverseTimeDecay':
      return new InverseTimeDecay(c as never);
    case 'PiecewiseConstantDecay':
      return new PiecewiseConstantDecay(c as never);
    default:
      return new PolynomialDecay(c as never);
  }
}
