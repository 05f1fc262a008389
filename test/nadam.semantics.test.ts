import { describe, expect, test, vi } from 'vitest';
import {
  BackendError,
  GradientMismatchError,
  HyperparameterError,
  IndexedSlices,
  KerasTypeError,
  KerasValueError,
  Nadam,
  registerBackend,
  TypedArrayBackend,
  Tensor,
  UnsupportedDTypeError,
  Variable,
  type LearningRateSchedule,
} from '../src/index.js';
import { bits, grad, variable } from './helpers/build.js';

const quiet = { onWarning: () => {} };

describe('weights and slots follow each flavour\'s creation order', () => {
  test('tf-keras: iter, momentum_cache, then all m, then all v', () => {
    const a = variable('a', [1, 2]);
    const b = variable('b', [3]);
    const opt = new Nadam();
    opt.applyGradientsSync([[grad([0.1, 0.2]), a], [grad([0.3]), b]]);
    expect(opt.weights.map((w) => w.name)).toEqual(['iter', 'momentum_cache', 'a/m', 'b/m', 'a/v', 'b/v']);
    expect(opt.getSlotNames()).toEqual(['m', 'v']);
    expect(opt.weights[0]!.dtype).toBe('int64');
  });

  test('keras2: iterations, all m, all v; m_schedule exists but is not saved', () => {
    const a = variable('a', [1, 2]);
    const opt = new Nadam({ flavour: 'keras2' });
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    expect(opt.weights.map((w) => w.name)).toEqual(['iterations', 'a/m', 'a/v']);
    expect(opt.getWeight('m_schedule').value.get(0)).not.toBe(1);
  });

  test('keras3 (as Keras 3.10+ tracks them): iteration, learning_rate, momentum and velocity of each variable in turn, u_product', () => {
    const a = variable('a', [1, 2]);
    const b = variable('b', [3]);
    const opt = new Nadam({ flavour: 'keras3' });
    opt.build([a, b]);
    expect(opt.weights.map((w) => w.name)).toEqual(['iteration', 'learning_rate', 'a/momentum', 'a/velocity', 'b/momentum', 'b/velocity', 'u_product']);
  });

  test('iterations is incremented after the update: the first step uses t = 1', () => {
    const opt = new Nadam();
    const a = variable('a', [1]);
    expect(opt.iterations).toBe(0);
    opt.applyGradientsSync([[grad([0.5]), a]]);
    expect(opt.iterations).toBe(1);
    const f = Math.fround;
    const mu1 = f(f(0.9) * f(1 - f(0.5 * f(Math.pow(f(0.96), f(f(0.004) * 1))))));
    expect(opt.getWeight('momentum_cache').value.get(0)).toBe(mu1);
  });
});

