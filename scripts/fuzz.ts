/**
 * `npm run fuzz`: mutates Keras files and reads each mutated copy with `readOptimizerState` in a CHILD
 * process (so a hang or a crash cannot take the fuzzer down), with a per-case timeout.
 *
 * What is mutated:
 * - every loadable item of the real corpora (`manifest.json` of ../shared/corpus/real and real-other, or
 *   each `--corpus DIR`): HDF5 files (.h5, .hdf5, .weights.h5), Keras archives (.keras), tensor bundles
 *   (TF checkpoints `<prefix>.index` + data shards, SavedModel `variables/`);
 * - the files made by kerasopt's test helpers (test/helpers/keras_files.py, test/helpers/tf_checkpoint.py;
 *   NOT Keras output), unless `--no-helpers`. Their zip timestamps are fixed so that replays see the same bytes.
 *
 * Mutations, by file kind (each case is one mutation of one item, chosen round robin, its parameters from
 * the case's own seed):
 * - hdf5:          flip (1-8 bytes XORed), truncate, zero64 (64 zeroed bytes at a random offset);
 * - keras-archive: the same three on the whole zip, plus zip-cd (central directory / end record bytes and
 *                  fields) and zip-entry (an entry's local header fields or its data bytes);
 * - tensor-bundle: index-flip, index-truncate, index-zero64 on `.index`; data-flip, data-truncate,
 *                  data-zero64 on a data shard.
 * Half of the flip / zero64 offsets fall in the first 8 KiB (where most structure lives), half anywhere.
 *
 * Outcomes of a case:
 * - `read`:              read without error;
 * - `clean-error`:       a KerasoptError (FormatError...) reported by the child as JSON on stdout, nothing on stderr;
 * - `noisy-error`:       the same, but the child wrote other text to stderr (e.g. wasm's "Aborted(...)");
 * - `crash`:             the child exited non-zero or on a signal without a clean error (an uncaught
 *                        non-kerasopt error counts here);
 * - `hang`:              the child did not exit within `--timeout-ms` (re-run once alone with twice the
 *                        timeout before it is called a hang, so that a loaded machine is not mistaken for one);
 * - `differs-from-h5py`: (HDF5 and archives, when h5py can open the mutated file) kerasopt read it without
 *                        error but a weight's bytes, dtype or shape differ from h5py's reading of it;
 * - `read-bad-crc`:      (archives) kerasopt read it without error although an entry's CRC-32 does not match
 *                        its bytes (Python's zipfile refuses such an entry).
 * Before the cases, every unmutated item is read once the same way: that is the baseline (real-other holds
 * optimizers kerasopt refuses, "reads Nadam state only": a clean error there is the expected baseline).
 *
 * Options: --seed N (default 11), --cases N (default 1000), --timeout-ms N (default 20000: above the
 * reader's own default deadline of 10 s, so that a read it stops is seen as the clean error it gives), --jobs N
 * (children at a time, default 2), --corpus DIR (repeatable; replaces the default corpora), --no-helpers,
 * --no-h5py, --no-baseline, --no-confirm-hangs, --json OUT, --replay ID [--out DIR] (re-runs one case, e.g. from the hang/crash list, and with
 * --out writes its mutated files there), --verbose. Exits non-zero on any crash or hang (baseline included).
 *
 * A case id is `<source>/<item>@<mutation>#<seed>`; `@zero64=OFFSET`, `@truncate=LENGTH` (and the index- /
 * data- forms for bundles) name a mutation directly, e.g. `helper/tf_keras_new.h5@zero64=3168`.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KerasoptError } from '../src/errors.js';
import { readOptimizerState } from '../src/formats/index.js';

// ---------------------------------------------------------------------------------------------------
// Types

export type FileKind = 'hdf5' | 'keras-archive' | 'tensor-bundle';
export const FILE_KINDS: readonly FileKind[] = ['hdf5', 'keras-archive', 'tensor-bundle'];
export type Outcome = 'read' | 'clean-error' | 'noisy-error' | 'crash' | 'hang' | 'differs-from-h5py' | 'read-bad-crc';
export const OUTCOMES: readonly Outcome[] = ['read', 'clean-error', 'noisy-error', 'crash', 'hang', 'differs-from-h5py', 'read-bad-crc'];

export const MUTATIONS: Record<FileKind, readonly string[]> = {
  hdf5: ['flip', 'truncate', 'zero64'],
  'keras-archive': ['flip', 'truncate', 'zero64', 'zip-cd', 'zip-entry'],
  'tensor-bundle': ['index-flip', 'index-truncate', 'index-zero64', 'data-flip', 'data-truncate', 'data-zero64'],
};

/** One loadable item: the files it is made of and the path readOptimizerState is given. */
export interface Target {
  /** `<source>/<item id>`: the source is the corpus folder's name, or `helper`. */
  readonly key: string;
  readonly source: string;
  readonly kind: FileKind;
  /** The folder the item's files are relative to. */
  readonly root: string;
  /** What readOptimizerState is given, relative to root (a file, a checkpoint prefix, a SavedModel folder). */
  readonly readRel: string;
  /** Every file the read may touch, relative to root (mirrored into each case's folder). */
  readonly files: readonly string[];
  /** The files a mutation may change: HDF5 / archive: [the file]; bundle: the .index and the data shards. */
  readonly main?: string;
  readonly index?: string;
  readonly data?: readonly string[];
  /** sha256 (first 12 hex digits) of the mutable files, so that a replay can tell it sees the same bytes. */
  readonly sha: string;
}

/** One byte-level edit of one of the item's files. */
export type Edit =
  | { readonly file: string; readonly op: 'xor'; readonly offset: number; readonly mask: number }
  | { readonly file: string; readonly op: 'zero'; readonly offset: number; readonly length: number }
  | { readonly file: string; readonly op: 'set'; readonly offset: number; readonly bytes: readonly number[] }
  | { readonly file: string; readonly op: 'truncate'; readonly length: number }
  | { readonly file: string; readonly op: 'delete'; readonly offset: number; readonly length: number };

export interface Mutation {
  readonly kind: string;
  readonly edits: readonly Edit[];
  /** In words: what was changed, where. */
  readonly what: string;
}

export interface CaseSpec {
  readonly id: string;
  readonly target: Target;
  readonly mutation: string;
  /** The case's seed (null when the id names the mutation directly). */
  readonly seed: number | null;
  readonly param: number | null;
}

/** What the child printed: a read state's weights (sha256 of their little-endian bytes), or the error. */
interface ChildWeight {
  name: string;
  dtype: string;
  shape: number[];
  sha256: string;
}
type ChildResult =
  | { status: 'read'; format: string; iterations: number | null; weights: ChildWeight[]; variables: ChildWeight[] }
  | { status: 'error'; name: string; code: string; message: string }
  | { status: 'uncaught'; name: string; message: string; stack?: string };

