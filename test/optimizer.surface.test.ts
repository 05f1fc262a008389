import { describe, expect, test } from 'vitest';
import { KerasValueError, Nadam, Tensor, Variable, type LossFunction } from '../src/index.js';
import { bits, grad, variable } from './helpers/build.js';

/*
 * The surface of the seed page (../shared/seed/tf.keras.optimizers.Nadam.md), member by member, in
 * camelCase: constructor arguments, iterations, weights, addSlot, addWeight, applyGradients,
 * fromConfig, getConfig, getGradients, getSlot, getSlotNames, getUpdates, getWeights, minimize,
 * setWeights, variables. Deeper semantics live in nadam.semantics / nadam.badinput.
 */

const quiet = { onWarning: () => {} };

describe('constructor: the seed\'s arguments and kwargs', () => {
  test('defaults: learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, name=\'Nadam\'', () => {
    expect(new Nadam().getConfig()).toEqual({
      name: 'Nadam', learning_rate: 0.001, decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7,
    });
  });

  test('kwargs clipnorm, clipvalue, lr and decay are accepted', () => {
    const opt = new Nadam({ learning_rate: 0.1, lr: 0.02, clipnorm: 1.5, clipvalue: 0.5, decay: 0.004, name: 'opt' });
    expect(opt.getConfig()).toMatchObject({ name: 'opt', learning_rate: 0.02, clipnorm: 1.5, clipvalue: 0.5, decay: 0.004 });
  });
});

describe('properties and weights', () => {
  test('iterations counts steps; weights and variables() list the optimizer\'s variables in creation order', () => {
    const a = variable('a', [1, 2]);
    const opt = new Nadam();
    expect(opt.iterations).toBe(0);
    expect(opt.weights.map((w) => w.name)).toEqual(['iter']);
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    expect(opt.iterations).toBe(2);
    expect(opt.weights.map((w) => w.name)).toEqual(['iter', 'momentum_cache', 'a/m', 'a/v']);
    expect(opt.variables()).toEqual(opt.weights);
    expect(opt.variables()[2]).toBe(opt.getSlot(a, 'm'));
  });

  test('addWeight: dtype, shape, initializer; saved or not; a duplicate name is refused', () => {
    const opt = new Nadam();
    const w = opt.addWeight('extra', [2, 2], 'float64', 'ones');
    expect(w.dtype).toBe('float64');
    expect(w.shape).toEqual([2, 2]);
    expect(w.value.toArray()).toEqual([1, 1, 1, 1]);
    expect(w.trainable).toBe(false);
    expect(opt.addWeight('half', [3], 'float32', 0.5).value.toArray()).toEqual([0.5, 0.5, 0.5]);
    const hidden = opt.addWeight('hidden', [], 'float32', 'zeros', false);
    expect(opt.weights.map((x) => x.name)).toEqual(['iter', 'extra', 'half']);
    expect(opt.getWeight('hidden')).toBe(hidden);
    expect(() => opt.addWeight('extra', [1], 'float32')).toThrow(KerasValueError);
    expect(() => opt.addWeight('extra', [1], 'float32')).toThrow("already has a weight named 'extra'");
  });

  test('addSlot: same dtype and shape as the variable, initializer honoured, created once, listed in order', () => {
    const opt = new Nadam();
    const a = variable('a', [1, 2, 3, 4, 5, 6], 'float64', [3, 2]);
    const s = opt.addSlot(a, 'accumulator', 0.25);
    expect(s.name).toBe('a/accumulator');
    expect(s.dtype).toBe('float64');
    expect(s.shape).toEqual([3, 2]);
    expect(s.value.toArray()).toEqual(new Array(6).fill(0.25));
    expect(opt.addSlot(a, 'accumulator', 'ones')).toBe(s); // TF returns the existing slot
    expect(s.value.get(0)).toBe(0.25);
    expect(opt.getSlot(a, 'accumulator')).toBe(s);
    expect(opt.getSlotNames()).toEqual(['accumulator']);
    expect(opt.weights.at(-1)).toBe(s);
  });

  test('getWeights returns copies; setWeights writes all of them back', () => {
    const a = variable('a', [1, 2]);
    const opt = new Nadam();
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    const weights = opt.getWeights();
    const before = weights.map(bits);
    (weights[2]!.data as Float32Array)[0] = 123;
    expect(opt.getWeights().map(bits)).toEqual(before);
    opt.setWeights(weights);
    expect(opt.getSlot(a, 'm').value.get(0)).toBe(123);
  });
});

