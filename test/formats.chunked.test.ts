import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInspectCommand, stats } from '../src/cli/commands/inspect.js';
import { FormatError, Tensor } from '../src/index.js';
import {
  isLazy,
  LazyTensor,
  lazyStats,
  optimizerFromState,
  readChunks,
  readOptimizerState,
  saveOptimizerState,
  slabs,
  stepInPlace,
  tensorStats,
  type KerasOptimizerState,
} from '../src/formats/index.js';
import { H5File } from '../src/formats/hdf5.js';
import { generatorMissing, h5pyDump, makeKerasFiles, type MadeFile } from './helpers/kerasFiles.js';
import { python } from './helpers/python.js';

const noPython = generatorMissing();
let made: ReturnType<typeof makeKerasFiles>;
const work = mkdtempSync(join(tmpdir(), 'kerasopt-chunked-'));
beforeAll(() => {
  if (!noPython) made = makeKerasFiles();
}, 120_000);
afterAll(() => {
  made?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The helper-made files read in place (not archives), holding a Nadam state. */
const inPlace = (): [string, MadeFile][] => Object.entries(made.files).filter(([name, f]) => f.flavour !== null && name.endsWith('.h5'));

/** Flat indices a slab covers, from its start and count (row-major). */
function indicesOf(shape: readonly number[], start: readonly number[], count: readonly number[]): number[] {
  const out: number[] = [];
  const rec = (d: number, base: number): void => {
    if (d === shape.length) return void out.push(base);
    for (let i = start[d]!; i < start[d]! + count[d]!; i++) rec(d + 1, base * shape[d]! + i);
  };
  rec(0, 0);
  return out;
}

describe('slabs: row-major contiguous hyperslabs of bounded size', () => {
  it('cover every element once, in flat order, each a contiguous run of at most maxElements', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const shapes: number[][] = [[], [0], [10], [4, 5], [2, 3, 4], [3, 0, 2], [1, 1, 7], [5, 1, 3, 2]];
    for (let k = 0; k < 60; k++) shapes.push(Array.from({ length: 1 + rand(4) }, () => 1 + rand(6)));
    for (const shape of shapes) {
      const total = shape.reduce((a, b) => a * b, 1);
      for (const max of [1, 2, 3, 5, 7, 16, 1000]) {
        let next = 0;
        for (const s of slabs(shape, max)) {
          expect(s.size).toBeLessThanOrEqual(max);
          expect(s.offset).toBe(next);
          const idx = shape.length === 0 ? [0] : indicesOf(shape, s.start, s.count);
          expect(idx).toEqual(Array.from({ length: s.size }, (_, i) => s.offset + i));
          next += s.size;
        }
        expect(next).toBe(total);
      }
    }
  });

  it('split a long row into pieces and group short rows', () => {
    expect([...slabs([2, 10], 4)].map((s) => [s.start, s.count])).toEqual([
      [[0, 0], [1, 4]], [[0, 4], [1, 4]], [[0, 8], [1, 2]],
      [[1, 0], [1, 4]], [[1, 4], [1, 4]], [[1, 8], [1, 2]],
    ]);
    expect([...slabs([5, 3], 7)].map((s) => [s.start, s.count])).toEqual([[[0, 0], [2, 3]], [[2, 0], [2, 3]], [[4, 0], [1, 3]]]);
  });
});

describe.skipIf(noPython)('lazy reads (lazyAbove)', () => {
  it('return LazyTensors that cross from the reader worker, read in chunks to the same bits', async () => {
    for (const [name, f] of inPlace()) {
      const eager = await readOptimizerState(f.file);
      const lazy = await readOptimizerState(f.file, { lazyAbove: 0 });
      expect(lazy.slots.length, name).toBe(eager.slots.length);
      lazy.slots.forEach((s, i) => {
        const e = eager.slots[i]!;
        expect(s.value.dtype).toBe(e.value.dtype);
        expect(s.value.shape).toEqual(e.value.shape);
        if (e.value.rank > 0) expect(isLazy(s.value), `${name} ${s.weightName}`).toBe(true);
      });
      expect(lazy.iterations).toBe(eager.iterations);
      expect(lazy.schedule?.value.get(0)).toBe(eager.schedule?.value.get(0));
      for (const [i, s] of lazy.slots.entries()) {
        const parts: number[] = [];
        for await (const c of readChunks(s.value, { chunkElements: 3 })) parts.push(...Array.from(c.data as ArrayLike<number>, Number));
        expect(parts, `${name} ${s.weightName}`).toEqual(Array.from(eager.slots[i]!.value.data as ArrayLike<number>, Number));
      }
    }
  });

  it('only for big datasets when lazyAbove is a size, and never for scalars', async () => {
    const f = made.files['tf_keras_h5py3.h5']!.file;
    const state = await readOptimizerState(f, { lazyAbove: 40, isolate: false });
    for (const s of state.slots) expect(isLazy(s.value), s.weightName).toBe(s.value.byteLength > 40);
    expect(isLazy(state.weights[0]!.value)).toBe(false);
  });

  it('a lazy tensor has no data: asking for it is a FormatError naming the file and the dataset', async () => {
    const f = made.files['keras3.weights.h5']!.file;
    const state = await readOptimizerState(f, { lazyAbove: 0 });
    const t = state.slots[0]!.value;
    expect(t).toBeInstanceOf(LazyTensor);
    expect(t.size).toBe(12);
    expect(() => t.data).toThrow(FormatError);
    expect(() => t.get(0)).toThrow(/keras3\.weights\.h5: dataset \/optimizer\/vars\/2 \(float32\[3, 4\]\) was read lazily/);
    expect(() => optimizerFromState(state)).toThrow(/was read lazily/);
  });

  it('.keras archives are read into memory whatever lazyAbove says (their HDF5 file is a temporary copy)', async () => {
    const state = await readOptimizerState(made.files['keras3.keras']!.file, { lazyAbove: 0 });
    expect(state.slots.some((s) => isLazy(s.value))).toBe(false);
  });

  it('streamed statistics equal the in-memory ones to the bit; inspect prints the same table', async () => {
    for (const [name, f] of inPlace()) {
      const eager = await readOptimizerState(f.file);
      const lazy = await readOptimizerState(f.file, { lazyAbove: 0, lazyStats: true });
      for (const [i, s] of lazy.slots.entries()) {
        const expected = stats(eager.slots[i]!.value);
        if (isLazy(s.value)) expect(lazyStats(s.value), name).toEqual(expected);
        expect(stats(s.value), name).toEqual(expected);
        expect(await tensorStats(s.value, { chunkElements: 2 })).toEqual(expected);
      }
    }
    let out = '';
    const code = await createInspectCommand({ stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true, isTTY: false } as never }).run([made.files['tf_keras_f16.h5']!.file, '--json']);
    expect(code).toBe(0);
    const eager = await readOptimizerState(made.files['tf_keras_f16.h5']!.file);
    const printed = JSON.parse(out) as { slots: { min: number; max: number; mean: number }[] };
    printed.slots.forEach((row, i) => expect({ min: row.min, max: row.max, mean: row.mean }).toEqual(stats(eager.slots[i]!.value)));
  });

  it('hyperslab reads and writes refuse slabs outside the dataset or buffers of the wrong size', async () => {
    const file = join(work, 'slab.h5');
    copyFileSync(made.files['tf_keras_h5py3.h5']!.file, file);
    const h = await H5File.open(file, 'a');
    try {
      const path = 'model_weights/dense/dense/kernel:0';
      expect(h.datasetInfo(path)).toEqual({ dtype: 'float32', shape: [3, 4] });
      const row = new Float32Array(4);
      h.readSlab(path, [1, 0], [1, 4], row);
      const whole = h.readTensor(path);
      expect(Array.from(row)).toEqual(Array.from(whole.data as Float32Array).slice(4, 8));
      expect(() => h.readSlab(path, [3, 0], [1, 4], row)).toThrow(/not inside the dataset/);
      expect(() => h.readSlab(path, [0, 0], [1, 3], row)).toThrow(/buffer holds 16 bytes/);
      h.writeSlab(path, [2, 1], [1, 2], new Float32Array([5, -6]));
      expect(Array.from(h.readTensor(path).data as Float32Array).slice(8, 12)).toEqual([whole.get(8), 5, -6, whole.get(11)]);
    } finally {
      h.close();
    }
  });
});

