/**
 * The third user story, as a worked example: "I have my own Nadam; how far is it from the expected
 * trajectory, and where does it start to drift?". Any implementation is a function
 * (state, gradients) -> new state; `recordTrajectory` feeds it the expected fixture's inputs and
 * `writeFixture` records what it returns in the same format; `compareTrajectories` (or
 * `kerasopt parity --against EXPECTED.json ACTUAL.json`) reports per step and per tensor.
 *
 * The expected fixture here is recorded from kerasopt's own tf-keras Nadam and labelled as such
 * (provenance `external`, producer "kerasopt Nadam ..."): it is not TensorFlow output. With the
 * shipped fixtures of fixtures/ the same code compares against numpy-reference or TF trajectories.
 */
import { describe, expect, test } from 'vitest';
import { createParityCommand } from '../src/cli/commands/parity.js';
import { missingPython, python } from './helpers/python.js';
import { FormatError, Tensor } from '../src/index.js';
import { compareTrajectories } from '../src/parity/against.js';
import { loadFixture, type Fixture } from '../src/parity/fixture.js';
import { fixtureInputs, nadamImplementation, recordTrajectory, type Implementation } from '../src/parity/record.js';
import { formatReportJson } from '../src/parity/report.js';
import { firstDrift, firstFailure, formatSummary } from '../src/parity/summary.js';
import { writeFixture } from '../src/parity/write.js';
import { nadamFixture, tempDir } from './helpers/parityFixtures.js';

const F = Math.fround;

/**
 * An independent tf.keras Nadam (dense), written from the op list in the spec, that computes every
 * step in float64 and rounds the state to float32 only when storing it: close to TF, not bit-exact.
 */
function float64Nadam(config: { learning_rate: number }): Implementation {
  const lr = config.learning_rate, b1 = 0.9, b2 = 0.999, eps = 1e-7, decay = 0.004;
  return (state, gradients) => {
    // The fixture's initial state holds only the variables: start the rest as TF does.
    const t = Number(state.get('weight:iterations')?.data[0] ?? 0) + 1;
    const muT = b1 * (1 - 0.5 * 0.96 ** (decay * t));
    const muT1 = b1 * (1 - 0.5 * 0.96 ** (decay * (t + 1)));
    const msNew = (state.get('weight:momentum_cache')?.get(0) ?? 1) * muT;
    const msNext = msNew * muT1;
    const next = new Map<string, Tensor>();
    const slots = new Map<string, Tensor>();
    for (const [name, g] of gradients) {
      const grad = g as Tensor;
      const w = state.get(`var:${name}`)!.clone();
      const m = state.get(`slot:m:${name}`)?.clone() ?? Tensor.zeros('float32', w.shape);
      const v = state.get(`slot:v:${name}`)?.clone() ?? Tensor.zeros('float32', w.shape);
      for (let i = 0; i < grad.size; i++) {
        const gi = grad.get(i);
        const mi = b1 * m.get(i) + (1 - b1) * gi;
        const vi = b2 * v.get(i) + (1 - b2) * gi * gi;
        const mb = (1 - muT) * (gi / (1 - msNew)) + muT1 * (mi / (1 - msNext));
        w.set(i, w.get(i) - (lr * mb) / (Math.sqrt(vi / (1 - b2 ** t)) + eps));
        m.set(i, mi);
        v.set(i, vi);
      }
      next.set(`var:${name}`, w);
      slots.set(`slot:m:${name}`, m).set(`slot:v:${name}`, v);
    }
    for (const [k, s] of slots) next.set(k, s);
    next.set('weight:iterations', Tensor.from([BigInt(t)], 'int64', []));
    next.set('weight:momentum_cache', Tensor.from([F(msNew)], 'float32', []));
    return next;
  };
}

/**
 * kerasopt's exact tf.keras Nadam, except that before step `at` the momentum cache is reset to 1,
 * as happens when a checkpoint that does not save it (standalone Keras 2's m_schedule) is resumed.
 */
