import { describe, expect, test } from 'vitest';
import { compileKernel, type KernelSource } from '../src/backends/typed/codegen.js';
import { NADAM_DENSE_KERAS3, NADAM_DENSE_TF_KERAS, NADAM_SPARSE_TF_KERAS, NADAM_SPARSE_TF_KERAS_NEW, SCALE_DIV } from '../src/backends/typed/kernels.js';
import { CHUNK, SIMD_MIN_ELEMENTS, simdKernel, translateToF32x4 } from '../src/backends/typed/simd.js';
import { Float32Arena, TypedArrayBackend } from '../src/backends/typed/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fromHalfBits, roundToHalf, toHalfBits } from '../src/tensor/float16.js';

/*
 * The float32 wasm f32x4 kernels must give exactly the bits of the plain Math.fround kernels of the
 * same source (NaN payloads excepted: NaN must stay NaN). Checked on random data salted with
 * subnormals, signed zeros, infinities, NaN, huge and tiny values, across chunk boundaries.
 */

let seed = 20261125;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}

const SPECIALS = [0, -0, Infinity, -Infinity, NaN, 2 ** -149, -(2 ** -149), 2 ** -126, 3 * 2 ** -140, 3.4028234663852886e38, 1, -1];

function randomFloat32(n: number, { positive = false } = {}): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    let x: number;
    if (r < 0.08) x = SPECIALS[Math.floor(rand() * SPECIALS.length)]!;
    else if (r < 0.2) x = (rand() - 0.5) * 2 ** -126 * 4; // subnormal or just above
    else x = (rand() - 0.5) * 2 ** Math.floor(rand() * 80 - 50);
    out[i] = positive && !Number.isNaN(x) ? Math.abs(x) : x;
  }
  return out;
}

/** Bits of each element, with every NaN mapped to one marker (wasm and JS may differ in NaN payload). */
function bitsOf(a: Float32Array): number[] {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  return Array.from(a, (x, i) => (Number.isNaN(x) ? -1 : u[i]!));
}

function scalarsFor(source: KernelSource): number[] {
  const count = source.params.length - source.floatArrays.length - 1;
  const realistic = [0.001, 0.9, 0.999, 0.1, 0.001, 0.0383, 0.9578, 0.0618, 0.1089, 0.000999, 1e-7].map(Math.fround);
  return Array.from({ length: count }, (_, k) => (rand() < 0.85 ? realistic[k % realistic.length]! : Math.fround((rand() - 0.3) * 2 ** Math.floor(rand() * 60 - 30))));
}

type Placement = 'separate' | 'gradient-is-variable' | 'arena' | 'half-in-arena';

/** Copies `arrays` into one arena, each directly followed by sentinel elements that no kernel may touch. */
function intoArena(arrays: Float32Array[], sentinels: Float32Array[]): Float32Array[] {
  const n = arrays[0]!.length;
  const arena = new Float32Arena(arrays.length * (n + 64) + 64);
  return arrays.map((x) => {
    const block = arena.allocate(n + 7);
    const y = block.subarray(0, n);
    y.set(x);
    const sentinel = block.subarray(n);
    sentinel.fill(12345.5);
    sentinels.push(sentinel);
    return y;
  });
}

/** Runs the plain and the wasm kernel on copies of the same random W, M, V, G, placed as asked. */
function runBoth(source: KernelSource, n: number, scalars: number[], placement: Placement = 'separate') {
  const fresh = [randomFloat32(n), randomFloat32(n), randomFloat32(n, { positive: true }), randomFloat32(n)];
  const sentinels: Float32Array[] = [];
  const arrange = (forSimd: boolean) => {
    const c = fresh.map((x) => x.slice());
    if (placement === 'gradient-is-variable') return [c[0]!, c[1]!, c[2]!, c[0]!];
    if (forSimd && placement === 'arena') return intoArena(c, sentinels);
    if (forSimd && placement === 'half-in-arena') return [...intoArena(c.slice(0, 2), sentinels), c[2]!, c[3]!];
    return c;
  };
  const a = arrange(false);
  const b = arrange(true);
  compileKernel(source, 'float32', { simd: false })(a[0], a[1], a[2], a[3], n, ...scalars);
  compileKernel(source, 'float32')(b[0], b[1], b[2], b[3], n, ...scalars);
  for (const s of sentinels) expect([...s].every((x) => x === 12345.5)).toBe(true);
  return { plain: a.slice(0, 3).map(bitsOf), simd: b.slice(0, 3).map(bitsOf) };
}