/** A deterministic gradient for each variable of a state (its dtype's rounding of a smooth pattern). */
function gradientsFor(state: KerasOptimizerState, step: number): Map<string, Tensor> {
  return new Map(
    state.variables.map((v, j) => {
      const values = Array.from({ length: v.value.size }, (_, i) => Math.sin(0.37 * i + 1.3 * j + 0.11 * step) * (0.05 + 0.01 * j));
      return [v.name, Tensor.from(values, v.value.dtype, v.value.shape)];
    }),
  );
}

/** The in-memory path: optimizerFromState, applyGradients per step, saveOptimizerState with the variables. */
async function inMemory(file: string, steps: number): Promise<void> {
  const state = await readOptimizerState(file);
  const { optimizer, variables } = optimizerFromState(state);
  for (let k = 0; k < steps; k++) {
    const grads = gradientsFor(state, k);
    await optimizer.applyGradients(variables.map((v) => [grads.get(v.name)!, v] as const));
  }
  await saveOptimizerState(file, optimizer, { like: state, modelVariables: variables });
}

/** The streaming path, with `chunkElements` elements per chunk. */
async function streamed(file: string, steps: number, chunkElements: number) {
  const state = await readOptimizerState(file);
  const grads = Array.from({ length: steps }, (_, k) => gradientsFor(state, k));
  return stepInPlace(file, (r, out) => {
    const g = grads[r.step]!.get(r.variable)!;
    (out as Float32Array).set((g.data as Float32Array).subarray(r.offset, r.offset + out.length));
  }, { chunkElements, steps });
}