function resumedWithoutCache(at: number): Implementation {
  const exact = nadamImplementation({ learning_rate: 0.01 }, 'tf-keras');
  return (state, gradients, step) => {
    const s = new Map(state);
    if (step === at) s.set('weight:momentum_cache', Tensor.from([1], 'float32', []));
    return exact(s, gradients, step);
  };
}

async function record(expected: Fixture, impl: Implementation, name: string, producer: string, allowNaN = false): Promise<Fixture> {
  const trajectory = await recordTrajectory(impl, fixtureInputs(expected));
  const { format: _f, version: _v, steps: _s, payload: _p, initial: _i, step: _st, ...spec } = expected.manifest;
  const path = writeFixture(tempDir(), { ...spec, name, provenance: { kind: 'external', producer } }, trajectory, { allowNaN });
  return loadFixture(path, { allowNaN: true });
}

describe('comparing an external implementation with an expected trajectory', () => {
  test('kerasopt recorded through the Implementation interface matches its own replay bit for bit', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 20 }));
    const actual = await record(expected, nadamImplementation({ learning_rate: 0.01 }, 'tf-keras'), 'again', 'kerasopt again');
    const r = compareTrajectories(expected, actual);
    expect(r.pass).toBe(true);
    expect(r.compared).toBe(20 * 8);
    expect(r.records.every((x) => x.differing === 0)).toBe(true);
    expect(r.backend).toBe('recorded');
    expect(r.actual).toMatchObject({ provenance: 'external', producer: 'kerasopt again' });
  });

  test('a float64-then-rounded Nadam is close but not bit-exact: the report says where it first drifts', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 50 }));
    const actual = await record(expected, float64Nadam({ learning_rate: 0.01 }), 'float64', 'float64 Nadam of test/parity.external.test.ts');
    const exact = compareTrajectories(expected, actual);
    expect(exact.pass).toBe(false);
    const drift = firstDrift(exact)!;
    expect(drift.step).toBeGreaterThanOrEqual(1);
    const worst = Math.max(...exact.records.filter((x) => x.key !== 'weight:iterations').map((x) => x.maxUlp));
    expect(worst).toBeGreaterThan(0);
    // Rounding differences only: far below any real semantic difference (see the next test).
    const loose = compareTrajectories(expected, actual, { tolerance: { kind: 'allclose', rtol: 1e-5, atol: 1e-7 } });
    expect(loose.pass).toBe(true);
    expect(exact.records.filter((x) => x.key === 'weight:iterations').every((x) => x.pass)).toBe(true);
    expect(formatSummary([exact])).toContain('compared with: recorded: float64 Nadam of test/parity.external.test.ts');
  });

  test('a momentum cache lost on resume: drift starts exactly at the resumed step, in the variables, not in the slots', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 12 }));
    const actual = await record(expected, resumedWithoutCache(7), 'resumed', 'kerasopt with momentum_cache reset before step 7');
    const r = compareTrajectories(expected, actual);
    expect(r.pass).toBe(false);
    expect(r.records.filter((x) => x.step < 7).every((x) => x.differing === 0)).toBe(true);
    expect(firstFailure(r)).toMatchObject({ step: 7, key: 'var:w' });
    const failingAt7 = r.records.filter((x) => x.step === 7 && !x.pass).map((x) => x.key);
    expect(failingAt7).toEqual(['var:w', 'var:b', 'weight:momentum_cache']);
    expect(r.records.filter((x) => x.key.startsWith('slot:')).every((x) => x.pass)).toBe(true); // m and v never read the cache
    expect(formatSummary([r])).toContain("first failure: step 7, 'var:w'");
  });

  test('the Keras 3 schedule in a tf-keras run differs from step 1; other slot names need scope variables', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 10 }));
    const actual = await record(expected, nadamImplementation({ learning_rate: 0.01 }, 'keras3'), 'keras3', 'kerasopt keras3 flavour');
    expect(() => compareTrajectories(expected, actual)).toThrow(/does not record slot:m:w, slot:m:b, slot:v:w, slot:v:b, weight:momentum_cache \(compare only the variables/);
    const r = compareTrajectories(expected, actual, { scope: 'variables', tolerance: { kind: 'allclose', rtol: 1e-5, atol: 0 } });
    expect(r.records.every((x) => x.key.startsWith('var:'))).toBe(true);
    expect(firstFailure(r)).toMatchObject({ step: 1, key: 'var:w' });
  });

  test('a diverging implementation (NaN) is recorded and reported as an infinite ULP distance, not refused', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 4 }));
    const exact = nadamImplementation({ learning_rate: 0.01 }, 'tf-keras');
    const diverging: Implementation = async (state, grads, step) => {
      const next = new Map(await exact(state, grads, step));
      if (step >= 3) next.set('var:b', Tensor.fill('float32', [4], NaN));
      return next;
    };
    const actual = await record(expected, diverging, 'nan', 'diverges at step 3', true);
    const r = compareTrajectories(expected, actual);
    expect(firstFailure(r)).toMatchObject({ step: 3, key: 'var:b', maxUlp: Infinity, maxAbs: Infinity });
    const json = JSON.parse(formatReportJson([r]));
    const rec = json.results[0].records.find((x: { step: number; key: string }) => x.step === 3 && x.key === 'var:b');
    expect(rec.maxUlp).toBe('Infinity');
    expect(json.pass).toBe(false);
  });

  test('an implementation fed other gradients is not comparable: a FormatError names the step and the key', async () => {
    const expected = loadFixture(await nadamFixture(tempDir(), { name: 'expected', steps: 3 }));
    const inputs = fixtureInputs(expected);
    const gradients = inputs.gradients as Array<Map<string, Tensor>>;
    const changed = gradients.map((g) => new Map(g));
    changed[1]!.set('b', Tensor.from([0, 0, 0, 0], 'float32'));
    const trajectory = await recordTrajectory(nadamImplementation({ learning_rate: 0.01 }, 'tf-keras'), { initial: inputs.initial, gradients: changed });
    const { format: _f, version: _v, steps: _s, payload: _p, initial: _i, step: _st, ...spec } = expected.manifest;
    const actual = loadFixture(writeFixture(tempDir(), { ...spec, name: 'other' }, trajectory));
    expect(() => compareTrajectories(expected, actual)).toThrow(FormatError);
    expect(() => compareTrajectories(expected, actual)).toThrow(/step 2 'grad:b' differs from the expected fixture's at element 0 .*not fed the same inputs/);
    const resumedFrom = { initial: new Map([...inputs.initial, ['weight:iterations', Tensor.from([5n], 'int64', [])]]), gradients };
    const other = await recordTrajectory(nadamImplementation({ learning_rate: 0.01 }, 'tf-keras'), resumedFrom);
    const expected2 = loadFixture(writeFixture(tempDir(), { ...spec, name: 'e2' }, { initial: new Map([...inputs.initial, ['weight:iterations', Tensor.from([0n], 'int64', [])]]), steps: expected.steps }));
    const actual2 = loadFixture(writeFixture(tempDir(), { ...spec, name: 'a2' }, other));
    expect(() => compareTrajectories(expected2, actual2)).toThrow(/initial state 'weight:iterations' differs from the expected fixture's at element 0 \(5 vs 0\)/);
  });
});