export interface CaseResult {
  readonly id: string;
  readonly target: string;
  readonly kind: FileKind;
  readonly mutation: string;
  readonly seed: number | null;
  readonly what: string;
  readonly outcome: Outcome;
  readonly ms: number;
  /** The clean error's message, the crash's exit code / signal / stack, the hang, the h5py difference. */
  readonly detail: string;
  /** What the child wrote to stderr (first 2000 characters). */
  readonly stderr: string;
  /** For reads of HDF5 / archives: whether h5py's reading was compared ('yes'), or why not. */
  readonly h5py?: string;
  /** The first run timed out but the confirmation run finished. */
  readonly slow?: boolean;
}

export interface BaselineResult {
  readonly target: string;
  readonly kind: FileKind;
  readonly sha: string;
  readonly outcome: Outcome;
  readonly detail: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface FuzzOptions {
  seed: number;
  cases: number;
  timeoutMs: number;
  jobs: number;
  /** Corpus folders (each with manifest.json). */
  corpora: string[];
  /** Also mutate the test helpers' files. */
  helpers: boolean;
  /** Compare reads with h5py. */
  h5py: boolean;
  /** The compiled fuzz.js the children run (`node <childScript> --child <path>`). */
  childScript: string;
  python: string;
  /** Re-run timed-out cases once alone with twice the timeout before calling them hangs. */
  confirmHangs: boolean;
  /** Read every unmutated item once first (the baseline). */
  baseline: boolean;
  /** Case ids known to hang: not re-run to confirm (saves twice the timeout each). */
  knownHangs?: readonly string[];
  onProgress?: (done: number, total: number, last: CaseResult) => void;
}

export interface FuzzReport {
  readonly options: Omit<FuzzOptions, 'onProgress'>;
  readonly targets: ReadonlyArray<Pick<Target, 'key' | 'kind' | 'sha'>>;
  readonly baseline: readonly BaselineResult[];
  readonly cases: readonly CaseResult[];
  /** Problems of the run itself (a helper that could not run, too few cases for the targets). */
  readonly notes: readonly string[];
  readonly seconds: number;
}

// ---------------------------------------------------------------------------------------------------
// Paths and defaults

const HERE = dirname(fileURLToPath(import.meta.url));

/** The checkout: the nearest folder above this script with kerasopt's package.json (scripts/ or dist/scripts/). */
export const REPO = ((): string => {
  for (let d = HERE; d !== dirname(d); d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'kerasopt') return d;
  }
  return resolve(HERE, '..');
})();

export const DEFAULT_CORPORA = [resolve(REPO, '../shared/corpus/real'), resolve(REPO, '../shared/corpus/real-other')];
export const DEFAULT_SEED = 11;
export const PYTHON = process.env.KERASOPT_PYTHON ?? '/usr/bin/python3';

export function defaultOptions(): FuzzOptions {
  return {
    seed: DEFAULT_SEED,
    cases: 1000,
    timeoutMs: 20_000,
    jobs: 2,
    corpora: DEFAULT_CORPORA,
    helpers: true,
    h5py: true,
    childScript: fileURLToPath(import.meta.url),
    python: PYTHON,
    confirmHangs: true,
    baseline: true,
  };
}

// ---------------------------------------------------------------------------------------------------
// Random numbers: splitmix32 per case, so a case is reproduced from its seed alone

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A 32-bit hash of a string (FNV-1a). */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/**
 * The seed of a target's `round`-th case in a run seeded `seed`. It depends on the target's key, not on
 * its place in the list, so a case keeps its id when items are added to or removed from the corpora.
 */
export function caseSeed(seed: number, key: string, round: number): number {
  return splitmix32((hash32(key) ^ Math.imul(seed >>> 0, 0x2545f491) ^ Math.imul(round + 1, 0x9e3779b1)) >>> 0)();
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = splitmix32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 2 ** 32) * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------------
// Targets

interface ManifestEntry {
  file: string;
  format?: string;
}

const sha12 = (buffers: Buffer[]): string => {
  const h = createHash('sha256');
  for (const b of buffers) h.update(b);
  return h.digest('hex').slice(0, 12);
};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
}

/** The `trial.json` files a read of `rel` may look at (beside it, or up to two folders up, inside root). */
function trialFiles(root: string, rel: string): string[] {
  const out: string[] = [];
  let d = dirname(rel);
  for (let up = 0; up < 3; up++) {
    const t = join(d, 'trial.json');
    if (existsSync(join(root, t))) out.push(t);
    if (d === '.' || d === '') break;
    d = dirname(d);
  }
  return out;
}

function bundleTarget(source: string, root: string, keyRel: string, readRel: string, prefixRel: string): Target {
  const dir = dirname(prefixRel);
  const stem = basename(prefixRel);
  const names = readdirSync(join(root, dir));
  const data = names.filter((n) => n.startsWith(`${stem}.data-`)).sort().map((n) => join(dir, n));
  const index = `${prefixRel}.index`;
  const files = readRel === prefixRel ? [index, ...data, ...names.filter((n) => n === 'checkpoint').map((n) => join(dir, n))] : walk(join(root, readRel)).map((f) => relative(root, f));
  return { key: `${source}/${keyRel}`, source, kind: 'tensor-bundle', root, readRel, files: [...new Set(files)].sort(), index, data, sha: sha12([index, ...data].map((f) => readFileSync(join(root, f)))) };
}

function fileTarget(source: string, root: string, rel: string, kind: 'hdf5' | 'keras-archive'): Target {
  return { key: `${source}/${rel}`, source, kind, root, readRel: rel, files: [rel, ...trialFiles(root, rel)], main: rel, sha: sha12([readFileSync(join(root, rel))]) };
}

/** The loadable items of a corpus folder's manifest.json (as test/helpers/corpus.ts finds them). */
export function corpusTargets(dir: string, source = basename(dir)): Target[] {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ManifestEntry[];
  const out: Target[] = [];
  for (const e of manifest) {
    if (e.format === 'hdf5' || e.format === 'keras-archive') out.push(fileTarget(source, dir, e.file, e.format));
    else if (e.format === 'tensor-bundle-index') {
      const prefix = e.file.slice(0, -'.index'.length);
      const savedModel = e.file.endsWith('/variables/variables.index');
      const id = savedModel ? dirname(dirname(e.file)) : prefix;
      out.push(bundleTarget(source, dir, id, id, prefix));
    }
  }
  return out;
}

/** Rewrites every DOS time / date of a zip (local headers and central directory) to 1980-01-01 00:00. */
export function fixZipTimes(buf: Buffer): Buffer {
  const z = parseZip(buf);
  if (!z) return buf;
  for (const e of z.entries) {
    buf.writeUInt32LE(0x00210000, e.cdAt + 12);
    if (e.localAt + 14 <= buf.length && buf.readUInt32LE(e.localAt) === 0x04034b50) buf.writeUInt32LE(0x00210000, e.localAt + 10);
  }
  return buf;
}

