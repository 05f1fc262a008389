import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAVOURS, optimizerFromState, readOptimizerState, stopReaderWorker, type Flavour, type KerasOptimizerState } from '../src/index.js';
import { loadKerasModel, saveKerasModel, UnsupportedModelError } from '../src/tfjs/index.js';
import { originOf } from '../src/tfjs/origin.js';
import { expectedIterations, h5Facts, IS_DEFAULT_CORPUS, loadCorpus, structureDifferences, zipEntries, type CorpusItem } from './helpers/corpus.js';
import { missingPython } from './helpers/python.js';
import { cpuBackend, h5pyDatasetHex, hex, recordGradients, replay, syntheticData, tfHex } from './helpers/tfjs.js';

/**
 * Every item of the real-file corpus: those whose model tfjs can build are loaded, trained STEPS
 * steps with model.fit on tfjs's CPU backend, checked bit for bit against a typed-backend replay of
 * the recorded gradients, saved into a copy and read back with kerasopt and h5py. The others are
 * listed with their reason, which must be one kerasopt knows (a Lambda / custom class, GRU
 * reset_after, a file with no model config): none is skipped silently.
 */
const STEPS = 2;
const { items, problem } = loadCorpus();
/** Reasons a real file's model may not build in tfjs, each with what its message must say. */
const KNOWN: Record<string, RegExp> = {
  'layer-class': /(layer '[^']+' \(class \w+\)|custom class '\w+')/,
  'layer-option': /layer '[^']+' \(class GRU\): reset_after=True/,
  'no-model-config': /(records no model config|TF checkpoint \/ SavedModel)/,
};
const unbuildable: Array<{ id: string; reason: string; message: string }> = [];
const trained: Array<{ id: string; flavour: Flavour }> = [];
const noPython = missingPython(['h5py', 'numpy']);
const work = mkdtempSync(join(tmpdir(), 'kerasopt-tfjs-corpus-'));
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(cpuBackend);
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  stopReaderWorker();
});

/** h5py's dataset path of a model weight kerasopt names `name` ('dense/kernel' in an .h5; the path itself in a .keras). */
function datasetOf(h5py: Record<string, string>, name: string): string | undefined {
  return name in h5py ? name : Object.keys(h5py).find((k) => k.startsWith('model_weights/') && k.endsWith(`/${name}:0`));
}

/** What kerasopt's read-back holds per slot / schedule / variable, to compare with the in-memory optimizer and model. */
function stateHex(state: KerasOptimizerState): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of state.slots) out.set(`slot ${s.variable}/${s.slot}`, hex(s.value));
  for (const v of state.variables) out.set(`variable ${v.name}`, hex(v.value));
  return out;
}

describe('kerasopt/tfjs over the real-file corpus', () => {
  it('has a corpus', () => expect(problem).toBeNull());

  for (const item of items) {
    it(`${item.id}: loads into tfjs and trains ${STEPS} steps, saved back bit for bit — or is listed with a known reason`, async () => {
      await runItem(item);
    }, 900_000);
  }

  it('lists every file it could not build, each with a known reason, and trained every flavour', () => {
    console.log(`kerasopt/tfjs: ${trained.length} real files trained in tfjs (${trained.map((t) => `${t.id} [${t.flavour}]`).join(', ')})`);
    console.log(`kerasopt/tfjs: ${unbuildable.length} real files not buildable in tfjs:\n${unbuildable.map((u) => `  - ${u.id}: [${u.reason}] ${u.message}`).join('\n')}`);
    expect(trained.length + unbuildable.length).toBe(items.length);
    for (const u of unbuildable) expect(u.message, u.id).toMatch(KNOWN[u.reason] ?? /^$/);
    if (IS_DEFAULT_CORPUS) expect(new Set(trained.map((t) => t.flavour))).toEqual(new Set(FLAVOURS));
  });
});

