import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { arith } from '../src/tensor/arith.js';
import { missingPython, python } from './helpers/python.js';

/*
 * The schedule's pow, checked for every exponent Nadam uses over the first 10^6 steps, against
 * glibc (what TF's CPU Pow kernel calls on Linux: powf for float32, pow for float64) and against the
 * correctly rounded value (70-digit decimal evaluation in Python). Our pow is correctly rounded; every
 * place where it differs from glibc must be a place where glibc is not correctly rounded.
 */

const STEPS = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'kerasopt-pow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Series of (base, exponent) pairs, built identically in Python (the exponent is computed in the dtype). */
const SERIES_PY = String.raw`
import numpy as np
f32 = np.float32
N = ${STEPS}
t = np.arange(1, N + 2, dtype=np.float64)
def series():
    yield 'f32 tf-keras 0.96^(0.004 t)', 'float32', np.full(N + 1, float(f32(0.96))), (f32(0.004) * t.astype(f32)).astype(f32).astype(np.float64)
    yield 'f32 keras3 0.96^t', 'float32', np.full(3000, float(f32(0.96))), t[:3000]
    for b in (0.999, 0.99, 0.9999):
        yield f'f32 beta_2^t, beta_2={b}', 'float32', np.full(N, float(f32(b))), t[:N]
    yield 'f64 tf-keras f32(0.96)^(0.004 t)', 'float64', np.full(N + 1, float(f32(0.96))), 0.004 * t
    yield 'f64 keras2 0.96^(t 0.004)', 'float64', np.full(N + 1, 0.96), t * 0.004
    yield 'f64 keras3 0.96^t', 'float64', np.full(20000, 0.96), t[:20000]
    yield 'f64 beta_2^t, beta_2=f32(0.999)', 'float64', np.full(N, float(f32(0.999))), t[:N]
    yield 'f64 beta_2^t, beta_2=0.999', 'float64', np.full(N, 0.999), t[:N]
`;

interface Series {
  name: string;
  dtype: 'float32' | 'float64';
  file: string;
  n: number;
}

function prepare(): Series[] {
  const out = python(
    SERIES_PY +
      String.raw`
import ctypes, ctypes.util, json, sys
libm = ctypes.CDLL(ctypes.util.find_library('m'))
libm.powf.restype, libm.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
libm.pow.restype, libm.pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
meta = []
for i, (name, dtype, x, y) in enumerate(series()):
    f = libm.powf if dtype == 'float32' else libm.pow
    g = np.array([f(a, b) for a, b in zip(x.tolist(), y.tolist())], dtype=np.float64)
    path = sys.argv[1] + f'/s{i}.bin'
    np.concatenate([x, y, g]).astype('<f8').tofile(path)
    meta.append({'name': name, 'dtype': dtype, 'file': path, 'n': len(x)})
print(json.dumps(meta))
`,
    [dir],
  );
  return JSON.parse(out) as Series[];
}

function read(s: Series): { x: Float64Array; y: Float64Array; glibc: Float64Array } {
  const all = new Float64Array(new Uint8Array(readFileSync(s.file)).buffer);
  return { x: all.subarray(0, s.n), y: all.subarray(s.n, 2 * s.n), glibc: all.subarray(2 * s.n) };
}

/** Correctly rounded values from a 70-digit evaluation, for the listed pairs. */
function correctlyRounded(dtype: string, pairs: Array<[number, number]>): number[] {
  if (pairs.length === 0) return [];
  const out = python(
    String.raw`
import json, sys
sys.path.insert(0, 'scripts')
import numpy as np
from kerasopt_fixtures.numerics import pow_correctly_rounded, DTYPES
pairs = json.loads(sys.stdin.read())
t = DTYPES[sys.argv[1]]
print(json.dumps([float(pow_correctly_rounded(a, b, t)) for a, b in pairs]))
`,
    [dtype],
    JSON.stringify(pairs),
  );
  return JSON.parse(out) as number[];
}

const summary: string[] = [];

describe.skipIf(missingPython(['numpy']) !== null)('pow for the Nadam schedule and bias correction', () => {
  const series = missingPython(['numpy']) === null ? prepare() : [];

  for (const [i, s] of series.entries()) {
    test(`${s.name}: correctly rounded; every disagreement with glibc is glibc's rounding`, () => {
      const { x, y, glibc } = read(s);
      const pow = arith(s.dtype).pow;
      const mismatches: number[] = [];
      for (let k = 0; k < s.n; k++) if (pow(x[k]!, y[k]!) !== glibc[k]) mismatches.push(k);
      // Every disagreement is checked against the 70-digit value, plus a sample of agreements.
      const sample = Array.from({ length: 400 }, (_, j) => Math.floor(((j * 2654435761) % 2 ** 32) / 2 ** 32 * s.n));
      const checked = [...mismatches, ...sample];
      const exact = correctlyRounded(s.dtype, checked.map((k) => [x[k]!, y[k]!]));
      const ours = checked.map((k) => pow(x[k]!, y[k]!));
      const wrong = checked.filter((k, j) => !Object.is(ours[j], exact[j]) && !(ours[j] === 0 && exact[j] === 0));
      expect(wrong.slice(0, 5).map((k) => [x[k], y[k], pow(x[k]!, y[k]!)])).toEqual([]);
      summary[i] = `${s.name}: ${s.n} exponents, glibc ${s.dtype === 'float32' ? 'powf' : 'pow'} differs from the correctly rounded value at ${mismatches.length}` +
        (mismatches.length ? ` (first at t=${mismatches[0]! + 1})` : '');
    });
  }

  test('summary', () => {
    console.log(`\npow vs glibc (${python('import platform; print(platform.libc_ver())').trim()}):\n  ${summary.join('\n  ')}\n`);
    expect(summary.filter(Boolean).length).toBe(series.length);
  });
});
