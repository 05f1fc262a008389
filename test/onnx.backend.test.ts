import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadOnnxRuntime } from '../src/backends/onnx/runtime.js';
import { getBackend, IndexedSlices, Nadam, OnnxBackend, Tensor, Variable, type FloatDType, type Flavour, type GradientAndVariable } from '../src/index.js';
import { bits, random, values } from './onnx.util.js';

/*
 * The onnx backend's promise: bit-exact with the typed backend (hence with every fixture the typed
 * backend passes) in float16, float32 and float64, dense and sparse, all flavours. These tests
 * check exactly that, element by element, over many steps of random data.
 */

const onnx = new OnnxBackend({ intraOpNumThreads: 1 });
afterAll(() => onnx.dispose());

interface Case {
  flavour: Flavour;
  dtype: FloatDType;
  sparse: boolean;
}

async function compare({ flavour, dtype, sparse }: Case, steps: number, seed: number): Promise<void> {
  const rand = random(seed);
  const shape = [7, 5];
  const init = values(rand, 35);
  const make = (backend: string | OnnxBackend) => ({
    opt: new Nadam({ flavour, backend, learning_rate: 0.01, clipnorm: flavour === 'keras3' ? null : 1.5 }),
    w: new Variable(Tensor.from(init, dtype, shape), { name: 'w' }),
    b: new Variable(Tensor.from(init.slice(0, 5), dtype), { name: 'b' }),
  });
  const typed = make('typed');
  const ours = make(onnx);
  for (let s = 0; s < steps; s++) {
    const gw = values(rand, 35);
    const gb = values(rand, 5);
    const rows = [Math.floor(rand() * 7), Math.floor(rand() * 7), 3];
    const grads = (x: typeof typed): GradientAndVariable[] => [
      [sparse
        ? new IndexedSlices(Tensor.from(rows, 'int32'), Tensor.from(gw.slice(0, 15), dtype, [3, 5]), shape)
        : Tensor.from(gw, dtype, shape), x.w],
      [Tensor.from(gb, dtype), x.b],
    ];
    typed.opt.applyGradientsSync(grads(typed));
    await ours.opt.applyGradients(grads(ours));
    for (const [a, b] of [[typed.w, ours.w], [typed.b, ours.b]] as const) {
      expect(bits(b.value), `${flavour} ${dtype} step ${s + 1} ${a.name}`).toEqual(bits(a.value));
    }
    typed.opt.getWeights().forEach((t, i) => expect(bits(ours.opt.getWeights()[i]!), `weight ${i} step ${s + 1}`).toEqual(bits(t)));
  }
}

describe('onnx backend vs typed backend, bit for bit', () => {
  const flavours: Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];
  const dtypes: FloatDType[] = ['float32', 'float64', 'float16'];
  for (const flavour of flavours) {
    for (const dtype of dtypes) {
      for (const sparse of [false, true]) {
        it(`${flavour} ${dtype} ${sparse ? 'sparse' : 'dense'}: 40 random steps`, async () => {
          await compare({ flavour, dtype, sparse }, 40, 17 + dtypes.indexOf(dtype) * 7 + (sparse ? 1 : 0));
        });
      }
    }
  }

  it('builds one session per step kind and dtype, reused across steps and sizes', () => {
    // tf-keras dense+sparse, keras3 dense, tf-keras-new sparse; 3 dtypes each (keras2 shares tf-keras's kernels, tf-keras-new's dense one is keras3's)
    expect(onnx.sessionCount).toBe(12);
  });

  it('is registered as "onnx" and refuses the synchronous driver', () => {
    const backend = getBackend('onnx');
    expect(backend.synchronous).toBe(false);
    const opt = new Nadam({ backend: 'onnx' });
    const w = new Variable(Tensor.from([1], 'float32'), { name: 'w' });
    expect(() => opt.applyGradientsSync([[Tensor.from([1], 'float32'), w]])).toThrow(/asynchronous/);
  });
});

describe('onnx backend at sizes where onnxruntime vectorizes, chunks and splits work across threads', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const flavour of ['tf-keras', 'keras3'] as const) {
      it(`${flavour} ${dtype}: 200003 elements, 3 steps, 2 threads, default chunks`, async () => {
        const threaded = new OnnxBackend({ intraOpNumThreads: 2 });
        try {
          const rand = random(99);
          const init = values(rand, 200_003);
          const typed = { opt: new Nadam({ flavour }), w: new Variable(Tensor.from(init, dtype), { name: 'w' }) };
          const ours = { opt: new Nadam({ flavour, backend: threaded }), w: new Variable(Tensor.from(init, dtype), { name: 'w' }) };
          for (let s = 0; s < 3; s++) {
            const g = Tensor.from(values(rand, 200_003), dtype);
            typed.opt.applyGradientsSync([[g, typed.w]]);
            await ours.opt.applyGradients([[g, ours.w]]);
            expect(bits(ours.w.value)).toEqual(bits(typed.w.value));
          }
        } finally {
          await threaded.dispose();
        }
      });
    }
  }
});

