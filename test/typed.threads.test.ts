import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileKernel, type KernelSource } from '../src/backends/typed/codegen.js';
import { NADAM_DENSE_KERAS3, NADAM_DENSE_TF_KERAS, NADAM_SPARSE_TF_KERAS_NEW } from '../src/backends/typed/kernels.js';
import { configureThreads, startThreads, stopThreads, threadedJobs, threadSettings } from '../src/backends/typed/threads.js';
import { configurePool, existingPool, inSharedPool, poolSettings, SharedFloatPool } from '../src/tensor/pool.js';
import { IndexedSlices, Nadam, Tensor, Variable, type FloatDType, type Flavour } from '../src/index.js';
import { bits, xorshiftValues } from './helpers/build.js';

/*
 * The default fast path (float32 tensors in the managed shared wasm memory, kernels in place) and the
 * multi-threaded path (worker threads on that memory) must give exactly the bits of the
 * single-threaded typed kernels on ordinary arrays: for every flavour and dtype, dense and sparse,
 * with tensors inside and outside the managed memory. No timings here (see `npm run bench`).
 */

const FLAVOURS: Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];
const DTYPES: FloatDType[] = ['float32', 'float64', 'float16'];
const SPECIALS = [0, -0, Infinity, -Infinity, NaN, 2 ** -149, 2 ** -126, 3.4028234663852886e38, 1e-30];

function values(n: number, seed: number, scale: number, specials = false): number[] {
  return xorshiftValues(n, seed, scale, (i) => (specials && i % 53 === 7 ? SPECIALS[(i / 53) % SPECIALS.length | 0]! : undefined));
}

type Where = 'inside' | 'outside';

/** A tensor of `dtype` holding `v`: made by Tensor.from (the managed memory, for float32) or in an ordinary array. */
function tensor(v: number[], dtype: FloatDType, shape: number[], where: Where): Tensor {
  if (where === 'inside') {
    const t = Tensor.from(v, dtype, shape);
    expect(inSharedPool(t.data)).toBe(true);
    return t;
  }
  const t = Tensor.from(v, dtype, shape);
  const data = dtype === 'float32' ? new Float32Array(t.data as Float32Array) : dtype === 'float64' ? new Float64Array(t.data as Float64Array) : new Uint16Array(t.data as Uint16Array);
  expect(inSharedPool(data)).toBe(false);
  return new Tensor(dtype, shape, data);
}

/** Placement of the variables and of the gradients; 'reference' = pool off, one thread. */
interface Setup {
  readonly variables: Where;
  readonly gradients: Where;
  readonly threads: number;
}

const SHAPES = [[1003], [520, 9]]; // the second one is used with sparse gradients too

/** Steps two variables, returning the bits of every variable and every optimizer weight after each step. */
function run(flavour: Flavour, dtype: FloatDType, setup: Setup | 'reference', sparse: boolean, steps = 4): string[][] {
  const reference = setup === 'reference';
  configurePool({ enabled: !reference, minElements: 0 });
  configureThreads({ threads: reference ? 1 : setup.threads, minElements: 0 });
  try {
    const vw = reference ? 'outside' : setup.variables;
    const gw = reference ? 'outside' : setup.gradients;
    const vars = SHAPES.map((shape, k) => new Variable(tensor(values(shape.reduce((a, b) => a * b), 11 + k, 2, true), dtype, shape, vw), { name: `w${k}` }));
    const opt = new Nadam({ flavour, learning_rate: 0.01, onWarning: () => {} });
    const trace: string[][] = [];
    for (let s = 0; s < steps; s++) {
      const pairs = vars.map((v, k) => {
        if (sparse && k === 1) {
          const indices = [3, 17, 3, 400, 519, 0, 17];
          const g = tensor(values(indices.length * 9, 1000 * s + 7, 0.1), dtype, [indices.length, 9], gw);
          return [new IndexedSlices(Tensor.from(indices, 'int32'), g, v.shape), v] as const;
        }
        return [tensor(values(v.value.size, 1000 * s + k + 1, 0.1, s === 1), dtype, [...v.shape], gw), v] as const;
      });
      opt.applyGradientsSync(pairs);
      trace.push(...vars.map((v) => bits(v.value)), ...opt.getWeights().map(bits));
    }
    if (!reference && setup.variables === 'inside') {
      for (const v of vars) for (const slot of opt.getSlotNames()) expect(inSharedPool(opt.getSlot(v, slot).value.data)).toBe(true);
    }
    return trace;
  } finally {
    configurePool({ enabled: true, minElements: 4096 });
    configureThreads({ threads: 2, minElements: 1 << 17 });
  }
}

