import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BackendError, FormatError, Tensor, type Flavour, type FloatDType } from '../src/index.js';
import { loadFixture, type Fixture, type Tolerance } from '../src/parity/fixture.js';
import { compareRecord, runParity } from '../src/parity/run.js';
import { ulpDistance } from '../src/parity/compare.js';
import { firstDrift, firstFailure, formatSummary } from '../src/parity/summary.js';
import { writeFixture, type FixtureSpec } from '../src/parity/write.js';
import { nadamFixture, tempDir } from './helpers/parityFixtures.js';

/** The fixture's spec, to write a modified copy of it. */
function specOf(f: Fixture, over: Partial<FixtureSpec> = {}): FixtureSpec {
  const { format: _f, version: _v, steps: _s, payload: _p, initial: _i, step: _st, ...spec } = f.manifest;
  return { ...spec, ...over };
}

/** Writes a copy of `f` with expected element `index` of `key` at `step` moved by `ulps` float32 ulps. */
function nudged(f: Fixture, step: number, key: string, index: number, ulps: number, over: Partial<FixtureSpec> = {}): Fixture {
  const steps = f.steps.map((m) => new Map([...m].map(([k, t]) => [k, t.clone()])));
  const t = steps[step - 1]!.get(key)!;
  if (t.dtype === 'int64') (t.data as BigInt64Array)[index]! += BigInt(ulps);
  else new Int32Array((t.data as Float32Array).buffer)[index]! += ulps;
  const dir = tempDir();
  return loadFixture(writeFixture(dir, specOf(f, over), { initial: f.initial, steps }));
}