describe('float32 dense kernels: wasm f32x4 against Math.fround', () => {
  test('wasm SIMD is available here, so the fast path is really under test', () => {
    for (const source of [NADAM_DENSE_TF_KERAS, NADAM_DENSE_KERAS3, NADAM_SPARSE_TF_KERAS_NEW]) {
      expect(translateToF32x4(source)).toHaveProperty('spec');
      expect(simdKernel(source, compileKernel(source, 'float32', { simd: false }))).not.toBeNull();
      expect(compileKernel(source, 'float32')).not.toBe(compileKernel(source, 'float32', { simd: false }));
    }
  });

  for (const source of [NADAM_DENSE_TF_KERAS, NADAM_DENSE_KERAS3, NADAM_SPARSE_TF_KERAS_NEW]) {
    test(`${source.name}: identical bits on salted random data, sizes around the vector width and chunk size`, () => {
      const sizes = [0, 1, 3, SIMD_MIN_ELEMENTS - 1, SIMD_MIN_ELEMENTS, SIMD_MIN_ELEMENTS + 3, 1001, CHUNK, CHUNK + 5, 2 * CHUNK + 13];
      for (const n of sizes) {
        for (let trial = 0; trial < 3; trial++) {
          const { plain, simd } = runBoth(source, n, scalarsFor(source));
          expect(simd).toEqual(plain);
        }
      }
    });

    test(`${source.name}: special scalars (subnormal, zero, inf, NaN, non-float32) give the same bits`, () => {
      const base = scalarsFor(source);
      for (const special of [0, -0, 2 ** -149, Infinity, NaN, 0.1 /* not a float32: falls back */]) {
        for (let k = 0; k < base.length; k++) {
          const scalars = [...base];
          scalars[k] = special;
          const { plain, simd } = runBoth(source, 257, scalars);
          expect(simd).toEqual(plain);
        }
      }
    });

    test(`${source.name}: aliased arrays (gradient is the variable) behave as the plain kernel`, () => {
      const { plain, simd } = runBoth(source, 3000, scalarsFor(source), 'gradient-is-variable');
      expect(simd).toEqual(plain);
    });
  }

  for (const source of [NADAM_DENSE_TF_KERAS, NADAM_DENSE_KERAS3, NADAM_SPARSE_TF_KERAS_NEW]) {
    test(`${source.name}: in place in a Float32Arena (tails of 0-3 elements, neighbours untouched), or half in one`, () => {
      for (const n of [SIMD_MIN_ELEMENTS, SIMD_MIN_ELEMENTS + 1, 1001, 1002, CHUNK + 3]) {
        for (const placement of ['arena', 'half-in-arena'] as const) {
          const { plain, simd } = runBoth(source, n, scalarsFor(source), placement);
          expect(simd).toEqual(plain);
        }
      }
    });
  }

  test('staging a gradient through a full arena uses its reserved scratch, never its allocatable memory', () => {
    const n = CHUNK + 1001;
    const scalars = scalarsFor(NADAM_DENSE_TF_KERAS);
    const fresh = [randomFloat32(n), randomFloat32(n), randomFloat32(n, { positive: true }), randomFloat32(n)];
    const plain = fresh.map((x) => x.slice());
    const arena = new Float32Arena(4 * n);
    const [w, m, v] = fresh.slice(0, 3).map((x) => {
      const y = arena.allocate(n);
      y.set(x);
      return y;
    });
    const untouched = arena.allocate(arena.remaining); // everything else the arena can give
    untouched.fill(7);
    const g = fresh[3]!.slice(); // the gradient stays an ordinary array
    compileKernel(NADAM_DENSE_TF_KERAS, 'float32')(w, m, v, g, n, ...scalars);
    compileKernel(NADAM_DENSE_TF_KERAS, 'float32', { simd: false })(plain[0], plain[1], plain[2], plain[3], n, ...scalars);
    expect([w!, m!, v!].map(bitsOf)).toEqual(plain.slice(0, 3).map(bitsOf));
    expect(untouched.every((x) => x === 7)).toBe(true);
    expect(bitsOf(g)).toEqual(bitsOf(fresh[3]!));
  });

  test('a Float32Arena refuses what it cannot hold, and hands out aligned, zeroed, disjoint arrays', () => {
    const arena = new Float32Arena(100);
    const a = arena.allocate(10);
    const b = arena.zeros([2, 3]);
    expect(a.byteOffset % 64).toBe(0);
    expect(b.data.byteOffset % 64).toBe(0);
    expect(b.data.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + a.byteLength);
    expect([...b.data].every((x) => x === 0)).toBe(true);
    expect(Float32Arena.of(a)).toBe(arena);
    expect(Float32Arena.of(new Float32Array(4))).toBeUndefined();
    expect(() => arena.allocate(arena.remaining + 1)).toThrow(/full/);
    expect(() => new Float32Arena(-1)).toThrow(/capacity/);
  });

  test('the backend uses the fast path transparently and keeps the plain kernel bits', () => {
    const n = 5000;
    const mk = () => new Tensor('float32', [n], randomFloat32(n));
    const state = { variable: mk(), m: mk(), v: new Tensor('float32', [n], randomFloat32(n, { positive: true })) };
    const grad = mk();
    const copy = { w: state.variable.data.slice(), m: state.m.data.slice(), v: state.v.data.slice() };
    const c = { kind: 'tf-keras', lr: Math.fround(0.001), negLr: -Math.fround(0.001), beta1: Math.fround(0.9), beta2: Math.fround(0.999),
      oneMinusBeta1: Math.fround(0.1), oneMinusBeta2: Math.fround(0.001), oneMinusMuT: Math.fround(0.0383), muT1: Math.fround(0.9578),
      oneMinusMsNew: Math.fround(0.0618), oneMinusMsNext: Math.fround(0.1089), vDenominator: Math.fround(0.000999), epsilon: Math.fround(1e-7) } as const;
    new TypedArrayBackend().nadamDense(state, grad, c);
    compileKernel(NADAM_DENSE_TF_KERAS, 'float32', { simd: false })(copy.w, copy.m, copy.v, grad.data, n, c.lr, c.beta1, c.beta2,
      c.oneMinusBeta1, c.oneMinusBeta2, c.oneMinusMuT, c.muT1, c.oneMinusMsNew, c.oneMinusMsNext, c.vDenominator, c.epsilon);
    expect([state.variable.data, state.m.data, state.v.data].map(bitsOf)).toEqual([copy.w, copy.m, copy.v].map(bitsOf));
  });
});

