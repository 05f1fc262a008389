import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { optimizerFromState, readOptimizerState, saveOptimizerState, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits } from '../src/formats/state.js';
import { FormatError, Tensor } from '../src/index.js';
import { corpusFiles, generatorMissing, h5dumpDifferences, h5dumpMissing, h5dumpStructure, h5pyDump, tensorOfDump } from './helpers/kerasFiles.js';

/**
 * Every real Keras file in ../shared/corpus/real: read and cross-checked with h5py, round-tripped,
 * rewritten into a new file compared with the real layout, and (tf.keras Nadam files) resumed.
 * While the folder holds no Keras file, the run says so loudly and checks nothing.
 */
const files = corpusFiles();
const work = mkdtempSync(join(tmpdir(), 'kerasopt-corpus-rt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function weightPath(state: KerasOptimizerState, name: string): string {
  return state.flavour === 'keras3' ? name : `optimizer_weights/${name}`;
}

describe('real corpus files (../shared/corpus/real)', () => {
  if (files.length === 0) {
    it('0 real files checked', () => {
      console.warn('\n*** KERAS FILES CORPUS: 0 real files checked: ../shared/corpus/real holds no .h5/.keras file yet. Nothing real was verified. ***\n');
      expect(files).toEqual([]);
    });
    return;
  }
  const states = new Map<string, KerasOptimizerState | Error>();
  async function stateOf(file: string): Promise<KerasOptimizerState> {
    if (!states.has(file)) states.set(file, await readOptimizerState(file).catch((e: Error) => e));
    const s = states.get(file)!;
    if (s instanceof Error) throw s;
    return s;
  }
  /** Files without Nadam state are reported (and h5py must agree there is no optimizer state); null then. */
  async function nadamState(file: string): Promise<KerasOptimizerState | null> {
    try {
      return await stateOf(file);
    } catch (e) {
      const message = (e as Error).message;
      if (!(e instanceof FormatError) || !/no optimizer state|reads Nadam state only/.test(message)) throw e;
      console.warn(`*** real file ${basename(file)} holds no Nadam state, nothing to check: ${message} ***`);
      if (/no optimizer state/.test(message) && !generatorMissing()) {
        expect(Object.keys(h5pyDump(file).datasets).filter((p) => p.startsWith('optimizer_weights/') || p.startsWith('optimizer/vars/'))).toEqual([]);
      }
      return null;
    }
  }

  it.each(files)('%s: every optimizer weight and tied model variable equals h5py reading, bit for bit', async (file) => {
    if (generatorMissing()) return;
    const state = await nadamState(file);
    if (!state) return;
    const dump = h5pyDump(file);
    for (const w of state.weights) expect(sameBits(w.value, tensorOfDump(dump.datasets[weightPath(state, w.name)]!)), w.name).toBe(true);
    // the model variables the slots are tied to, too
    for (const v of state.variables) {
      const path = state.flavour === 'keras3' ? v.name : Object.keys(dump.datasets).find((p) => p.startsWith('model_weights/') && p.endsWith(`/${v.name}:0`));
      expect(path, `h5py sees model variable ${v.name}`).toBeDefined();
      expect(sameBits(v.value, tensorOfDump(dump.datasets[path!]!)), v.name).toBe(true);
    }
    console.warn(`real file checked: ${basename(file)} (${state.format}, ${state.flavour}, ${state.iterations} iterations, ${state.slots.length} slots)`);
  });

  it.each(files)('%s: read, write back, read again changes no bit', async (file) => {
    const state = await nadamState(file);
    if (!state) return;
    const copy = join(work, `rt_${basename(file)}`);
    copyFileSync(file, copy);
    const { optimizer } = optimizerFromState(state);
    await saveOptimizerState(copy, optimizer, { like: state });
    const again = await readOptimizerState(copy);
    again.weights.forEach((w, i) => expect(sameBits(w.value, state.weights[i]!.value), w.name).toBe(true));
  });

  it.each(files)('%s: a new file written from it has the real layout (per h5py and h5dump)', async (file) => {
    if (generatorMissing()) return;
    const state = await nadamState(file);
    if (!state) return;
    if (state.format === 'keras3-archive') return; // archives are updated, never created
    const out = join(work, `new_${basename(file)}`);
    const { optimizer } = optimizerFromState(state);
    await saveOptimizerState(out, optimizer, { like: state, ...(state.stringStyle ? { stringStyle: state.stringStyle } : {}) });
    const real = h5pyDump(file);
    const ours = h5pyDump(out);
    for (const w of state.weights) {
      const p = weightPath(state, w.name);
      expect(ours.datasets[p], p).toEqual(real.datasets[p]);
    }
    if (state.flavour !== 'keras3') {
      const r = real.attrs['optimizer_weights']!;
      const o = ours.attrs['optimizer_weights']!;
      expect(Object.keys(o).sort()).toEqual(Object.keys(r).sort());
      for (const k of Object.keys(r)) expect([o[k]!.value, o[k]!.type.vlen]).toEqual([r[k]!.value, r[k]!.type.vlen]);
    }
    if (h5dumpMissing()) return;
    const group = state.flavour === 'keras3' ? '/optimizer' : '/optimizer_weights';
    expect(h5dumpDifferences(h5dumpStructure(file, group), h5dumpStructure(out, group)), 'h5dump -H -p').toEqual([]);
  });

  it('resume: a real tf.keras Nadam file, 3 steps on the typed backend, saved, reads back identical', async () => {
    const candidates = [];
    for (const f of files) {
      const s = await stateOf(f).catch(() => null);
      if (s?.flavour === 'tf-keras') candidates.push(f);
    }
    if (candidates.length === 0) {
      console.warn('\n*** KERAS FILES CORPUS: no real tf.keras Nadam file: the resume story was not checked on real data. ***\n');
      return;
    }
    const file = candidates[0]!;
    const state = await stateOf(file);
    const copy = join(work, `resume_${basename(file)}`);
    copyFileSync(file, copy);
    const { optimizer, variables } = optimizerFromState(state, { backend: 'typed' });
    for (let step = 0; step < 3; step++) optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill(v.dtype as 'float32' | 'float16' | 'float64', v.shape, 0.01 * (step + 1)), v] as const));
    await saveOptimizerState(copy, optimizer, { like: state, modelVariables: variables });
    const back = await readOptimizerState(copy);
    expect(back.iterations).toBe(state.iterations + 3);
    back.weights.forEach((w, i) => expect(sameBits(w.value, optimizer.weights[i]!.value), w.name).toBe(true));
  });
});