describe('runParity replays a fixture and compares every state tensor at every step', () => {
  const cases: Array<[Flavour, FloatDType, boolean]> = [
    ['tf-keras', 'float32', false],
    ['tf-keras', 'float32', true],
    ['tf-keras', 'float64', false],
    ['keras2', 'float32', true],
    ['keras3', 'float32', false],
    ['keras3', 'float64', true],
  ];
  test.each(cases)('%s %s sparse=%s: its own recorded trajectory replays bit-exactly', async (flavour, dtype, sparse) => {
    const dir = tempDir();
    const f = loadFixture(await nadamFixture(dir, { name: 'self', flavour, dtype, sparse, steps: 6 }));
    const r = await runParity(f);
    const stateKeys = f.manifest.step.filter((x) => !x.key.startsWith('grad')).map((x) => x.key);
    expect(stateKeys.length).toBe(2 + 2 * 2 + 2); // 2 vars, 2 slots each, iterations + schedule weight
    expect(r.compared).toBe(6 * stateKeys.length);
    expect(r.records.map((x) => `${x.step} ${x.key}`)).toEqual([1, 2, 3, 4, 5, 6].flatMap((s) => stateKeys.map((k) => `${s} ${k}`)));
    expect(r.records.every((x) => x.differing === 0 && x.maxUlp === 0 && x.maxAbs === 0 && x.pass)).toBe(true);
    expect(r.pass).toBe(true);
    expect(r.backend).toBe('typed');
    expect(r.provenance).toBe('external');
    expect(r.path).toBe(f.path);
    const slot = r.records.find((x) => x.key.startsWith('slot:'))!;
    expect(slot.variable).toBe('w');
    expect(r.records.find((x) => x.key === 'weight:iterations')!.variable).toBeNull();
  });

  test('per step and per record: a 3-ulp error at step 3 in one element is found there, and only there', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'exact', steps: 5 }));
    const bad = nudged(f, 3, 'slot:v:b', 2, 3);
    const r = await runParity(bad);
    expect(r.pass).toBe(false);
    const failing = r.records.filter((x) => !x.pass);
    expect(failing.map((x) => [x.step, x.key, x.maxUlp, x.failing, x.differing, x.worst])).toEqual([[3, 'slot:v:b', 3, 1, 1, 2]]);
    expect(failing[0]!.maxAbs).toBeGreaterThan(0);
    expect(failing[0]!.maxRel).toBeGreaterThan(0);
    expect(failing[0]!.maxRel).toBeLessThan(1e-5);
    expect(firstFailure(r)).toMatchObject({ step: 3, key: 'slot:v:b' });
    const text = formatSummary([r]);
    expect(text).toMatch(/exact\s+external\s+tf-keras\s+float32\s+5\s+40\s+3\s+.*bit-exact\s+FAIL \(1\)/);
    expect(text).toContain("first failure: step 3, 'slot:v:b' (max ulp 3");
    expect(text).toContain('provenance of the expected numbers:\n  external — kerasopt Nadam, typed backend (recorded by the test suite, not TensorFlow): exact\ncompared with: backend typed');
    expect(text).toContain('0 passed, 1 failed');
  });

  const tolerances: Array<[string, Tolerance, boolean]> = [
    ['exact', { kind: 'exact' }, false],
    ['ulp 2', { kind: 'ulp', maxUlp: 2 }, false],
    ['ulp 3', { kind: 'ulp', maxUlp: 3 }, true],
    ['allclose tight', { kind: 'allclose', rtol: 1e-9, atol: 0 }, false],
    ['allclose loose', { kind: 'allclose', rtol: 1e-5, atol: 1e-8 }, true],
    ['relative tight', { kind: 'relative', rtol: 1e-9 }, false],
    ['relative loose', { kind: 'relative', rtol: 1e-5 }, true],
  ];
  test.each(tolerances)('tolerance %s decides the verdict of a 3-ulp error', async (_name, tolerance, passes) => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'tol', steps: 3 }));
    const r = await runParity(nudged(f, 2, 'var:w', 4, 3, { tolerance }));
    expect(r.pass).toBe(passes);
    expect(r.tolerance).toEqual(tolerance);
    expect(firstDrift(r)).toMatchObject({ step: 2, key: 'var:w', maxUlp: 3 });
    if (passes) expect(formatSummary([r])).toContain("first drift (within tolerance): step 2, 'var:w'");
  });

  test('a failure after a drift within tolerance: the summary names both steps', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'drift', steps: 5 }));
    const dir = tempDir();
    const once = loadFixture(writeFixture(dir, specOf(f, { tolerance: { kind: 'ulp', maxUlp: 2 } }), { initial: f.initial, steps: nudged(f, 2, 'var:w', 1, 1).steps }));
    const r = await runParity(nudged(once, 4, 'slot:m:w', 0, 9, { tolerance: { kind: 'ulp', maxUlp: 2 } }));
    expect(r.pass).toBe(false);
    const text = formatSummary([r]);
    expect(text).toContain("drift: first failure: step 4, 'slot:m:w' (max ulp 9");
    expect(text).toMatch(/\n {9}drifting since \(within tolerance\): step 2, 'var:w' \(max ulp 1,/);
  });

  test('iterations are held to bit-exactness whatever the float tolerance', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'iters', steps: 3 }));
    const r = await runParity(nudged(f, 2, 'weight:iterations', 0, 1, { tolerance: { kind: 'allclose', rtol: 1, atol: 1 } }));
    const it = r.records.find((x) => x.key === 'weight:iterations' && x.step === 2)!;
    expect(it.tolerance).toEqual({ kind: 'exact' });
    expect(it.pass).toBe(false);
    expect(r.pass).toBe(false);
  });

  test('an unknown backend is a BackendError listing the registered ones', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'be', steps: 1 }));
    await expect(runParity(f, { backend: 'gpu' })).rejects.toThrow(BackendError);
    await expect(runParity(f, { backend: 'gpu' })).rejects.toThrow(/no backend named 'gpu'; registered backends: .*typed/);
  });

  test('a config Nadam refuses is a FormatError naming the fixture and the key', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'cfg', steps: 1, config: { learning_rate: 0.01 } }));
    const bad = loadFixture(writeFixture(tempDir(), specOf(f, { config: { learning_rate: 0.01, beta_1: 1.5 } }), { initial: f.initial, steps: f.steps }));
    await expect(runParity(bad)).rejects.toThrow(FormatError);
    await expect(runParity(bad)).rejects.toThrow(/cfg\.json: config: .*beta_1/);
    const unknown = loadFixture(writeFixture(tempDir(), specOf(f, { config: { learning_rate: 0.01, amsgrad: true } }), { initial: f.initial, steps: f.steps }));
    await expect(runParity(unknown)).rejects.toThrow(/cfg\.json: config: invalid tf-keras Nadam config: unknown key 'amsgrad' at config\.amsgrad/);
  });

  test('records that do not fit the optimizer or lack a gradient are FormatErrors naming the record', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'keys', steps: 2 }));
    const withStep = (change: (m: Map<string, Tensor>) => void): Fixture => {
      const steps = f.steps.map((m) => {
        const c = new Map(m);
        change(c);
        return c;
      });
      return loadFixture(writeFixture(tempDir(), specOf(f), { initial: f.initial, steps }));
    };
    const keras3Slot = withStep((m) => m.set('slot:velocity:w', m.get('slot:v:w')!));
    await expect(runParity(keras3Slot)).rejects.toThrow(/keys\.json: record 'slot:velocity:w': optimizer Nadam has no slot 'velocity' for variable 'w'/);
    const noGrad = withStep((m) => m.delete('grad:b'));
    await expect(runParity(noGrad)).rejects.toThrow(/keys\.json: step records lack 'grad:b'/);
    const ghost = withStep((m) => m.set('var:ghost', m.get('var:b')!));
    await expect(runParity(ghost)).rejects.toThrow(/record 'var:ghost': no variable named 'ghost' in the manifest/);
  });

  test('onStep reports every step', async () => {
    const f = loadFixture(await nadamFixture(tempDir(), { name: 'progress', steps: 4 }));
    const seen: string[] = [];
    await runParity(f, { onStep: (s, n) => seen.push(`${s}/${n}`) });
    expect(seen).toEqual(['1/4', '2/4', '3/4', '4/4']);
  });
});