describe('onnx backend chunking', () => {
  it('dense steps split into chunks of 7 (35 = 5 x 7, 5 = 7 - 2) match the typed backend bit for bit', async () => {
    const chunked = new OnnxBackend({ intraOpNumThreads: 1, chunkElements: 7 });
    try {
      for (const flavour of ['tf-keras', 'keras3'] as const) {
        for (const dtype of ['float16', 'float32', 'float64'] as const) {
          const rand = random(3);
          const init = values(rand, 35);
          const run = async (backend: string | OnnxBackend) => {
            const opt = new Nadam({ flavour, backend });
            const w = new Variable(Tensor.from(init, dtype, [5, 7]), { name: 'w' });
            const b = new Variable(Tensor.from(init.slice(0, 5), dtype), { name: 'b' });
            const r = random(4);
            for (let s = 0; s < 5; s++) await opt.applyGradients([[Tensor.from(values(r, 35), dtype, [5, 7]), w], [Tensor.from(values(r, 5), dtype), b]]);
            return opt.getWeights().map(bits);
          };
          expect(await run(chunked), `${flavour} ${dtype}`).toEqual(await run('typed'));
        }
      }
    } finally {
      await chunked.dispose();
    }
  });

  it('refuses a chunk size that is not a positive integer', () => {
    expect(() => new OnnxBackend({ chunkElements: 0 })).toThrow(/chunkElements must be an integer >= 1, got 0/);
  });
});

describe('onnx backend edge cases', () => {
  it('creates each session once: onnxruntime InferenceSession.create counted over steps, sizes and shapes', async () => {
    const create = vi.spyOn(loadOnnxRuntime().InferenceSession, 'create');
    const fresh = new OnnxBackend({ intraOpNumThreads: 1, chunkElements: 1000 });
    try {
      const opt = new Nadam({ backend: fresh });
      const vars = [[3], [40, 50], [2501], []].map((shape, i) => new Variable(Tensor.fill('float32', shape, 0.5), { name: `w${i}` }));
      const wide = new Variable(Tensor.fill('float64', [7, 3], 1), { name: 'wide' });
      const opt64 = new Nadam({ backend: fresh });
      for (let s = 0; s < 4; s++) {
        await opt.applyGradients(vars.map((v) => [Tensor.fill('float32', v.shape, 0.1 * (s + 1)), v] as const));
        await opt64.applyGradients([[Tensor.fill('float64', [7, 3], -0.2), wide]]);
        await opt64.applyGradients([[new IndexedSlices(Tensor.from([s % 7], 'int32'), Tensor.fill('float64', [1, 3], 0.3), [7, 3]), wide]]);
      }
      // dense float32 (3, 2000 in 2 chunks, 2501 in 3 chunks, a scalar), dense float64, sparse float64: 3 sessions, 24 steps
      expect(create).toHaveBeenCalledTimes(3);
      expect(fresh.sessionCount).toBe(3);
    } finally {
      create.mockRestore();
      await fresh.dispose();
    }
  });

  it('two optimizers stepping concurrently on one backend keep their own coefficients', async () => {
    const shared = new OnnxBackend({ intraOpNumThreads: 1, chunkElements: 3 });
    try {
      const init = values(random(5), 20);
      const grads = [values(random(6), 20), values(random(7), 20)];
      const make = (backend: string | OnnxBackend, lr: number) => ({
        opt: new Nadam({ backend, learning_rate: lr }),
        w: new Variable(Tensor.from(init, 'float32'), { name: 'w' }),
      });
      const ours = [make(shared, 0.1), make(shared, 0.001)];
      const typed = [make('typed', 0.1), make('typed', 0.001)];
      for (let s = 0; s < 3; s++) {
        await Promise.all(ours.map((x, i) => x.opt.applyGradients([[Tensor.from(grads[i]!, 'float32'), x.w]])));
        typed.forEach((x, i) => x.opt.applyGradientsSync([[Tensor.from(grads[i]!, 'float32'), x.w]]));
      }
      ours.forEach((x, i) => expect(bits(x.w.value), `optimizer ${i}`).toEqual(bits(typed[i]!.w.value)));
    } finally {
      await shared.dispose();
    }
  });

  it('a sparse gradient with no rows still decays m and v, as the typed backend does', async () => {
    const run = async (backend: string | OnnxBackend) => {
      const opt = new Nadam({ backend });
      const w = new Variable(Tensor.from([1, 2, 3, 4], 'float32', [2, 2]), { name: 'w' });
      await opt.applyGradients([[Tensor.from([0.5, -1, 2, 0.25], 'float32', [2, 2]), w]]);
      await opt.applyGradients([[new IndexedSlices(Tensor.from([], 'int32'), Tensor.from([], 'float32', [0, 2]), [2, 2]), w]]);
      return opt.getWeights().map(bits);
    };
    expect(await run(onnx)).toEqual(await run('typed'));
  });

  it('an empty variable is a no-op', async () => {
    const opt = new Nadam({ backend: onnx });
    const w = new Variable(Tensor.from([], 'float32'), { name: 'w' });
    await opt.applyGradients([[Tensor.from([], 'float32'), w]]);
    expect(opt.iterations).toBe(1);
  });
});
