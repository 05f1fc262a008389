import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { dumpsPython } from '../config/pyjson.js';
import { FormatError } from '../errors.js';
import { privateTempDir, replaceFileAtomically } from '../io/atomic.js';
import { Archive, type ArchiveLimits } from './archive.js';
import { H5File } from './hdf5.js';
import { parseStoredJson } from './state.js';

/** What an archive update changes: its weights file in place, and optionally its config.json. */
export interface ArchiveEdit {
  /** Edits the extracted model.weights.h5 (opened for writing). */
  readonly weights: (h: H5File) => void;
  /** Given the parsed config.json, returns the config to store instead, or null to keep the entry's bytes. */
  readonly config?: (config: Record<string, unknown>) => Record<string, unknown> | null;
  /** Checks the rewritten archive (a temporary file) before it replaces the original. */
  readonly verify: (tmp: string) => Promise<void>;
}

/**
 * Updates a .keras archive: its model.weights.h5 is extracted to a private folder, edited, and the
 * archive rewritten (every other entry's bytes kept) into a temporary file, checked, then renamed
 * over the original (atomic: a failure leaves the archive as it was).
 */
export async function updateArchive(file: string, limits: ArchiveLimits, edit: ArchiveEdit): Promise<void> {
  const archive = await Archive.open(file, limits);
  const dir = privateTempDir();
  try {
    const entry = archive.entry('model.weights.h5');
    if (!entry) throw new FormatError(file, 'archive has no model.weights.h5');
    const h5path = join(dir, 'model.weights.h5');
    await archive.extract(entry, h5path);
    const h = await H5File.open(h5path, 'a', `${file}:model.weights.h5`);
    try {
      edit.weights(h);
    } catch (e) {
      h.closeQuietly();
      throw h.asFormatError(e, 'updating');
    }
    h.close();
    const replace = new Map<string, { file: string } | { bytes: Buffer }>([['model.weights.h5', { file: h5path }]]);
    const configEntry = archive.entry('config.json');
    if (configEntry && edit.config) {
      const next = edit.config(parseStoredJson(await archive.text(configEntry), file, 'archive entry config.json'));
      if (next) replace.set('config.json', { bytes: Buffer.from(dumpsPython(next), 'utf8') });
    }
    await replaceFileAtomically(file, async (tmp) => {
      await archive.rewrite(tmp, replace);
      await edit.verify(tmp);
    });
  } finally {
    archive.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a .keras archive holds besides its weights: config.json and metadata.json, parsed (null when absent). */
export interface ArchiveJson {
  readonly config: Record<string, unknown> | null;
  readonly metadata: Record<string, unknown> | null;
}

/**
 * Reads a .keras archive: its config.json and metadata.json are parsed, its model.weights.h5
 * extracted to a private folder and opened read-only for `read`, then everything is closed and
 * removed. `missing` is thrown when there is no model.weights.h5 (and, with `needConfig`, no config.json).
 */
export async function readArchiveWeights<T>(
  file: string,
  limits: ArchiveLimits,
  label: string,
  read: (h: H5File, json: ArchiveJson) => T,
  missing: (what: string) => Error = (what) => new FormatError(label, `archive has no ${what}`),
  needConfig = false,
): Promise<T> {
  const archive = await Archive.open(file, limits, label);
  const dir = privateTempDir();
  try {
    const weights = archive.entry('model.weights.h5');
    if (!weights) throw missing(archive.entry('model.weights.npz') ? 'model.weights.h5 (it has model.weights.npz, which kerasopt does not read)' : 'model.weights.h5');
    const configEntry = archive.entry('config.json');
    if (!configEntry && needConfig) throw missing('config.json');
    const config = configEntry ? parseStoredJson(await archive.text(configEntry), label, 'archive entry config.json') : null;
    const metaEntry = archive.entry('metadata.json');
    const metadata = metaEntry ? parseStoredJson(await archive.text(metaEntry), label, 'archive entry metadata.json') : null;
    const h5path = join(dir, 'model.weights.h5');
    await archive.extract(weights, h5path);
    const h = await H5File.open(h5path, 'r', `${label}:model.weights.h5`);
    try {
      return read(h, { config, metadata });
    } catch (e) {
      throw h.asFormatError(e);
    } finally {
      h.closeQuietly();
    }
  } finally {
    archive.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
