import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from '../errors.js';
import { parseJsonSafely } from '../io/json.js';
import type { ArchiveLimits } from './archive.js';
import { readArchiveWeights } from './archiveUpdate.js';
import type { BundleLimits } from './checkpoint/bundle.js';
import { checkpointPrefix, readCheckpointNadam } from './checkpoint/nadam.js';
import { completeInterruptedCommit } from './checkpoint/update.js';
import { lazyTensorsOf, lazyThreshold, streamStats, type LazyReadOptions } from './chunked.js';
import { H5File } from './hdf5.js';
import { readIsolated, type IsolateOptions } from './isolate.js';
import { readKeras3Weights } from './keras3.js';
import { readLegacyH5, type ReadOptions } from './kerasH5.js';
import type { KerasOptimizerState } from './state.js';

/** Options of {@link readOptimizerState}. */
export interface ReadStateOptions extends ReadOptions, ArchiveLimits, BundleLimits, IsolateOptions, LazyReadOptions {
  /** The name errors and the result use for the file (default: the path). */
  label?: string;
}

/** What a file is, from its first bytes. */
export function sniff(file: string, label = file): 'hdf5' | 'zip' {
  const head = Buffer.alloc(8);
  let n: number;
  try {
    const fd = openSync(file, 'r');
    try {
      n = readSync(fd, head, 0, 8, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new FormatError(label, `cannot read the file: ${(e as Error).message}`);
  }
  if (n >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (n === 8 && head.toString('latin1', 1, 4) === 'HDF') return 'hdf5';
  throw new FormatError(label, 'neither an HDF5 file (.h5, .weights.h5) nor a zip archive (.keras)');
}

/**
 * Reads the optimizer state of a Keras file: a tf.keras or Keras 2 HDF5 model (.h5), a Keras 3
 * weights file (.weights.h5), a Keras 3 archive (.keras), or a TF2 object-based checkpoint holding a
 * tf.keras optimizer_v2 Nadam (`<prefix>` / `<prefix>.index` with its data shards, or a SavedModel
 * directory). The format is recognised from the content, not the extension. Every weight keeps its
 * exact bits; each slot is tied to its model variable. Throws FormatError naming the file and the object at fault.
 *
 * The read runs in a worker thread (reused across reads) with a deadline, as the files are untrusted
 * and libhdf5 can loop forever on a corrupt one: `options.deadlineMs`, by default 10 s plus 1 s per
 * 50 MB of file. Past it the worker is stopped and the call rejects with a FormatError naming the
 * file, the time and the object libhdf5 was reading. libhdf5's abort text goes into the error, not
 * to stderr. `{ isolate: false }` reads in the calling thread ({@link readOptimizerStateInProcess}).
 */
export async function readOptimizerState(file: string, options: ReadStateOptions = {}): Promise<KerasOptimizerState> {
  return options.isolate === false ? readOptimizerStateInProcess(file, options) : readIsolated(file, options);
}

/**
 * {@link readOptimizerState} in the calling thread: no worker and no deadline (synchronous libhdf5
 * code cannot be interrupted, so a crafted file can hang the thread), and libhdf5's abort text is
 * printed on stderr. The reader worker runs this.
 */
export async function readOptimizerStateInProcess(file: string, options: ReadStateOptions = {}): Promise<KerasOptimizerState> {
  const label = options.label ?? file;
  const prefix = checkpointPrefix(file);
  if (prefix !== null) {
    completeInterruptedCommit(prefix); // a write killed during its renames left a journal: finish it first
    return readCheckpointNadam(prefix, options.label ?? prefix, options);
  }
  if (sniff(file, label) === 'zip') return readArchive(file, label, options);
  const h = await H5File.open(file, 'r', label);
  // lazy tensors point at the file itself, so only a file read in place can have them (not an archive's extracted copy)
  if (options.lazyAbove !== undefined) h.lazyAbove = lazyThreshold(options.lazyAbove);
  try {
    const state = readHdf5(h, label, options);
    if (options.lazyStats) await streamStats(lazyTensorsOf(state));
    return state;
  } catch (e) {
    throw h.asFormatError(e);
  } finally {
    h.closeQuietly();
  }
}

function readHdf5(h: H5File, label: string, options: ReadStateOptions): KerasOptimizerState {
  if (h.kind('optimizer_weights') === 'group' || h.kind('model_weights') === 'group' || h.attributeNames('/').includes('training_config')) {
    return readLegacyH5(h, options);
  }
  if (h.kind('optimizer') === 'group' || h.kind('layers') === 'group') {
    const trial = trialBeside(h.path, label);
    return readKeras3Weights(h, { label, format: 'keras3-weights-h5', modelConfig: null, kerasVersion: null, ...(trial ? { trial } : {}) }, options);
  }
  throw new FormatError(label, 'no optimizer state: neither optimizer_weights (tf.keras / Keras 2) nor optimizer/vars (Keras 3) is in the file');
}

/**
 * The optimizer a keras-tuner trial names: `trial.json` beside the checkpoint (or one or two folders
 * up, as tuners nest checkpoints) holds `hyperparameters.values.optimizer` when the search chose it.
 * A .weights.h5 records no optimizer class, so this is the only word on it besides the variables.
 */
export function trialBeside(file: string, label: string): { optimizer: string; file: string } | undefined {
  let dir = dirname(file);
  for (let up = 0; up < 3; up++, dir = dirname(dir)) {
    const path = join(dir, 'trial.json');
    if (!existsSync(path)) continue;
    let parsed: unknown;
    try {
      parsed = parseJsonSafely(readFileSync(path, 'utf8'), path);
    } catch (e) {
      throw new FormatError(path, `keras-tuner trial.json beside ${label} does not parse: ${(e as Error).message}`);
    }
    const values = (parsed as { hyperparameters?: { values?: Record<string, unknown> } } | null)?.hyperparameters?.values;
    const optimizer = values && Object.prototype.hasOwnProperty.call(values, 'optimizer') ? values.optimizer : undefined;
    return typeof optimizer === 'string' ? { optimizer, file: path } : undefined;
  }
  return undefined;
}

async function readArchive(file: string, label: string, options: ReadStateOptions): Promise<KerasOptimizerState> {
  return readArchiveWeights(file, options, label, (h, { config, metadata }) => {
    const kerasVersion = typeof metadata?.keras_version === 'string' ? metadata.keras_version : null;
    return { ...readKeras3Weights(h, { label, format: 'keras3-archive', modelConfig: config, kerasVersion, versionSource: 'metadata.json in the archive' }, options), file: label };
  });
}
