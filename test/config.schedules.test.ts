import { describe, expect, test } from 'vitest';
import { ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, type LearningRateSchedule } from '../src/index.js';
import { missingPython, python } from './helpers/python.js';

/**
 * Keras 3 computes schedules in float32 (floatx). The reference here is numpy float32 arithmetic
 * written after Keras 3's __call__ op by op, with pow from the C library's powf (what TF's CPU pow
 * calls; numpy's own float32 power is SIMD code that differs by 1 ulp at some inputs): it is our
 * transcription run by numpy and libm, not Keras output.
 */
const NUMPY = `
import json, sys, ctypes, numpy as np
f = np.float32
libm = ctypes.CDLL('libm.so.6')
libm.powf.restype = ctypes.c_float
libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
def power(x, y): return f(libm.powf(float(x), float(y)))
cases = json.load(sys.stdin)
out = []
for kind, c, steps in cases:
    vals = []
    for s in steps:
        with np.errstate(all='ignore'):
            if kind in ('ExponentialDecay', 'InverseTimeDecay'):
                p = f(s) / f(c['decay_steps'])
                if c['staircase']: p = np.floor(p)
                if kind == 'ExponentialDecay': r = f(c['initial_learning_rate']) * power(f(c['decay_rate']), p)
                else: r = f(c['initial_learning_rate']) / (f(1) + f(c['decay_rate']) * p)
            elif kind == 'PolynomialDecay':
                lr0, end, ds, st = f(c['initial_learning_rate']), f(c['end_learning_rate']), f(c['decay_steps']), f(s)
                if c['cycle']:
                    ds = ds * (f(1) if st == 0 else np.ceil(st / ds))
                else:
                    st = np.minimum(st, ds)
                r = (lr0 - end) * power(f(1) - st / ds, f(c['power'])) + end
            else:
                r = f(0)
                b, v = c['boundaries'], [f(x) for x in c['values']]
                r = r + (v[0] if s <= b[0] else f(0))
                r = r + (v[-1] if s > b[-1] else f(0))
                for lo, hi, x in zip(b[:-1], b[1:], v[1:-1]): r = r + (x if lo < s <= hi else f(0))
        vals.append(float(np.float32(r)))
    out.append(vals)
print(json.dumps(out))
`;

function rand(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed / 2147483648);
}

describe('schedules compute in float32 as Keras 3 does', () => {
  test('bit-exact with numpy float32 + libm powf over 2400 (schedule, step) pairs', () => {
    if (missingPython(['numpy'])) return;
    const r = rand(7);
    const cases: Array<[string, Record<string, unknown>, number[]]> = [];
    const schedules: LearningRateSchedule[] = [];
    for (let i = 0; i < 24; i++) {
      const steps = Array.from({ length: 100 }, () => Math.floor(r() * 20000));
      const base = { initial_learning_rate: r() * 0.1, decay_steps: 1 + Math.floor(r() * 5000), decay_rate: 0.5 + r() * 0.5, staircase: i % 2 === 0 };
      if (i % 4 === 0) schedules.push(new ExponentialDecay(base)), cases.push(['ExponentialDecay', base, steps]);
      if (i % 4 === 1) schedules.push(new InverseTimeDecay(base)), cases.push(['InverseTimeDecay', base, steps]);
      if (i % 4 === 2) {
        const c = { initial_learning_rate: base.initial_learning_rate, decay_steps: base.decay_steps, end_learning_rate: 1e-4, power: 0.5 + r() * 2, cycle: i % 8 === 2 };
        schedules.push(new PolynomialDecay(c)), cases.push(['PolynomialDecay', c, steps]);
      }
      if (i % 4 === 3) {
        const c = { boundaries: [1000, 5000, 12000], values: [0.1, 0.05, 0.01, 0.001] };
        schedules.push(new PiecewiseConstantDecay(c)), cases.push(['PiecewiseConstantDecay', c, steps]);
      }
    }
    const expected = JSON.parse(python(NUMPY, [], JSON.stringify(cases))) as number[][];
    const mismatches: string[] = [];
    cases.forEach(([kind, c, steps], i) => steps.forEach((s, j) => {
      const got = schedules[i]!.call(s);
      if (!Object.is(got, expected[i]![j])) mismatches.push(`${kind} ${JSON.stringify(c)} step ${s}: ${got} vs numpy ${expected[i]![j]}`);
    }));
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  test('PiecewiseConstantDecay: values[i] for boundaries[i-1] < step <= boundaries[i]', () => {
    const s = new PiecewiseConstantDecay({ boundaries: [10, 20], values: [1, 0.5, 0.1] });
    expect([0, 10, 11, 20, 21].map((t) => s.call(t))).toEqual([1, 1, 0.5, 0.5, Math.fround(0.1)]);
    expect(() => new PiecewiseConstantDecay({ boundaries: [1], values: [1] })).toThrow(/1 less than the length of values/);
    expect(() => new ExponentialDecay({ initial_learning_rate: 1, decay_steps: 0, decay_rate: 0.5 })).toThrow(/decay_steps/);
  });
});
