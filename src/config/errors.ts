import { KerasValueError } from '../errors.js';

/**
 * A config that kerasopt cannot read as a Keras optimizer config: wrong type, unknown key, unknown
 * class. `path` is the JSON path of the offending value in words ("optimizer_config.config.beta_1");
 * `file` is where the config came from, when known.
 */
export class ConfigError extends KerasValueError {
  constructor(
    readonly path: string,
    message: string,
    readonly file?: string,
    code = 'BAD_CONFIG',
  ) {
    super(`${file ? `${file}: ` : ''}${message}`, code);
  }
}

/** Joins a JSON path in words: `join('config', 'beta_1')` is "config.beta_1", indices as [0]. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base === '' ? key : `${base}.${key}`;
}

/** "at config.beta_1" or "at the top level". */
export function where(path: string): string {
  return path === '' ? 'at the top level' : `at ${path}`;
}
