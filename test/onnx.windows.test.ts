import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { IndexedSlices, inSharedPool, Nadam, OnnxBackend, Tensor, Variable, type FloatDType, type Flavour, type GradientAndVariable } from '../src/index.js';
import { bits, random, values } from './onnx.util.js';

/*
 * The onnx backend's batched dense step (windows.ts, workers.ts): a step's variables of one dtype
 * are one stream of windows, one onnxruntime run per window, split across worker threads when the
 * state is in the shared memory. Every test compares with the typed backend bit for bit.
 */

const backends: OnnxBackend[] = [];
afterAll(async () => {
  for (const b of backends) await b.dispose();
});
function onnx(o: ConstructorParameters<typeof OnnxBackend>[0]): OnnxBackend {
  const b = new OnnxBackend({ intraOpNumThreads: 1, ...o });
  backends.push(b);
  return b;
}

/** Sizes that straddle windows of 64, include empty and one-element variables, and (5000, 9001) the shared memory. */
const SIZES = [1, 0, 13, 64, 5000, 7, 130, 9001, 3];

interface Model {
  readonly opt: Nadam;
  readonly vars: Variable[];
}

function model(flavour: Flavour, dtype: FloatDType, backend: string | OnnxBackend, sizes = SIZES): Model {
  const rand = random(11);
  const vars = sizes.map((n, i) => new Variable(Tensor.from(values(rand, n), dtype, [n]), { name: `v${i}` }));
  return { opt: new Nadam({ flavour, backend, learning_rate: 0.01 }), vars };
}

/** Runs `steps` steps of the same gradients (sparse for every third variable when `sparse`) on each model. */
async function train(models: Model[], dtype: FloatDType, steps: number, sparse: boolean): Promise<void> {
  const rand = random(5);
  for (let s = 0; s < steps; s++) {
    const grads = models[0]!.vars.map((v, i) => {
      const n = v.value.size;
      if (sparse && i % 3 === 0 && n > 0) {
        const rows = [Math.floor(rand() * n), Math.floor(rand() * n)];
        return { rows, values: values(rand, 2) };
      }
      return { dense: values(rand, n) };
    });
    for (const m of models) {
      const pairs: GradientAndVariable[] = m.vars.map((v, i) => {
        const g = grads[i]!;
        return [g.dense ? Tensor.from(g.dense, dtype, [g.dense.length]) : new IndexedSlices(Tensor.from(g.rows!, 'int32'), Tensor.from(g.values!, dtype, [2]), [v.value.size]), v];
      });
      if (m.opt.backend.synchronous) m.opt.applyGradientsSync(pairs);
      else await m.opt.applyGradients(pairs);
    }
  }
}

function expectSame(ours: Model, typed: Model, what: string): void {
  typed.opt.getWeights().forEach((t, i) => expect(bits(ours.opt.getWeights()[i]!), `${what}: weight ${i}`).toEqual(bits(t)));
}

describe('one step of many variables is one stream of windows', () => {
  for (const flavour of ['tf-keras', 'keras3', 'tf-keras-new'] as const) {
    for (const dtype of ['float16', 'float32', 'float64'] as const) {
      for (const sparse of [false, true]) {
        it(`${flavour} ${dtype}${sparse ? ' with sparse gradients' : ''}: windows of 64 over ${SIZES.length} variables, bit-identical to the typed backend`, async () => {
          const backend = onnx({ chunkElements: 64, threads: 1 });
          const typed = model(flavour, dtype, 'typed');
          const ours = model(flavour, dtype, backend);
          await train([typed, ours], dtype, 6, sparse);
          expectSame(ours, typed, `${flavour} ${dtype}`);
        });
      }
    }
  }

  it('a step of many small variables is one onnxruntime run per window, not one per variable', async () => {
    const backend = onnx({ chunkElements: 1024, threads: 1 });
    const sizes = Array.from({ length: 200 }, (_, i) => 1 + (i % 9)); // 200 variables, 1000 elements in all
    const ours = model('tf-keras', 'float32', backend, sizes);
    const typed = model('tf-keras', 'float32', 'typed', sizes);
    const batch = vi.spyOn(backend, 'nadamDenseBatch');
    await train([typed, ours], 'float32', 3, false);
    expect(batch).toHaveBeenCalledTimes(3); // once per step
    expect(backend.windowRuns).toBe(3); // 1000 elements fit one window of 1024
    expectSame(ours, typed, '200 variables');
  });

  it('variables of two dtypes make one batch per dtype', async () => {
    const backend = onnx({ chunkElements: 64, threads: 1 });
    const batch = vi.spyOn(backend, 'nadamDenseBatch');
    const run = async (b: string | OnnxBackend) => {
      const opt = new Nadam({ backend: b });
      const vars = [new Variable(Tensor.from([1, 2, 3], 'float32'), { name: 'a' }), new Variable(Tensor.from([1, 2], 'float64'), { name: 'b' }), new Variable(Tensor.from([4], 'float32'), { name: 'c' })];
      for (let s = 0; s < 3; s++) await opt.applyGradients(vars.map((v) => [Tensor.from(Array.from({ length: v.value.size }, (_, i) => 0.1 * (i + s + 1)), v.dtype, v.shape), v] as const));
      return opt.getWeights().map(bits);
    };
    expect(await run(backend)).toEqual(await run('typed'));
    expect(batch).toHaveBeenCalledTimes(6);
    expect(batch.mock.calls.map((c) => c[0].length).sort()).toEqual([1, 1, 1, 2, 2, 2]);
  });

  it('two optimizers stepping concurrently on one backend share its window buffers safely', async () => {
    const backend = onnx({ chunkElements: 16, threads: 1 });
    const a = model('tf-keras', 'float32', backend);
    const b = model('keras3', 'float32', backend);
    const ta = model('tf-keras', 'float32', 'typed');
    const tb = model('keras3', 'float32', 'typed');
    const rand = random(8);
    for (let s = 0; s < 4; s++) {
      const g = SIZES.map((n) => values(rand, n));
      const pairs = (m: Model) => m.vars.map((v, i) => [Tensor.from(g[i]!, 'float32', [g[i]!.length]), v] as const);
      await Promise.all([a.opt.applyGradients(pairs(a)), b.opt.applyGradients(pairs(b))]);
      ta.opt.applyGradientsSync(pairs(ta));
      tb.opt.applyGradientsSync(pairs(tb));
    }
    expectSame(a, ta, 'tf-keras');
    expectSame(b, tb, 'keras3');
  });

  it('refuses a batch that mixes dtypes, naming both', async () => {
    const backend = onnx({ threads: 1 });
    const t = (dtype: FloatDType) => Tensor.from([1, 2], dtype);
    const step = (dtype: FloatDType) => ({ state: { variable: t(dtype), m: t(dtype), v: t(dtype) }, grad: t(dtype) });
    const c = { kind: 'keras3', lr: 0.1, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001, uT1: 0.9, oneMinusUT: 0.1, oneMinusUProduct: 0.1, oneMinusUProductNext: 0.2, oneMinusBeta2Power: 0.001, epsilon: 1e-7 } as const;
    await expect(backend.nadamDenseBatch([step('float32'), step('float64')], c)).rejects.toThrow(/mixes float32 and float64/);
  });
});