/**
 * The same story across languages: a Python program reads an expected fixture with numpy alone (the
 * format needs no library), runs its own float64 Nadam, and writes its trajectory in the same
 * format; `kerasopt parity --against` compares it. The whole reader/writer is these few lines.
 */
const PYTHON_EXTERNAL = `
import hashlib, json, sys
import numpy as np

def read(path):
    m = json.load(open(path))
    payload = open(path.rsplit('/', 1)[0] + '/' + m['payload']['file'], 'rb').read()
    off = 0
    def take(r):
        nonlocal off
        dt = np.dtype(r['dtype']).newbyteorder('<')
        n = int(np.prod(r['shape'], dtype=np.int64))
        a = np.frombuffer(payload, dtype=dt, count=n, offset=off).reshape(r['shape'])
        off += n * dt.itemsize
        return a
    initial = {r['key']: take(r) for r in m['initial']}
    steps = [{r['key']: take(r) for r in m['step']} for _ in range(m['steps'])]
    return m, initial, steps

def write(out, m, name, producer, initial, steps):
    recs = lambda d: [{'key': k, 'dtype': str(a.dtype), 'shape': list(a.shape)} for k, a in d.items()]
    payload = b''.join(np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes() for d in [initial] + steps for a in d.values())
    man = dict(m, name=name, provenance={'kind': 'external', 'producer': producer}, steps=len(steps),
               payload={'file': name + '.bin', 'byteLength': len(payload), 'sha256': hashlib.sha256(payload).hexdigest()},
               initial=recs(initial), step=recs(steps[0]))
    open(f'{out}/{name}.bin', 'wb').write(payload)
    json.dump(man, open(f'{out}/{name}.json', 'w'), indent=1)

m, initial, steps = read(sys.argv[1])
lr, b1, b2, eps, decay = m['config']['learning_rate'], 0.9, 0.999, 1e-7, 0.004
names = [v['name'] for v in m['variables']]
w = {n: initial['var:' + n].astype(np.float64) for n in names}
mm = {n: np.zeros_like(w[n]) for n in names}
vv = {n: np.zeros_like(w[n]) for n in names}
cache, out_steps = 1.0, []
for t, step in enumerate(steps, start=1):
    mu_t = b1 * (1 - 0.5 * 0.96 ** (decay * t)); mu_t1 = b1 * (1 - 0.5 * 0.96 ** (decay * (t + 1)))
    cache = cache * mu_t; nxt = cache * mu_t1
    rec = {}
    for n in names:
        g = step['grad:' + n].astype(np.float64)
        rec['grad:' + n] = step['grad:' + n]
        mm[n] = b1 * mm[n] + (1 - b1) * g
        vv[n] = b2 * vv[n] + (1 - b2) * g * g
        mb = (1 - mu_t) * g / (1 - cache) + mu_t1 * mm[n] / (1 - nxt)
        w[n] = w[n] - lr * mb / (np.sqrt(vv[n] / (1 - b2 ** t)) + eps)
    for n in names: rec['var:' + n] = w[n].astype(np.float32)
    for n in names: rec['slot:m:' + n] = mm[n].astype(np.float32)
    for n in names: rec['slot:v:' + n] = vv[n].astype(np.float32)
    rec['weight:iterations'] = np.array(t, dtype=np.int64)
    rec['weight:momentum_cache'] = np.array(cache, dtype=np.float32)
    out_steps.append(rec)
write(sys.argv[2], m, 'numpy-float64', f'numpy {np.__version__} float64 Nadam, state rounded to float32 (test/parity.external.test.ts)', initial, out_steps)
print(sys.argv[2] + '/numpy-float64.json')
`;

