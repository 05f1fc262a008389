import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { deserialize, dumpsPython, locateOptimizer, Nadam, parsePythonJson, serialize } from '../src/index.js';
import { CORPUS_DIR, IS_DEFAULT_CORPUS, loadCorpus } from './helpers/corpus.js';
import { missingPython, python } from './helpers/python.js';

/** The real Keras files that carry a config (.h5 training_config, .keras config.json), from the corpus manifest, read in place. */
const corpus = loadCorpus();
const files = corpus.items.filter((i) => i.kind === 'hdf5' || i.kind === 'keras-archive').map((i) => i.path);

/** The optimizer-config JSON text of a file, read with h5py / zipfile (independent of kerasopt's readers). */
const READ = `
import sys, json, zipfile
p = sys.argv[1]
if p.endswith('.keras'):
    with zipfile.ZipFile(p) as z: sys.stdout.write(z.read('config.json').decode('utf8'))
elif p.endswith('.json'):
    sys.stdout.write(open(p, encoding='utf8').read())
else:
    import h5py
    with h5py.File(p, 'r') as f:
        t = f.attrs.get('training_config')
        if t is None: sys.stdout.write('')
        else: sys.stdout.write(t.decode('utf8') if isinstance(t, bytes) else str(t))
`;

/** Whether Python's json.loads gives equal values for two texts (as Keras would compare them: 1 == 1.0, key order free). */
function samePythonValue(a: string, b: string): boolean {
  return python('import json,sys\na,b=json.loads(sys.stdin.read())\nprint(a == b)', [], `[${a}, ${b}]`).trim() === 'True';
}

/** Re-serializes the optimizer of a config document and says whether the JSON value is unchanged. */
function roundTrip(text: string, file: string): { className: string; same: boolean; sameBytes: boolean } {
  const found = locateOptimizer(parsePythonJson(text, file), file);
  const original = found.envelope ?? found.config;
  const opt = deserialize(original, { file, onWarning: () => {} });
  expect(opt).toBeInstanceOf(Nadam);
  const again = found.envelope ? serialize(opt as Nadam) : (opt as Nadam).getConfig();
  const before = dumpsPython(original);
  const after = dumpsPython(again);
  if (before !== after) console.warn(`${file}: same JSON value, other bytes:\n  file: ${before}\n  ours: ${after}`);
  return { className: found.className, same: samePythonValue(before, after), sameBytes: before === after };
}

describe('real Keras files of the corpus manifest (../shared/corpus/real or KERASOPT_CORPUS_DIR)', () => {
  if (files.length === 0) {
    test('0 real files checked (the corpus holds no Keras file yet)', () => {
      console.warn(`\n*** CONFIG CORPUS: 0 real files checked: ${CORPUS_DIR}: ${corpus.problem ?? 'no .h5/.keras item'}. Nothing real was verified. ***\n`);
      expect(process.env.CI && IS_DEFAULT_CORPUS ? 'the default corpus must hold real files in CI' : files).toEqual([]);
    });
  }

  test.each(files)('%s: optimizer config parses and re-serializes to the same JSON value', (file) => {
    if (missingPython(['h5py'])) return;
    const text = python(READ, [file]);
    if (text.trim() === '') {
      console.warn(`*** ${file}: no training_config (saved without optimizer): nothing to check ***`);
      return;
    }
    const doc = parsePythonJson(text, file);
    let found: ReturnType<typeof locateOptimizer>;
    try {
      found = locateOptimizer(doc, file);
    } catch (e) {
      // A model saved without compiling it (Keras 3 config.json without compile_config): no optimizer to check.
      if (!/(holds|has) no optimizer/.test((e as Error).message)) throw e;
      console.warn(`*** ${file}: ${(e as Error).message}: nothing to check ***`);
      return;
    }
    if (found.className.toLowerCase() !== 'nadam' && found.className !== 'Custom>Nadam') {
      expect(() => deserialize(text, { file })).toThrow(/kerasopt steps Nadam only|unknown optimizer class/);
      return;
    }
    const compiled = (doc as { compile_config?: { optimizer?: unknown } }).compile_config?.optimizer;
    if (typeof compiled === 'string') {
      // compile(optimizer='nadam') saves the alias, and Keras writes the alias back: there is no config to re-serialize
      console.warn(`*** ${file}: the optimizer is the string '${compiled}' (Keras's defaults): nothing to re-serialize ***`);
      return;
    }
    const trip = roundTrip(text, file);
    if (!trip.same && found.config['decay'] !== undefined && found.config['schedule_decay'] === undefined) {
      // tf.keras optimizer_v2 Nadam overwrites decay with schedule_decay (default 0.004) in __init__, so TF
      // itself writes decay 0.004 back for a file whose decay was another number (a float32-rounded 0.004):
      // the only key allowed to differ, and only in that way.
      const again = deserialize(text, { file, onWarning: () => {} }) as Nadam;
      expect(again.getConfig()['decay']).toBe(0.004);
      expect({ ...found.config, decay: 0.004 }).toEqual(again.getConfig());
      return;
    }
    expect(trip.same).toBe(true);
  });
});

describe('the corpus reader on a file MADE BY US with h5py in the tf.keras layout (not written by Keras)', () => {
  test('training_config attribute read by h5py, parsed, re-serialized to the same JSON value and bytes', () => {
    if (missingPython(['h5py'])) return;
    const dir = mkdtempSync(join(tmpdir(), 'kerasopt-corpus-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'made_by_kerasopt_tests.h5');
    const training =
      '{"loss": "mse", "metrics": ["accuracy"], "weighted_metrics": null, "loss_weights": null, "sample_weight_mode": null, "optimizer_config": {"class_name": "Nadam", "config": {"name": "Nadam", "clipnorm": 1.0, "learning_rate": 0.0020000000949949026, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}}}';
    python('import h5py,sys\nwith h5py.File(sys.argv[1], "w") as f: f.attrs["training_config"] = sys.stdin.read().encode("utf8")', [file], training);
    const text = python(READ, [file]);
    expect(text).toBe(training);
    expect(roundTrip(text, file)).toMatchObject({ same: true, sameBytes: true });
    const opt = deserialize(text, { onWarning: () => {} }) as Nadam;
    expect(dumpsPython(serialize(opt))).toBe(dumpsPython((parsePythonJson(text, file) as { optimizer_config: unknown }).optimizer_config));
    expect(readFileSync(file).length).toBeGreaterThan(0);
  });

  test('a changed value is caught by the comparison (the check can fail)', () => {
    if (missingPython(['json'])) return;
    expect(samePythonValue('{"a": 0.9}', '{"a": 0.8999999761581421}')).toBe(false);
    expect(samePythonValue('{"a": 1.0, "b": 2}', '{"b": 2, "a": 1}')).toBe(true);
  });
});
