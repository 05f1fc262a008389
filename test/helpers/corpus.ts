import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yauzl from 'yauzl';
import type { KerasOptimizerState } from '../../src/formats/index.js';
import { arith, type Tensor } from '../../src/index.js';
import { nextUProduct } from '../../src/optimizers/nadam/keras3.js';
import { tfKerasCoefficients } from '../../src/optimizers/nadam/tfKeras.js';
import { nextUProductTf211 } from '../../src/optimizers/nadam/tfKerasNew.js';
import type { FloatDType } from '../../src/tensor/dtype.js';
import { PYTHON } from './python.js';

/**
 * The real-file corpus (../shared/corpus/real, or KERASOPT_CORPUS_DIR for the held-back files, same
 * layout): its manifest.json turned into loadable items, the manifest's facts (read without kerasopt)
 * turned into expectations, and the independent readers (h5py via corpus_facts.py, yauzl) the suite
 * compares kerasopt with. Nothing here knows any particular file.
 */
const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '../..');
const DEFAULT_DIR = resolve(REPO, '../shared/corpus/real');
export const CORPUS_DIR = process.env.KERASOPT_CORPUS_DIR ? resolve(process.env.KERASOPT_CORPUS_DIR) : DEFAULT_DIR;
export const IS_DEFAULT_CORPUS = CORPUS_DIR === DEFAULT_DIR;
/** The corpus of other optimizers' real files (../shared/corpus/real-other, or KERASOPT_OTHER_CORPUS_DIR for the held-back ones). */
const DEFAULT_OTHER_DIR = resolve(REPO, '../shared/corpus/real-other');
export const OTHER_CORPUS_DIR = process.env.KERASOPT_OTHER_CORPUS_DIR ? resolve(process.env.KERASOPT_OTHER_CORPUS_DIR) : DEFAULT_OTHER_DIR;
export const IS_DEFAULT_OTHER_CORPUS = OTHER_CORPUS_DIR === DEFAULT_OTHER_DIR;
export const CLI = join(REPO, 'dist/src/cli/main.js');

/** One optimizer weight as the manifest describes it (HDF5: name; archives / Keras 3: index). */
export interface ManifestWeight {
  name?: string;
  index?: number;
  shape: number[];
  dtype: string;
  value?: number;
  min?: number;
  max?: number;
}
export interface ManifestEntry {
  file: string;
  format?: string;
  optimizer_weights?: ManifestWeight[];
  optimizer_vars?: ManifestWeight[];
  optimizer_slots?: Array<{ key: string; dtype: string; shape: number[] }>;
  optimizer_scalars?: Record<string, number>;
  iterations?: number;
  [fact: string]: unknown;
}
export interface CorpusItem {
  /** The item's path relative to the corpus folder (a SavedModel's folder, a checkpoint's prefix). */
  id: string;
  /** What readOptimizerState, the CLI and saveOptimizerState are given. */
  path: string;
  kind: 'hdf5' | 'keras-archive' | 'savedmodel' | 'checkpoint';
  entry: ManifestEntry;
}

/** The manifest's loadable items; `problem` says why there are none. */
export function loadCorpus(dir = CORPUS_DIR): { items: CorpusItem[]; problem: string | null } {
  const CORPUS_DIR = dir;
  const file = join(CORPUS_DIR, 'manifest.json');
  if (!existsSync(file)) return { items: [], problem: `${file} does not exist` };
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as ManifestEntry[];
  const items: CorpusItem[] = [];
  for (const entry of manifest) {
    if (entry.format === 'hdf5' || entry.format === 'keras-archive') {
      items.push({ id: entry.file, path: join(CORPUS_DIR, entry.file), kind: entry.format, entry });
    } else if (entry.format === 'tensor-bundle-index') {
      const savedModel = entry.file.endsWith('/variables/variables.index');
      const id = savedModel ? dirname(dirname(entry.file)) : entry.file.slice(0, -'.index'.length);
      items.push({ id, path: join(CORPUS_DIR, id), kind: savedModel ? 'savedmodel' : 'checkpoint', entry });
    }
  }
  return { items, problem: items.length ? null : `${file} lists no loadable item (hdf5, keras-archive, tensor-bundle-index)` };
}

const SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';

/** The manifest's optimizer weights, as the state should name them; `ordered` when the manifest gives the file order. */
export function expectedWeights(entry: ManifestEntry): { weights: Array<ManifestWeight & { name: string }>; ordered: boolean } {
  if (entry.optimizer_weights) return { weights: entry.optimizer_weights.map((w) => ({ ...w, name: w.name! })), ordered: true };
  if (entry.optimizer_vars) {
    const vars = [...entry.optimizer_vars].sort((a, b) => a.index! - b.index!);
    return { weights: vars.map((w) => ({ ...w, name: `optimizer/vars/${w.index}` })), ordered: true };
  }
  const slots = (entry.optimizer_slots ?? []).map((s) => ({ name: s.key.replace(SUFFIX, ''), shape: s.shape, dtype: s.dtype }));
  const scalars = Object.entries(entry.optimizer_scalars ?? {}).map(([k, value]) => ({ name: k.replace(SUFFIX, ''), shape: [], dtype: '', value }));
  return { weights: [...slots, ...scalars], ordered: false };
}

/** The iteration count the manifest records (first int weight / optimizer/vars/0 / `iterations`), or null. */
export function expectedIterations(entry: ManifestEntry): number | null {
  if (typeof entry.iterations === 'number') return entry.iterations;
  const first = entry.optimizer_weights?.[0] ?? entry.optimizer_vars?.find((v) => v.index === 0);
  return typeof first?.value === 'number' ? first.value : null;
}

const same = (a: number, b: number): boolean => a === b || (Number.isNaN(a) && Number.isNaN(b));
const show = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));

/** min and max as numpy computes them (NaN if any element is NaN). */
function minMax(t: Tensor): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < t.size; i++) {
    const x = t.get(i);
    if (Number.isNaN(x)) return [NaN, NaN];
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return [min, max];
}

/** Differences between a weight kerasopt read and the manifest's facts about it (shape, dtype, value or min/max, exact). */
export function weightProblems(where: string, t: Tensor, e: ManifestWeight): string[] {
  const out: string[] = [];
  if (JSON.stringify(e.shape) !== JSON.stringify([...t.shape])) out.push(`${where}: shape expected [${e.shape}], got [${t.shape}]`);
  if (e.dtype && e.dtype !== t.dtype) out.push(`${where}: dtype expected ${e.dtype}, got ${t.dtype}`);
  if (e.value !== undefined) {
    if (t.size !== 1) out.push(`${where}: expected a scalar ${e.value}, got ${t.size} elements`);
    else if (t.dtype === 'int64' ? (t.data as BigInt64Array)[0] !== BigInt(e.value) : !same(t.get(0), e.value)) {
      out.push(`${where}: value expected ${show(e.value)}, got ${show(t.get(0))}`);
    }
  }
  if (e.min !== undefined || e.max !== undefined) {
    const [min, max] = minMax(t);
    if (e.min !== undefined && !same(min, e.min)) out.push(`${where}: min expected ${e.min}, got ${min}`);
    if (e.max !== undefined && !same(max, e.max)) out.push(`${where}: max expected ${e.max}, got ${max}`);
  }
  return out;
}

/** Fails with every problem listed (the first 40, then a count), each naming the weight or object, expected vs got. */
export function assertNoProblems(problems: readonly string[], what: string): void {
  if (!problems.length) return;
  const shown = problems.slice(0, 40).map((p) => `  - ${p}`);
  if (problems.length > 40) shown.push(`  ... and ${problems.length - 40} more`);
  throw new Error(`${what}: ${problems.length} problem(s)\n${shown.join('\n')}`);
}

/** The HDF5 dataset holding a state weight: Keras 3 weights are named by their path, legacy ones live under optimizer_weights/. */
export const datasetPath = (name: string): string => (name.startsWith('optimizer/') ? name : `optimizer_weights/${name}`);

/** The fields the NEW API adds, read without depending on whether the types have them yet. */
export const inModel = (slot: KerasOptimizerState['slots'][number]): boolean => (slot as { inModel?: boolean }).inModel !== false;
export const release = (state: KerasOptimizerState): unknown => (state as { release?: unknown }).release;

