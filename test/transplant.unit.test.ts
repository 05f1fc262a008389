import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readOptimizerState } from '../src/formats/index.js';
import { layerOf, matchVariables, scheduleAfter, transplantOptimizerState } from '../src/formats/transplant/index.js';
import { FLAVOURS } from '../src/optimizers/flavour.js';
import { Nadam } from '../src/optimizers/nadam/index.js';
import { RECIPES } from '../src/optimizers/nadam/recipes.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Variable } from '../src/tensor/variable.js';
import { CORPUS_DIR, h5Facts, hexOf, kerasoptSchedule } from './helpers/corpus.js';
import { missingPython, PYTHON } from './helpers/python.js';

const scratch = mkdtempSync(join(tmpdir(), 'kerasopt-transplant-unit-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const K38_TRAINED = join(CORPUS_DIR, 'haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss.keras');
const K313 = join(CORPUS_DIR, 'quanai06__hands-on_machine_learning_with_Scikit-learn/my_model_with_a_custom_loss.keras');
const hyper = { beta_1: 0.9, schedule_decay: 0.004 };

/** The schedule scalar a kerasopt Nadam of the flavour holds after `steps` zero-gradient steps (the optimizer's own code path). */
function nadamSchedule(flavour: (typeof FLAVOURS)[number], steps: number, dtype: 'float32' | 'float64'): number {
  const v = new Variable(Tensor.from([0.5, -1], dtype), { name: 'w' });
  const opt = new Nadam({ flavour, beta_1: 0.9, schedule_decay: flavour === 'tf-keras' || flavour === 'keras2' ? 0.004 : undefined, onWarning: () => {} });
  opt.build([v]);
  for (let i = 0; i < steps; i++) opt.applyGradientsSync([[Tensor.from([0, 0], dtype), v]]);
  return opt.getWeight(RECIPES[flavour].scheduleWeight).value.get(0);
}

describe('the schedule rule (scheduleAfter)', () => {
  test.each(FLAVOURS)('%s: equals the recurrence of the corpus suite and a Nadam stepped that often, bit for bit, while the product is normal', (flavour) => {
    for (const n of [0, 1, 2, 10, 50, 100]) {
      for (const dtype of ['float32', 'float64'] as const) {
        const rule = scheduleAfter(flavour, { beta_1: flavour === 'tf-keras' ? Math.fround(0.9) : 0.9, schedule_decay: 0.004 }, n, dtype);
        expect(rule, `${flavour} ${dtype} after ${n}`).toBe(kerasoptSchedule(flavour, dtype, { beta_1: 0.9, schedule_decay: 0.004 }, n));
        expect(rule, `${flavour} ${dtype} after ${n} (Nadam)`).toBe(nadamSchedule(flavour, n, dtype));
      }
    }
  });

  test('subnormals are flushed to zero, as TF computes on CPU: the real Keras 3.13 file saved u_product 0 after 726 steps', async () => {
    const real = await readOptimizerState(K313);
    expect(real.iterations).toBe(726);
    expect(real.schedule!.value.get(0)).toBe(0);
    const kept = scheduleAfter('keras3', hyper, 726, 'float32', true);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(2 ** -126); // a float32 subnormal without the flush
    expect(scheduleAfter('keras3', hyper, 726, 'float32')).toBe(0);
    expect(scheduleAfter('keras3', hyper, 696, 'float32')).toBeGreaterThanOrEqual(2 ** -126);
  });

  test("the real Keras 3.8 archive's u_product after 10 steps is the keras3 rule's value, bit for bit", async () => {
    const real = await readOptimizerState(K38_TRAINED);
    expect(real.iterations).toBe(10);
    expect(scheduleAfter('keras3', hyper, 10, 'float32')).toBe(real.schedule!.value.get(0));
  });
});

describe('matchVariables', () => {
  const v = (name: string, shape: number[]) => ({ name, value: Tensor.fill('float32', shape, 0) });
  test('names split into layer and variable', () => {
    expect(layerOf('dense/kernel')).toEqual({ layer: 'dense', variable: 'kernel', scheme: 'h5' });
    expect(layerOf('layers/dense_1/vars/1')).toEqual({ layer: 'dense_1', variable: '1', scheme: 'keras3' });
    expect(layerOf('layer_with_weights-0/kernel')).toBeNull();
  });

  test('.h5 names to Keras 3 paths by layer name and position; a source variable the target lacks is reported, not matched', () => {
    const t = matchVariables([v('dense/kernel', [2, 3]), v('dense/bias', [3]), v('old/kernel', [4])], [v('layers/dense/vars/0', [2, 3]), v('layers/dense/vars/1', [3])]);
    expect(t.rows.map((r) => `${r.source}>${r.target}:${r.rule}`)).toEqual(['dense/kernel>layers/dense/vars/0:layer name and position', 'dense/bias>layers/dense/vars/1:layer name and position']);
    expect(t.unmatchedSources).toEqual(['old/kernel']);
  });

  test('names that both sides carry but that differ are refused (--map decides)', () => {
    expect(() => matchVariables([v('dense_4/kernel', [2])], [v('dense/kernel', [2])])).toThrow(/no source variable for the target's 'dense\/kernel'.*--map SOURCE_VAR=dense\/kernel/);
    const t = matchVariables([v('dense_4/kernel', [2])], [v('dense/kernel', [2])], new Map([['dense_4/kernel', 'dense/kernel']]));
    expect(t.rows[0]!.rule).toBe('map');
  });

  test('by order: counts and shapes must agree', () => {
    expect(() => matchVariables([v('layer_with_weights-0/kernel', [2])], [v('dense/kernel', [2]), v('dense/bias', [1])])).toThrow(/cannot match by order: the source has 1 variables/);
    expect(() => matchVariables([v('layer_with_weights-0/kernel', [2]), v('layer_with_weights-0/bias', [1])], [v('dense/bias', [1]), v('dense/kernel', [2])])).toThrow(/float32\[2\] but the target's 'dense\/bias'/);
    expect(() => matchVariables([v('a/b', [1])], [v('c/d', [1])], new Map([['x', 'c/d']]))).toThrow(/--map x=c\/d: the source has no variable 'x'/);
  });
});

describe('across flavours with a schedule that has not underflowed', () => {
  test('Keras 3.8 (10 steps) -> a tf.keras 2.4 .h5 of the same model saved without optimizer -> back into Keras 3: m, v bit for bit, the schedule by the rule', async () => {
    const noPython = missingPython(['h5py', 'numpy']);
    if (noPython) throw new Error(noPython);
    const h5 = join(scratch, 'dense3.h5');
    // made by this test with h5py in the tf.keras 2.4 .h5 layout (a model saved with include_optimizer=False), not by TensorFlow
    execFileSync(PYTHON, ['-c', String.raw`
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['keras_version'] = '2.4.0'
    f.attrs['backend'] = 'tensorflow'
    g = f.create_group('model_weights')
    g.attrs['layer_names'] = np.array([b'dense', b'dense_1'])
    for layer, shapes in (('dense', ((3, 10), (10,))), ('dense_1', ((10, 1), (1,)))):
        lg = g.create_group(layer)
        names = [f'{layer}/kernel:0'.encode(), f'{layer}/bias:0'.encode()]
        lg.attrs['weight_names'] = np.array(names)
        for n, s in zip(names, shapes):
            lg.create_dataset(n.decode(), data=np.linspace(-1, 1, int(np.prod(s)), dtype='<f4').reshape(s))
`, h5]);
    const source = await readOptimizerState(K38_TRAINED);
    const r = await transplantOptimizerState(K38_TRAINED, h5);
    expect(r.matches.rows.map((x) => x.rule)).toEqual(Array(4).fill('layer name and position'));
    const back = await readOptimizerState(h5);
    expect(back.release.layout).toBe('tf-keras-v2');
    expect(back.iterations).toBe(10);
    const momentumCache = back.schedule!.value.get(0);
    expect(r.schedule.rule).toBe('recomputed');
    expect(momentumCache).toBe(scheduleAfter('tf-keras', { beta_1: Math.fround(0.9), schedule_decay: 0.004 }, 10, 'float32'));
    expect(momentumCache).toBe(nadamSchedule('tf-keras', 10, 'float32'));
    expect(momentumCache).not.toBe(source.schedule!.value.get(0)); // another recurrence: 0.96^(0.004 t), not 0.96^t
    const facts = h5Facts(h5).datasets;
    for (const row of r.matches.rows) {
      for (const [s, t] of [['momentum', 'm'], ['velocity', 'v']] as const) {
        const want = hexOf(source.slots.find((x) => x.variable === row.source && x.slot === s)!.value);
        expect(facts[`optimizer_weights/Nadam/${row.target}/${t}:0`]?.hex, `${row.target}/${t}`).toBe(want);
      }
    }
    expect(r.changes.join('\n')).toMatch(/the converted optimizer gains the factor 0.004/);

    // and back: the h5's tf-keras state into a copy of the trained archive, recomputed with the keras3 rule
    const out = join(scratch, 'back.keras');
    const r2 = await transplantOptimizerState(h5, K38_TRAINED, { output: out });
    const again = await readOptimizerState(out);
    expect(again.schedule!.value.get(0)).toBe(scheduleAfter('keras3', { beta_1: Number(r2.config.beta_1), schedule_decay: 0.004 }, 10, 'float32'));
    again.slots.forEach((s, i) => expect(hexOf(s.value)).toBe(hexOf(source.slots[i]!.value)));
  });
});
