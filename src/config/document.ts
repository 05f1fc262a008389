import { ConfigError, joinPath } from './errors.js';
import { isFlavour } from '../optimizers/flavour.js';
import { detectDialect, dialectWithin, type FlavourDetection } from './detect.js';
import { MAX_JSON_DEPTH } from './pyjson.js';
import { checkSchema } from './validate.js';

/** Where a document keeps its optimizer, and the optimizer found there. */
export interface LocatedOptimizer {
  /** What the document was: a serialized optimizer, a bare get_config() dict, or a model's training/compile config. */
  readonly kind: 'envelope' | 'config' | 'training_config' | 'compile_config';
  /** The Keras class name as written ("Nadam", "nadam", "Custom>Nadam", "Adam", ...). */
  readonly className: string;
  /** Keras 3 envelope fields, when present. */
  readonly module?: string | null;
  readonly registeredName?: string | null;
  /** The envelope itself (null for a bare config). */
  readonly envelope: Readonly<Record<string, unknown>> | null;
  readonly config: Readonly<Record<string, unknown>>;
  /** JSON paths in words of the envelope and of its config within the document. */
  readonly envelopePath: string;
  readonly configPath: string;
  readonly detection: FlavourDetection;
}

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Refuses own keys that could reach a prototype (`__proto__`, `constructor`, `prototype`) anywhere in
 * `value`, for values that did not come through parsePythonJson (JSON.parse makes `__proto__` an own key).
 */
export function refusePrototypeKeys(value: unknown, path: string, file?: string, depth = 0): void {
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(path, `the value at ${path || 'the top level'} is nested deeper than ${MAX_JSON_DEPTH} levels`, file);
  if (Array.isArray(value)) value.forEach((v, i) => refusePrototypeKeys(v, joinPath(path, i), file, depth + 1));
  else if (isObject(value)) {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN.has(key)) throw new ConfigError(joinPath(path, key), `key '${key}' at ${joinPath(path, key)} is not allowed (it could reach an object prototype)`, file);
      refusePrototypeKeys(value[key], joinPath(path, key), file, depth + 1);
    }
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function fromEnvelope(env: unknown, path: string, kind: LocatedOptimizer['kind'], file?: string): LocatedOptimizer {
  if (typeof env === 'string') {
    // Keras builds an optimizer named by a string with an empty config (its defaults).
    const config = Object.create(null) as Record<string, unknown>;
    const detection: FlavourDetection =
      kind === 'compile_config'
        ? { flavour: 'keras3', dialect: 'keras-3', evidence: `compile_config (a Keras 3 config.json) names the optimizer '${env}': Keras 3 defaults`, certain: true }
        : detectDialect(config);
    return { kind, className: env, envelope: null, config, envelopePath: path, configPath: path, detection };
  }
  if (!isObject(env)) throw new ConfigError(path, `the optimizer ${path ? `at ${path} ` : ''}must be an object or a class name, got ${JSON.stringify(env)}`, file);
  const keras3 = 'module' in env || 'registered_name' in env;
  checkSchema(keras3 ? 'optimizer-envelope.keras3.schema.json' : 'optimizer-envelope.tf-keras.schema.json', env, path, file, keras3 ? 'Keras 3 serialized optimizer' : 'serialized optimizer');
  const config = env['config'] as Record<string, unknown>;
  return {
    kind,
    className: env['class_name'] as string,
    ...(keras3 ? { module: env['module'] as string | null, registeredName: env['registered_name'] as string | null } : {}),
    envelope: env,
    config,
    envelopePath: path,
    configPath: joinPath(path, 'config'),
    detection: detectDialect(config, env),
  };
}

/**
 * Finds the optimizer in a parsed JSON document: a serialized optimizer (`{class_name, config}`,
 * Keras 3 adding module and registered_name), a tf.keras/Keras 2 `training_config` (its
 * `optimizer_config`), a Keras 3 model `config.json` (its `compile_config.optimizer`), a model JSON
 * that holds a training_config, or a bare get_config() dict.
 */
export function locateOptimizer(doc: unknown, file?: string, base = ''): LocatedOptimizer {
  if (base === '') refusePrototypeKeys(doc, '', file);
  if (!isObject(doc)) throw new ConfigError(base, `expected a JSON object ${base ? `at ${base}` : 'at the top level'}, got ${Array.isArray(doc) ? 'an array' : JSON.stringify(doc)}`, file);
  if ('optimizer_config' in doc) return fromEnvelope(doc['optimizer_config'], joinPath(base, 'optimizer_config'), 'training_config', file);
  if ('compile_config' in doc) {
    const cc = doc['compile_config'];
    const at = joinPath(base, 'compile_config');
    if (!isObject(cc) || !('optimizer' in cc)) throw new ConfigError(at, `${at} has no optimizer (the model was compiled without one)`, file);
    return fromEnvelope(cc['optimizer'], joinPath(at, 'optimizer'), 'compile_config', file);
  }
  if ('training_config' in doc) return locateOptimizer(doc['training_config'], file, joinPath(base, 'training_config'));
  if ('modelTopology' in doc) return locateOptimizer(doc['modelTopology'], file, joinPath(base, 'modelTopology'));
  if (doc['format'] === 'kerasopt-fixture' && isObject(doc['config']) && isFlavour(doc['flavour'])) {
    // A parity fixture manifest (schemas/fixture.schema.json): its config, in the flavour it names.
    const config = doc['config'];
    const flavour = doc['flavour'];
    const detection: FlavourDetection = { flavour, dialect: dialectWithin(flavour, config), evidence: `the fixture manifest's flavour '${flavour}'`, certain: true };
    return { kind: 'config', className: 'Nadam', envelope: null, config, envelopePath: joinPath(base, 'config'), configPath: joinPath(base, 'config'), detection };
  }
  if ('class_name' in doc) {
    const cfg = doc['config'];
    if (isObject(cfg) && ('layers' in cfg || 'build_input_shape' in cfg)) {
      throw new ConfigError(base, `${base || 'the document'} is the config of a model ('${String(doc['class_name'])}') without compile_config or training_config: it holds no optimizer`, file);
    }
    return fromEnvelope(doc, base, 'envelope', file);
  }
  return { kind: 'config', className: 'Nadam', envelope: null, config: doc, envelopePath: base, configPath: base, detection: detectDialect(doc) };
}