const SETUPS: Setup[] = [
  { variables: 'inside', gradients: 'inside', threads: 1 },
  { variables: 'inside', gradients: 'inside', threads: 2 },
  { variables: 'inside', gradients: 'outside', threads: 2 },
  { variables: 'outside', gradients: 'inside', threads: 2 },
  { variables: 'outside', gradients: 'outside', threads: 2 },
];

beforeAll(async () => {
  configureThreads({ threads: 2 });
  // the workers start in the background; wait until they are ready so that the threaded path runs
  expect(await startThreads(30_000)).toBe(1);
});

afterAll(async () => {
  await stopThreads();
});

describe('the default path and worker threads give the bits of the single-threaded kernels on ordinary arrays', () => {
  for (const flavour of FLAVOURS) {
    for (const dtype of DTYPES) {
      for (const sparse of [false, true]) {
        test(`${flavour} ${dtype} ${sparse ? 'sparse + dense' : 'dense'}: every placement and thread count`, () => {
          const expected = run(flavour, dtype, 'reference', sparse);
          const before = threadedJobs();
          for (const setup of SETUPS) expect(run(flavour, dtype, setup, sparse), JSON.stringify(setup)).toEqual(expected);
          expect(threadedJobs()).toBeGreaterThan(before);
        });
      }
    }
  }
});

describe('a step of many variables is one threaded job', () => {
  const SIZES = [1, 3, 63, 64, 65, 1003, 4096, 4099, 40_000, 7, 131_075];

  /** Steps variables of SIZES (or the given placement), returning bits of all weights after each step. */
  function many(flavour: Flavour, dtype: FloatDType, threads: number, outside: number[] = []): string[][] {
    configurePool({ minElements: 0 });
    configureThreads({ threads, minElements: 1000 });
    try {
      const vars = SIZES.map((n, k) => new Variable(tensor(values(n, 31 + k, 2, true), dtype, [n], outside.includes(k) ? 'outside' : 'inside'), { name: `w${k}` }));
      const opt = new Nadam({ flavour, learning_rate: 0.01 });
      const trace: string[][] = [];
      for (let s = 0; s < 3; s++) {
        const before = threadedJobs();
        opt.applyGradientsSync(vars.map((v, k) => [tensor(values(v.value.size, 100 * s + k, 0.1, s === 1), dtype, [v.value.size], 'inside'), v] as const));
        // one job for the variables in the managed memory; a variable outside it is its own call (here threaded too: 1003 >= minElements)
        if (threads > 1) expect(threadedJobs() - before, 'threaded jobs in one step').toBe(outside.length === 0 ? 1 : 2);
        trace.push(...opt.getWeights().map(bits));
      }
      return trace;
    } finally {
      configurePool({ minElements: 4096 });
      configureThreads({ threads: 2, minElements: 1 << 17 });
    }
  }

  for (const flavour of ['tf-keras', 'keras3', 'tf-keras-new'] as const) {
    for (const dtype of ['float32', 'float64', 'float16'] as const) {
      test(`${flavour} ${dtype}: ${SIZES.length} variables (1 to 131075 elements) on 2 threads in one job, the bits of one thread`, () => {
        const expected = many(flavour, dtype, 1);
        expect(many(flavour, dtype, 2)).toEqual(expected);
        // a variable outside the managed memory steps on its own, the rest stay one job: same bits
        expect(many(flavour, dtype, 2, [5])).toEqual(expected);
      });
    }
  }
});

