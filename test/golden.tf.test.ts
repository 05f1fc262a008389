import { describe, expect, test } from 'vitest';
import { loadFixture, shippedFixtures } from '../src/parity/fixture.js';
import { runParity } from '../src/parity/run.js';

/*
 * The only numbers in this repository that TensorFlow/Keras itself printed: transcribed into
 * tf-golden fixtures by scripts/kerasopt_fixtures/golden.py, each naming its source. Our Nadam must
 * land within the tolerance the source itself asserts.
 */

const golden = shippedFixtures().filter((p) => loadFixture(p).manifest.provenance.kind === 'tf-golden');
const byName = (name: string) => loadFixture(golden.find((p) => p.endsWith(`/${name}.json`))!);

describe('tf-golden fixtures', () => {
  test('there are three, each naming repository, path and test or doc', () => {
    expect(golden.map((p) => p.split('/').pop()).sort()).toEqual([
      'tf-golden-keras3-correctness.json', 'tf-golden-keras3-single-step.json', 'tf-golden-tf-keras-docstring.json',
    ]);
    for (const p of golden) expect(loadFixture(p).manifest.provenance.source).toMatch(/^(keras-team\/keras|tensorflow\/tensorflow), \S+\.py, /);
  });

  test('Keras 3 test_correctness_with_golden: the transcription holds the printed rows, and we are within 5e-4', async () => {
    const f = byName('tf-golden-keras3-correctness');
    expect(f.manifest.config).toMatchObject({ learning_rate: 0.5, beta_1: 0.5, beta_2: 0.67, epsilon: 1e-5 });
    expect(f.steps[0]!.get('grad:x')!.toArray()).toEqual(Array(10).fill(Math.fround(0.01)));
    expect(f.steps[4]!.get('var:x')!.toArray()[9]).toBe(Math.fround(-1.7454));
    const r = await runParity(f, { backend: 'typed' });
    const worst = Math.max(...r.records.map((x) => x.maxAbs));
    console.log(`Keras 3 golden: max |ours - golden| over 5 steps = ${worst.toExponential(2)} (test tolerance 5e-4 + 5e-4*|golden|)`);
    expect(r.pass).toBe(true);
    expect(r.compared).toBe(5);
  });

  test('Keras 3 test_single_step within 1e-4', async () => {
    const r = await runParity(byName('tf-golden-keras3-single-step'), { backend: 'typed' });
    expect(r.pass).toBe(true);
  });

  test('tf.keras docstring: one step of Nadam(learning_rate=0.2) from 10.0 prints "9.8"', async () => {
    const f = byName('tf-golden-tf-keras-docstring');
    const r = await runParity(f, { backend: 'typed' });
    expect(r.pass).toBe(true);
    // the doc prints "{:.1f}".format(var1.numpy()); reproduce the printed text, not just the tolerance
    const { Nadam, Tensor, Variable } = await import('../src/index.js');
    const v = new Variable(Tensor.from([10], 'float32', []), { name: 'var1' });
    new Nadam({ learning_rate: 0.2 }).applyGradientsSync([[Tensor.from([10], 'float32', []), v]]);
    expect(v.value.get(0).toFixed(1)).toBe('9.8');
  });
});