describe('a fixture that compares nothing never passes', () => {
  test('gradients only, no expected state: compared 0, pass false, NOTHING CHECKED', async () => {
    // Written by hand: writeFixture itself refuses to write such a fixture.
    const dir = tempDir();
    const init = Tensor.from([1, 2], 'float32');
    const grad = Tensor.from([0.5, 0.25], 'float32');
    const payload = Buffer.concat([init, grad].map((t) => Buffer.from(t.data.buffer)));
    const manifest = {
      format: 'kerasopt-fixture', version: 1, name: 'empty',
      provenance: { kind: 'external', producer: 'hand-written by test/parity.run.test.ts' },
      flavour: 'tf-keras', dtype: 'float32', config: {}, variables: [{ name: 'w', shape: [2], gradient: 'dense' }],
      steps: 1, tolerance: { kind: 'exact' },
      payload: { file: 'empty.bin', byteLength: payload.length, sha256: createHash('sha256').update(payload).digest('hex') },
      initial: [{ key: 'var:w', dtype: 'float32', shape: [2] }],
      step: [{ key: 'grad:w', dtype: 'float32', shape: [2] }],
    };
    writeFileSync(join(dir, 'empty.bin'), payload);
    writeFileSync(join(dir, 'empty.json'), JSON.stringify(manifest));
    const r = await runParity(loadFixture(join(dir, 'empty.json')));
    expect(r.compared).toBe(0);
    expect(r.pass).toBe(false);
    expect(formatSummary([r])).toMatch(/NOTHING CHECKED/);
    expect(formatSummary([r])).toContain('0 passed, 1 failed');
  });
});