/** Bits of each element, with every NaN mapped to one marker (wasm and JS may differ in NaN payload). */
function bitsOf(a: Float32Array | Float64Array): string[] {
  const copy = a.slice();
  const u = copy instanceof Float32Array ? new Uint32Array(copy.buffer) : new BigUint64Array(copy.buffer);
  return Array.from(copy as ArrayLike<number>, (x, i) => (Number.isNaN(x) ? 'NaN' : String(u[i])));
}

describe('raw dense kernels on the managed memory, split across threads', () => {
  const sources: [KernelSource, number][] = [[NADAM_DENSE_TF_KERAS, 11], [NADAM_DENSE_KERAS3, 9], [NADAM_SPARSE_TF_KERAS_NEW, 9]];
  for (const [source, scalarCount] of sources) {
    for (const [dtype, n] of [...[64, 67, 1000, 16384 * 2 + 5, 100_003].map((n) => ['float32', n] as const), ['float64', 67] as const, ['float64', 100_003] as const]) {
      test(`${source.name} ${dtype}, n = ${n}: bits of the plain kernel, neighbours untouched`, () => {
        configureThreads({ threads: 2, minElements: 0 });
        configurePool({ minElements: 0 });
        try {
          const Typed = dtype === 'float32' ? Float32Array : Float64Array;
          const scalars = [0.001, 0.9, 0.999, 0.1, 0.001, 0.0383, 0.9578, 0.0618, 0.1089, 0.000999, 1e-7].slice(0, scalarCount).map(dtype === 'float32' ? Math.fround : (x: number) => x);
          const init = [0, 1, 2, 3].map((k) => Typed.from(values(n, 31 + k, k === 2 ? 1e-3 : 4, true), (x) => (k === 2 ? Math.abs(x) : x)));
          const plain = init.map((a) => a.slice());
          compileKernel(source, dtype, { simd: false })(...plain, n, ...scalars);
          // inside: each array with a sentinel block after it; outside: ordinary arrays; and mixtures
          for (const mask of [0b1111, 0b0111, 0b1000, 0b0101, 0b0000]) {
            const sentinels: Float32Array[] = [];
            const arrays = init.map((a, k) => {
              if (!(mask & (1 << k))) return a.slice();
              const t = Tensor.zeros(dtype, [n]);
              t.data.set(a);
              const after = Tensor.zeros(dtype, [16]);
              after.data.fill(12345.5);
              sentinels.push(after.data);
              return t.data;
            });
            const before = threadedJobs();
            compileKernel(source, dtype)(...arrays, n, ...scalars);
            for (let k = 0; k < 3; k++) expect(bitsOf(arrays[k]!), `array ${k}, mask ${mask}`).toEqual(bitsOf(plain[k]!));
            expect(bitsOf(arrays[3]!)).toEqual(bitsOf(init[3]!)); // the gradient is read-only
            for (const s of sentinels) expect([...s].every((x) => x === 12345.5)).toBe(true);
            if (mask !== 0 && n >= 64) expect(threadedJobs()).toBeGreaterThan(before);
          }
        } finally {
          configureThreads({ minElements: 1 << 17 });
          configurePool({ minElements: 4096 });
        }
      });
    }
  }
});