describe('applyGradients, minimize, getGradients, getUpdates (loss as a callable)', () => {
  // loss = sum((x - 1)^2) / 2, gradient x - 1
  const loss: LossFunction = (vars) => {
    const x = vars[0]!.value;
    const g = Tensor.from(x.toArray().map((v) => v - 1), 'float32', x.shape);
    return { loss: x.toArray().reduce((s, v) => s + ((v - 1) * (v - 1)) / 2, 0), gradients: [g] };
  };

  test('applyGradients resolves to the new iteration count, bit for bit as applyGradientsSync', async () => {
    const [a, b] = [variable('a', [3, -2]), variable('b', [3, -2])];
    const [p, q] = [new Nadam(), new Nadam()];
    expect(await p.applyGradients([[grad([0.5, -0.5]), a]])).toBe(1);
    expect(q.applyGradientsSync([[grad([0.5, -0.5]), b]])).toBe(1);
    expect(bits(a.value)).toEqual(bits(b.value));
  });

  test('minimize = getGradients + applyGradients; var_list may be a callable, as in TF', async () => {
    const [a, b] = [variable('a', [3, -2]), variable('b', [3, -2])];
    const [p, q] = [new Nadam({ learning_rate: 0.1 }), new Nadam({ learning_rate: 0.1 })];
    for (let s = 0; s < 5; s++) {
      await p.minimize(loss, () => [a]);
      q.applyGradientsSync([[q.getGradients(loss, [b])[0]!, b]]);
    }
    expect(bits(a.value)).toEqual(bits(b.value));
    expect(p.iterations).toBe(5);
    expect(loss([a]).loss).toBeLessThan(loss([variable('c', [3, -2])]).loss);
  });

  test('minimize refuses what is not a Variable (ValueError in the seed), and a loss that is not a callable', async () => {
    const opt = new Nadam(quiet);
    await expect(opt.minimize(loss, [Tensor.from([1], 'float32') as unknown as Variable])).rejects.toThrow(KerasValueError);
    await expect(opt.minimize(42 as never, [variable('a', [1])])).rejects.toThrow(/loss must be a function/);
    expect(() => opt.getGradients(() => ({ loss: 0, gradients: [] }), [variable('a', [1])])).toThrow(/1 gradients, one per variable/);
    expect(opt.iterations).toBe(0);
  });

  test('getUpdates returns deferred steps; nothing moves until one runs', async () => {
    const a = variable('a', [3]);
    const opt = new Nadam();
    const updates = opt.getUpdates(loss, [a]);
    expect(opt.iterations).toBe(0);
    await updates[0]!();
    await updates[0]!();
    expect(opt.iterations).toBe(2);
  });
});

describe('getConfig / fromConfig', () => {
  test('fromConfig(getConfig()) rebuilds the same optimizer, also after steps', () => {
    const a = variable('a', [1, 2]);
    const opt = new Nadam({ learning_rate: 0.01, clipvalue: 1 });
    opt.applyGradientsSync([[grad([0.1, 0.2]), a]]);
    const again = Nadam.fromConfig(opt.getConfig());
    expect(again).toBeInstanceOf(Nadam);
    expect(again.getConfig()).toEqual(opt.getConfig());
    expect(again.iterations).toBe(0);
  });
});
