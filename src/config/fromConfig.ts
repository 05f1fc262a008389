import { KerasTypeError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import type { NadamOptions } from '../optimizers/nadam/index.js';
import type { CustomObjects } from './customObjects.js';
import { detectDialect, dialectWithin } from './detect.js';
import { refusePrototypeKeys } from './document.js';
import { acceptedKeys, LAYOUTS, type ConfigDialect } from './dialects.js';
import { ConfigError, joinPath } from './errors.js';
import { deserializeSchedule } from './scheduleSerde.js';
import { checkSchema } from './validate.js';

/** How to read a Nadam config. */
export interface ConfigReadOptions {
  /** The flavour (default: the dialect's, else tf-keras as Nadam.fromConfig always did). */
  readonly flavour?: Flavour;
  /** The Keras release layout (default: told from the keys within the flavour). */
  readonly dialect?: ConfigDialect;
  /** Classes for custom learning-rate schedules; nothing else is ever resolved. */
  readonly customObjects?: CustomObjects;
  readonly onWarning?: (message: string) => void;
  /** JSON path of the config in its document, and the file, for error messages. */
  readonly path?: string;
  readonly file?: string;
}

/**
 * Turns a Keras Nadam config into constructor options, as Keras's from_config does: `lr` and
 * `schedule_decay` accepted where that Keras accepts them, a serialized schedule recreated, and
 * any key the flavour's constructor does not take refused (TF raises TypeError for those).
 */
export function nadamOptionsFromConfig(config: Readonly<Record<string, unknown>>, o: ConfigReadOptions = {}): NadamOptions {
  const path = o.path ?? '';
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(path, `the optimizer config ${path ? `at ${path} ` : ''}must be an object, got ${JSON.stringify(config)}`, o.file);
  }
  refusePrototypeKeys(config, path, o.file);
  if (o.dialect && o.flavour && LAYOUTS[o.dialect].flavour !== o.flavour) {
    throw new KerasTypeError(`dialect ${o.dialect} writes ${LAYOUTS[o.dialect].flavour} configs, not ${o.flavour}`);
  }
  const flavour = o.flavour ?? (o.dialect ? LAYOUTS[o.dialect].flavour : 'tf-keras');
  try {
    checkSchema(`nadam-config.${flavour}.schema.json`, config, path, o.file, `${flavour} Nadam config`);
  } catch (e) {
    // Nadam.fromConfig reads tf-keras unless told: say so when the keys tell another flavour.
    if (!(e instanceof ConfigError) || o.flavour || o.dialect) throw e;
    const detected = detectDialect(config);
    if (detected.flavour === flavour || !detected.certain) throw e;
    const message = e.message.slice(o.file ? o.file.length + 2 : 0);
    throw new ConfigError(e.path, `${message} (read as ${flavour}, the default; its keys say ${detected.flavour}: ${detected.evidence}; pass { flavour: '${detected.flavour}' } or use deserialize, which detects it)`, o.file);
  }
  const dialect = o.dialect ?? dialectWithin(flavour, config);
  const accepted = acceptedKeys(dialect);
  for (const key of Object.keys(config)) {
    if (!accepted.has(key)) {
      throw new ConfigError(
        joinPath(path, key),
        `key '${key}' at ${joinPath(path, key)} is not taken by the Nadam of ${LAYOUTS[dialect].writtenBy} (dialect ${dialect}); it takes ${[...accepted].join(', ')}`,
        o.file,
      );
    }
  }
  const options: Record<string, unknown> = {};
  for (const key of Object.keys(config)) options[key] = config[key];
  const lr = config['learning_rate'];
  if (typeof lr === 'object' && lr !== null) {
    options['learning_rate'] = deserializeSchedule(lr, { customObjects: o.customObjects, path: joinPath(path, 'learning_rate'), file: o.file });
  }
  if (flavour === 'keras3' && 'decay' in options) {
    if (options['decay'] !== null) (o.onWarning ?? console.warn)('Argument `decay` is no longer supported and will be ignored.');
    delete options['decay'];
  }
  if (dialect === 'tf-2.11' && 'lr' in options) {
    // As TF 2.11-2.15's optimizer._process_kwargs: popped, a warning when truthy, never used.
    if (options['lr']) {
      (o.onWarning ?? console.warn)('`lr` is deprecated in Keras optimizer, please use `learning_rate` or use the legacy optimizer, e.g.,tf.keras.optimizers.legacy.Nadam.');
    }
    delete options['lr'];
  }
  if (dialect === 'tf-2.11' && options['name'] === undefined) options['name'] = 'Nadam';
  return { ...(options as NadamOptions), flavour, dialect, ...(o.onWarning ? { onWarning: o.onWarning } : {}) };
}