describe('what the translation refuses, and the dtypes it leaves alone', () => {
  const base = { name: 'probe', params: ['X', 'Y', 'n', 'a'], floatArrays: ['X', 'Y'], writes: ['Y'] } as const;

  test('an op not rounded on its own, a literal or a helper call keeps the plain kernel', () => {
    const bodies = [
      'for (let i = 0; i < n; i++) { Y[i] = R(X[i] * a + a); }',
      'for (let i = 0; i < n; i++) { Y[i] = R(X[i] * 2); }',
      'for (let i = 0; i < n; i++) { Y[i] = R(Math.abs(X[i])); }',
      'for (let i = 0; i < n; i++) { Y[i] = X[i] * a; }',
      'for (let i = 0; i < n; i++) { Y[i + 1] = R(X[i] * a); }',
      'for (let i = 0; i < X.length; i++) { Y[i] = R(X[i] * a); }',
    ];
    for (const body of bodies) expect(translateToF32x4({ ...base, body })).toHaveProperty('reason');
    expect(translateToF32x4({ ...base, body: 'for (let i = 0; i < n; i++) { Y[i] = R(X[i] * a); }' })).toHaveProperty('spec');
    expect(translateToF32x4(NADAM_SPARSE_TF_KERAS)).toHaveProperty('reason');
    expect(translateToF32x4(SCALE_DIV)).toHaveProperty('reason');
  });

  test('float64 dense kernels get an f64x2 form with the plain one\'s bits', () => {
    expect(compileKernel(NADAM_DENSE_TF_KERAS, 'float64').name).toBe('nadamDenseTfKerasF64x2');
    const n = 16384 + 37;
    const arrays = [0, 1, 2, 3].map((k) => Float64Array.from(randomFloat32(n, { positive: k === 2 })));
    const plain = arrays.map((a) => a.slice());
    const scalars = [0.001, 0.9, 0.999, 0.1, 0.001, 0.0383, 0.9578, 0.0618, 0.1089, 0.000999, 1e-7].map((x) => x * (1 + 1e-12));
    compileKernel(NADAM_DENSE_TF_KERAS, 'float64')(...arrays, n, ...scalars);
    compileKernel(NADAM_DENSE_TF_KERAS, 'float64', { simd: false })(...plain, n, ...scalars);
    const bits64 = (a: Float64Array) => Array.from(new BigUint64Array(a.slice().buffer), (b, i) => (Number.isNaN(a[i]) ? 'NaN' : String(b)));
    for (let k = 0; k < 3; k++) expect(bits64(arrays[k]!)).toEqual(bits64(plain[k]!));
  });
});

