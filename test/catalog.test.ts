import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema, convertDescribed, normalizeConfig, descriptorOf } from '../src/config/described.js';
import { FormatError, KerasValueError } from '../src/errors.js';
import { optimizerFromState, readOptimizerState, saveOptimizerState, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits } from '../src/formats/state.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { canonicalClassName, OPTIMIZERS, slotVariants } from '../src/optimizers/catalog/index.js';
import { SCHEMA_DIR, schemaFiles, withRegions } from '../scripts/docTables.js';
import { cli, CORPUS_DIR, loadCorpus, OTHER_CORPUS_DIR } from './helpers/corpus.js';
import { missingPython, PYTHON } from './helpers/python.js';

/**
 * The optimizer catalog (src/optimizers/catalog): its docs and schemas are what it says, every real
 * file's config is one its row describes, and the engine ties every lineage's slots (files made by
 * test/helpers/other_optimizers.py from the sources' saving order, not by Keras).
 */
const work = mkdtempSync(join(tmpdir(), 'kerasopt-catalog-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('catalog docs and schemas', () => {
  it('README.md and docs/optimizers.md hold the tables the catalog makes (npm run docs:tables rewrites them)', () => {
    for (const file of ['README.md', 'docs/optimizers.md']) {
      const text = readFileSync(file, 'utf8');
      expect(text).toMatch(/<!-- catalog:table -->/);
      expect(withRegions(text) === text, `${file} is out of date: run npm run docs:tables`).toBe(true);
    }
  });

  it('schemas/optimizers holds one schema per row, as the catalog writes it; each compiles', () => {
    const files = schemaFiles();
    expect(readdirSync(SCHEMA_DIR).sort()).toEqual([...files.keys()].sort());
    for (const [name, text] of files) {
      expect(readFileSync(join(SCHEMA_DIR, name), 'utf8'), name).toBe(text);
      new Ajv({ strict: false }).compile(JSON.parse(text));
    }
  });

  it('every row is unique by class, flavour and first release; rows of a class and flavour do not overlap', () => {
    const keys = OPTIMIZERS.map((d) => `${d.flavour} ${d.className} ${d.versions[0]}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const d of OPTIMIZERS) {
      const others = OPTIMIZERS.filter((o) => o !== d && o.flavour === d.flavour && o.className === d.className);
      for (const o of others) expect(o.versions[0] >= (d.versions[1] ?? '9') || (o.versions[1] ?? '9') <= d.versions[0], `${keys[OPTIMIZERS.indexOf(d)]}`).toBe(true);
    }
  });

  it("class names: 'Custom>Adam', 'adam' and 'keras.optimizers.Adam' are Adam; a made-up one is none", () => {
    expect(['Custom>Adam', 'adam', 'keras.optimizers.Adam', 'ADAM'].map(canonicalClassName)).toEqual(['Adam', 'Adam', 'Adam', 'Adam']);
    expect(canonicalClassName('Adamo')).toBeNull();
  });

  it('slot variants enumerate every combination of a row\'s conditions', () => {
    const rms = descriptorOf('RMSprop', 'keras3');
    const counts = slotVariants(rms).map((v) => v.groups.flat().length).sort();
    // velocity; momentum; average_gradient; and the base EMA / gradient-accumulation slots, each on or off
    expect(counts).toHaveLength(16);
    expect(counts[0]).toBe(1);
    expect(counts[15]).toBe(5);
  });
});

describe('configs', () => {
  it('every real file\'s optimizer config validates against its row\'s schema and normalizes (both corpora)', async () => {
    let checked = 0;
    for (const dir of [CORPUS_DIR, OTHER_CORPUS_DIR]) {
      for (const item of loadCorpus(dir).items) {
        const s = await readOptimizerState(item.path);
        if (s.className === null || s.format === 'tf-checkpoint') continue; // no config in the file
        const d = descriptorOf(s.className, s.flavour, s.kerasVersion);
        const validate = new Ajv({ strict: false }).compile(configSchema(d));
        expect(validate(s.config), `${item.id}: ${JSON.stringify(validate.errors)}`).toBe(true);
        expect(() => normalizeConfig(d, s.config), item.id).not.toThrow();
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  }, 120_000);

  it('normalizeConfig fills Keras\'s defaults, reads Keras 2.3\'s lr as learning_rate, and names an unknown key', () => {
    const d = descriptorOf('Adam', 'keras2', '2.3.1');
    expect(normalizeConfig(d, { lr: 0.01 })).toEqual({ learning_rate: 0.01, beta_1: 0.9, beta_2: 0.999, decay: 0, epsilon: 1e-7, amsgrad: false });
    expect(() => normalizeConfig(d, { lr: 0.01, momentum: 0.9 })).toThrow(/a keras2 Adam takes no 'momentum'/);
  });

  it('convertDescribed: a Keras 2.0 Adam to Keras 3 keeps lr as learning_rate, drops decay and lists every change', () => {
    const r = convertDescribed('Adam', 'keras2', 'keras3', { lr: 0.0005, beta_1: 0.9, beta_2: 0.999, decay: 0.01, epsilon: 1e-8 }, '2.0.8');
    expect(r.envelope).toMatchObject({ module: 'keras.optimizers', class_name: 'Adam', registered_name: null, config: { name: 'adam', learning_rate: 0.0005, epsilon: 1e-8, amsgrad: false, use_ema: false } });
    expect(r.changes.join('\n')).toMatch(/decay=0\.01 dropped: the keras3 Adam has no such option \(time-based learning-rate decay: use an InverseTimeDecay schedule\)/);
    expect(r.changes.join('\n')).toMatch(/epsilon: 1e-8 kept from the keras2 default; the keras3 default is 1e-7/);
    expect(r.changes.join('\n')).toMatch(/saved state: keras2 slots \[m, v\] become keras3 slots/);
  });

  it('config show and config convert take a serialized Adam (JSON) and a real non-Nadam file', async () => {
    const file = join(work, 'adam.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, JSON.stringify({ class_name: 'Adam', config: { name: 'Adam', learning_rate: 0.01, decay: 0.0, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: true } }));
    const show = await cli(['config', 'show', file]);
    expect(show.code, show.err).toBe(0);
    expect(show.out).toMatch(/class: +Adam/);
    const convert = await cli(['config', 'convert', file, '--to', 'keras3']);
    expect(convert.code, convert.err).toBe(0);
    expect(JSON.parse(convert.out)).toMatchObject({ class_name: 'Adam', config: { learning_rate: 0.01, amsgrad: true } });
    expect(convert.err).toMatch(/decay=0 dropped|changes in behaviour/);
  });
});

describe('states of other optimizers', () => {
  const trial = join(OTHER_CORPUS_DIR, 'lmtriwork__learningML/my_fashion_mnist/bayesian_opt/trial_05/checkpoint.weights.h5');

  it("a .weights.h5 without a class: the fits are listed; { optimizer: 'Adam' } reads its slots as Adam's; an optimizer that does not fit is a FormatError", async () => {
    const unknown = await readOptimizerState(trial);
    expect(unknown.className).toBeNull();
    expect(unknown.fits).toEqual(['Adam', 'AdamW', 'Adamax', 'Lamb']);
    expect(unknown.slots.map((s) => s.slot)).toEqual(['slot0', 'slot1', 'slot0', 'slot1']);
    const adam = await readOptimizerState(trial, { optimizer: 'adam' });
    expect([adam.className, adam.fits]).toEqual(['Adam', undefined]);
    expect(adam.slots.map((s) => `${s.variable}/${s.slot}`)).toEqual(['layers/dense/vars/0/momentum', 'layers/dense/vars/0/velocity', 'layers/dense/vars/1/momentum', 'layers/dense/vars/1/velocity']);
    adam.slots.forEach((s, i) => expect(sameBits(s.value, unknown.slots[i]!.value)).toBe(true));
    // Adadelta's accumulated_grad is an average of squares: slot0 holds negative values, so it does not fit
    await expect(readOptimizerState(trial, { optimizer: 'Adadelta' })).rejects.toThrow(/optimizer\/vars\/2 would be Adadelta's accumulated_grad of layers\/dense\/vars\/0, which is never negative, but holds -/);
    await expect(readOptimizerState(trial, { optimizer: 'SGD' })).rejects.toThrow(FormatError);
    const inspect = await cli(['inspect', trial]);
    expect(inspect.out).toMatch(/optimizer: +not recorded in the file; its variables fit Adam, AdamW, Adamax, Lamb/);
    const named = await cli(['inspect', trial, '--json', '--optimizer', 'Adamax']);
    expect(JSON.parse(named.out)).toMatchObject({ optimizer: 'Adamax', slots: [{ slot: 'momentum' }, { slot: 'norm' }, { slot: 'momentum' }, { slot: 'norm' }] });
  }, 60_000);

  it('optimizerFromState of a non-Nadam state is a clear error naming what is supported', async () => {
    const s = await readOptimizerState(join(OTHER_CORPUS_DIR, 'trojerz__Ear-Detection/sgd.h5'));
    expect(() => optimizerFromState(s)).toThrow(KerasValueError);
    expect(() => optimizerFromState(s)).toThrow(/the optimizer is 'SGD'; kerasopt steps Nadam only/);
  });

  it('saving a state into a file of another optimizer is refused, and the file is left as it was', async () => {
    const { copyFileSync } = await import('node:fs');
    const sgd = await readOptimizerState(join(OTHER_CORPUS_DIR, 'trojerz__Ear-Detection/sgd.h5'));
    const target = join(work, 'adadelta.h5');
    copyFileSync(join(OTHER_CORPUS_DIR, 'trojerz__Ear-Detection/adadelta.h5'), target);
    const before = readFileSync(target);
    await expect(saveOptimizerState(target, sgd)).rejects.toThrow(/holds 89 optimizer weights and the state 45: it is not the same optimizer's state/);
    expect(readFileSync(target).equals(before)).toBe(true);
  });
});

function doubled(t: Tensor): Tensor {
  const out = t.clone();
  for (let i = 0; i < out.size; i++) out.set(i, out.get(i) * 2);
  return out;
}

/** The lineages' saving orders, from the sources (docs/optimizers.md), as the generator writes them. */
const LINEAGE_CASES: Array<{ lineage: string; class_name: string; config: Record<string, unknown>; groups: Array<Array<[string, string]>>; orphan?: boolean; options?: { optimizer: string } }> = [
  { lineage: 'tf-keras', class_name: 'Adam', config: { name: 'Adam', learning_rate: 0.001, amsgrad: true }, groups: [[['m', 'variable']], [['v', 'variable']], [['vhat', 'variable']]] },
  { lineage: 'tf-keras', class_name: 'RMSprop', config: { name: 'RMSprop', momentum: 0.5, centered: true }, groups: [[['rms', 'variable']], [['momentum', 'variable']], [['mg', 'variable']]], orphan: true },
  { lineage: 'tf-keras', class_name: 'Ftrl', config: { name: 'Ftrl' }, groups: [[['accumulator', 'variable'], ['linear', 'variable']]] },
  { lineage: 'tf-keras', class_name: 'SGD', config: { name: 'SGD', momentum: 0.0 }, groups: [] },
  { lineage: 'tf-keras-new', class_name: 'Adam', config: { name: 'Adam', amsgrad: true }, groups: [[['m', 'variable'], ['v', 'variable']], [['vhat', 'variable']]] },
  { lineage: 'tf-keras-new', class_name: 'RMSprop', config: { name: 'RMSprop', momentum: 0.9 }, groups: [[['velocity', 'variable']], [['momentum', 'variable']]] },
  { lineage: 'keras2', class_name: 'Adam', config: { learning_rate: 0.001, amsgrad: false }, groups: [[['m', 'variable']], [['v', 'variable']], [['vhat', 'one']]] },
  { lineage: 'keras2', class_name: 'Adadelta', config: { learning_rate: 1.0 }, groups: [[['accumulator', 'variable']], [['delta_accumulator', 'variable']]] },
  { lineage: 'keras3', class_name: 'Adam', config: {}, groups: [[['momentum', 'variable'], ['velocity', 'variable']], [['velocity_hat', 'variable']]], options: { optimizer: 'Adam' } },
  { lineage: 'keras3', class_name: 'RMSprop', config: {}, groups: [[['velocity', 'variable']], [['momentum', 'variable']], [['average_gradient', 'variable']]], options: { optimizer: 'RMSprop' } },
];

describe('the engine ties every lineage (files made from the sources\' saving order)', () => {
  const why = missingPython(['h5py', 'numpy']);
  const jobs = LINEAGE_CASES.map((c, i) => ({ ...c, path: join(work, `${c.lineage}-${c.class_name}-${i}.${c.lineage === 'keras3' ? 'weights.h5' : 'h5'}`) }));
  let truths: Array<Record<string, [string, string]>> = [];
  for (const [i, job] of jobs.entries()) {
    it(`${job.lineage} ${job.class_name} ${JSON.stringify(job.config)}${job.orphan ? ' with a variable the model lacks' : ''}: each slot tied to its variable, written back unchanged and changed`, async () => {
      if (why) return console.warn(`*** h5py missing: ${why} ***`);
      if (truths.length === 0) truths = JSON.parse(execFileSync(PYTHON, ['test/helpers/other_optimizers.py'], { input: JSON.stringify(jobs), encoding: 'utf8' })) as typeof truths;
      const truth = truths[i]!;
      const s = await readOptimizerState(job.path, job.options ?? {});
      expect(s.className?.replace(/^Custom>/, '')).toBe(job.class_name);
      const tied = Object.fromEntries(s.slots.map((x) => [x.weightName, [x.variable, x.slot]]));
      expect(tied).toEqual(truth);
      if (job.orphan) expect(s.slots.filter((x) => !x.inModel).map((x) => x.variable)).toEqual(['old_dense/kernel', 'old_dense/kernel', 'old_dense/kernel']);
      const before = readFileSync(job.path);
      await saveOptimizerState(job.path, s);
      expect(readFileSync(job.path).equals(before), 'an unchanged save writes nothing').toBe(true);
      const changed: KerasOptimizerState = { ...s, weights: s.weights.map((w) => (w.role?.kind === 'slot' ? { ...w, value: doubled(w.value) } : w)) };
      await saveOptimizerState(job.path, changed);
      const back = await readOptimizerState(job.path, job.options ?? {});
      back.weights.forEach((w, k) => expect(sameBits(w.value, changed.weights[k]!.value), w.name).toBe(true));
    }, 60_000);
  }
});

describe('TF checkpoints of other optimizer_v2 optimizers (helper-made bundles, not TensorFlow output)', () => {
  const make = (kind: string): { prefix: string; manifest: { tensors: Record<string, { data: string }> } } => {
    const prefix = join(work, `ckpt-${kind}`);
    const out = execFileSync(PYTHON, ['test/helpers/tf_checkpoint.py', prefix, '--optimizer-class', kind], { encoding: 'utf8' });
    return { prefix, manifest: JSON.parse(out) };
  };
  const hex = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

  it('Adam: the class is not recorded and Adam and Adamax fit; { optimizer } names it; every slot equals the bundle bit for bit', async () => {
    if (missingPython(['numpy'])) return console.warn('*** numpy missing ***');
    const { prefix, manifest } = make('adam');
    const s = await readOptimizerState(prefix);
    expect([s.className, s.fits, s.format, s.flavour, s.iterations]).toEqual([null, ['Adam', 'Adamax'], 'tf-checkpoint', 'tf-keras', 5]);
    expect(s.slots.map((x) => `${x.slot} ${x.variable}`)).toEqual(['m model/layer_with_weights-0/kernel', 'm model/layer_with_weights-0/bias', 'v model/layer_with_weights-0/kernel', 'v model/layer_with_weights-0/bias']);
    for (const w of s.weights) expect(hex(w.value), w.name).toBe(manifest.tensors[`${w.name}/.ATTRIBUTES/VARIABLE_VALUE`]!.data);
    const named = await readOptimizerState(prefix, { optimizer: 'Adam' });
    expect([named.className, named.config.beta_1]).toEqual(['Adam', Math.fround(0.9)]);
  });

  it('RMSprop with momentum and centered: its three slots blocked in _create_slots order; a changed state is written into the bundle and reads back (CRCs checked by bundle_check.py)', async () => {
    if (missingPython(['numpy'])) return console.warn('*** numpy missing ***');
    const { prefix } = make('rmsprop');
    const s = await readOptimizerState(prefix);
    expect(s.className).toBe('RMSprop');
    expect(s.slots.map((x) => x.slot)).toEqual(['rms', 'rms', 'momentum', 'momentum', 'mg', 'mg']);
    const changed: KerasOptimizerState = { ...s, weights: s.weights.map((w) => (w.role?.kind === 'slot' ? { ...w, value: doubled(w.value) } : w)) };
    await saveOptimizerState(prefix, changed);
    const back = await readOptimizerState(prefix);
    back.weights.forEach((w, k) => expect(sameBits(w.value, changed.weights[k]!.value), w.name).toBe(true));
    const check = JSON.parse(execFileSync(PYTHON, ['test/helpers/bundle_check.py', prefix], { encoding: 'utf8' })) as { errors: string[] };
    expect(check.errors).toEqual([]);
  });

  it('Adagrad is the only optimizer with just an accumulator and learning_rate, decay; optimizerFromState refuses it', async () => {
    if (missingPython(['numpy'])) return console.warn('*** numpy missing ***');
    const s = await readOptimizerState(make('adagrad').prefix);
    expect([s.className, s.slots.map((x) => x.slot)]).toEqual(['Adagrad', ['accumulator', 'accumulator']]);
    expect(() => optimizerFromState(s)).toThrow(/kerasopt steps Nadam only/);
  });
});
