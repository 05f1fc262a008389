import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { FormatError } from '../errors.js';
import { locateOptimizer, type LocatedOptimizer } from './document.js';
import { parsePythonJson } from './pyjson.js';

/** The JSON text that holds an optimizer config inside a file, and where exactly it was found. */
export interface ConfigSourceText {
  /** JSON text as Keras wrote it: a training_config, a Keras 3 config.json, or a serialized optimizer. */
  readonly text: string;
  /** Where in the file, in words (e.g. "attribute training_config of /", "config.json in the archive"). */
  readonly origin: string;
}

/**
 * Reads the optimizer-config JSON out of one kind of file. Throws a FormatError naming the file when
 * it holds none (e.g. a model saved without its optimizer).
 */
export type ConfigSourceLoader = (file: string) => ConfigSourceText | Promise<ConfigSourceText>;

const loaders = new Map<string, ConfigSourceLoader>();

function normalize(ext: string): string {
  const e = ext.toLowerCase();
  return e.startsWith('.') ? e : `.${e}`;
}

/**
 * Registers the loader for files ending in `ext` (".h5", ".keras", ...). The Keras-file readers
 * register theirs here; `.json` is built in. A later registration replaces an earlier one.
 */
export function registerConfigSource(ext: string, loader: ConfigSourceLoader): void {
  loaders.set(normalize(ext), loader);
}

/** The extensions that have a loader now (".json" always). */
export function configSourceExtensions(): string[] {
  return ['.json', ...[...loaders.keys()].filter((e) => e !== '.json')];
}

registerConfigSource('.json', (file) => {
  try {
    return { text: readFileSync(file, 'utf8'), origin: 'the JSON file' };
  } catch (e) {
    throw new FormatError(file, `cannot read the file: ${(e as Error).message}`);
  }
});

/** A parsed config document and where it came from. */
export interface ConfigDocument {
  readonly file: string;
  readonly origin: string;
  readonly document: unknown;
}

/** Reads the config document of `file` with the loader registered for its extension. */
export async function loadConfigDocument(file: string): Promise<ConfigDocument> {
  const ext = normalize(extname(file) || '.');
  const loader = loaders.get(ext);
  if (!loader) {
    throw new FormatError(
      file,
      `no config loader is registered for '${ext}' files (registered: ${configSourceExtensions().join(', ')}); ${ext === '.h5' || ext === '.keras' ? `the ${ext} reader registers one with registerConfigSource('${ext}', loader) from src/config/sources.ts` : 'pass a .json file'}`,
    );
  }
  const { text, origin } = await loader(file);
  return { file, origin, document: parsePythonJson(text, `${file} (${origin})`) };
}

/** The optimizer of a file (.json, or any registered kind), located and its flavour detected. */
export async function readOptimizerConfigFile(file: string): Promise<LocatedOptimizer & { readonly origin: string; readonly document: unknown }> {
  const doc = await loadConfigDocument(file);
  return { ...locateOptimizer(doc.document, file), origin: doc.origin, document: doc.document };
}