describe('the managed memory', () => {
  test('float16, float32 and float64 tensors of at least minElements go there by default; small ones and disabled pools do not', () => {
    expect(poolSettings().enabled).toBe(true);
    expect(inSharedPool(Tensor.zeros('float32', [4096]).data)).toBe(true);
    expect(inSharedPool(Tensor.from(new Float64Array(5000), 'float32').data)).toBe(true);
    expect(inSharedPool(Tensor.zeros('float32', [4095]).data)).toBe(false);
    expect(inSharedPool(Tensor.zeros('float64', [5000]).data)).toBe(true);
    expect(inSharedPool(Tensor.zeros('float16', [5000]).data)).toBe(true);
    expect(inSharedPool(Tensor.zeros('float16', [4095]).data)).toBe(false);
    const big = Tensor.zeros('float32', [5000]);
    expect(inSharedPool(big.clone().data)).toBe(true);
    configurePool({ enabled: false });
    try {
      expect(inSharedPool(Tensor.zeros('float32', [5000]).data)).toBe(false);
    } finally {
      configurePool({ enabled: true });
    }
    expect(existingPool()).not.toBeNull();
  });

  test('Tensor.from rounds like element-wise writes, from plain arrays and typed arrays alike', () => {
    const v = values(5000, 5, 1e39, true);
    const viaSet = new Float32Array(5000);
    v.forEach((x, i) => (viaSet[i] = x));
    expect(bitsOf(Tensor.from(v, 'float32').data)).toEqual(bitsOf(viaSet));
    expect(bitsOf(Tensor.from(Float64Array.from(v), 'float32').data)).toEqual(bitsOf(viaSet));
  });

  test('growing never detaches arrays handed out before; freed blocks are merged and reused', () => {
    const pool = new SharedFloatPool(64);
    const a = pool.float32(1000)!;
    a.fill(7);
    const big = pool.float32(200_000)!; // forces growth
    expect(pool.byteLength).toBeGreaterThan(65536);
    expect(a[999]).toBe(7);
    expect(pool.holds(a) && pool.holds(big)).toBe(true);
    expect(pool.holds(new Float32Array(4))).toBe(false);
    const b1 = pool.allocateBlock(4096)!;
    const b2 = pool.allocateBlock(4096)!;
    pool.releaseBlock(b1);
    pool.releaseBlock(b2);
    const b3 = pool.allocateBlock(8192)!;
    expect(b3.start).toBe(b1.start);
    new Uint8Array(pool.currentBuffer, b3.start, 8192).fill(1);
    pool.releaseBlock(b3);
    const zeroed = pool.allocateBlock(8192)!;
    expect(new Uint8Array(pool.currentBuffer, zeroed.start, 8192).every((x) => x === 0)).toBe(true);
    expect(pool.float32(64 * 65536)).toBeNull(); // beyond the maximum: callers fall back to ordinary arrays
  });

  test('poolStats counts the tensors that went to ordinary arrays because the memory was full', () => {
    // a process of its own, with a managed memory of 80 pages (5 MiB): 4 tensors of 1 MiB fit, the rest spill
    const script = `
      import { poolStats, inSharedPool, Tensor } from ${JSON.stringify(fileURLToPath(new URL('../dist/src/index.js', import.meta.url)))};
      const kept = [];
      for (let i = 0; i < 8; i++) kept.push(Tensor.zeros('float32', [262144]));
      const s = poolStats();
      console.log(JSON.stringify({ inPool: kept.filter((t) => inSharedPool(t.data)).length, ...s }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, KERASOPT_POOL_PAGES: '80' } });
    expect(r.stderr).toBe('');
    const s = JSON.parse(r.stdout) as { inPool: number; liveBytes: number; byteLength: number; spills: number };
    expect(s.inPool).toBe(4);
    expect(s.spills).toBe(4);
    expect(s.liveBytes).toBe(4 * 262144 * 4);
    expect(s.byteLength).toBeLessThanOrEqual(80 * 65536);
  });

  test('thread settings are validated', () => {
    expect(() => configureThreads({ threads: 0 })).toThrow(/threads/);
    expect(threadSettings().threads).toBeGreaterThanOrEqual(1);
  });
});
