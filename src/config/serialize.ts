import type { Backend } from '../backends/backend.js';
import { HyperparameterError, KerasoptError, KerasValueError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import { Nadam } from '../optimizers/nadam/index.js';
import { lookupCustom, type CustomObjects } from './customObjects.js';
import { LAYOUTS, type ConfigDialect } from './dialects.js';
import { locateOptimizer, type LocatedOptimizer } from './document.js';
import { ConfigError, joinPath } from './errors.js';
import { nadamOptionsFromConfig } from './fromConfig.js';
import { isPythonFloat, parsePythonJson, unmarkFloat } from './pyjson.js';
import { relayout } from './relayout.js';

/** The config each deserialized Nadam was read from, for the Python ints Keras writes back as given. */
const readFrom = new WeakMap<Nadam, Readonly<Record<string, unknown>>>();

/** The module envelope a deserialized Nadam was read in when its dialect writes `{class_name, config}`. */
const readInModule = new WeakMap<Nadam, { module: string; registered_name: string | null }>();
/** Optimizers read from an envelope whose class_name was TF 2.11-2.15's registered 'Custom>Nadam'. */
const readAsCustom = new WeakSet<Nadam>();

/** Where TF 2.11+ keeps the optimizer_v2 Nadam (tf.keras.optimizers.legacy); its .keras archives name it. */
export const LEGACY_OPTIMIZERS_MODULE = 'keras.optimizers.legacy';

/**
 * Keys each release writes back as the Python value it was given (so `clipnorm=1` stays `1`), with the
 * source keys they come from; the others go through float() or a float32 variable. tf.keras's
 * learning_rate and betas are as given only until the first step makes them variables.
 */
const AS_GIVEN: Readonly<Record<ConfigDialect, Readonly<Record<string, readonly string[]>>>> = (() => {
  const clip = { clipnorm: ['clipnorm'], clipvalue: ['clipvalue'], epsilon: ['epsilon'] };
  const tf = { ...clip, decay: ['schedule_decay'] };
  const keras2 = { ...clip, schedule_decay: ['schedule_decay'] };
  const keras3 = { ...clip, global_clipnorm: ['global_clipnorm'], ema_momentum: ['ema_momentum'], beta_1: ['beta_1'], beta_2: ['beta_2'] };
  return { 'tf-2.0': tf, 'tf-2.4': { ...tf, global_clipnorm: ['global_clipnorm'] }, 'keras-2.2': keras2, 'keras-2.3': keras2, 'tf-2.11': keras3, 'keras-3': keras3 };
})();
const TF_HYPERS: Readonly<Record<string, readonly string[]>> = { learning_rate: ['lr', 'learning_rate'], beta_1: ['beta_1'], beta_2: ['beta_2'] };

/** Writes as Python ints the values Keras passes through unchanged that the source config held as ints. */
function keepPythonInts(optimizer: Nadam, config: Record<string, unknown>, dialect: ConfigDialect): void {
  const source = readFrom.get(optimizer);
  if (!source) return;
  const keys = { ...AS_GIVEN[dialect], ...(LAYOUTS[dialect].flavour === 'tf-keras' && !optimizer.built ? TF_HYPERS : {}) };
  for (const [key, from] of Object.entries(keys)) {
    const sourceKey = from.find((k) => Object.prototype.hasOwnProperty.call(source, k));
    const v = sourceKey === undefined ? undefined : source[sourceKey];
    if (typeof v === 'number' && config[key] === v && !isPythonFloat(source, sourceKey!, v)) unmarkFloat(config, key);
  }
}

/** Base keys later Keras 3 releases added (unset they change nothing): early 3.x configs lack them. */
const LATER_KERAS3_KEYS = ['loss_scale_factor', 'gradient_accumulation_steps'];

/** A deserialized early Keras 3 config is written back without the unset keys its release did not write. */
function dropKeysTheSourceReleaseLacked(optimizer: Nadam, config: Record<string, unknown>, dialect: ConfigDialect): void {
  const source = readFrom.get(optimizer);
  if (!source || dialect !== 'keras-3' || optimizer.dialect !== 'keras-3') return;
  for (const key of LATER_KERAS3_KEYS) if (!Object.prototype.hasOwnProperty.call(source, key) && config[key] === null) delete config[key];
}

/** The Keras 3 module of built-in optimizers. */
export const OPTIMIZERS_MODULE = 'keras.optimizers';

/** Optimizer classes of Keras (all versions), lower-cased; kerasopt implements only Nadam. */
const KERAS_OPTIMIZERS = new Set([
  'sgd', 'rmsprop', 'adagrad', 'adadelta', 'adam', 'adamax', 'adamw', 'ftrl', 'lion', 'adafactor', 'muon',
  'lossscaleoptimizer', 'lossscaleoptimizerv3', 'tfoptimizer', 'experimentaladam', 'experimentalsgd',
  'experimentaladagrad', 'experimentaladadelta', 'schedulefreeadamw', 'schedulefreesgd', 'multioptimizer',
]);

/** Class names Keras resolves to its Nadam: any case of "nadam" (Keras lower-cases built-ins), and TF 2.11+'s registered "Custom>Nadam". */
export function isNadamClassName(name: string): boolean {
  return name.toLowerCase() === 'nadam' || name === 'Custom>Nadam';
}

/** Options of {@link serialize}. */
export interface SerializeOptions {
  /** Must be the optimizer's own flavour if given; use convertConfig to change flavour (it lists what changes). */
  readonly flavour?: Flavour;
  /** Another release of the same flavour (e.g. 'keras-2.3' for a 'keras-2.2' Nadam); default: the optimizer's. */
  readonly dialect?: ConfigDialect;
}

/**
 * Serializes a Nadam as its Keras does: `{"class_name": "Nadam", "config": {...}}` for tf.keras and
 * standalone Keras 2, `{"module": "keras.optimizers", "class_name": "Nadam", "config": {...},
 * "registered_name": null}` for Keras 3. Write it with {@link dumpsPython} for Keras's exact bytes.
 */
export function serialize(optimizer: Nadam, options: SerializeOptions = {}): Record<string, unknown> {
  if (options.flavour && options.flavour !== optimizer.flavour) {
    throw new KerasValueError(
      `this Nadam runs the ${optimizer.flavour} flavour; serializing it as ${options.flavour} would change its behaviour. Use convertConfig(config, { to: '${options.flavour}' }), which lists what changes.`,
    );
  }
  const dialect = options.dialect ?? optimizer.dialect;
  if (LAYOUTS[dialect].flavour !== optimizer.flavour) throw new KerasValueError(`dialect ${dialect} is not a ${optimizer.flavour} dialect`);
  const config = dialect === optimizer.dialect ? optimizer.getConfig() : relayout(optimizer.getConfig(), optimizer.dialect, dialect);
  keepPythonInts(optimizer, config, dialect);
  dropKeysTheSourceReleaseLacked(optimizer, config, dialect);
  // TF 2.13+ .keras archives wrap tf.keras configs (legacy or TF 2.11-2.15) in the module form: keep it.
  const moduleForm = readInModule.get(optimizer);
  if (moduleForm && LAYOUTS[dialect].envelope === 'class-config') return { module: moduleForm.module, class_name: 'Nadam', config, registered_name: moduleForm.registered_name };
  const envelope = nadamEnvelope(config, dialect);
  // TF 2.11-2.15 .h5 files save the registered name 'Custom>Nadam' as class_name (real TF 2.12 files do): keep it
  if (readAsCustom.has(optimizer) && dialect === optimizer.dialect && LAYOUTS[dialect].envelope === 'class-config') envelope.class_name = 'Custom>Nadam';
  return envelope;
}

/** Wraps a Nadam config in the envelope its dialect's Keras writes. */
export function nadamEnvelope(config: Record<string, unknown>, dialect: ConfigDialect): Record<string, unknown> {
  if (LAYOUTS[dialect].envelope === 'module') return { module: OPTIMIZERS_MODULE, class_name: 'Nadam', config, registered_name: null };
  return { class_name: 'Nadam', config };
}

/** Options of {@link deserialize}. */
export interface DeserializeOptions {
  /** Classes the caller allows (custom optimizers or schedules); nothing else is ever resolved. */
  readonly customObjects?: CustomObjects;
  /** Overrides the detected flavour / dialect. */
  readonly flavour?: Flavour;
  readonly dialect?: ConfigDialect;
  readonly backend?: string | Backend;
  readonly onWarning?: (message: string) => void;
  /** Names the source in error messages. */
  readonly file?: string;
}

function refuseClass(found: LocatedOptimizer, file?: string): never {
  // An optimizer named by a string ("adam" in a Keras 3 compile_config) has no class_name key.
  const at = found.envelope ? joinPath(found.envelopePath, 'class_name') : found.envelopePath;
  const name = found.registeredName ?? found.className;
  if (KERAS_OPTIMIZERS.has(found.className.toLowerCase())) {
    throw new ConfigError(at, `the optimizer at ${at} is Keras's '${found.className}': kerasopt steps Nadam only (the configs and saved state of the others are read and written: config show, readOptimizerState; docs/optimizers.md)`, file);
  }
  throw new ConfigError(at, `unknown optimizer class '${name}' at ${at}: not a built-in Keras optimizer (docs/optimizers.md lists them), and not registered in customObjects`, file);
}

/**
 * Recreates an optimizer from JSON text or a parsed document (anything {@link locateOptimizer}
 * reads). Nadam in any spelling Keras accepts gives a kerasopt Nadam of the detected flavour; any
 * other class is built only from `customObjects` (its `fromConfig`), never by evaluating anything.
 */
export function deserialize(json: string | unknown, options: DeserializeOptions = {}): Nadam | object {
  const file = options.file;
  const doc = typeof json === 'string' ? parsePythonJson(json, file ?? 'JSON text') : json;
  const found = locateOptimizer(doc, file);
  const custom =
    found.registeredName != null && !isNadamClassName(found.registeredName)
      ? lookupCustom(options.customObjects, found.registeredName)
      : isNadamClassName(found.className)
        ? undefined
        : lookupCustom(options.customObjects, found.className);
  if (custom) return custom.fromConfig({ ...found.config });
  if (!isNadamClassName(found.className) || (found.registeredName != null && !isNadamClassName(found.registeredName))) refuseClass(found, file);
  const d = found.detection;
  const legacy = found.module === LEGACY_OPTIMIZERS_MODULE && (options.flavour ?? (options.dialect ? LAYOUTS[options.dialect].flavour : d.flavour)) === 'tf-keras';
  if (found.module != null && found.module !== OPTIMIZERS_MODULE && !legacy) {
    const at = joinPath(found.envelopePath, 'module');
    throw new ConfigError(at, `module '${found.module}' at ${at} is not ${OPTIMIZERS_MODULE} (Keras 3, TF 2.11+) or ${LEGACY_OPTIMIZERS_MODULE} (tf.keras optimizer_v2), where Keras keeps Nadam`, file);
  }
  const dialect = options.dialect ?? (options.flavour && options.flavour !== d.flavour ? undefined : d.dialect);
  const opts = nadamOptionsFromConfig(found.config, {
    flavour: options.flavour ?? (options.dialect ? LAYOUTS[options.dialect].flavour : d.flavour),
    dialect,
    customObjects: options.customObjects,
    onWarning: options.onWarning,
    path: found.configPath,
    file,
  });
  try {
    const made = new Nadam({ ...opts, backend: options.backend });
    readFrom.set(made, found.config);
    if (found.module != null) readInModule.set(made, { module: found.module, registered_name: found.registeredName ?? null });
    if (found.className === 'Custom>Nadam') readAsCustom.add(made);
    return made;
  } catch (e) {
    throw located(e, found, file);
  }
}

/** A constructor error (a range, an unimplemented feature) with the JSON path of the key it is about. */
function located(e: unknown, found: LocatedOptimizer, file?: string): unknown {
  if (!(e instanceof KerasoptError)) return e;
  const named = e instanceof HyperparameterError ? e.hyperparameter : /^(\w+)[= ]/.exec(e.message)?.[1];
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(found.config, k);
  const key = named === undefined ? undefined : has(named) ? named : named === 'learning_rate' && has('lr') ? 'lr' : named === 'decay' && has('schedule_decay') ? 'schedule_decay' : undefined;
  if (key === undefined) {
    // A rule about several keys (e.g. Keras 3's single clipping option): name the config they are in.
    return new ConfigError(found.configPath, `${e.message} (in the config ${found.configPath ? `at ${found.configPath}` : 'at the top level'})`, file, e.code);
  }
  const path = joinPath(found.configPath, key);
  return new ConfigError(path, `${e.message} (at ${path})`, file, e.code);
}
