import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TensorBundle } from '../src/formats/checkpoint/bundle.js';
import { readOptimizerState, type KerasOptimizerState } from '../src/formats/index.js';
import { scheduleAfter, transplantOptimizerState } from '../src/formats/transplant/index.js';
import { RECIPES } from '../src/optimizers/nadam/recipes.js';
import type { FloatDType } from '../src/tensor/dtype.js';
import { cli, CORPUS_DIR, ensureBuilt, h5Facts, hexOf, structureDifferences, zipEntries, type H5Facts } from './helpers/corpus.js';
import { h5dumpDifferences, h5dumpMissing, h5dumpStructure } from './helpers/kerasFiles.js';
import { missingPython, PYTHON } from './helpers/python.js';

/*
 * Issue 14 on the real corpus (../shared/corpus/real, files TF / Keras wrote): the same model (Dense 30
 * on 8 inputs, then Dense 1, 726 Nadam steps) as a TF 2.4 .h5, a TF 2.10 SavedModel and a Keras 3.13
 * .keras; and a second model (Dense 10 on 3 inputs, Dense 1) as two Keras 3.8 archives, one trained 10
 * steps and one never trained (saved before the optimizer's first build). Every written file is
 * compared with a real file of the target release: h5py (groups, datasets, dtypes, shapes, attribute
 * types) and h5dump -H -p (libhdf5's own view), or for bundles the other tensors' bytes, the untouched
 * SavedModel files and an independent Python CRC check. Values are compared through h5py's reading of
 * the written file (or TensorBundle's of the bundle) with kerasopt's reading of the source, bit for bit.
 */

const MODEL = {
  h5: 'sankalptambe__tf-custom-models/my_model_with_a_custom_loss.h5',
  savedmodel: 'SiddharthYadav-v__ML-with-sklearn-keras-tf/my_model_with_a_custom_loss',
  keras313: 'quanai06__hands-on_machine_learning_with_Scikit-learn/my_model_with_a_custom_loss.keras',
} as const;
const K38_TRAINED = 'haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss.keras';
const K38_UNBUILT = 'haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss_threshold_2.keras';
type Kind = keyof typeof MODEL;
const path = (id: string): string => join(CORPUS_DIR, id);