describe('float16 dense kernels: wasm (f32 ops rounded to half) against the plain kernel (doubles rounded to half)', () => {
  const SOURCES = [NADAM_DENSE_TF_KERAS, NADAM_DENSE_KERAS3, NADAM_SPARSE_TF_KERAS_NEW];

  /** n half bit patterns: every 7th any pattern at all (NaN, infinities, subnormals, zeros), the rest a realistic spread. */
  function halves(n: number, positive = false): Uint16Array {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const bits = i % 7 === 3 ? Math.floor(rand() * 0x10000) : toHalfBits((rand() - (positive ? 0 : 0.5)) * 2 ** Math.floor(rand() * 24 - 16));
      out[i] = positive ? bits & 0x7fff : bits;
    }
    return out;
  }

  const halfScalars = (source: KernelSource) => scalarsFor(source).map((x) => roundToHalf(x));

  function both(source: KernelSource, n: number, scalars: number[]) {
    const fresh = [halves(n), halves(n), halves(n, true), halves(n)];
    const a = fresh.map((x) => x.slice());
    const b = fresh.map((x) => x.slice());
    compileKernel(source, 'float16', { simd: false })(...a, n, ...scalars);
    compileKernel(source, 'float16')(...b, n, ...scalars);
    const bitsOfHalf = (x: Uint16Array) => Array.from(x, (h) => (Number.isNaN(fromHalfBits(h)) ? 'NaN' : String(h)));
    return { plain: a.slice(0, 3).map(bitsOfHalf), simd: b.slice(0, 3).map(bitsOfHalf) };
  }

  test('the dense kernels get a wasm form', () => {
    expect(compileKernel(NADAM_DENSE_TF_KERAS, 'float16').name).toBe('nadamDenseTfKerasF16x4');
    for (const source of SOURCES) expect(compileKernel(source, 'float16')).not.toBe(compileKernel(source, 'float16', { simd: false }));
  });

  for (const source of SOURCES) {
    test(`${source.name}: identical bits on all kinds of halves, sizes around the vector width and chunk size`, () => {
      for (const n of [0, 1, 3, SIMD_MIN_ELEMENTS - 1, SIMD_MIN_ELEMENTS, SIMD_MIN_ELEMENTS + 3, 1001, CHUNK + 5, 2 * CHUNK + 13]) {
        for (let trial = 0; trial < 3; trial++) {
          const { plain, simd } = both(source, n, halfScalars(source));
          expect(simd, `n=${n}`).toEqual(plain);
        }
      }
    });

    test(`${source.name}: special scalars (zero, smallest subnormal, 65504, inf, NaN, not a half) give the same bits`, () => {
      const base = halfScalars(source);
      for (const special of [0, -0, 2 ** -24, 65504, Infinity, NaN, 0.1 /* not a half: falls back */]) {
        for (let k = 0; k < base.length; k++) {
          const scalars = [...base];
          scalars[k] = special;
          const { plain, simd } = both(source, 203, scalars);
          expect(simd).toEqual(plain);
        }
      }
    });
  }

  test('every op at every exponent: one-op kernels on all pairs of 2000 halves spread over the range, sqrt on all 65536', () => {
    for (const op of ['+', '-', '*', '/']) {
      const source: KernelSource = { name: `halfOp${op === '+' ? 'Add' : op === '-' ? 'Sub' : op === '*' ? 'Mul' : 'Div'}`, params: ['X', 'Y', 'Z', 'n'], floatArrays: ['X', 'Y', 'Z'], writes: ['Z'], body: `for (let i = 0; i < n; i++) { Z[i] = R(X[i] ${op} Y[i]); }` };
      const pick = Array.from({ length: 2000 }, (_, k) => (k * 33) & 0xffff);
      const n = pick.length * pick.length;
      const x = new Uint16Array(n);
      const y = new Uint16Array(n);
      for (let i = 0; i < pick.length; i++) for (let j = 0; j < pick.length; j++) [x[i * pick.length + j], y[i * pick.length + j]] = [pick[i]!, pick[j]!];
      const zPlain = new Uint16Array(n);
      const zSimd = new Uint16Array(n);
      compileKernel(source, 'float16', { simd: false })(x, y, zPlain, n);
      compileKernel(source, 'float16')(x, y, zSimd, n);
      let differ = 0;
      for (let i = 0; i < n; i++) if (zPlain[i] !== zSimd[i] && !(Number.isNaN(fromHalfBits(zPlain[i]!)) && Number.isNaN(fromHalfBits(zSimd[i]!)))) differ++;
      expect(differ, `${op}: elements that differ out of ${n}`).toBe(0);
    }
    const sqrt: KernelSource = { name: 'halfSqrt', params: ['X', 'Z', 'n'], floatArrays: ['X', 'Z'], writes: ['Z'], body: 'for (let i = 0; i < n; i++) { Z[i] = R(Math.sqrt(X[i])); }' };
    const all = Uint16Array.from({ length: 0x10000 }, (_, k) => k);
    const [zPlain, zSimd] = [new Uint16Array(0x10000), new Uint16Array(0x10000)];
    compileKernel(sqrt, 'float16', { simd: false })(all, zPlain, 0x10000);
    compileKernel(sqrt, 'float16')(all, zSimd, 0x10000);
    expect(compileKernel(sqrt, 'float16').name).toBe('halfSqrtF16x4');
    for (let i = 0; i < 0x10000; i++) if (zPlain[i] !== zSimd[i] && !Number.isNaN(fromHalfBits(zPlain[i]!))) expect(`sqrt of ${i}: ${zSimd[i]}`).toBe(`sqrt of ${i}: ${zPlain[i]}`);
  });
});