describe('gradients as TF takes them', () => {
  test('a missing gradient is skipped with TF\'s warning', () => {
    const warn = vi.fn();
    const a = variable('a', [1]);
    const b = variable('b', [2]);
    const opt = new Nadam({ onWarning: warn });
    opt.applyGradientsSync([[grad([0.1]), a], [null, b]]);
    expect(warn).toHaveBeenCalledWith("Gradients do not exist for variables ['b'] when minimizing the loss.");
    expect(b.value.get(0)).toBe(2);
    expect(a.value.get(0)).not.toBe(1);
  });

  test('no gradient at all is a ValueError naming the variables', () => {
    const opt = new Nadam(quiet);
    expect(() => opt.applyGradientsSync([[null, variable('a', [1])]])).toThrow(KerasValueError);
    expect(() => opt.applyGradientsSync([[null, variable('a', [1])]])).toThrow("No gradients provided for any variable: ['a'].");
  });

  test('malformed grads_and_vars is a TypeError', () => {
    const opt = new Nadam(quiet);
    expect(() => opt.applyGradientsSync(42 as never)).toThrow(KerasTypeError);
    expect(() => opt.applyGradientsSync([[grad([1])]] as never)).toThrow(KerasTypeError);
    expect(() => opt.applyGradientsSync([[grad([1]), 'a']] as never)).toThrow(/must be a Variable/);
    expect(() => opt.applyGradientsSync([[[1], variable('a', [1])]] as never)).toThrow(/must be a Tensor, an IndexedSlices or null/);
  });

  test('shape and dtype mismatches name the variable and change nothing', () => {
    const a = variable('dense/kernel', [1, 2, 3]);
    const opt = new Nadam(quiet);
    opt.applyGradientsSync([[grad([0.1, 0.2, 0.3]), a]]);
    const before = { w: bits(a.value), weights: opt.getWeights().map(bits) };
    const b = variable('other', [5]);
    const bad = [[grad([0.1]), b], [grad([1, 2]), a]] as const;
    expect(() => opt.applyGradientsSync(bad)).toThrow(GradientMismatchError);
    expect(() => opt.applyGradientsSync(bad)).toThrow("gradient for variable 'dense/kernel' (grads_and_vars[1]) has shape [2], expected [3]");
    expect(() => opt.applyGradientsSync([[grad([1, 2, 3], 'float64'), a]])).toThrow(/has dtype float64, expected float32/);
    expect(bits(a.value)).toEqual(before.w);
    expect(opt.getWeights().map(bits)).toEqual(before.weights);
    expect(b.value.get(0)).toBe(5);
    expect(opt.weights.map((w) => w.name)).not.toContain('other/m');
  });

  test('sparse gradients: bad indices and layouts are refused', () => {
    const e = variable('emb', [1, 2, 3, 4, 5, 6], 'float32', [3, 2]);
    const opt = new Nadam(quiet);
    const slices = (idx: number[], vals: number[], shape = [3, 2]) =>
      new IndexedSlices(Tensor.from(idx, 'int32'), Tensor.from(vals, 'float32', [idx.length, 2]), shape);
    expect(() => opt.applyGradientsSync([[slices([3], [1, 1]), e]])).toThrow("indices[0] = 3 is not in [0, 3)");
    expect(() => opt.applyGradientsSync([[slices([0], [1, 1], [2, 2]), e]])).toThrow(/dense_shape \[2, 2\]/);
    expect(opt.iterations).toBe(0);
  });

  test('an unsupported variable dtype is a clear error', () => {
    const v = new Variable(Tensor.from([1], 'int32'), { name: 'count' });
    expect(() => new Nadam(quiet).applyGradientsSync([[Tensor.from([1], 'int32'), v]])).toThrow(UnsupportedDTypeError);
  });

  test('keras3 refuses a variable it was not built on, tf-keras adds its slots lazily as TF does', () => {
    const a = variable('a', [1]);
    const b = variable('b', [2]);
    const k3 = new Nadam({ flavour: 'keras3' });
    k3.build([a]);
    expect(() => k3.applyGradientsSync([[grad([1]), b]])).toThrow(/cannot recognize variable 'b'/);
    const tf = new Nadam();
    tf.applyGradientsSync([[grad([1]), a]]);
    tf.applyGradientsSync([[grad([1]), b]]);
    expect(tf.weights.map((w) => w.name)).toEqual(['iter', 'momentum_cache', 'a/m', 'a/v', 'b/m', 'b/v']);
  });
});