const scratch = mkdtempSync(join(tmpdir(), 'kerasopt-transplant-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let noPython: string | null = null;
beforeAll(() => {
  for (const id of [...Object.values(MODEL), K38_TRAINED, K38_UNBUILT]) {
    if (!existsSync(path(id))) throw new Error(`corpus item ${id} is missing from ${CORPUS_DIR}`);
  }
  noPython = missingPython(['h5py', 'numpy']);
  if (noPython && process.env.CI) throw new Error(noPython);
});

let counter = 0;
const fresh = (name: string): string => join(mkdtempSync(join(scratch, `${counter++}-`)), name);
const outName = (kind: Kind): string => (kind === 'h5' ? 'out.h5' : kind === 'keras313' ? 'out.keras' : 'out_savedmodel');

/** The model.weights.h5 of an archive, written to the scratch folder for h5py / h5dump. */
async function weightsOf(archive: string): Promise<string> {
  const entry = (await zipEntries(archive))['model.weights.h5'];
  if (!entry) throw new Error(`${archive} has no model.weights.h5`);
  const out = fresh('model.weights.h5');
  writeFileSync(out, entry);
  return out;
}

/** Structure differences per h5py and h5dump between a real file and ours (training_config's text may change, not its type). */
async function structureProblems(real: string, ours: string, group: string, target = real): Promise<string[]> {
  const [a, b] = real.endsWith('.keras') ? [await weightsOf(real), await weightsOf(ours)] : [real, ours];
  const problems: string[] = [];
  if (!noPython) {
    const facts: [H5Facts, H5Facts] = [h5Facts(a), h5Facts(b)];
    problems.push(...structureDifferences(...facts).filter((d) => d !== 'attribute /:training_config: value changed').map((d) => `h5py: ${d}`));
  }
  if (!h5dumpMissing()) problems.push(...h5dumpDifferences(h5dumpStructure(a, group), h5dumpStructure(b, group)).map((d) => `h5dump ${group}: ${d}`));
  if (real.endsWith('.keras')) {
    const [ea, eb] = [await zipEntries(real), await zipEntries(ours)];
    if (JSON.stringify(Object.keys(ea).sort()) !== JSON.stringify(Object.keys(eb).sort())) problems.push(`archive entries ${Object.keys(eb)} differ from ${Object.keys(ea)}`);
    const et = await zipEntries(target);
    if (!et['metadata.json']!.equals(eb['metadata.json']!)) problems.push("metadata.json is not the target's");
  }
  return problems;
}

/** The written optimizer datasets as h5py reads them (hex of little-endian bytes), by dataset path. */
async function h5pyHex(file: string): Promise<Record<string, string>> {
  const h5 = file.endsWith('.keras') ? await weightsOf(file) : file;
  return Object.fromEntries(Object.entries(h5Facts(h5).datasets).filter(([, d]) => d.hex !== undefined).map(([k, d]) => [k, d.hex!]));
}

/** A SavedModel written into: only the bundle changed, every non-optimizer tensor byte-identical, CRCs valid per the Python checker. */
function bundleProblems(real: string, ours: string, optimizerKeys: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const f of ['saved_model.pb', 'keras_metadata.pb']) if (!readFileSync(join(real, f)).equals(readFileSync(join(ours, f)))) problems.push(`${f} changed`);
  const [a, b] = [TensorBundle.open(join(real, 'variables/variables')), TensorBundle.open(join(ours, 'variables/variables'))];
  if (JSON.stringify(a.keys()) !== JSON.stringify(b.keys())) problems.push('the bundle keys changed');
  for (const k of a.keys()) {
    if (optimizerKeys.has(k)) continue;
    const [x, y] = [a.info(k), b.info(k)];
    if (JSON.stringify(x) !== JSON.stringify(y)) problems.push(`entry ${k} changed`);
    else if (x.dtype !== 'string' && hexOf(a.tensor(k)) !== hexOf(b.tensor(k))) problems.push(`tensor ${k} changed`);
  }
  if (!noPython) {
    const check = JSON.parse(execFileSync(PYTHON, [resolve('test/helpers/bundle_check.py'), join(ours, 'variables/variables')], { encoding: 'utf8' })) as { errors: string[] };
    problems.push(...check.errors.map((e) => `bundle_check.py: ${e}`));
  }
  return problems;
}

const key = (name: string): string => `${name}/.ATTRIBUTES/VARIABLE_VALUE`;

describe('transplant between every pair of formats of the corpus model (TF 2.4 .h5, TF 2.10 SavedModel, Keras 3.13 .keras)', () => {
  const kinds = Object.keys(MODEL) as Kind[];
  const pairs = kinds.flatMap((s) => kinds.filter((t) => t !== s).map((t) => [s, t] as const));
  const done: string[] = [];
  afterAll(() => console.log(`transplant: ${done.length} corpus pairs checked (${done.join('; ')})`));

  test.each(pairs)('%s -> %s', async (from, to) => {
    const source = await readOptimizerState(path(MODEL[from]));
    const target = await readOptimizerState(path(MODEL[to]));
    const out = fresh(outName(to));
    const result = await transplantOptimizerState(path(MODEL[from]), path(MODEL[to]), { output: out });
    const back = await readOptimizerState(out);
    const problems: string[] = [];

    // the target release's layout and flavour, its weights in the same order with the same names, dtypes and shapes
    expect(back.release.layout).toBe(target.release.layout);
    expect(back.flavour).toBe(target.flavour);
    expect(back.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`)).toEqual(target.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`));
    expect(back.iterations).toBe(source.iterations);
    expect(result.matches.rows.map((r) => r.target)).toEqual(target.variables.map((v) => v.name));
    expect(result.notCarried).toEqual([]);

    // every slot, read independently from the written file, equals the source's slot of the matched variable bit for bit
    const [sFirst, sSecond] = RECIPES[source.flavour].slotNames;
    const [tFirst, tSecond] = RECIPES[target.flavour].slotNames;
    const written = to === 'savedmodel' ? null : await h5pyHex(out);
    const bundle = to === 'savedmodel' ? TensorBundle.open(join(out, 'variables/variables')) : null;
    const hexAt = (name: string): string | undefined => (bundle ? hexOf(bundle.tensor(key(name))) : written?.[name.startsWith('optimizer/') ? name : `optimizer_weights/${name}`]);
    if (noPython && !bundle) console.warn(`h5py missing (${noPython}): values compared through kerasopt's reading only`);
    for (const r of result.matches.rows) {
      for (const [s, t] of [[sFirst, tFirst], [sSecond, tSecond]] as const) {
        const want = hexOf(source.slots.find((x) => x.variable === r.source && x.slot === s)!.value);
        const slot = back.slots.find((x) => x.variable === r.target && x.slot === t)!;
        if (hexOf(slot.value) !== want) problems.push(`${r.target}/${t}: kerasopt reads other bits than the source's ${r.source}/${s}`);
        const independent = noPython && !bundle ? want : hexAt(slot.weightName);
        if (independent !== want) problems.push(`${slot.weightName}: ${bundle ? 'the bundle' : 'h5py'} reads other bits than the source's ${r.source}/${s}`);
      }
    }
    const iterWeight = back.weights.find((w) => w.role?.kind === 'iterations')!;
    if (!noPython || bundle) expect(hexAt(iterWeight.name)).toBe(hexOf(iterWeight.value));

    // the schedule weight: the source's bits within a flavour, else the documented rule
    const dtype = back.schedule!.value.dtype as FloatDType;
    const hyper = { beta_1: Number(result.config.beta_1 ?? 0.9), schedule_decay: Number(result.config.schedule_decay ?? 0.004) };
    const rule = source.flavour === back.flavour ? source.schedule!.value.get(0) : scheduleAfter(back.flavour, hyper, source.iterations!, dtype);
    expect(result.schedule.rule).toBe(source.flavour === back.flavour ? 'carried' : 'recomputed');
    expect(back.schedule!.value.get(0)).toBe(rule);
    expect(Object.is(back.schedule!.value.get(0), result.schedule.to.value)).toBe(true);

    // the structure of a real file of the target release
    if (to === 'savedmodel') {
      const optimizerKeys = new Set([...target.weights.map((w) => key(w.name)), ...['learning_rate', 'beta_1', 'beta_2', 'decay'].map((h) => key(`optimizer/${h}`))]);
      problems.push(...bundleProblems(path(MODEL.savedmodel), out, optimizerKeys));
      const changed = readdirSync(out, { recursive: true }).map(String).filter((f) => f.includes('.') && !readFileSync(join(out, f)).equals(readFileSync(join(path(MODEL.savedmodel), f))));
      expect(changed.every((f) => f.startsWith('variables/')), `changed: ${changed}`).toBe(true);
    } else {
      problems.push(...(await structureProblems(path(MODEL[to]), out, to === 'h5' ? '/optimizer_weights' : '/optimizer')));
    }
    expect(problems, problems.join('\n')).toEqual([]);
    done.push(`${from} -> ${to}`);
  });
});

