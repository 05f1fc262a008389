import { describe, expect, test } from 'vitest';
import { fromHalfBits, roundToHalf, toHalfBits } from '../src/tensor/float16.js';
import { missingPython, python } from './helpers/python.js';

describe('float16 emulation', () => {
  test('every one of the 65536 half patterns survives decode then encode', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const x = fromHalfBits(bits);
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      expect(isNaN ? toHalfBits(x) === 0x7e00 : toHalfBits(x) === bits).toBe(true);
    }
  });

  test('ties round to even, overflow goes to infinity, tiny values to signed zero', () => {
    expect(roundToHalf(1 + 2 ** -11)).toBe(1); // halfway between 1 and 1+2^-10: even is 1
    expect(roundToHalf(1 + 3 * 2 ** -11)).toBe(1 + 2 * 2 ** -10);
    expect(roundToHalf(65504)).toBe(65504);
    expect(roundToHalf(65519.99)).toBe(65504);
    expect(roundToHalf(65520)).toBe(Infinity);
    expect(roundToHalf(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal: even is 0
    expect(Object.is(roundToHalf(-(2 ** -26)), -0)).toBe(true);
    expect(roundToHalf(3 * 2 ** -25)).toBe(2 * 2 ** -24);
  });

  test.skipIf(missingPython(['numpy']) !== null)('agrees with numpy float64 -> float16 on 200k random and edge doubles', () => {
    const n = 200_000;
    const xs: number[] = [];
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < n; i++) {
      const mag = 2 ** (Math.floor(rand() * 46) - 30);
      xs.push((rand() < 0.5 ? -1 : 1) * mag * (1 + rand()));
    }
    for (let bits = 0; bits < 0x7c00; bits += 7) xs.push(fromHalfBits(bits) + fromHalfBits(bits) * 2 ** -11); // near ties
    const out = python(
      'import sys, numpy as np; x = np.array([float(v) for v in sys.stdin.read().split()]); print(" ".join(map(str, x.astype(np.float16).view(np.uint16).tolist())))',
      [],
      xs.join(' '),
    ).trim().split(' ').map(Number);
    const mismatches = xs.filter((x, i) => toHalfBits(x) !== out[i]);
    expect(mismatches.slice(0, 5)).toEqual([]);
  });
});