describe('an external implementation in another language (Python + numpy)', () => {
  test.skipIf(missingPython(['numpy']) !== null)('its trajectory, written by 40 lines of numpy, is compared by kerasopt parity --against', async () => {
    const dir = tempDir();
    const expectedPath = await nadamFixture(dir, { name: 'expected', steps: 30 });
    const actualPath = python(PYTHON_EXTERNAL, [expectedPath, dir]).trim();
    const actual = loadFixture(actualPath, { allowNaN: true });
    expect(actual.manifest.provenance).toEqual({ kind: 'external', producer: expect.stringMatching(/^numpy .* float64 Nadam/) });
    const r = compareTrajectories(loadFixture(expectedPath), actual);
    expect(r.compared).toBe(30 * 8);
    expect(r.pass).toBe(false); // float64 arithmetic is not TF's float32 arithmetic
    expect(firstDrift(r)!.step).toBe(1);
    expect(r.records.filter((x) => x.key === 'weight:iterations').every((x) => x.pass)).toBe(true);
    let out = '';
    const cli = createParityCommand({ stdout: { write: (s: string) => (out += s) }, stderr: { isTTY: false, write: () => true } });
    expect(await cli.run(['--against', expectedPath, actualPath])).toBe(1);
    expect(out).toMatch(/expected vs numpy-float64\s+external\s+tf-keras\s+float32\s+30\s+240/);
    expect(out).toContain('compared with: recorded: numpy');
    expect(await cli.run(['--against', expectedPath, actualPath, '--tolerance', 'allclose:1e-5:1e-7'])).toBe(0);
  });
});