describe('sparse updates follow TF\'s sparse path', () => {
  const setup = () => {
    const e = variable('emb', [0.5, -0.5, 1, 2, 3, 4, -1, -2], 'float32', [4, 2]);
    const opt = new Nadam({ learning_rate: 0.1 });
    return { e, opt };
  };
  const slices = (idx: number[], vals: number[]) =>
    new IndexedSlices(Tensor.from(idx, 'int64'), Tensor.from(vals, 'float32', [idx.length, 2]), [4, 2]);

  test('untouched rows keep their values but their m and v decay; a dense zero gradient would move them', () => {
    const sparse = setup();
    const dense = setup();
    for (const { e, opt } of [sparse, dense]) opt.applyGradientsSync([[grad([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 'float32', [4, 2]), e]]);
    const row3Before = bits(sparse.e.value).slice(6);
    sparse.opt.applyGradientsSync([[slices([1], [0.5, 0.5]), sparse.e]]);
    dense.opt.applyGradientsSync([[grad([0, 0, 0.5, 0.5, 0, 0, 0, 0], 'float32', [4, 2]), dense.e]]);
    expect(bits(sparse.e.value).slice(6)).toEqual(row3Before); // row 3 not touched by the sparse step
    expect(bits(dense.e.value).slice(6)).not.toEqual(row3Before); // ...but moved by the dense one
    const mSparse = sparse.opt.getSlot(sparse.e, 'm').value;
    const mDense = dense.opt.getSlot(dense.e, 'm').value;
    expect(bits(mSparse)).toEqual(bits(mDense)); // m decays on every row in both
    expect(bits(sparse.e.value).slice(2, 4)).toEqual(bits(dense.e.value).slice(2, 4)); // touched row: same math
  });

  test('duplicate indices are summed before the update', () => {
    const a = setup();
    const b = setup();
    a.opt.applyGradientsSync([[slices([2, 0, 2], [0.25, 0.5, 1, 1, 0.125, 0.75]), a.e]]);
    b.opt.applyGradientsSync([[slices([2, 0], [Math.fround(0.25 + 0.125), Math.fround(0.5 + 0.75), 1, 1]), b.e]]);
    expect(bits(a.e.value)).toEqual(bits(b.e.value));
    expect(bits(a.opt.getSlot(a.e, 'v').value)).toEqual(bits(b.opt.getSlot(b.e, 'v').value));
  });
});

describe('clipping', () => {
  test('clipnorm rescales a gradient whose norm exceeds it (per tensor in tf-keras)', () => {
    const capture = (clipnorm?: number) => {
      const a = variable('a', [0, 0]);
      const opt = new Nadam({ clipnorm, learning_rate: 1 });
      opt.applyGradientsSync([[grad([300, 400]), a]]);
      return opt.getSlot(a, 'm').value.toArray();
    };
    const [m0, m1] = capture(5);
    // m = (1 - beta_1) * g after one step: g was clipped to norm 5, i.e. [3, 4]
    expect(m0).toBeCloseTo(0.1 * 3, 6);
    expect(m1).toBeCloseTo(0.1 * 4, 6);
    expect(capture()[0]).toBeCloseTo(30, 4);
  });

  test('clipvalue clips each element', () => {
    const a = variable('a', [0, 0, 0]);
    const opt = new Nadam({ clipvalue: 0.5 });
    opt.applyGradientsSync([[grad([-3, 0.25, 9]), a]]);
    expect(opt.getSlot(a, 'm').value.toArray().map((x) => Math.round(x / Math.fround(0.1) * 1e6) / 1e6)).toEqual([-0.5, 0.25, 0.5]);
  });

  test('keras3 accepts only one clipping option; tf-keras refuses clipnorm with global_clipnorm', () => {
    expect(() => new Nadam({ flavour: 'keras3', clipnorm: 1, clipvalue: 1 })).toThrow(/Only one of/);
    expect(() => new Nadam({ clipnorm: 1, global_clipnorm: 1 })).toThrow(/Cannot accept both clipnorm and global_clipnorm/);
  });
});

describe('hyperparameters', () => {
  test.each([
    [{ learning_rate: NaN }, 'learning_rate'],
    [{ learning_rate: -0.1 }, 'learning_rate'],
    [{ beta_1: 1 }, 'beta_1'],
    [{ beta_2: -0.1 }, 'beta_2'],
    [{ beta_2: NaN }, 'beta_2'],
    [{ epsilon: -1 }, 'epsilon'],
    [{ schedule_decay: -1 }, 'decay'],
    [{ clipnorm: 0 }, 'clipnorm'],
    [{ clipvalue: NaN }, 'clipvalue'],
  ])('%j is refused, naming %s', (options, name) => {
    try {
      new Nadam(options);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(HyperparameterError);
      expect((e as HyperparameterError).hyperparameter).toBe(name);
    }
  });

  test('tf-keras refuses a learning-rate schedule with TF\'s message; keras3 accepts one', () => {
    const schedule: LearningRateSchedule = { className: 'ExponentialDecay', call: () => 0.01, getConfig: () => ({}) };
    expect(() => new Nadam({ learning_rate: schedule })).toThrow(
      'The Nadam optimizer does not support tf.keras.optimizers.LearningRateSchedules as the learning rate.',
    );
    expect(new Nadam({ learning_rate: schedule, flavour: 'keras3' }).learningRateValue()).toBe(0.01);
  });

  test('lr is an alias of learning_rate and wins over it, as in TF', () => {
    expect(new Nadam({ lr: 0.5, learning_rate: 0.1 }).getConfig()['learning_rate']).toBe(0.5);
  });

  test('tf-keras overwrites decay with schedule_decay, like TF, and says so', () => {
    const warn = vi.fn();
    const opt = new Nadam({ decay: 0.01, onWarning: warn });
    expect(opt.getConfig()['decay']).toBe(0.004);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('ignores decay=0.01'));
    expect(new Nadam({ schedule_decay: 0.01 }).getConfig()['decay']).toBe(0.01);
  });

  test('Keras 3 options kerasopt does not implement are refused by name', () => {
    expect(() => new Nadam({ flavour: 'keras3', use_ema: true })).toThrow(/use_ema/);
    expect(() => new Nadam({ flavour: 'keras3', weight_decay: 0.01 })).toThrow(/weight_decay/);
    expect(() => new Nadam({ weight_decay: 0.01 })).toThrow(/Keras 3 option/);
  });

  test('getConfig then fromConfig gives the same config, in every flavour', () => {
    for (const flavour of ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'] as const) {
      const opt = new Nadam({ flavour, learning_rate: 0.003, beta_1: 0.8, clipvalue: 2 });
      const again = Nadam.fromConfig(opt.getConfig(), { flavour });
      expect(again.getConfig()).toEqual(opt.getConfig());
    }
  });
});