describe('targets without optimizer state', () => {
  test('Keras 3.8 trained 10 steps -> the never-trained Keras 3.8 archive: slots and u_product created in the 3.0-3.9 order, like the trained file', async () => {
    const source = await readOptimizerState(path(K38_TRAINED));
    const out = fresh('out.keras');
    const result = await transplantOptimizerState(path(K38_TRAINED), path(K38_UNBUILT), { output: out });
    expect(result.target.created).toBe(true);
    const back = await readOptimizerState(out);
    expect(back.release.layout).toBe('keras-3.0-u-first');
    expect(back.iterations).toBe(10);
    // the trained archive is a real file of the same release and model holding a state: ours has its structure and, here, its very bits
    expect(back.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`)).toEqual(source.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`));
    const [ours, theirs] = [await h5pyHex(out), await h5pyHex(path(K38_TRAINED))];
    if (!noPython) expect(ours).toEqual(theirs);
    back.weights.forEach((w, i) => expect(hexOf(w.value), w.name).toBe(hexOf(source.weights[i]!.value)));
    expect(result.schedule.rule).toBe('carried');
    expect(back.schedule!.value.get(0)).toBe(0.0019693849608302116);
    const problems = await structureProblems(path(K38_TRAINED), out, '/optimizer', path(K38_UNBUILT));
    // the unbuilt archive's config.json is kept (same optimizer config): only model.weights.h5 differs from the never-trained file
    const [a, b] = [await zipEntries(path(K38_UNBUILT)), await zipEntries(out)];
    expect(Object.keys(b).filter((n) => !a[n]!.equals(b[n]!))).toEqual(['model.weights.h5']);
    expect(problems, problems.join('\n')).toEqual([]);
  });

  test('a tf.keras 2.4 .h5 saved without optimizer (the real file with optimizer_weights and training_config left out by h5py) gets a tf-keras-v2 state like the real file', async () => {
    if (noPython) throw new Error(noPython);
    const bare = fresh('bare.h5');
    execFileSync(PYTHON, ['-c', String.raw`
import sys, h5py
src, dst = sys.argv[1:3]
with h5py.File(src, 'r') as a, h5py.File(dst, 'w') as b:
    for k in a.attrs:
        if k != 'training_config':
            b.attrs.create(k, a.attrs[k], dtype=a.attrs.get_id(k).dtype)
    a.copy('model_weights', b)
`, path(MODEL.h5), bare]);
    await expect(readOptimizerState(bare)).rejects.toThrow();
    const result = await transplantOptimizerState(path(MODEL.keras313), bare);
    expect(result.target.created).toBe(true);
    const back = await readOptimizerState(bare);
    const real = await readOptimizerState(path(MODEL.h5));
    expect(back.release.layout).toBe('tf-keras-v2');
    expect(back.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`)).toEqual(real.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`));
    expect(back.iterations).toBe(726);
    const problems = (await structureProblems(path(MODEL.h5), bare, '/optimizer_weights'));
    expect(problems, problems.join('\n')).toEqual([]);
    // training_config: the converted config as tf.keras's get_config writes it (float32 hyper variables)
    expect(back.config).toMatchObject({ name: 'Nadam', learning_rate: 0.0010000000474974513, beta_1: 0.8999999761581421, beta_2: 0.9990000128746033, epsilon: 1e-7 });
  });
});

