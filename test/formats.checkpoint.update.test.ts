import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, test, vi } from 'vitest';
import { TensorBundle, type BundleTensorInfo } from '../src/formats/checkpoint/bundle.js';
import { updateBundleTensors } from '../src/formats/checkpoint/update.js';
import { FormatError, readOptimizerState, Tensor } from '../src/index.js';
import { missingPython, PYTHON } from './helpers/python.js';

/**
 * updateBundleTensors on real TF-written checkpoints (copies; ../shared is never written) and on
 * multi-block, two-shard bundles made by test/helpers/tf_checkpoint.py. Outputs are re-read with
 * TensorBundle and cross-checked by test/helpers/bundle_check.py, a pure-Python reader sharing no
 * code with kerasopt (it accepts the real TF-written files first, so it is checked against TF itself).
 */

// Failure injection: update.ts does its file I/O through node:fs/promises; a test may make one call fail.
const hooks = vi.hoisted(() => ({ fail: null as null | ((op: string, args: unknown[]) => boolean), renames: [] as string[] }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const guard =
    <A extends unknown[], R>(op: string, f: (...a: A) => Promise<R>) =>
    (...a: A): Promise<R> => {
      if (op === 'rename') hooks.renames.push(`${basename(String(a[0]))} -> ${basename(String(a[1]))}`);
      if (!hooks.fail?.(op, a)) return f(...a);
      hooks.fail = null; // one failure only, so the writer's own recovery runs unhindered
      return Promise.reject(new Error(`injected ${op} failure`));
    };
  const mocked = { ...fs, rename: guard('rename', fs.rename), open: guard('open', fs.open) };
  return { ...mocked, default: mocked };
});
afterEach(() => {
  hooks.fail = null;
  hooks.renames = [];
});

const HERE = dirname(fileURLToPath(import.meta.url));
const CORPUS = process.env.KERASOPT_CORPUS_DIR ?? resolve(HERE, '../../shared/corpus/real');
const REAL = [
  'SiddharthYadav-v__ML-with-sklearn-keras-tf/my_custom_model/variables/variables',
  'sonu275981__Diabetes_by-using-keras-hyperparameter/my_dir/my_project/trial_772d3985cf54cc3f97f74581031c4f4d/checkpoints/epoch_0/checkpoint',
].map((p) => join(CORPUS, p));
const ITER = 'optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE';
const M_SLOT = /\.OPTIMIZER_SLOT\/optimizer\/m\/\.ATTRIBUTES\/VARIABLE_VALUE$/;

const missingCorpus = REAL.filter((p) => !existsSync(`${p}.index`));
if (missingCorpus.length > 0) {
  const why = `real checkpoints missing from ${CORPUS}: ${missingCorpus.join(', ')}`;
  if (process.env.CI) throw new Error(why);
  console.warn(`\n*** TF CHECKPOINT UPDATE NOT CHECKED ON REAL FILES: ${why} ***\n`);
}
const real = REAL.filter((p) => existsSync(`${p}.index`));
const missingPy = missingPython(['json', 'struct']); // bundle_check.py is pure Python
const missingNumpy = missingPython(['numpy']); // tf_checkpoint.py needs numpy