describe('worker threads', () => {
  for (const flavour of ['tf-keras', 'keras3', 'tf-keras-new'] as const) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${flavour} ${dtype}: state in the shared memory split over 2 and 3 threads, bit-identical to the typed backend`, async () => {
        const typed = model(flavour, dtype, 'typed');
        const two = onnx({ chunkElements: 1000, threads: 2, workerMinElements: 2000 });
        const three = onnx({ chunkElements: 777, threads: 3, workerMinElements: 1000 });
        const ours = [model(flavour, dtype, two), model(flavour, dtype, three)];
        expect(inSharedPool(ours[0]!.vars[4]!.value.data)).toBe(true);
        expect(inSharedPool(ours[0]!.vars[0]!.value.data)).toBe(false); // small ones stay on this thread
        await train([typed, ...ours], dtype, 5, flavour !== 'keras3');
        ours.forEach((m, i) => expectSame(m, typed, `${i + 2} threads`));
        expect(two.workerRuns).toBeGreaterThan(0);
        expect(three.workerRuns).toBeGreaterThan(0);
      });
    }
  }

  it('dispose stops the workers and the next step starts them again', async () => {
    const backend = onnx({ chunkElements: 1000, threads: 2, workerMinElements: 1000 });
    const typed = model('tf-keras', 'float32', 'typed');
    const ours = model('tf-keras', 'float32', backend);
    await train([typed, ours], 'float32', 2, false);
    const before = backend.workerRuns;
    expect(before).toBeGreaterThan(0);
    await backend.dispose();
    await train([typed, ours], 'float32', 2, false);
    expect(backend.workerRuns).toBeGreaterThan(before);
    expectSame(ours, typed, 'after dispose');
  });

  it('a process that used the workers and never disposed them still exits', () => {
    const script = `
      import { Nadam, OnnxBackend, Tensor, Variable } from ${JSON.stringify(fileURLToPath(new URL('../dist/src/index.js', import.meta.url)))};
      const backend = new OnnxBackend({ threads: 2, workerMinElements: 1000 });
      const w = new Variable(Tensor.from(new Float32Array(10000).fill(1), 'float32'), { name: 'w' });
      const opt = new Nadam({ backend });
      await opt.applyGradients([[Tensor.from(new Float32Array(10000).fill(0.5), 'float32'), w]]);
      console.log(backend.workerRuns > 0 ? 'workers ran' : 'no workers', w.value.get(0));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'the process did not exit within 60 s').toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^workers ran 0\.99/);
  });

  it("the typed backend's workers also start in a `node --input-type=module -e` script (their source is an ES module URL, not eval'd text)", () => {
    const script = `
      import { startThreads, stopThreads } from ${JSON.stringify(fileURLToPath(new URL('../dist/src/index.js', import.meta.url)))};
      console.log('ready', await startThreads());
      await stopThreads();
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, KERASOPT_THREADS: '2' } });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ready 1');
  });

});