describe('refusals', () => {
  test('a model of other shapes is refused with the variables named, and nothing is written', async () => {
    const out = fresh('never.keras');
    await expect(transplantOptimizerState(path(MODEL.h5), path(K38_UNBUILT), { output: out })).rejects.toThrow(/'dense\/kernel' is float32\[8, 30\] but the target's 'layers\/dense\/vars\/0' .* is float32\[3, 10\]/);
    expect(existsSync(out)).toBe(false);
  });

  test('--to a flavour the target format cannot hold, or another layout over an existing state, is refused', async () => {
    await expect(transplantOptimizerState(path(MODEL.keras313), path(MODEL.h5), { output: fresh('x.h5'), to: 'keras3' })).rejects.toThrow(/tf-keras-h5 file, which holds tf-keras Nadam state; --to keras3/);
    await expect(transplantOptimizerState(path(MODEL.h5), path(MODEL.keras313), { output: fresh('x.keras'), to: 'tf-keras-new' })).rejects.toThrow(/already holds a keras3 optimizer state .* cannot replace it/);
  });

  test('--map overrides the matching; a map that pairs different shapes is refused', async () => {
    const map = new Map([['layer_with_weights-0/kernel', 'dense/kernel'], ['layer_with_weights-0/bias', 'dense/bias'], ['layer_with_weights-1/kernel', 'dense_1/kernel'], ['layer_with_weights-1/bias', 'dense_1/bias']]);
    const result = await transplantOptimizerState(path(MODEL.savedmodel), path(MODEL.h5), { output: fresh('m.h5'), map });
    expect(result.matches.rows.map((r) => r.rule)).toEqual(['map', 'map', 'map', 'map']);
    const swapped = new Map([['layer_with_weights-0/kernel', 'dense_1/kernel']]);
    await expect(transplantOptimizerState(path(MODEL.savedmodel), path(MODEL.h5), { output: fresh('m.h5'), map: swapped })).rejects.toThrow(/float32\[8, 30\] but the target's 'dense_1\/kernel' \(matched map\) is float32\[30, 1\]/);
  });
});

describe('README: the corpus model from the TF 2.4 .h5 into the Keras 3.13 archive in two commands', () => {
  test('kerasopt transplant, then kerasopt inspect', async () => {
    const built = ensureBuilt();
    if (built) console.warn(built);
    const out = fresh('migrated.keras');
    const t = await cli(['transplant', path(MODEL.h5), '--into', path(MODEL.keras313), '-o', out]);
    expect(t.err).toBe('');
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/dense\/kernel\s+layers\/dense\/vars\/0\s+\[8, 30\]\s+float32\s+layer name and position/);
    expect(t.out).toMatch(/u_product = 0: recomputed with the keras3 recurrence/);
    const i = await cli(['inspect', out]);
    expect(i.code).toBe(0);
    expect(i.out).toMatch(/layout keras-3.10-u-last/);
    expect(i.out).toMatch(/iterations:\s+726/);
    const source = await readOptimizerState(path(MODEL.h5));
    const back = await readOptimizerState(out);
    const m = source.slots.find((s) => s.variable === 'dense/kernel' && s.slot === 'm')!;
    expect(hexOf(back.slots.find((s) => s.variable === 'layers/dense/vars/0' && s.slot === 'momentum')!.value)).toBe(hexOf(m.value));
  });
});

export type { KerasOptimizerState };