async function runItem(item: CorpusItem): Promise<void> {
  let loaded: Awaited<ReturnType<typeof loadKerasModel>>;
  try {
    loaded = await loadKerasModel(item.path, { onWarning: () => {} });
  } catch (e) {
    if (!(e instanceof UnsupportedModelError)) throw e;
    expect(Object.keys(KNOWN), `${item.id}: unknown reason '${e.reason}': ${e.message}`).toContain(e.reason);
    unbuildable.push({ id: item.id, reason: e.reason, message: e.message.slice(item.path.length + 2) });
    return;
  }
  const { model, optimizer, state } = loaded;
  const origin = originOf(model)!;
  const fileName = new Map(origin.weights.map((w) => [(w.variable.read() as tf.Variable).name, w.name]));
  const before = noPython ? null : h5pyDatasetHex(item.path);
  // the weights tfjs holds are the file's, bit for bit (h5py's reading)
  for (const w of origin.weights) {
    if (before) expect(tfHex(w.variable.read()), `${item.id}: loaded ${w.name}`).toBe(before[datasetOf(before, w.name)!]);
  }
  expect(model.weights.length).toBe(origin.weights.length);

  if (!loaded.compiled) model.compile({ optimizer, loss: 'meanSquaredError' });
  const steps = recordGradients(optimizer);
  const { xs, ys } = syntheticData(model, STEPS);
  await model.fit(xs.length === 1 ? xs[0]! : xs, ys.length === 1 ? ys[0]! : ys, { epochs: 1, batchSize: 1, shuffle: false, verbose: 0 });
  expect(steps.length).toBe(STEPS);
  expect(optimizer.iterations).toBe(state.iterations! + STEPS);

  // bit for bit the typed backend's Nadam of the file's flavour, replayed on the recorded gradients
  const reference = optimizerFromState(state, { onWarning: () => {} });
  const byTfjs = (name: string) => reference.variables.find((v) => v.name === fileName.get(name))!;
  replay(reference.optimizer, steps, byTfjs, reference.variables);
  expect(optimizer.nadam.weights.map((w) => [w.name, hex(w.value)])).toEqual(reference.optimizer.weights.map((w) => [w.name, hex(w.value)]));
  for (const w of model.trainableWeights) expect(tfHex(w.read()), `${item.id}: ${w.name}`).toBe(hex(byTfjs(w.read().name).value));

  // saved into a copy: the corpus file is not touched
  const out = join(mkdtempSync(join(work, 'item-')), basename(item.path));
  const originalSha = sha(item.path);
  await saveKerasModel(item.path, model, optimizer, { output: out });
  expect(sha(item.path)).toBe(originalSha);

  // kerasopt's read-back: iterations advanced, slots and model weights equal the in-memory ones
  const back = await readOptimizerState(out);
  expect(back.iterations).toBe(state.iterations! + STEPS);
  expect(back.iterations).toBe(expectedIterations(item.entry)! + STEPS);
  expect(back.format).toBe(state.format);
  expect(back.release.layout).toBe(state.release.layout);
  const want = new Map<string, string>();
  for (const s of state.slots) {
    const mine = optimizer.nadam.weights.find((w) => w.name === `${s.variable}/${s.slot}`);
    want.set(`slot ${s.variable}/${s.slot}`, mine ? hex(mine.value) : hex(s.value)); // slots of variables the model lacks stay as read
  }
  for (const w of origin.weights) if (state.variables.some((v) => v.name === w.name)) want.set(`variable ${w.name}`, tfHex(w.variable.read()));
  const got = stateHex(back);
  if (state.slots.length === 0) for (const s of back.slots) want.set(`slot ${s.variable}/${s.slot}`, hex(optimizer.nadam.weights.find((w) => w.name === `${s.variable}/${s.slot}`)!.value));
  expect([...got].sort()).toEqual([...want].sort());
  if (!back.schedule!.reconstructed) expect(hex(back.schedule!.value)).toBe(hex(optimizer.nadam.getWeight(back.schedule!.name).value));

  trained.push({ id: item.id, flavour: state.flavour });

  if (noPython) return;
  // h5py's reading: every model weight is tfjs's, every optimizer dataset kerasopt's read-back, the structure the original's
  const after = h5pyDatasetHex(out);
  for (const w of origin.weights) expect(after[datasetOf(after, w.name)!], `${item.id}: saved ${w.name}`).toBe(tfHex(w.variable.read()));
  const facts = h5Facts(out);
  for (const w of back.weights) {
    const path = w.name.startsWith('optimizer/') ? w.name : `optimizer_weights/${w.name}`;
    expect(facts.datasets[path]?.hex, `${item.id}: h5py ${path}`).toBe(hex(w.value));
  }
  const differences = structureDifferences(h5Facts(item.path), facts);
  // an optimizer saved before its first build gains the slots its first steps made (Keras's build adds them too)
  const expected = state.slots.length === 0 ? back.weights.slice(state.weights.length).map((w) => `dataset ${w.name} is new`) : [];
  expect(differences.filter((d) => !expected.includes(d))).toEqual([]);
  if (item.kind === 'keras-archive') {
    const [a, b] = [await zipEntries(item.path), await zipEntries(out)];
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const n of Object.keys(a)) if (n !== 'model.weights.h5') expect(b[n]!.equals(a[n]!), `${item.id}: ${n} unchanged`).toBe(true);
  }
}