/** Makes the test helpers' files in `dir` (keras_files.py make; three tf_checkpoint.py bundles). */
export function helperTargets(dir: string, python: string): { targets: Target[]; notes: string[] } {
  const notes: string[] = [];
  const targets: Target[] = [];
  const files = join(dir, 'files');
  mkdirSync(files, { recursive: true });
  const made = spawnSync(python, [join(REPO, 'test/helpers/keras_files.py'), 'make', files], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (made.status !== 0) notes.push(`test/helpers/keras_files.py make failed: ${(made.stderr || String(made.error)).trim().split('\n').pop()}`);
  else {
    const listed = JSON.parse(made.stdout) as Record<string, { file: string }>;
    for (const name of Object.keys(listed).sort()) {
      const rel = relative(files, listed[name]!.file);
      const p = join(files, rel);
      if (readFileSync(p).readUInt32LE(0) === 0x04034b50) {
        writeFileSync(p, fixZipTimes(readFileSync(p)));
        targets.push(fileTarget('helper', files, rel, 'keras-archive'));
      } else targets.push(fileTarget('helper', files, rel, 'hdf5'));
    }
  }
  const bundles: Array<[string, string[]]> = [
    ['ckpt/ckpt', []],
    ['ckpt-sharded/ckpt', ['--shards', '2', '--block-size', '200']],
    ['savedmodel/variables/variables', ['--root', 'model']],
  ];
  for (const [rel, args] of bundles) {
    mkdirSync(dirname(join(files, rel)), { recursive: true });
    const r = spawnSync(python, [join(REPO, 'test/helpers/tf_checkpoint.py'), join(files, rel), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) {
      notes.push(`test/helpers/tf_checkpoint.py ${rel} ${args.join(' ')} failed: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
      continue;
    }
    const savedModel = rel.endsWith('/variables/variables');
    const id = savedModel ? dirname(dirname(rel)) : rel;
    targets.push(bundleTarget('helper', files, id, id, rel));
  }
  return { targets, notes };
}

/** Every target: the corpora's items, then (with `helpers`) the helpers' files made under `work`. */
export function collectTargets(o: Pick<FuzzOptions, 'corpora' | 'helpers' | 'python'>, work: string): { targets: Target[]; notes: string[] } {
  const notes: string[] = [];
  const targets: Target[] = [];
  const seen = new Map<string, number>();
  for (const dir of o.corpora) {
    if (!existsSync(join(dir, 'manifest.json'))) {
      notes.push(`corpus ${dir}: no manifest.json, skipped`);
      continue;
    }
    let name = basename(dir);
    const n = seen.get(name) ?? 0;
    seen.set(name, n + 1);
    if (n > 0) name = `${name}~${n + 1}`;
    const items = corpusTargets(dir, name);
    if (items.length === 0) notes.push(`corpus ${dir}: its manifest lists no loadable item`);
    targets.push(...items);
  }
  if (o.helpers) {
    const h = helperTargets(join(work, 'helper'), o.python);
    targets.push(...h.targets);
    notes.push(...h.notes);
  }
  return { targets, notes };
}

// ---------------------------------------------------------------------------------------------------
// Zip structure (only what the zip mutations need; independent of src/formats/archive.ts)

interface ZipEntry {
  name: string;
  cdAt: number;
  localAt: number;
  method: number;
  compressedSize: number;
  /** Where the entry's data starts (after its local header, name and extra field). */
  dataAt: number;
}
interface ZipLayout {
  eocdAt: number;
  cdAt: number;
  cdSize: number;
  entries: ZipEntry[];
}

export function parseZip(buf: Buffer): ZipLayout | null {
  let eocdAt = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocdAt = i;
      break;
    }
  }
  if (eocdAt < 0) return null;
  const count = buf.readUInt16LE(eocdAt + 10);
  const cdSize = buf.readUInt32LE(eocdAt + 12);
  const cdAt = buf.readUInt32LE(eocdAt + 16);
  const entries: ZipEntry[] = [];
  let at = cdAt;
  for (let k = 0; k < count && at + 46 <= buf.length; k++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) return null;
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    const localAt = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLen);
    const localName = localAt + 30 <= buf.length ? buf.readUInt16LE(localAt + 26) : 0;
    const localExtra = localAt + 30 <= buf.length ? buf.readUInt16LE(localAt + 28) : 0;
    entries.push({ name, cdAt: at, localAt, method: buf.readUInt16LE(at + 10), compressedSize: buf.readUInt32LE(at + 20), dataAt: localAt + 30 + localName + localExtra });
    at += 46 + nameLen + extraLen + commentLen;
  }
  return { eocdAt, cdAt, cdSize, entries };
}

// ---------------------------------------------------------------------------------------------------
// Mutations

const u16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

function interesting(rng: Rng, original: number, width: 2 | 4, fileSize: number): number {
  const max = width === 2 ? 0xffff : 0xffffffff;
  const choices = [0, 1, max, width === 2 ? 0x7fff : 0x7fffffff, original + 1, original - 1, original * 2, rng.int(max + 1), fileSize, fileSize + 1];
  return ((rng.pick(choices) % (max + 1)) + (max + 1)) % (max + 1);
}

/** An offset in a file of `size` bytes: half the time in its first 8 KiB, else anywhere. */
function offsetIn(rng: Rng, size: number): number {
  return rng.int(2) === 0 ? rng.int(Math.min(size, 8192)) : rng.int(size);
}

/** 1-8 bytes XORed with random non-zero masks: anywhere in the file (see offsetIn), or within `region`. */
function flip(rng: Rng, file: string, size: number, region?: { base: number; span: number }): { edits: Edit[]; what: string } {
  const n = 1 + rng.int(8);
  const edits: Array<Extract<Edit, { op: 'xor' }>> = [];
  for (let k = 0; k < n; k++) edits.push({ file, op: 'xor', offset: region ? region.base + rng.int(region.span) : offsetIn(rng, size), mask: 1 + rng.int(255) });
  return { edits, what: `${file}: XOR ${edits.map((e) => `${e.offset}^0x${e.mask.toString(16)}`).join(', ')}` };
}

function zero64(file: string, size: number, offset: number): { edits: Edit[]; what: string } {
  const length = Math.max(0, Math.min(64, size - offset));
  return { edits: [{ file, op: 'zero', offset, length }], what: `${file}: ${length} bytes zeroed at offset ${offset}` };
}

function truncate(file: string, length: number, size: number): { edits: Edit[]; what: string } {
  return { edits: [{ file, op: 'truncate', length }], what: `${file}: truncated to ${length} of ${size} bytes` };
}

/** A field of the zip structure set to an interesting value. */
function setField(rng: Rng, file: string, buf: Buffer, at: number, width: 2 | 4, label: string): { edits: Edit[]; what: string } {
  const original = width === 2 ? buf.readUInt16LE(at) : buf.readUInt32LE(at);
  const v = interesting(rng, original, width, buf.length);
  return { edits: [{ file, op: 'set', offset: at, bytes: width === 2 ? u16(v) : u32(v) }], what: `${file}: ${label} (offset ${at}) ${original} -> ${v}` };
}

function zipCd(rng: Rng, file: string, buf: Buffer): { edits: Edit[]; what: string } {
  const z = parseZip(buf);
  if (!z || z.entries.length === 0) return flip(rng, file, buf.length);
  const variant = rng.int(4);
  const end = z.eocdAt + 22;
  if (variant === 0) {
    const r = flip(rng, file, buf.length, { base: z.cdAt, span: end - z.cdAt });
    return { edits: r.edits, what: `central directory: ${r.what}` };
  }
  if (variant === 1) {
    const e = rng.pick(z.entries);
    const fields: Array<[number, 2 | 4, string]> = [
      [8, 2, 'flags'], [10, 2, 'compression method'], [16, 4, 'crc-32'], [20, 4, 'compressed size'], [24, 4, 'uncompressed size'],
      [28, 2, 'name length'], [30, 2, 'extra length'], [32, 2, 'comment length'], [42, 4, 'local header offset'], [0, 4, 'signature'],
    ];
    const [off, width, label] = rng.pick(fields);
    return setField(rng, file, buf, e.cdAt + off, width, `central directory entry '${e.name}' ${label}`);
  }
  if (variant === 2) {
    const fields: Array<[number, 2 | 4, string]> = [[8, 2, 'entries on this disk'], [10, 2, 'total entries'], [12, 4, 'central directory size'], [16, 4, 'central directory offset'], [20, 2, 'comment length']];
    const [off, width, label] = rng.pick(fields);
    return setField(rng, file, buf, z.eocdAt + off, width, `end of central directory ${label}`);
  }
  const r = zero64(file, buf.length, z.cdAt + rng.int(end - z.cdAt));
  return { edits: r.edits, what: `central directory: ${r.what}` };
}

function zipEntry(rng: Rng, file: string, buf: Buffer): { edits: Edit[]; what: string } {
  const z = parseZip(buf);
  if (!z || z.entries.length === 0) return flip(rng, file, buf.length);
  const weights = z.entries.filter((e) => e.name === 'model.weights.h5');
  const e = rng.pick([...z.entries, ...weights]);
  const variant = rng.int(4);
  if (variant === 0) {
    const fields: Array<[number, 2 | 4, string]> = [
      [0, 4, 'signature'], [6, 2, 'flags'], [8, 2, 'compression method'], [14, 4, 'crc-32'], [18, 4, 'compressed size'], [22, 4, 'uncompressed size'], [26, 2, 'name length'], [28, 2, 'extra length'],
    ];
    const [off, width, label] = rng.pick(fields);
    if (e.localAt + 30 > buf.length) return flip(rng, file, buf.length);
    return setField(rng, file, buf, e.localAt + off, width, `local header of '${e.name}' ${label}`);
  }
  const span = Math.max(1, Math.min(e.compressedSize, buf.length - e.dataAt));
  if (e.dataAt >= buf.length) return flip(rng, file, buf.length);
  if (variant === 1) {
    const r = flip(rng, file, buf.length, { base: e.dataAt, span });
    return { edits: r.edits, what: `data of '${e.name}': ${r.what}` };
  }
  if (variant === 2) {
    const r = zero64(file, Math.min(buf.length, e.dataAt + span), e.dataAt + rng.int(span));
    return { edits: r.edits, what: `data of '${e.name}': ${r.what}` };
  }
  const offset = e.dataAt + rng.int(span);
  const length = 1 + rng.int(Math.min(64, buf.length - offset));
  return { edits: [{ file, op: 'delete', offset, length }], what: `data of '${e.name}': ${file}: ${length} bytes removed at offset ${offset}` };
}

/** The mutation of a case, from its kind and seed (or its parameter, when the id names it directly). */
export function makeMutation(target: Target, kind: string, seed: number | null, param: number | null, read: (file: string) => Buffer): Mutation {
  const rng = new Rng(seed ?? 0);
  const [scope, op] = kind.startsWith('index-') ? ['index', kind.slice(6)] : kind.startsWith('data-') ? ['data', kind.slice(5)] : ['main', kind];
  let file: string;
  if (scope === 'index') file = target.index!;
  else if (scope === 'data') file = param === null ? rng.pick(target.data!) : target.data![0]!;
  else file = target.main!;
  if (!file) throw new Error(`mutation ${kind} does not apply to ${target.key} (${target.kind})`);
  const buf = read(file);
  const size = buf.length;
  let r: { edits: Edit[]; what: string };
  if (op === 'flip') r = flip(rng, file, size);
  else if (op === 'zero64') r = zero64(file, size, param ?? offsetIn(rng, size));
  else if (op === 'truncate') r = truncate(file, param ?? (rng.int(2) === 0 ? rng.int(size) : Math.max(0, size - 1 - rng.int(Math.min(size, 4096)))), size);
  else if (op === 'zip-cd') r = zipCd(rng, file, buf);
  else if (op === 'zip-entry') r = zipEntry(rng, file, buf);
  else throw new Error(`unknown mutation ${kind}`);
  return { kind, edits: r.edits, what: r.what };
}

/** Applies the edits of one file to a copy of its bytes. */
export function applyEdits(original: Buffer, edits: readonly Edit[]): Buffer {
  let b = Buffer.from(original);
  for (const e of edits) {
    if (e.op === 'xor') {
      if (e.offset < b.length) b[e.offset] = b[e.offset]! ^ e.mask;
    } else if (e.op === 'zero') b.fill(0, e.offset, Math.min(b.length, e.offset + e.length));
    else if (e.op === 'set') e.bytes.forEach((v, k) => e.offset + k < b.length && (b[e.offset + k] = v));
    else if (e.op === 'truncate') b = b.subarray(0, e.length);
    else b = Buffer.concat([b.subarray(0, e.offset), b.subarray(e.offset + e.length)]);
  }
  return b;
}

// ---------------------------------------------------------------------------------------------------
// Cases

/** `<target key>@<mutation>#<seed>` or `<target key>@<mutation>=<param>`. */
export function caseId(target: Target, mutation: string, seed: number | null, param: number | null = null): string {
  return seed !== null ? `${target.key}@${mutation}#${seed}` : `${target.key}@${mutation}=${param}`;
}

export function parseCaseId(id: string, targets: readonly Target[]): CaseSpec {
  const m = /^(.*)@([a-z0-9-]+)(?:#(\d+)|=(\d+))$/.exec(id);
  if (!m) throw new Error(`not a case id: '${id}' (expected <source>/<item>@<mutation>#<seed> or @<mutation>=<offset or length>)`);
  const target = targets.find((t) => t.key === m[1]);
  if (!target) throw new Error(`no target '${m[1]}' (targets: ${targets.map((t) => t.key).join(', ')})`);
  const mutation = m[2]!;
  if (!MUTATIONS[target.kind].includes(mutation)) throw new Error(`mutation '${mutation}' does not apply to a ${target.kind} (${MUTATIONS[target.kind].join(', ')})`);
  const seed = m[3] !== undefined ? Number(m[3]) : null;
  const param = m[4] !== undefined ? Number(m[4]) : null;
  if (param !== null && !/(zero64|truncate)$/.test(mutation)) throw new Error(`'=${param}' names the offset of a zero64 or the length of a truncate mutation, not of ${mutation}`);
  return { id, target, mutation, seed, param };
}

/**
 * The run's cases: targets round robin (so every item is mutated once before any twice), each target's
 * mutations in turn from a place fixed by its key, every case with its own seed (see caseSeed).
 */
export function planCases(targets: readonly Target[], seed: number, cases: number): CaseSpec[] {
  const out: CaseSpec[] = [];
  for (let i = 0; i < cases && targets.length > 0; i++) {
    const target = targets[i % targets.length]!;
    const round = Math.floor(i / targets.length);
    const kinds = MUTATIONS[target.kind];
    const mutation = kinds[(round + hash32(target.key)) % kinds.length]!;
    const s = caseSeed(seed, target.key, round);
    out.push({ id: caseId(target, mutation, s), target, mutation, seed: s, param: null });
  }
  return out;
}

/** Mirrors the target into `dir`: mutated files written, every other file a symlink to the original. */
function materialize(target: Target, mutation: Mutation | null, dir: string, cache: Map<string, Buffer>): string {
  const byFile = new Map<string, Edit[]>();
  for (const e of mutation?.edits ?? []) byFile.set(e.file, [...(byFile.get(e.file) ?? []), e]);
  for (const f of target.files) {
    const dest = join(dir, f);
    mkdirSync(dirname(dest), { recursive: true });
    const edits = byFile.get(f);
    if (edits) writeFileSync(dest, applyEdits(readCached(target, f, cache), edits));
    else symlinkSync(join(target.root, f), dest);
  }
  return join(dir, target.readRel);
}

function readCached(target: Target, file: string, cache: Map<string, Buffer>): Buffer {
  const key = join(target.root, file);
  let b = cache.get(key);
  if (!b) {
    b = readFileSync(key);
    cache.set(key, b);
  }
  return b;
}

interface ChildRun {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node <script> --child <path>`, killed (SIGKILL) after `timeoutMs`. */
function runChild(script: string, path: string, timeoutMs: number): Promise<ChildRun> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [script, '--child', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < 1 << 22) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 1 << 16) stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, timedOut, stdout, stderr, ms: Math.round(performance.now() - t0) });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ code: null, signal: null, timedOut: false, stdout, stderr: `${stderr}spawn failed: ${e.message}`, ms: Math.round(performance.now() - t0) });
    });
  });
}

function lastJson(stdout: string): ChildResult | null {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ChildResult;
  } catch {
    return null;
  }
}

/** The outcome of a child run, before any h5py comparison. */
function classify(run: ChildRun): { outcome: Outcome; detail: string; result: ChildResult | null } {
  const result = lastJson(run.stdout);
  const stderr = run.stderr.trim();
  if (run.timedOut) {
    return { outcome: 'hang', detail: `no exit within ${run.ms} ms${result ? ` (it had printed its result, ${result.status}: the process did not exit)` : ''}`, result };
  }
  if (result?.status === 'error' && run.code === 0) {
    return { outcome: stderr ? 'noisy-error' : 'clean-error', detail: `${result.name} ${result.code}: ${result.message}`, result };
  }
  if (result?.status === 'read' && run.code === 0) return { outcome: 'read', detail: `${result.format}, ${result.weights.length} weights, iterations ${result.iterations}`, result };
  const how = run.signal ? `signal ${run.signal}` : `exit code ${run.code}`;
  const why = result?.status === 'uncaught' ? `uncaught ${result.name}: ${result.message}${result.stack ? `\n${result.stack}` : ''}` : stderr.split('\n').slice(-6).join('\n') || 'no output';
  return { outcome: 'crash', detail: `${how}: ${why}`, result };
}

// ---------------------------------------------------------------------------------------------------
// The h5py cross-check

/**
 * The h5py side, a long-lived process per child slot (starting Python and h5py per case would cost
 * more than the case): one JSON job per stdin line, one JSON answer per stdout line. A job that hangs
 * or kills it is answered by the parent's timeout; the process is then replaced.
 */
const H5PY_CHECK = String.raw`
import hashlib, io, json, sys, zipfile
import h5py, numpy as np

def check(job):
    out = {}
    try:
        src = job['file']
        if job['zip']:
            zf = zipfile.ZipFile(src)
            try:
                zf.read('model.weights.h5')
                out['crc_ok'] = True
            except zipfile.BadZipFile as e:
                out['crc_ok'] = False
                out['crc_error'] = str(e)
            f = zf.open('model.weights.h5')
            f._expected_crc = None  # read the bytes as stored, whatever their CRC, to compare the HDF5 reading
            src = io.BytesIO(f.read())
        h = h5py.File(src, 'r')
    except Exception as e:
        out['open_error'] = type(e).__name__ + ': ' + str(e)
        return out
    with h:
        def read(path):
            try:
                a = np.asarray(h[path][()])
                le = a.astype(a.dtype.newbyteorder('<')) if a.dtype.kind in 'fiu' else a
                return {'dtype': a.dtype.str, 'shape': list(a.shape), 'sha256': hashlib.sha256(np.ascontiguousarray(le).tobytes()).hexdigest()}
            except Exception as e:
                return {'error': type(e).__name__ + ': ' + str(e)}
        out['weights'] = {p: read(p) for p in job['paths']}
        # legacy model variables ('dense/kernel') live at model_weights/<layer>/<name>:0
        found = {}
        if job['vars']:
            wanted = {v + ':0': v for v in job['vars']}
            def visit(name, obj):
                for suffix, v in wanted.items():
                    if name.endswith('/' + suffix) and isinstance(obj, h5py.Dataset):
                        found.setdefault(v, []).append(name)
            try:
                h['model_weights'].visititems(visit)
            except Exception as e:
                out['vars_error'] = type(e).__name__ + ': ' + str(e)
        out['vars'] = {v: read('model_weights/' + paths[0]) for v, paths in found.items() if len(paths) == 1}
    return out

print(json.dumps({'ready': True}), flush=True)
for line in sys.stdin:
    try:
        answer = check(json.loads(line))
    except Exception as e:
        answer = {'open_error': 'checker: ' + type(e).__name__ + ': ' + str(e)}
    print(json.dumps(answer), flush=True)
`;

/** A long-lived h5py checker process (H5PY_CHECK), restarted after a job that hangs or kills it. */
export class H5pyChecker {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private buffer = '';
  private waiting: ((line: string | null) => void) | null = null;

  constructor(private readonly python: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const p = spawn(this.python, ['-c', H5PY_CHECK], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.buffer = '';
    p.stdout.on('data', (c: Buffer) => {
      this.buffer += c.toString('utf8');
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const w = this.waiting;
        this.waiting = null;
        w?.(line);
      }
    });
    p.stderr.on('data', () => {}); // h5py's own warnings; the answer says what failed
    p.on('close', () => {
      if (this.proc === p) this.proc = null;
      const w = this.waiting;
      this.waiting = null;
      w?.(null);
    });
    p.stdin.on('error', () => {}); // a checker that died while we wrote: answered by 'close'
    return p;
  }

  private next(timeoutMs: number): Promise<string | null> {
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        this.stop();
        done(null);
      }, timeoutMs);
      this.waiting = (line) => {
        clearTimeout(timer);
        done(line);
      };
    });
  }

  /** The answer to one job, or null when the checker hung (past `timeoutMs`) or died on it. */
  async ask(job: unknown, timeoutMs: number): Promise<H5pyAnswer | null> {
    if (!this.proc) {
      this.proc = this.start();
      const ready = await this.next(60_000);
      if (!ready) return null;
    }
    const answer = this.next(timeoutMs);
    this.proc?.stdin.write(`${JSON.stringify(job)}\n`);
    const line = await answer;
    return line ? (JSON.parse(line) as H5pyAnswer) : null;
  }

  stop(): void {
    const p = this.proc;
    this.proc = null;
    p?.kill('SIGKILL');
  }
}

const NUMPY: Record<string, string> = { float16: 'f2', float32: 'f4', float64: 'f8', int32: 'i4', int64: 'i8' };

/** Where h5py finds a state weight: Keras 3 weights are named by their path, legacy ones live under optimizer_weights/. */
const datasetPath = (name: string): string => (name.startsWith('optimizer/') ? name : `optimizer_weights/${name}`);

interface H5pyAnswer {
  open_error?: string;
  crc_ok?: boolean;
  crc_error?: string;
  weights?: Record<string, { dtype?: string; shape?: number[]; sha256?: string; error?: string }>;
  vars?: Record<string, { dtype?: string; shape?: number[]; sha256?: string; error?: string }>;
}

/** Compares a read with h5py's reading of the same mutated file: the new outcome and why, or null when it agrees. */
async function h5pyCompare(checker: H5pyChecker, path: string, zip: boolean, result: Extract<ChildResult, { status: 'read' }>, timeoutMs: number): Promise<{ outcome: Outcome | null; detail: string; h5py: string }> {
  const keras3 = (n: string) => /(^|\/)vars\/\d+$/.test(n);
  const job = {
    file: path,
    zip,
    paths: [...result.weights.map((w) => datasetPath(w.name)), ...result.variables.filter((v) => keras3(v.name)).map((v) => v.name)],
    vars: result.variables.filter((v) => !keras3(v.name)).map((v) => v.name),
  };
  const a = await checker.ask(job, timeoutMs);
  if (!a) return { outcome: null, detail: '', h5py: `h5py check failed: no answer within ${timeoutMs} ms, or the checker died on this file` };
  if (a.open_error) return { outcome: zip && a.crc_ok === false ? 'read-bad-crc' : null, detail: a.crc_ok === false ? `zipfile: ${a.crc_error}` : '', h5py: `h5py cannot open it: ${a.open_error}` };
  const problems: string[] = [];
  const unreadable: string[] = [];
  let compared = 0;
  const check = (what: string, w: ChildWeight, d: { dtype?: string; shape?: number[]; sha256?: string; error?: string } | undefined) => {
    if (!d) return;
    if (d.error) {
      unreadable.push(`${what} (${d.error})`);
      return;
    }
    compared++;
    if (d.dtype?.slice(1) !== NUMPY[w.dtype] || JSON.stringify(d.shape) !== JSON.stringify(w.shape)) problems.push(`${what}: kerasopt ${w.dtype}[${w.shape}], h5py ${d.dtype}[${d.shape}]`);
    else if (d.sha256 !== w.sha256) problems.push(`${what}: ${w.dtype}[${w.shape}] bytes differ (kerasopt sha256 ${w.sha256.slice(0, 12)}, h5py ${d.sha256?.slice(0, 12)})`);
  };
  for (const w of result.weights) check(`weight ${w.name}`, w, a.weights?.[datasetPath(w.name)]);
  for (const v of result.variables) if (keras3(v.name)) check(`variable ${v.name}`, v, a.weights?.[v.name]);
  for (const v of result.variables) if (!keras3(v.name)) check(`variable ${v.name}`, v, a.vars?.[v.name]);
  // objects kerasopt read but h5py (another libhdf5 build) cannot: nothing to compare them with, said in `h5py`
  const h5py = unreadable.length ? `partly: ${compared} objects compared; h5py cannot read ${unreadable.length} that kerasopt read, e.g. ${unreadable[0]}` : compared ? 'yes' : 'nothing to compare';
  if (problems.length) return { outcome: 'differs-from-h5py', detail: problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : ''), h5py };
  if (zip && a.crc_ok === false) return { outcome: 'read-bad-crc', detail: `zipfile: ${a.crc_error} (kerasopt read it without error; h5py agrees on the stored bytes)`, h5py };
  return { outcome: null, detail: '', h5py };
}

// ---------------------------------------------------------------------------------------------------
// Running

interface RunContext {
  o: FuzzOptions;
  work: string;
  cache: Map<string, Buffer>;
  counter: { n: number };
  /** One h5py checker per child slot. */
  checkers: H5pyChecker[];
}

async function runCase(spec: CaseSpec, ctx: RunContext, timeoutMs: number, slot: number, keep?: string): Promise<CaseResult> {
  const { target } = spec;
  const mutation = makeMutation(target, spec.mutation, spec.seed, spec.param, (f) => readCached(target, f, ctx.cache));
  const dir = keep ?? join(ctx.work, `case-${ctx.counter.n++}`);
  mkdirSync(dir, { recursive: true });
  try {
    const path = materialize(target, mutation, dir, ctx.cache);
    const run = await runChild(ctx.o.childScript, path, timeoutMs);
    let { outcome, detail, result } = classify(run);
    let h5py: string | undefined;
    if (outcome === 'read' && target.kind !== 'tensor-bundle' && result?.status === 'read') {
      if (!ctx.o.h5py) h5py = 'not compared (--no-h5py)';
      else {
        const checker = (ctx.checkers[slot] ??= new H5pyChecker(ctx.o.python));
        const c = await h5pyCompare(checker, path, target.kind === 'keras-archive', result, Math.max(timeoutMs, 30_000));
        h5py = c.h5py;
        if (c.outcome) {
          outcome = c.outcome;
          detail = `${c.detail} [${detail}]`;
        }
      }
    }
    const local = (text: string) => text.split(`${dir}/`).join(''); // messages name the file by its path in the item, not the case folder
    return {
      id: spec.id, target: target.key, kind: target.kind, mutation: spec.mutation, seed: spec.seed, what: mutation.what,
      outcome, ms: run.ms, detail: local(detail), stderr: local(run.stderr.slice(0, 2000)), ...(h5py ? { h5py: local(h5py) } : {}),
    };
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

async function runBaseline(target: Target, ctx: RunContext): Promise<BaselineResult> {
  const dir = join(ctx.work, `base-${ctx.counter.n++}`);
  mkdirSync(dir, { recursive: true });
  try {
    const run = await runChild(ctx.o.childScript, materialize(target, null, dir, ctx.cache), ctx.o.timeoutMs);
    const { outcome, detail } = classify(run);
    const local = (text: string) => text.split(`${dir}/`).join('');
    return { target: target.key, kind: target.kind, sha: target.sha, outcome, detail: local(detail), stderr: local(run.stderr.slice(0, 2000)), ms: run.ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `jobs` at a time, in order of submission; `slot` says which of the `jobs` runners runs the item. */
async function pool<T, R>(items: readonly T[], jobs: number, work: (item: T, i: number, slot: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, async (_, slot) => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!, i, slot);
    }
  });
  await Promise.all(runners);
  return out;
}

/** Runs a whole round: targets, baseline, cases (hangs confirmed), and returns everything. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const o = { ...options };
  const work = mkdtempSync(join(tmpdir(), 'kerasopt-fuzz-'));
  const ctx: RunContext = { o, work, cache: new Map(), counter: { n: 0 }, checkers: [] };
  try {
    const { targets, notes } = collectTargets(o, work);
    if (o.cases < targets.length) notes.push(`${o.cases} cases for ${targets.length} targets: some targets are not mutated (use --cases ${targets.length} or more)`);
    const baseline = o.baseline ? await pool(targets, o.jobs, (t) => runBaseline(t, ctx)) : [];
    const specs = planCases(targets, o.seed, o.cases);
    let done = 0;
    const cases = await pool(specs, o.jobs, async (spec, _, slot) => {
      const r = await runCase(spec, ctx, o.timeoutMs, slot);
      o.onProgress?.(++done, specs.length, r);
      return r;
    });
    if (o.confirmHangs) {
      for (let i = 0; i < cases.length; i++) {
        if (cases[i]!.outcome !== 'hang' || o.knownHangs?.includes(cases[i]!.id)) continue;
        const again = await runCase(specs[i]!, ctx, 2 * o.timeoutMs, 0);
        cases[i] = again.outcome === 'hang' ? { ...cases[i]!, detail: `${cases[i]!.detail}; again no exit within ${again.ms} ms alone` } : { ...again, slow: true, detail: `${again.detail} (first run: no exit within ${o.timeoutMs} ms)` };
      }
    }
    ctx.cache.clear();
    const { onProgress: _, ...kept } = o;
    return { options: kept, targets: targets.map((t) => ({ key: t.key, kind: t.kind, sha: t.sha })), baseline, cases, notes, seconds: Math.round((performance.now() - t0) / 100) / 10 };
  } finally {
    for (const c of ctx.checkers) c?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Re-runs one case by its id (the targets are collected as in a round with the same options). */
export async function replayCase(id: string, options: FuzzOptions, out?: string): Promise<{ result: CaseResult; target: Pick<Target, 'key' | 'sha'> }> {
  const work = mkdtempSync(join(tmpdir(), 'kerasopt-fuzz-'));
  try {
    const source = id.slice(0, id.indexOf('/'));
    const { targets, notes } = collectTargets({ ...options, helpers: options.helpers && source === 'helper' }, work);
    const spec = parseCaseId(id, targets);
    if (notes.length) for (const n of notes) process.stderr.write(`note: ${n}\n`);
    const ctx: RunContext = { o: options, work, cache: new Map(), counter: { n: 0 }, checkers: [] };
    const result = await runCase(spec, ctx, options.timeoutMs, 0, out ? resolve(out) : undefined).finally(() => ctx.checkers.forEach((c) => c.stop()));
    return { result, target: { key: spec.target.key, sha: spec.target.sha } };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Reporting

export type Counts = Record<Outcome, number> & { cases: number };

export function count(cases: readonly CaseResult[]): Counts {
  const c = { cases: cases.length } as Counts;
  for (const k of OUTCOMES) c[k] = 0;
  for (const r of cases) c[r.outcome]++;
  return c;
}

/** The hang and crash cases (what a CI round fails on). */
export const failures = (r: Pick<FuzzReport, 'cases'>): CaseResult[] => r.cases.filter((c) => c.outcome === 'hang' || c.outcome === 'crash');

function table(rows: Array<[string, Counts]>): string[] {
  const cols: Array<keyof Counts> = ['cases', ...OUTCOMES];
  const width = Math.max(18, ...rows.map(([n]) => n.length));
  const head = `  ${'mutation'.padEnd(width)} ${cols.map((c) => String(c).padStart(Math.max(6, String(c).length))).join(' ')}`;
  const line = (name: string, c: Counts) => `  ${name.padEnd(width)} ${cols.map((k) => String(c[k]).padStart(Math.max(6, String(k).length))).join(' ')}`;
  return [head, ...rows.map(([n, c]) => line(n, c))];
}

export function formatReport(r: FuzzReport): string {
  const out: string[] = [];
  const o = r.options;
  out.push(`kerasopt fuzz: seed ${o.seed}, ${r.cases.length} cases over ${r.targets.length} items, timeout ${o.timeoutMs} ms, ${o.jobs} children at a time, ${r.seconds} s`);
  out.push(`corpora: ${o.corpora.join(', ')}${o.helpers ? ' + test helpers (test/helpers/keras_files.py, tf_checkpoint.py)' : ''}`);
  for (const n of r.notes) out.push(`NOTE: ${n}`);
  out.push('');
  out.push(o.baseline ? 'Baseline (unmutated items):' : 'Baseline: not run');
  const byOutcome = new Map<string, BaselineResult[]>();
  for (const b of r.baseline) byOutcome.set(b.outcome, [...(byOutcome.get(b.outcome) ?? []), b]);
  for (const [outcome, list] of byOutcome) out.push(`  ${outcome}: ${list.length}`);
  for (const b of r.baseline.filter((x) => x.outcome !== 'read')) out.push(`    ${b.target}: ${b.outcome}: ${b.detail.split('\n')[0]!.slice(0, 240)}${b.stderr ? ` [stderr: ${b.stderr.trim().split('\n')[0]}]` : ''}`);
  for (const kind of FILE_KINDS) {
    const mine = r.cases.filter((c) => c.kind === kind);
    if (mine.length === 0) continue;
    out.push('');
    out.push(`${kind} (${new Set(mine.map((c) => c.target)).size} items, ${mine.length} cases):`);
    const rows: Array<[string, Counts]> = MUTATIONS[kind].map((m) => [m, count(mine.filter((c) => c.mutation === m))]);
    rows.push(['all', count(mine)]);
    out.push(...table(rows));
    if (kind !== 'tensor-bundle') {
      const reads = mine.filter((c) => c.h5py !== undefined);
      const full = reads.filter((c) => c.h5py === 'yes').length;
      const partly = reads.filter((c) => c.h5py?.startsWith('partly')).length;
      out.push(`  reads compared with h5py: ${full} fully, ${partly} partly (h5py cannot read some objects kerasopt read), ${reads.length - full - partly} not (h5py cannot open the file, or no check)`);
    }
    const sources = [...new Set(mine.map((c) => c.target.slice(0, c.target.indexOf('/'))))];
    out.push(`  by source: ${sources.map((s) => { const c = count(mine.filter((x) => x.target.startsWith(`${s}/`))); return `${s} ${c.cases} cases (${OUTCOMES.filter((k) => c[k]).map((k) => `${c[k]} ${k}`).join(', ')})`; }).join('; ')}`);
  }
  const slowest = [...r.cases].filter((c) => c.outcome !== 'hang').sort((a, b) => b.ms - a.ms).slice(0, 3);
  if (slowest.length) out.push('', `Slowest finished cases: ${slowest.map((c) => `${c.ms} ms ${c.outcome} ${c.id}`).join('; ')}`);
  const slow = r.cases.filter((c) => c.slow);
  if (slow.length) out.push('', `Slow cases (timed out once, finished when re-run alone): ${slow.map((c) => c.id).join(', ')}`);
  const noisy = r.cases.filter((c) => c.outcome === 'noisy-error');
  if (noisy.length) {
    out.push('', `!!! ${noisy.length} NOISY ERRORS (clean error, but the child also wrote to stderr):`);
    for (const c of noisy.slice(0, 20)) out.push(`  ${c.id}: ${c.what}\n      stderr: ${c.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    if (noisy.length > 20) out.push(`  ... and ${noisy.length - 20} more`);
  }
  const differs = r.cases.filter((c) => c.outcome === 'differs-from-h5py' || c.outcome === 'read-bad-crc');
  if (differs.length) {
    out.push('', `Reads that h5py / zipfile disagree with (${differs.length}):`);
    for (const c of differs.slice(0, 30)) out.push(`  ${c.outcome} ${c.id}: ${c.what}\n      ${c.detail.split('\n')[0]!.slice(0, 400)}`);
    if (differs.length > 30) out.push(`  ... and ${differs.length - 30} more`);
  }
  const bad = failures(r);
  const badBase = r.baseline.filter((b) => b.outcome === 'hang' || b.outcome === 'crash');
  out.push('');
  if (bad.length || badBase.length) {
    out.push(`HANGS AND CRASHES (${bad.length} cases${badBase.length ? `, ${badBase.length} unmutated items` : ''}); replay with: npm run fuzz -- --replay <id>`);
    for (const b of badBase) out.push(`  ${b.outcome} baseline ${b.target}: ${b.detail.split('\n')[0]}`);
    for (const c of bad) out.push(`  ${c.outcome} ${c.id}\n      file ${c.target}, mutation ${c.mutation}, seed ${c.seed ?? '-'}: ${c.what}\n      ${c.detail.split('\n').slice(0, 4).join('\n      ')}`);
  } else out.push('No hang, no crash.');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// The child: reads one file and prints one JSON line

const sha256 = (t: { data: ArrayBufferView }): string => createHash('sha256').update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex');

async function child(path: string): Promise<void> {
  let line: ChildResult;
  try {
    const s = await readOptimizerState(path);
    const w = (x: { name: string; value: { dtype: string; shape: readonly number[]; data: ArrayBufferView } }): ChildWeight => ({ name: x.name, dtype: x.value.dtype, shape: [...x.value.shape], sha256: sha256(x.value) });
    line = { status: 'read', format: s.format, iterations: s.iterations, weights: s.weights.map(w), variables: s.variables.map(w) };
  } catch (e) {
    if (e instanceof KerasoptError) line = { status: 'error', name: e.name, code: e.code, message: e.message };
    else {
      const err = e instanceof Error ? e : new Error(String(e));
      line = { status: 'uncaught', name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}) };
      process.exitCode = 1;
    }
  }
  // no process.exit(): a read that leaves a handle open keeps the child alive, and the timeout reports it
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// Command line

const USAGE = 'usage: npm run fuzz -- [--seed N] [--cases N] [--timeout-ms N] [--jobs N] [--corpus DIR]... [--no-helpers] [--no-h5py] [--no-confirm-hangs] [--no-baseline] [--json OUT] [--verbose] | --replay ID [--out DIR]';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--child') {
    await child(argv[1]!);
    return -1;
  }
  const o = defaultOptions();
  let json: string | undefined;
  let replay: string | undefined;
  let out: string | undefined;
  let verbose = false;
  const corpora: string[] = [];
  const num = (a: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${a} takes a non-negative integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seed') o.seed = num(a, argv[++i]);
    else if (a === '--cases') o.cases = num(a, argv[++i]);
    else if (a === '--timeout-ms') o.timeoutMs = num(a, argv[++i]);
    else if (a === '--jobs') o.jobs = Math.max(1, num(a, argv[++i]));
    else if (a === '--corpus') corpora.push(resolve(argv[++i] ?? ''));
    else if (a === '--json') json = resolve(argv[++i] ?? '');
    else if (a === '--replay') replay = argv[++i];
    else if (a === '--out') out = argv[++i];
    else if (a === '--no-helpers') o.helpers = false;
    else if (a === '--no-h5py') o.h5py = false;
    else if (a === '--no-confirm-hangs') o.confirmHangs = false;
    else if (a === '--no-baseline') o.baseline = false;
    else if (a === '--verbose') verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (corpora.length) o.corpora = corpora;
  if (o.h5py || o.helpers) {
    const r = spawnSync(o.python, ['-c', 'import h5py, numpy'], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(`\n*** ${o.python} cannot import h5py/numpy: the helpers' files and the h5py comparison are SKIPPED (install Debian's python3-h5py, python3-numpy) ***\n`);
      o.h5py = false;
      o.helpers = false;
    }
  }
  if (replay) {
    const { result, target } = await replayCase(replay, o, out);
    console.log(`case ${result.id}\n  item ${target.key} (sha256 ${target.sha}...)\n  mutation: ${result.what}\n  outcome: ${result.outcome} after ${result.ms} ms\n  ${result.detail}`);
    if (result.stderr) console.log(`  stderr:\n${result.stderr.replace(/^/gm, '    ')}`);
    if (result.h5py) console.log(`  h5py: ${result.h5py}`);
    if (out) console.log(`  mutated files written under ${resolve(out)}`);
    return result.outcome === 'hang' || result.outcome === 'crash' ? 1 : 0;
  }
  let lastShown = 0;
  o.onProgress = (done, total, last) => {
    if (verbose) process.stderr.write(`[${done}/${total}] ${last.outcome.padEnd(17)} ${last.ms}ms ${last.id}\n`);
    else if (done === total || performance.now() - lastShown > 5000) {
      lastShown = performance.now();
      process.stderr.write(`  ${done}/${total} cases\n`);
    }
  };
  const report = await runFuzz(o);
  console.log(formatReport(report));
  if (json) {
    writeFileSync(json, `${JSON.stringify(report, null, 1)}\n`);
    console.log(`\nfull results: ${json}`);
  }
  const bad = failures(report).length + report.baseline.filter((b) => b.outcome === 'hang' || b.outcome === 'crash').length;
  return bad > 0 ? 1 : 0;
}

const invoked = process.argv[1] ? resolve(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exitCode = code;
    },
    (e: unknown) => {
      console.error((e as Error).message ?? e);
      process.exitCode = 2;
    },
  );
}
