import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, type DType } from '../../src/index.js';
import { missingPython, PYTHON } from './python.js';
import { execFileSync, spawnSync } from 'node:child_process';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = resolve(HERE, 'keras_files.py');

/** One file made by keras_files.py (never Keras output: see its provenance). */
export interface MadeFile {
  file: string;
  flavour: string | null;
  provenance?: string;
  iterations?: number;
  slots?: number;
  momentum_cache?: number;
  m_schedule?: number;
  m_schedule_saved?: boolean;
  u_product?: number;
}

/** Why the generator cannot run (null when h5py and numpy are there; throws in CI). */
export function generatorMissing(): string | null {
  return missingPython(['h5py', 'numpy']);
}

/** Makes the Keras-layout test files in a fresh temporary folder. */
export function makeKerasFiles(): { dir: string; files: Record<string, MadeFile>; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kerasopt-files-'));
  const out = execFileSync(PYTHON, [SCRIPT, 'make', dir], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { dir, files: JSON.parse(out) as Record<string, MadeFile>, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The made files as a test file uses them: `made.dir` and `made.files` once beforeAll has run. */
export interface MadeKerasFiles {
  /** Why the generator cannot run (null when it can). */
  readonly missing: string | null;
  readonly made: { readonly dir: string; readonly files: Record<string, MadeFile> };
  /** A private copy of a made file (`<prefix><n>_<name>` in the same folder), so tests never change each other's inputs. */
  copy(name: string): string;
}

/** Makes the Keras-layout files before the test file's tests and removes them after (registers beforeAll / afterAll). */
export function useMadeKerasFiles(prefix: string): MadeKerasFiles {
  const missing = generatorMissing();
  let value: ReturnType<typeof makeKerasFiles> | undefined;
  beforeAll(() => {
    if (!missing) value = makeKerasFiles();
  });
  afterAll(() => value?.cleanup());
  const made = {
    get dir(): string {
      return value!.dir;
    },
    get files(): Record<string, MadeFile> {
      return value!.files;
    },
  };
  let n = 0;
  const copy = (name: string): string => {
    const dest = join(made.dir, `${prefix}${n++}_${name}`);
    copyFileSync(made.files[name]!.file, dest);
    return dest;
  };
  return { missing, made, copy };
}

/** h5py's reading of an HDF5 file: every attribute (with its string storage) and every dataset's bytes. */
export interface H5Dump {
  attrs: Record<string, Record<string, { type: { class: string; vlen?: boolean; size: number | null; strpad?: string; cset?: string }; shape: number[]; value: string | string[] }>>;
  datasets: Record<string, { dtype: string; shape: number[]; hex: string }>;
  groups: string[];
}

export function h5pyDump(file: string): H5Dump {
  return JSON.parse(execFileSync(PYTHON, [SCRIPT, 'dump', file], { encoding: 'utf8', maxBuffer: 1 << 28 })) as H5Dump;
}

const NUMPY: Record<string, DType> = { '<f2': 'float16', '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32' };

/** A dumped dataset as a kerasopt tensor (from h5py's bytes, independent of h5wasm). */
export function tensorOfDump(d: { dtype: string; shape: number[]; hex: string }): Tensor {
  const dtype = NUMPY[d.dtype];
  if (!dtype) throw new Error(`unexpected numpy dtype ${d.dtype}`);
  const b = Buffer.from(d.hex, 'hex');
  const buf = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  const data = { float16: Uint16Array, float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array }[dtype];
  return new Tensor(dtype, d.shape, new data(buf) as never);
}

/**
 * The real Keras files of the shared corpus (../shared/corpus/real), skipping its PROVENANCE notes.
 * KERASOPT_CORPUS_DIR points elsewhere, to try the corpus tests on other files.
 */
export function corpusFiles(): string[] {
  const dir = process.env.KERASOPT_CORPUS_DIR ?? resolve(HERE, '../../../shared/corpus/real');
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  return names.filter((n) => /\.(h5|hdf5|keras)$/i.test(n)).map((n) => join(dir, n));
}

/**
 * Why Debian's h5dump (hdf5-tools) cannot run (null when it can). Loud when missing; in CI a
 * failure, as .ci/run installs it.
 */
export function h5dumpMissing(): string | null {
  const r = spawnSync('h5dump', ['--version'], { encoding: 'utf8' });
  const why = r.status === 0 ? null : `h5dump cannot run: ${(r.stderr || String(r.error)).trim()}`;
  if (why && process.env.CI) throw new Error(`cross-check tool missing in CI (.ci/run must install hdf5-tools): ${why}`);
  if (why) console.warn(`\n*** CROSS-CHECK NOT RUN: ${why}. Install Debian's hdf5-tools (see .ci/run). ***\n`);
  return why;
}

/**
 * libhdf5's own description of the structure under `group` (h5dump -H -p: every group, dataset and
 * attribute with its datatype, dataspace, storage layout, filters, fill value and allocation time),
 * one line each, without the file name and the storage offsets (which depend on where bytes landed).
 */
export function h5dumpStructure(file: string, group: string): string[] {
  const out = execFileSync('h5dump', ['-H', '-p', '-g', group, file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return out.split('\n').slice(1).filter((l) => !/^\s*OFFSET \d+$/.test(l));
}

/**
 * The lines where h5dumpStructure(ours) differs from h5dumpStructure(keras), as readable strings.
 * One difference is known and allowed: a float16 dataset we write keeps its float32 placeholder's
 * storage, twice Keras's (README, Keras files), which shows as `SIZE 2n` against `SIZE n`.
 */
export function h5dumpDifferences(keras: readonly string[], ours: readonly string[]): string[] {
  if (keras.length !== ours.length) return [`h5dump gives ${ours.length} lines for ours, ${keras.length} for Keras's`];
  const out: string[] = [];
  ours.forEach((line, i) => {
    if (line === keras[i]) return;
    const [o, k] = [/^\s*SIZE (\d+)$/.exec(line), /^\s*SIZE (\d+)$/.exec(keras[i]!)];
    const half = o && k && Number(o[1]) === 2 * Number(k[1]) && ours.slice(Math.max(0, i - 4), i).some((l) => /16-bit little-endian floating-point/.test(l));
    if (!half) out.push(`line ${i + 1}: ours '${line.trim()}', Keras's '${keras[i]!.trim()}'`);
  });
  return out;
}