describe('getWeights / setWeights', () => {
  test('round trip, and a wrong count or shape changes nothing', () => {
    const a = variable('a', [1, 2]);
    const opt = new Nadam();
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    const saved = opt.getWeights();
    const other = new Nadam();
    expect(() => other.setWeights(saved)).toThrow(/expecting 1 weights/);
    other.build([a]);
    other.setWeights(saved);
    expect(other.getWeights().map(bits)).toEqual(saved.map(bits));
    const wrong = [...saved];
    wrong[3] = Tensor.from([1, 2, 3], 'float32');
    const snapshot = other.getWeights().map(bits);
    expect(() => other.setWeights(wrong)).toThrow("weight 3 ('a/v'): expected float32[2], got float32[3]");
    expect(other.getWeights().map(bits)).toEqual(snapshot);
  });
});

describe('minimize, getGradients, getUpdates', () => {
  const loss = (vars: readonly Variable[]) => {
    const x = vars[0]!.value.get(0);
    return { loss: (x * x) / 2, gradients: [Tensor.from([x], 'float32', [])] };
  };

  test('the tf.keras docstring example: Nadam(0.2) on x^2/2 from 10 gives 9.8', async () => {
    const x = new Variable(Tensor.scalar(10, 'float32'), { name: 'var1' });
    const opt = new Nadam({ learning_rate: 0.2 });
    expect(await opt.minimize(loss, [x])).toBe(1);
    expect(x.value.get(0).toFixed(1)).toBe('9.8');
  });

  test('getGradients returns the gradients; getUpdates defers the step', async () => {
    const x = new Variable(Tensor.scalar(3, 'float32'), { name: 'x' });
    const opt = new Nadam();
    expect(opt.getGradients(loss, [x])[0]!.get(0)).toBe(3);
    const updates = opt.getUpdates(loss, [x]);
    expect(x.value.get(0)).toBe(3);
    await updates[0]!();
    expect(x.value.get(0)).toBeLessThan(3);
    expect(() => opt.getGradients(() => ({ loss: 0, gradients: [null] }), [x])).toThrow(/no gradient for variable 'x'/);
  });
});

describe('backend seam', () => {
  test('an unknown backend name lists the registered ones', () => {
    expect(() => new Nadam({ backend: 'nope' })).toThrow(BackendError);
    expect(() => new Nadam({ backend: 'nope' })).toThrow(/registered backends: typed/);
  });

  test('a registered asynchronous backend slots in by name and gives the same bits', async () => {
    const typed = new TypedArrayBackend();
    const calls: string[] = [];
    const wrap = <T>(name: string, f: () => T) => { calls.push(name); return Promise.resolve().then(f); };
    registerBackend('async-typed', () => ({
      name: 'async-typed',
      synchronous: false,
      supportsDType: (d) => typed.supportsDType(d),
      nadamDense: (s, g, c) => wrap('nadamDense', () => typed.nadamDense(s, g, c)),
      nadamSparse: (s, r, c) => wrap('nadamSparse', () => typed.nadamSparse(s, r, c)),
      sumOfSquares: (x) => wrap('sumOfSquares', () => typed.sumOfSquares(x)),
      clipByValue: (x, lo, hi) => wrap('clipByValue', () => typed.clipByValue(x, lo, hi)),
      scaleDiv: (x, a, b) => wrap('scaleDiv', () => typed.scaleDiv(x, a, b)),
      segmentSumRows: (i, v) => wrap('segmentSumRows', () => typed.segmentSumRows(i, v)),
      scatterRows: (r, s) => wrap('scatterRows', () => typed.scatterRows(r, s)),
    }));
    const run = async (backend: string) => {
      const a = variable('a', [1, 2, 3]);
      const e = variable('e', [1, 2, 3, 4], 'float32', [2, 2]);
      const opt = new Nadam({ backend, clipnorm: 0.5 });
      for (let i = 0; i < 3; i++) {
        const sparse = new IndexedSlices(Tensor.from([1, 1], 'int32'), Tensor.from([0.5, 1, 2, 3], 'float32', [2, 2]), [2, 2]);
        await opt.applyGradients([[grad([0.3, -0.1, 2]), a], [sparse, e]]);
      }
      return [...opt.getWeights().map(bits), bits(a.value), bits(e.value)];
    };
    expect(await run('async-typed')).toEqual(await run('typed'));
    expect(calls).toContain('nadamSparse');
    expect(calls).toContain('scaleDiv');
    expect(() => new Nadam({ backend: 'async-typed' }).applyGradientsSync([[grad([1]), variable('x', [1])]])).toThrow(/asynchronous/);
  });
});

test('float16 variables run (TF half semantics emulated) and stay finite', () => {
  const a = variable('h', [1, -2, 0.5], 'float16');
  const opt = new Nadam({ learning_rate: 0.01 });
  for (let i = 0; i < 20; i++) opt.applyGradientsSync([[grad([0.1, -0.2, 3], 'float16'), a]]);
  expect(opt.getWeight('momentum_cache').dtype).toBe('float16');
  expect(a.value.toArray().every(Number.isFinite)).toBe(true);
  expect(a.value.get(0)).toBeLessThan(1);
});
