import { registerConfigSource } from '../config/sources.js';
import { FormatError } from '../errors.js';
import { Archive } from './archive.js';
import { checkpointPrefix, readCheckpointNadam } from './checkpoint/nadam.js';
import { H5File } from './hdf5.js';
import { readConfigTextIsolated } from './isolate.js';
import { sniff } from './read.js';

/**
 * The optimizer-config JSON of a Keras HDF5 file: the training_config root attribute (tf.keras and
 * Keras 2). Keras 3 .weights.h5 files hold no config. libhdf5 runs in the reader worker, under the
 * read deadline (an untrusted file cannot hang the process); an archive's config.json is read here.
 */
export async function h5ConfigText(file: string): Promise<{ text: string; origin: string }> {
  if (sniff(file) === 'zip') return archiveConfigText(file);
  return readConfigTextIsolated(file);
}

/** {@link h5ConfigText} in the calling thread (the reader worker runs this). */
export async function h5ConfigTextInProcess(file: string): Promise<{ text: string; origin: string }> {
  if (sniff(file) === 'zip') return archiveConfigText(file);
  const h = await H5File.open(file, 'r');
  try {
    const text = h.stringAttribute('/', 'training_config');
    if (typeof text === 'string') return { text, origin: 'attribute training_config of /' };
    if (h.kind('optimizer') === 'group' || h.kind('layers') === 'group') throw new FormatError(file, 'a Keras 3 .weights.h5 file holds weights only, no optimizer config (the .keras archive has it in config.json)');
    throw new FormatError(file, 'no optimizer config: no training_config attribute (the model was saved without its optimizer)');
  } finally {
    h.close();
  }
}

/** The config.json of a .keras archive (its compile_config holds the optimizer). */
export async function archiveConfigText(file: string): Promise<{ text: string; origin: string }> {
  const archive = await Archive.open(file);
  try {
    const entry = archive.entry('config.json');
    if (!entry) throw new FormatError(file, 'archive has no config.json');
    return { text: await archive.text(entry), origin: 'config.json in the archive' };
  } finally {
    archive.close();
  }
}

/**
 * The optimizer config of a TF checkpoint (`<prefix>.index`): a checkpoint saves none, so this is the
 * tf.keras Nadam config built from its hyperparameter variables, as a serialized optimizer.
 */
export function checkpointConfigText(file: string): { text: string; origin: string } {
  const prefix = checkpointPrefix(file);
  if (prefix === null) throw new FormatError(file, 'no such TF checkpoint index');
  const state = readCheckpointNadam(prefix, prefix);
  return {
    text: JSON.stringify({ class_name: state.className, config: state.config }),
    origin: 'built from the saved hyperparameter variables of the TF checkpoint, which saves no optimizer config',
  };
}

registerConfigSource('.h5', h5ConfigText);
registerConfigSource('.index', checkpointConfigText);
registerConfigSource('.hdf5', h5ConfigText);
registerConfigSource('.keras', archiveConfigText);