/** h5py's (and zipfile's) reading of an HDF5 file or .keras archive (test/helpers/corpus_facts.py). */
export interface H5Facts {
  zip: Record<string, string> | null;
  groups: string[];
  datasets: Record<string, { dtype: string; shape: number[]; hex?: string }>;
  attrs: Record<string, Record<string, { type: Record<string, unknown>; shape: number[]; value: unknown }>>;
}
const FACTS = join(HERE, 'corpus_facts.py');
function factsJob<T>(job: unknown): T {
  return JSON.parse(execFileSync(PYTHON, [FACTS], { input: JSON.stringify(job), encoding: 'utf8', maxBuffer: 1 << 28 })) as T;
}
export const h5Facts = (path: string): H5Facts => factsJob<H5Facts>({ facts: path });
/** The numpy reference's schedule scalar after `steps` more steps (hex of its little-endian bytes in, out). */
export function referenceSchedule(job: { flavour: string; dtype: string; config: Record<string, unknown>; iterations: number; hex: string; steps: number }): string {
  return factsJob<{ hex: string }>({ schedule: job }).hex;
}
export const hexOf = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

/** The differences between two h5py structures (groups, dataset dtypes/shapes, attribute names, types and values). */
export function structureDifferences(original: H5Facts, ours: H5Facts): string[] {
  const out: string[] = [];
  const diffKeys = (what: string, a: string[], b: string[]) => {
    const [sa, sb] = [new Set(a), new Set(b)];
    for (const k of a) if (!sb.has(k)) out.push(`${what} ${k} is gone`);
    for (const k of b) if (!sa.has(k)) out.push(`${what} ${k} is new`);
  };
  diffKeys('group', original.groups, ours.groups);
  diffKeys('dataset', Object.keys(original.datasets), Object.keys(ours.datasets));
  for (const [k, d] of Object.entries(original.datasets)) {
    const o = ours.datasets[k];
    if (o && (o.dtype !== d.dtype || JSON.stringify(o.shape) !== JSON.stringify(d.shape))) out.push(`dataset ${k}: ${d.dtype}[${d.shape}] became ${o.dtype}[${o.shape}]`);
  }
  diffKeys('attribute-holder', Object.keys(original.attrs), Object.keys(ours.attrs));
  for (const [obj, attrs] of Object.entries(original.attrs)) {
    const mine = ours.attrs[obj] ?? {};
    diffKeys(`attribute of ${obj}:`, Object.keys(attrs), Object.keys(mine));
    for (const [name, a] of Object.entries(attrs)) {
      const o = mine[name];
      if (!o) continue;
      if (JSON.stringify([o.type, o.shape]) !== JSON.stringify([a.type, a.shape])) out.push(`attribute ${obj}:${name}: stored as ${JSON.stringify([o.type, o.shape])}, was ${JSON.stringify([a.type, a.shape])}`);
      else if (JSON.stringify(o.value) !== JSON.stringify(a.value)) out.push(`attribute ${obj}:${name}: value changed`);
    }
  }
  return out;
}

/** Every file that makes up the item (a SavedModel's whole folder; a checkpoint's .index, .data-* and `checkpoint`). */
export function itemFiles(item: CorpusItem, path = item.path): string[] {
  if (item.kind === 'savedmodel') {
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    return walk(path).map((f) => relative(path, f)).sort();
  }
  if (item.kind === 'checkpoint') {
    const prefix = basename(path);
    return readdirSync(dirname(path)).filter((n) => n === 'checkpoint' || n.startsWith(`${prefix}.`)).sort();
  }
  return [basename(path)];
}

/** Copies the item into `dir` (writable copies; the corpus is never written) and returns the copy's item path. */
export function copyItem(item: CorpusItem, dir: string): string {
  const target = join(dir, basename(item.path));
  if (item.kind === 'savedmodel') {
    cpSync(item.path, target, { recursive: true });
    const walk = (d: string): void => {
      chmodSync(d, 0o755);
      for (const n of readdirSync(d)) statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : chmodSync(join(d, n), 0o644);
    };
    walk(target);
    return target;
  }
  mkdirSync(dir, { recursive: true });
  for (const f of itemFiles(item)) {
    copyFileSync(join(dirname(item.path), f), join(dir, f));
    chmodSync(join(dir, f), 0o644);
  }
  return target;
}

