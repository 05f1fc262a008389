import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadFixture } from '../src/parity/fixture.js';
import { fixturesDir } from '../src/paths.js';
import { tempDir } from './helpers/parityFixtures.js';
import { missingPython, python } from './helpers/python.js';

/**
 * The `tensorflow` engine of scripts/generate_fixtures.py cannot meet TensorFlow here. Its glue (building
 * variables and IndexedSlices, calling from_config/apply_gradients, reading slots, the schedule weight and
 * iterations, writing with the shared writer) runs against test/helpers/fake_tensorflow.py, whose
 * optimizers step the numpy reference: the payload must then be the shipped reference fixture's, byte for byte.
 */
const CASES = ['tf-keras-float32-sparse', 'tf-keras-float32-clip-both', 'keras3-float64-dense-sparse', 'tf-keras-new-float64-dense-sparse'];

function generate(out: string, cases: readonly string[]): string {
  const argv = JSON.stringify(['g', '--engine', 'tensorflow', ...cases.flatMap((c) => ['--case', c]), '--out', out]);
  return python(
    `import sys, runpy\nsys.path.insert(0, 'test/helpers')\nimport fake_tensorflow\nfake_tensorflow.install()\nsys.argv = ${argv}\nrunpy.run_path('scripts/generate_fixtures.py', run_name='__main__')`,
  );
}

describe('generate_fixtures.py --engine tensorflow, against a stand-in TensorFlow (TF itself cannot be installed here)', () => {
  test.skipIf(missingPython(['numpy']) !== null)('records tf.keras (optimizer_v2 and TF 2.11+) and Keras 3 runs in the shipped layout, labelled by engine, never over a shipped fixture', () => {
    const out = tempDir();
    generate(out, CASES);
    for (const name of CASES) {
      const made = loadFixture(join(out, `${name}-tensorflow.json`));
      const shipped = loadFixture(join(fixturesDir(), `${name}.json`));
      expect(made.manifest.provenance).toMatchObject({ kind: 'tensorflow', command: `/usr/bin/python3 scripts/generate_fixtures.py --engine tensorflow --case ${name}` });
      expect(made.manifest.provenance.producer).toContain('NOT TensorFlow'); // the stand-in's version string
      expect(made.manifest.step).toEqual(shipped.manifest.step);
      expect(made.manifest.initial).toEqual(shipped.manifest.initial);
      expect(readFileSync(join(out, `${name}-tensorflow.bin`)).equals(readFileSync(join(fixturesDir(), `${name}.bin`))), name).toBe(true);
    }
    // Standalone Keras 2 needs TF 1.x: refused by name, not recorded with another Keras.
    expect(() => generate(tempDir(), ['keras2-float32-clipnorm'])).toThrow(/standalone Keras 2 needs TF 1\.x/);
  });
});
