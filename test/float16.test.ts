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

  test('the table-and-magic-constant rounding equals the definition (quantum, floor, ties to even) on ties, neighbours and 1M random doubles', () => {
    const xs: number[] = [0, -0, Infinity, -Infinity, NaN, 5e-324, -5e-324, 2 ** -1022, 65504, 65519.999, 65520, 65536, 1e300, -1e-300];
    for (let bits = 0; bits < 0x7bff; bits++) {
      const lo = fromHalfBits(bits);
      const hi = fromHalfBits(bits + 1);
      const mid = (lo + hi) / 2; // exact: a tie
      for (const x of [mid, nextUp(mid), nextDown(mid), lo, hi]) xs.push(x, -x);
    }
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 1_000_000; i++) xs.push((rand() < 0.5 ? -1 : 1) * 2 ** (Math.floor(rand() * 60) - 42) * (1 + rand()));
    const bad = xs.filter((x) => !Object.is(roundToHalf(x), definitionRound(x)) || toHalfBits(x) !== definitionBits(x));
    expect(bad.slice(0, 5)).toEqual([]);
  });
});

// The definitions the fast code replaced, kept as the reference: the quantum by Math.pow, floor, and ties to even.
function definitionRound(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity;
  const e = Math.floor(Math.log2(a));
  const exp = 2 ** e > a ? e - 1 : 2 ** (e + 1) <= a ? e + 1 : e; // log2 can be off by one near powers of two
  const quantum = exp < -14 ? 2 ** -24 : 2 ** (exp - 10);
  const scaled = a / quantum;
  const floor = Math.floor(scaled);
  const rest = scaled - floor;
  const rounded = rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  const result = rounded * quantum;
  return x < 0 ? -result : result;
}

function definitionBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const h = definitionRound(x);
  const sign = h < 0 || Object.is(h, -0) ? 0x8000 : 0;
  const a = Math.abs(h);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  const e = Math.round(Math.log2(a) - 0.5 + 1e-9);
  const exp = 2 ** e > a ? e - 1 : 2 ** (e + 1) <= a ? e + 1 : e;
  return sign | ((exp + 15) << 10) | (a / 2 ** (exp - 10) - 1024);
}

function nextUp(x: number): number {
  const b = new Float64Array([x]);
  const u = new BigInt64Array(b.buffer);
  u[0] = u[0]! + (x >= 0 ? 1n : -1n);
  return b[0]!;
}

function nextDown(x: number): number {
  const b = new Float64Array([x]);
  const u = new BigInt64Array(b.buffer);
  u[0] = u[0]! + (x > 0 ? -1n : 1n);
  return b[0]!;
}