/** The files (relative to the item's folder) of `copy` whose bytes differ from the original's, or that appeared / went. */
export function changedFiles(item: CorpusItem, copy: string): string[] {
  const base = (p: string) => (item.kind === 'savedmodel' ? p : dirname(p));
  const orig = itemFiles(item);
  const ours = item.kind === 'savedmodel' ? itemFiles(item, copy) : readdirSync(dirname(copy)).sort();
  const out = ours.filter((f) => !orig.includes(f)).map((f) => `${f}: new file`);
  for (const f of orig) {
    if (!ours.includes(f)) {
      out.push(`${f}: gone`);
      continue;
    }
    const [a, b] = [readFileSync(join(base(item.path), f)), readFileSync(join(base(copy), f))];
    if (a.equals(b)) continue;
    let at = 0;
    while (at < Math.min(a.length, b.length) && a[at] === b[at]) at++;
    out.push(`${f}: ${b.length} bytes (original ${a.length}), first difference at byte ${at}`);
  }
  return out;
}

/** Every entry of a zip archive, by name (yauzl, independent of src/formats/archive.ts). */
export function zipEntries(file: string): Promise<Record<string, Buffer>> {
  return new Promise((done, fail) => {
    const out: Record<string, Buffer> = {};
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return fail(err);
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return fail(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out[entry.fileName] = Buffer.concat(chunks);
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => done(out));
      zip.on('error', fail);
      zip.readEntry();
    });
  });
}

/** The names of the entries that differ between two archives' entry maps (gone, new, or other bytes). */
export function zipDifferences(a: Record<string, Buffer>, b: Record<string, Buffer>): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return names.flatMap((n) => (!b[n] ? [`${n}: gone`] : !a[n] ? [`${n}: new entry`] : a[n]!.equals(b[n]!) ? [] : [`${n}: bytes differ (${b[n]!.length} bytes, original ${a[n]!.length})`]));
}

/** Runs the built CLI (dist/src/cli/main.js) and returns its exit code and output. */
export function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 }, (e, out, err) => {
      done({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err });
    });
  });
}

/** Builds dist/ (npm run build) when it is missing or older than a source file, so the CLI runs the code under test. */
export function ensureBuilt(): string | null {
  const newest = (d: string): number =>
    Math.max(0, ...readdirSync(d).map((n) => (statSync(join(d, n)).isDirectory() ? newest(join(d, n)) : n.endsWith('.ts') ? statSync(join(d, n)).mtimeMs : 0)));
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newest(join(REPO, 'src'))) return null;
  try {
    execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.json')], { encoding: 'utf8' });
    return null;
  } catch (e) {
    // tsc still emits on type errors; the CLI then runs what was emitted, and the log says so.
    return `npm run build reported errors (dist/ emitted anyway):\n${(e as { stdout?: string }).stdout ?? e}`;
  }
}

/**
 * The momentum-schedule product (momentum_cache, m_schedule, u_product) after `iterations` steps from 1,
 * with kerasopt's exported recurrence for the flavour and the config's beta_1 (and, tf.keras / Keras 2,
 * schedule_decay: tf.keras ignores `decay` and takes schedule_decay, default 0.004, as TF's nadam.py does).
 */
export function kerasoptSchedule(flavour: string, dtype: FloatDType, config: Record<string, unknown>, iterations: number): number {
  const a = arith(dtype);
  const beta1 = Number(config.beta_1 ?? 0.9);
  let product = 1;
  for (let it = 0; it < iterations; it++) {
    if (flavour === 'keras3') product = nextUProduct(a, product, beta1, it);
    else if (flavour === 'tf-keras-new') product = nextUProductTf211(a, product, beta1, it);
    else {
      product = tfKerasCoefficients(a, {
        lr: 0.001, beta_1: flavour === 'tf-keras' ? Math.fround(beta1) : beta1, beta_2: 0.999, epsilon: 1e-7,
        schedule_decay: Number(config.schedule_decay ?? 0.004), iterations: it, cache: product,
        stepForm: flavour === 'keras2' ? 'cast-then-add' : 'add-then-cast',
      }).msNew;
    }
  }
  return product;
}