const work = mkdtempSync(join(tmpdir(), 'kerasopt-ckpt-update-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let made = 0;

/** Copies a bundle's files into a fresh folder; returns the copy's prefix. */
function copyBundle(prefix: string): string {
  const to = join(work, `b${made++}`, basename(prefix));
  mkdirSync(dirname(to));
  for (const f of readdirSync(dirname(prefix)).filter((f) => f.startsWith(`${basename(prefix)}.`))) copyFileSync(join(dirname(prefix), f), join(dirname(to), f));
  return to;
}

/** Every file of a folder, name -> bytes. */
function snapshot(folder: string): Map<string, Buffer> {
  return new Map(readdirSync(folder).sort().map((f) => [f, readFileSync(join(folder, f))]));
}

function makeHelperBundle(...args: string[]): string {
  const prefix = join(work, `h${made++}`, 'ckpt');
  mkdirSync(dirname(prefix));
  execFileSync(PYTHON, [resolve(HERE, 'helpers/tf_checkpoint.py'), prefix, ...args], { encoding: 'utf8' });
  return prefix;
}

interface Check {
  num_shards: number;
  blocks: Array<{ offset: number; size: number; type: number; trailer_crc_at: number }>;
  entries: Record<string, { dtype: number; shape: number[]; shard: number; offset: number; size: number; crc_at: number; block: number }>;
  errors: string[];
}
function pyCheck(prefix: string): Check {
  return JSON.parse(execFileSync(PYTHON, [resolve(HERE, 'helpers/bundle_check.py'), prefix], { encoding: 'utf8' })) as Check;
}

const bytesOf = (t: Tensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** A same-dtype, same-shape value whose every element differs from `old`'s. */
function replacement(old: Tensor): Tensor {
  const next = Tensor.zeros(old.dtype, old.shape);
  const src = old.data as ArrayLike<number | bigint>;
  const dst = next.data as unknown as Array<number | bigint>;
  for (let i = 0; i < next.size; i++) {
    const v = src[i]!;
    dst[i] = typeof v === 'bigint' ? v + 1000n : old.dtype === 'float16' ? (v ^ 0x0100) : old.dtype === 'int32' ? v + 7 : -2 * v + 0.5 + i / 1024;
  }
  return next;
}

/** The real bundle's optimizer iteration count and one m slot (the first in key order). */
function optimizerUpdates(prefix: string): Map<string, Tensor> {
  const b = TensorBundle.open(prefix);
  const m = b.keys().find((k) => M_SLOT.test(k));
  expect(m, 'an m slot').toBeDefined();
  return new Map([ITER, m!].map((k) => [k, replacement(b.tensor(k))]));
}

function diffAt(a: Buffer, b: Buffer): number[] {
  expect(b.length).toBe(a.length);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

/** Re-reads `out` and compares it, tensor by tensor, with `original` plus `updates`. */
function expectUpdated(original: string, out: string, updates: ReadonlyMap<string, Tensor>): void {
  const before = TensorBundle.open(original);
  const after = TensorBundle.open(out);
  expect(after.keys()).toEqual(before.keys());
  const place = (i: BundleTensorInfo) => ({ ...i, crc32c: 0 });
  for (const key of before.keys()) {
    const [b, a] = [before.info(key), after.info(key)];
    expect(place(a), key).toEqual(place(b));
    if (b.dtype === 'string') expect(after.strings(key), key).toEqual(before.strings(key));
    else expect(bytesOf(after.tensor(key)).equals(bytesOf(updates.get(key) ?? before.tensor(key))), key).toBe(true);
    if (!updates.has(key)) expect(a.crc32c, key).toBe(b.crc32c);
  }
}

/**
 * The output differs from the original only at the allowed bytes: the updated tensors' spans in the
 * data, their crc32c fields and their blocks' trailer CRCs in the index (positions from bundle_check.py).
 */
function expectOnlyAllowedBytesChanged(original: string, out: string, updates: ReadonlyMap<string, Tensor>): void {
  const info = TensorBundle.open(original);
  const spans = [...updates.keys()].map((k) => info.info(k));
  for (let shard = 0; shard < info.numShards; shard++) {
    const name = (p: string) => `${p}.data-${String(shard).padStart(5, '0')}-of-${String(info.numShards).padStart(5, '0')}`;
    const diff = diffAt(readFileSync(name(original)), readFileSync(name(out)));
    const mine = spans.filter((s) => s.shard === shard);
    expect(diff.length).toBeLessThanOrEqual(mine.reduce((n, s) => n + s.size, 0));
    expect(diff.every((i) => mine.some((s) => i >= s.offset && i < s.offset + s.size))).toBe(true);
    if (mine.length > 0) expect(diff.length).toBeGreaterThan(0);
  }
  const indexDiff = diffAt(readFileSync(`${original}.index`), readFileSync(`${out}.index`));
  // At most 4 crc bytes per updated entry and 4 trailer bytes per block holding one.
  expect(indexDiff.length).toBeGreaterThan(0);
  expect(indexDiff.length).toBeLessThanOrEqual(8 * updates.size);
  if (missingPy) return;
  const check = pyCheck(original);
  const allowed = new Set<number>();
  for (const key of updates.keys()) {
    const e = check.entries[key]!;
    const trailer = check.blocks.find((b) => b.offset === e.block)!.trailer_crc_at;
    for (let i = 0; i < 4; i++) allowed.add(e.crc_at + i).add(trailer + i);
    expect(indexDiff.some((i) => i >= e.crc_at && i < e.crc_at + 4), `${key}'s crc32c changed`).toBe(true);
  }
  expect(indexDiff.filter((i) => !allowed.has(i))).toEqual([]);
}

describe.runIf(real.length > 0)('updateBundleTensors on real TF-written checkpoints', () => {
  test.each(real.map((p) => [basename(dirname(p)), p]))('%s: iter and an m slot, into a new prefix; everything else bit-identical', async (_, prefix) => {
    const src = copyBundle(prefix);
    const before = snapshot(dirname(src));
    const updates = optimizerUpdates(src);
    const out = join(work, `o${made++}`, 'nested', 'resumed');
    await updateBundleTensors(src, out, updates);
    expect(snapshot(dirname(src))).toEqual(before); // the input is untouched
    expect(readdirSync(dirname(out)).sort()).toEqual(['resumed.data-00000-of-00001', 'resumed.index']);
    expect(TensorBundle.open(out).tensor(ITER).data[0]).toBe((TensorBundle.open(src).tensor(ITER).data[0] as bigint) + 1000n);
    expectUpdated(src, out, updates);
    expectOnlyAllowedBytesChanged(src, out, updates);
    // kerasopt's own checkpoint reader resumes from the rewritten bundle.
    const state = await readOptimizerState(out);
    expect(BigInt(state.iterations)).toBe(updates.get(ITER)!.data[0]);
    expect(state.slots.some((s) => s.slot === 'm' && bytesOf(s.value).equals(bytesOf([...updates.values()][1]!)))).toBe(true);
  });

  test.runIf(!missingPy)('bundle_check.py accepts the TF-written originals and the rewritten bundles, and catches a flipped byte', async () => {
    for (const prefix of real) {
      const original = pyCheck(prefix);
      expect(original.errors, prefix).toEqual([]);
      expect(Object.keys(original.entries).sort()).toEqual(TensorBundle.open(prefix).keys().sort());
      const src = copyBundle(prefix);
      const updates = optimizerUpdates(src);
      await updateBundleTensors(src, src, updates);
      const rewritten = pyCheck(src);
      expect(rewritten.errors, prefix).toEqual([]);
      expect(rewritten.entries).toEqual(original.entries); // same layout: shards, offsets, sizes, field positions
      // The checker is not vacuous: a flipped data byte and a stale block trailer are both reported.
      const [m] = [...updates.keys()].filter((k) => k !== ITER);
      const data = `${src}.data-00000-of-00001`;
      const bytes = readFileSync(data);
      bytes[original.entries[m!]!.offset]! ^= 1;
      writeFileSync(data, bytes);
      const index = readFileSync(`${src}.index`);
      index[original.entries[ITER]!.crc_at]! ^= 1;
      writeFileSync(`${src}.index`, index);
      expect(pyCheck(src).errors.sort()).toEqual(['block at 0: trailer CRC mismatch', `${ITER}: data CRC mismatch`, `${m}: data CRC mismatch`].sort());
    }
  });

  test('outPrefix === prefix: each file is replaced by a rename (new inode), nothing is left behind', async () => {
    const src = copyBundle(real[0]!);
    const names = readdirSync(dirname(src)).sort();
    const inodes = names.map((f) => statSync(join(dirname(src), f)).ino);
    const original = copyBundle(real[0]!);
    const updates = optimizerUpdates(src);
    await updateBundleTensors(src, src, updates);
    expect(readdirSync(dirname(src)).sort()).toEqual(names);
    names.forEach((f, i) => expect(statSync(join(dirname(src), f)).ino, f).not.toBe(inodes[i]));
    expect(hooks.renames.map((r) => r.split(' -> ')[1])).toEqual(['variables.data-00000-of-00001', 'variables.index']); // data first, index last
    expectUpdated(original, src, updates);
    expectOnlyAllowedBytesChanged(original, src, updates);
  });

  describe('a failure midway leaves the originals intact', () => {
    const cases: Array<[string, (op: string, args: unknown[]) => boolean, RegExp]> = [
      ['renaming the index (after the data shard was renamed into place)', (op, a) => op === 'rename' && String(a[1]).endsWith('variables.index'), /injected rename/],
      ['writing the temporary index', (op, a) => op === 'open' && a[1] === 'wx', /injected open/],
      ['writing the temporary data shard', (op, a) => op === 'open' && a[1] === 'r+', /injected open/],
    ];
    test.each(cases)('%s', async (what, fail, error) => {
      const src = copyBundle(real[0]!);
      const before = snapshot(dirname(src));
      hooks.fail = fail;
      await expect(updateBundleTensors(src, src, optimizerUpdates(src))).rejects.toThrow(error);
      if (what.startsWith('renaming')) expect(hooks.renames[0], 'the data shard had been replaced').toMatch(/-> variables\.data-00000-of-00001$/);
      expect(snapshot(dirname(src))).toEqual(before); // same bytes, and no temporary or backup file left
      hooks.fail = null;
      expectUpdated(real[0]!, src, new Map());
    });
  });

  describe('bad input: FormatError naming the file and the key; nothing is written', () => {
    const bad = async (updates: Map<string, Tensor>, pattern: RegExp, label?: string): Promise<void> => {
      const src = copyBundle(real[0]!);
      const before = snapshot(dirname(src));
      const out = join(work, `o${made++}`, 'out');
      const err = await updateBundleTensors(src, out, updates, label).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message).toContain(`${label ?? src}.index`);
      expect(snapshot(dirname(src))).toEqual(before);
      expect(existsSync(dirname(out)) ? readdirSync(dirname(out)) : []).toEqual([]);
    };
    const m = 'variables/0/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE';
    test('a wrong dtype', () => bad(new Map([[ITER, Tensor.from([5], 'int32', [])]]), /optimizer\/iter\/.*the update is int32\[\], expected int64\[\]/, 'my-ckpt'));
    test('a wrong shape', () => bad(new Map([[m, Tensor.zeros('float32', [30, 8])]]), /variables\/0\/\.OPTIMIZER_SLOT.*float32\[30, 8\], expected float32\[8, 30\]/));
    test('an unknown key, and the header key', async () => {
      await bad(new Map([['optimizer/nope/.ATTRIBUTES/VARIABLE_VALUE', Tensor.from([1], 'float32', [])]]), /no tensor 'optimizer\/nope\/\.ATTRIBUTES\/VARIABLE_VALUE'/);
      await bad(new Map([['', Tensor.from([1], 'float32', [])]]), /no tensor ''/);
    });
    test('a string tensor', () => bad(new Map([['_CHECKPOINTABLE_OBJECT_GRAPH', Tensor.from([1], 'float32', [])]]), /'_CHECKPOINTABLE_OBJECT_GRAPH' is a string tensor/));
    test('a truncated index', async () => {
      const src = copyBundle(real[0]!);
      truncateSync(`${src}.index`, 1000);
      const out = join(work, `o${made++}`, 'out');
      await expect(updateBundleTensors(src, out, optimizerUpdates(real[0]!), 'cut')).rejects.toThrow(/^cut\.index: .*(truncated|footer)/);
      expect(existsSync(dirname(out))).toBe(false);
    });
  });
});

describe.runIf(!missingNumpy)('updateBundleTensors on multi-block, two-shard bundles (tf_checkpoint.py)', () => {
  test('every numeric tensor of every dtype, in place: all blocks re-sealed, Python agrees', async () => {
    const made = makeHelperBundle('--shards', '2', '--block-size', '200');
    const src = copyBundle(made);
    const b = TensorBundle.open(src);
    const numeric = b.keys().filter((k) => b.info(k).dtype !== 'string');
    const updates = new Map(numeric.map((k) => [k, replacement(b.tensor(k))]));
    expect(new Set(numeric.map((k) => b.info(k).dtype))).toEqual(new Set(['float16', 'float32', 'float64', 'int32', 'int64']));
    await updateBundleTensors(src, src, updates);
    expectUpdated(made, src, updates);
    expectOnlyAllowedBytesChanged(made, src, updates);
    if (missingPy) return;
    const check = pyCheck(src);
    expect(check.errors).toEqual([]);
    expect(new Set(numeric.map((k) => check.entries[k]!.block)).size, 'updates span several data blocks').toBeGreaterThan(2);
  });

  test('one shard updated: into a new prefix the other shard is copied verbatim, in place it is not touched', async () => {
    const src = makeHelperBundle('--shards', '2', '--block-size', '200');
    const b = TensorBundle.open(src);
    const key = b.keys().find((k) => b.info(k).shard === 1 && b.info(k).dtype === 'float32')!;
    const updates = new Map([[key, replacement(b.tensor(key))]]);
    const out = join(work, `o${made++}`, 'ckpt');
    await updateBundleTensors(src, out, updates);
    expect(readFileSync(`${out}.data-00000-of-00002`).equals(readFileSync(`${src}.data-00000-of-00002`))).toBe(true);
    expectUpdated(src, out, updates);
    if (!missingPy) expect(pyCheck(out).errors).toEqual([]);
    const inPlace = copyBundle(src);
    const inode = statSync(`${inPlace}.data-00000-of-00002`).ino;
    await updateBundleTensors(inPlace, inPlace, updates);
    expect(statSync(`${inPlace}.data-00000-of-00002`).ino).toBe(inode);
    expectUpdated(src, inPlace, updates);
  });

  test('a compressed index block is refused', async () => {
    const src = makeHelperBundle('--compression', '1');
    await expect(updateBundleTensors(src, join(work, `o${made++}`, 'x'), new Map())).rejects.toThrow(/ckpt\.index: .*snappy-compressed/);
  });
});