describe('compareRecord', () => {
  test('bit-exact tells -0 from +0; a ULP bound of 0 does not', () => {
    const pos = Tensor.from([1, 0], 'float32');
    const neg = Tensor.from([1, -0], 'float32');
    const exact = compareRecord(1, 'var:w', neg, pos, { kind: 'exact' }, 'f.json');
    expect([exact.pass, exact.differing, exact.maxUlp, exact.worst]).toEqual([false, 1, 0, 1]);
    expect(compareRecord(1, 'var:w', neg, pos, { kind: 'ulp', maxUlp: 0 }, 'f.json').pass).toBe(true);
    expect(compareRecord(1, 'var:w', pos, pos.clone(), { kind: 'exact' }, 'f.json').pass).toBe(true);
    const f64 = compareRecord(1, 'var:w', Tensor.from([-0], 'float64'), Tensor.from([0], 'float64'), { kind: 'exact' }, 'f.json');
    expect(f64.pass).toBe(false);
  });

  test('an infinity equals itself under every tolerance (Inf - Inf is NaN, not an error), and differs from the other one', () => {
    const expected = Tensor.from([Infinity, -Infinity, 1], 'float32');
    for (const t of [{ kind: 'exact' }, { kind: 'ulp', maxUlp: 0 }, { kind: 'allclose', rtol: 0, atol: 0 }, { kind: 'relative', rtol: 1e-9 }] as Tolerance[]) {
      const same = compareRecord(1, 'var:w', expected.clone(), expected, t, 'f.json');
      expect([same.pass, same.maxAbs, same.maxRel, same.maxUlp, same.differing]).toEqual([true, 0, 0, 0, 0]);
      const flipped = compareRecord(1, 'var:w', Tensor.from([-Infinity, -Infinity, 1], 'float32'), expected, t, 'f.json');
      expect([flipped.pass, flipped.failing, flipped.maxAbs]).toEqual([false, 1, Infinity]);
      expect(compareRecord(1, 'var:w', Tensor.from([3e38, -Infinity, 1], 'float32'), expected, t, 'f.json').pass).toBe(false);
    }
  });

  test('iterations beyond 2^53 are compared as integers, exactly', () => {
    const big = 2n ** 60n;
    const r = compareRecord(9, 'weight:iterations', Tensor.from([big + 1n], 'int64', []), Tensor.from([big], 'int64', []), { kind: 'allclose', rtol: 1, atol: 1 }, 'f.json');
    expect(r).toMatchObject({ pass: false, differing: 1, maxAbs: 1, maxUlp: 1, tolerance: { kind: 'exact' }, variable: null });
    expect(compareRecord(9, 'weight:iterations', Tensor.from([big], 'int64', []), Tensor.from([big], 'int64', []), { kind: 'exact' }, 'f.json').pass).toBe(true);
  });

  test('tensors that cannot be compared are a FormatError naming the step and key', () => {
    expect(() => compareRecord(4, 'slot:m:w', Tensor.from([1, 2], 'float32'), Tensor.from([1, 2, 3], 'float32'), { kind: 'exact' }, 'e.json')).toThrow(
      /e\.json: step 4 'slot:m:w': cannot compare actual Tensor<float32>\[2\] with expected Tensor<float32>\[3\]/,
    );
  });
});

describe('ulpDistance', () => {
  test('counts float64 neighbours far from zero (positions beyond 2^53)', () => {
    expect(ulpDistance(1, 1 + 2 ** -52, 'float64')).toBe(1);
    expect(ulpDistance(-1, -1 - 2 ** -52 * 3, 'float64')).toBe(3);
    expect(ulpDistance(1e300, 1e300 * (1 + 2 ** -52), 'float64')).toBe(1);
    expect(ulpDistance(0.1, 0.1 + 2 ** -56, 'float64')).toBe(1); // ulp(0.1) = 2^-56: the value next to 0.1
    expect(ulpDistance(-0, 0, 'float64')).toBe(0);
    expect(ulpDistance(-Number.MIN_VALUE, Number.MIN_VALUE, 'float64')).toBe(2);
    expect(ulpDistance(1, Math.fround(1 + 2 ** -23), 'float32')).toBe(1);
    expect(ulpDistance(1, NaN, 'float32')).toBe(Infinity);
  });
});