describe.skipIf(noPython)('stepInPlace: a streaming resume', () => {
  it('equals optimizerFromState + applyGradients + saveOptimizerState bit for bit, every flavour and layout, tiny chunks', async () => {
    const tried: string[] = [];
    for (const [name, f] of inPlace()) {
      const a = join(work, `a-${name}`);
      const b = join(work, `b-${name}`);
      copyFileSync(f.file, a);
      copyFileSync(f.file, b);
      try {
        await inMemory(a, 1);
      } catch {
        // a state the in-memory path cannot step (another optimizer than Nadam, ...) is refused by the streaming one too
        await expect(streamed(b, 1, 5), name).rejects.toThrow();
        expect(h5pyDump(b), name).toEqual(h5pyDump(f.file));
        continue;
      }
      const result = await streamed(b, 1, 5);
      const [da, db] = [h5pyDump(a).datasets, h5pyDump(b).datasets];
      expect(Object.keys(db).sort(), name).toEqual(Object.keys(da).sort());
      for (const k of Object.keys(da)) expect(db[k], `${name} ${k}`).toEqual(da[k]);
      expect(result.iterations, name).toBe((f.iterations ?? 0) + 1);
      tried.push(`${name} (${f.flavour})`);
    }
    expect(new Set(tried.map((t) => t.replace(/.*\((.*)\)$/, '$1')))).toEqual(new Set(['tf-keras', 'keras2', 'keras3', 'tf-keras-new']));
    expect(readdirSync(work).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }, 300_000);

  it('several steps in one pass equal as many in-memory steps; the output option leaves the input as it was', async () => {
    const src = made.files['tf_keras_f64.h5']!.file;
    const a = join(work, 'steps-a.h5');
    const out = join(work, 'steps-out.h5');
    copyFileSync(src, a);
    await inMemory(a, 3);
    const before = h5pyDump(src).datasets;
    const state = await readOptimizerState(src);
    const grads = [0, 1, 2].map((k) => gradientsFor(state, k));
    const r = await stepInPlace(src, (req, o) => void (o as Float64Array).set((grads[req.step]!.get(req.variable)!.data as Float64Array).subarray(req.offset, req.offset + o.length)), { steps: 3, chunkElements: 4, output: out });
    expect(r.iterations).toBe(state.iterations! + 3);
    expect(h5pyDump(out).datasets).toEqual(h5pyDump(a).datasets);
    expect(h5pyDump(src).datasets).toEqual(before);
  }, 120_000);

  it('refuses .keras archives and clipping configs, and leaves the file untouched when the gradient function fails', async () => {
    const keras = join(work, 'x.keras');
    copyFileSync(made.files['keras3.keras']!.file, keras);
    await expect(stepInPlace(keras, () => {})).rejects.toThrow(/stepInPlace updates \.h5 and \.weights\.h5 files in place; this is keras3-archive/);
    const file = join(work, 'fail.weights.h5');
    copyFileSync(made.files['keras3.weights.h5']!.file, file);
    const before = h5pyDump(file);
    await expect(stepInPlace(file, (r) => {
      if (r.offset > 0) throw new Error('no gradient here');
    }, { chunkElements: 2 })).rejects.toThrow(/no gradient here/);
    expect(h5pyDump(file)).toEqual(before);
    // clipping needs each whole gradient before any chunk moves: refused, not approximated
    const clipped = join(work, 'clipnorm.h5');
    copyFileSync(made.files['tf_keras_h5py3.h5']!.file, clipped);
    python(String.raw`
import h5py, json, sys
with h5py.File(sys.argv[1], 'a') as f:
    t = json.loads(f.attrs['training_config'])
    t['optimizer_config']['config']['clipnorm'] = 1.0
    f.attrs['training_config'] = json.dumps(t).encode('utf8')
`, [clipped]);
    const unclipped = h5pyDump(clipped);
    await expect(stepInPlace(clipped, (_r, o) => void o.fill(0))).rejects.toThrow(/stepInPlace cannot clip gradients/);
    expect(h5pyDump(clipped)).toEqual(unclipped);
    expect(readdirSync(work).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
