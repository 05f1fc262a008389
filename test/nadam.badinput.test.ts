import { describe, expect, test } from 'vitest';
import {
  GradientMismatchError,
  HyperparameterError,
  IndexedSlices,
  KerasTypeError,
  KerasValueError,
  Nadam,
  Tensor,
  Variable,
  type Flavour,
  type NadamOptions,
} from '../src/index.js';
import { bits, grad, variable } from './helpers/build.js';

/*
 * Issue 2, "Bad input": each bad call is a typed error naming the variable (or hyperparameter, or
 * weight) and what was expected, and leaves every piece of state as it was: iterations, every saved
 * weight and the unsaved schedule weight, slot names, built-ness, the variables, the config.
 */

const FLAVOURS: Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];
const quiet = { onWarning: () => {} };

type ErrorClass = abstract new (...args: never[]) => Error;

function slices(indices: number[], values: number[], rowShape: number[], denseShape: readonly number[], dtype: 'float32' | 'float64' = 'float32') {
  return new IndexedSlices(Tensor.from(indices, 'int32'), Tensor.from(values, dtype, [indices.length, ...rowShape]), denseShape);
}

/** An optimizer of `flavour` after two steps on a dense and an embedding-like variable. */
function trained(flavour: Flavour) {
  const a = variable('dense/kernel', [1, 2, 3, 4, 5, 6], 'float32', [2, 3]);
  const emb = variable('emb', [1, 2, 3, 4, 5, 6, 7, 8], 'float32', [4, 2]);
  const fresh = variable('fresh', [1, 2]);
  const opt = new Nadam({ flavour, ...quiet });
  for (let s = 0; s < 2; s++) {
    opt.applyGradientsSync([[grad([0.1, -0.2, 0.3, 0.4, -0.5, 0.6], 'float32', [2, 3]), a], [slices([3, 1], [0.5, -0.5, 0.25, 0.125], [2], [4, 2]), emb]]);
  }
  return { opt, a, emb, fresh, vars: [a, emb, fresh] };
}

function snapshot(opt: Nadam, vars: readonly Variable[]) {
  return {
    iterations: opt.iterations,
    names: opt.weights.map((w) => w.name),
    weights: opt.getWeights().map(bits),
    schedule: bits(opt.getWeight(opt.recipe.scheduleWeight).value),
    slotNames: opt.getSlotNames(),
    built: opt.built,
    variables: vars.map((v) => bits(v.value)),
    config: JSON.stringify(opt.getConfig()),
  };
}

/** `call` throws a `type` whose message names `who` in quotes and matches `expected`; nothing changes. */
function refused(opt: Nadam, vars: readonly Variable[], call: () => unknown, type: ErrorClass, who: string | null, expected: RegExp): Error {
  const before = snapshot(opt, vars);
  let error: unknown;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(type);
  const message = (error as Error).message;
  if (who !== null) expect(message).toContain(`'${who}'`);
  expect(message).toMatch(expected);
  expect(snapshot(opt, vars)).toEqual(before);
  return error as Error;
}

describe.each(FLAVOURS)('%s: a gradient that does not fit its variable', (flavour) => {
  test('dense shape mismatch (also when another pair is fine and another variable is new)', () => {
    const { opt, a, emb, fresh, vars } = trained(flavour);
    const e = refused(opt, vars, () => opt.applyGradientsSync([[grad([1, 2]), a]]), GradientMismatchError, 'dense/kernel', /has shape \[2\], expected \[2, 3\]/);
    expect((e as GradientMismatchError).variable).toBe('dense/kernel');
    const bad = grad([1, 2, 3, 4, 5, 6], 'float32', [3, 2]);
    const mixed = [[grad([1, 2, 3, 4, 5, 6, 7, 8], 'float32', [4, 2]), emb], [bad, a]] as const;
    refused(opt, vars, () => opt.applyGradientsSync(mixed), GradientMismatchError, 'dense/kernel', /\(grads_and_vars\[1\]\) has shape \[3, 2\], expected \[2, 3\]/);
    if (flavour !== 'keras3' && flavour !== 'tf-keras-new') {
      // a new variable before the bad pair gets no slots (Keras 3 and TF 2.11+ refuse the new variable itself)
      refused(opt, vars, () => opt.applyGradientsSync([[grad([1, 2]), fresh], [bad, a]]), GradientMismatchError, 'dense/kernel', /expected \[2, 3\]/);
    }
  });

  test('dense dtype mismatch', () => {
    const { opt, a, vars } = trained(flavour);
    refused(opt, vars, () => opt.applyGradientsSync([[grad([1, 2, 3, 4, 5, 6], 'float64', [2, 3]), a]]), GradientMismatchError, 'dense/kernel', /has dtype float64, expected float32/);
  });

  test('sparse: values dtype, dense_shape, row shape, index out of range', () => {
    const { opt, emb, vars } = trained(flavour);
    const step = (g: IndexedSlices) => () => opt.applyGradientsSync([[g, emb]]);
    refused(opt, vars, step(slices([0], [1, 1], [2], [4, 2], 'float64')), GradientMismatchError, 'emb', /values have dtype float64, expected float32/);
    refused(opt, vars, step(slices([0], [1, 1], [2], [5, 2])), GradientMismatchError, 'emb', /dense_shape \[5, 2\] does not match the variable's \[4, 2\]/);
    refused(opt, vars, step(slices([0], [1, 1, 1], [3], [4, 2])), GradientMismatchError, 'emb', /values of shape \[1, 3\] with 1 indices, expected \[1, 2\]/);
    refused(opt, vars, step(slices([1, 4], [1, 1, 1, 1], [2], [4, 2])), GradientMismatchError, 'emb', /indices\[1\] = 4 is not in \[0, 4\)/);
  });

  test('the async path rejects with the same error and changes nothing', async () => {
    const { opt, a, vars } = trained(flavour);
    const before = snapshot(opt, vars);
    await expect(opt.applyGradients([[grad([1]), a]])).rejects.toThrow(GradientMismatchError);
    expect(snapshot(opt, vars)).toEqual(before);
  });

  test('malformed pairs and a gradient of the wrong kind are TypeErrors naming the place', () => {
    const { opt, a, vars } = trained(flavour);
    refused(opt, vars, () => opt.applyGradientsSync([[[1, 2], a]] as never), KerasTypeError, 'dense/kernel', /must be a Tensor, an IndexedSlices or null/);
    const g = grad([1, 2, 3, 4, 5, 6], 'float32', [2, 3]);
    refused(opt, vars, () => opt.applyGradientsSync([[g, a], [g, a]]), KerasValueError, 'dense/kernel', /appears twice/);
    refused(opt, vars, () => opt.applyGradientsSync([[g, 'dense/kernel']] as never), KerasTypeError, null, /grads_and_vars\[0\]\[1\] must be a Variable/);
  });
});

describe('a gradient for a variable the optimizer does not know', () => {
  test('keras3 (built on other variables) refuses it by name, changing nothing, as Keras 3 does', () => {
    const { opt, fresh, vars } = trained('keras3');
    refused(opt, vars, () => opt.applyGradientsSync([[grad([1, 2]), fresh]]), KerasValueError, 'fresh', /cannot recognize variable 'fresh'.*call build\(\) with the full list/);
  });

  test('getSlot of a variable without slots names the variable and the slot names there are', () => {
    for (const flavour of FLAVOURS) {
      const { opt, fresh, vars } = trained(flavour);
      const slot = opt.getSlotNames()[0]!;
      refused(opt, vars, () => opt.getSlot(fresh, slot), KerasValueError, 'fresh', new RegExp(`no slot '${slot}'.*slot names: ${opt.getSlotNames().join(', ')}`));
    }
  });

  test('tf-keras and keras2 create its slots on first sight instead, as TF optimizer_v2 and Keras 2 do', () => {
    for (const flavour of ['tf-keras', 'keras2'] as const) {
      const { opt, fresh } = trained(flavour);
      opt.applyGradientsSync([[grad([1, 2]), fresh]]);
      expect(opt.weights.map((w) => w.name).slice(-2)).toEqual(['fresh/m', 'fresh/v']);
    }
  });
});

describe.each(FLAVOURS)('%s: hyperparameters out of their domain', (flavour) => {
  const cases: Array<[NadamOptions, string, RegExp]> = [
    [{ learning_rate: NaN }, 'learning_rate', /NaN/],
    [{ beta_1: NaN }, 'beta_1', /NaN/],
    [{ beta_2: NaN }, 'beta_2', /NaN/],
    [{ epsilon: NaN }, 'epsilon', /NaN/],
    [{ learning_rate: -0.001 }, 'learning_rate', /finite number >= 0, got -0.001/],
    [{ learning_rate: -Infinity }, 'learning_rate', /finite number >= 0/],
    [{ learning_rate: Infinity }, 'learning_rate', /finite number >= 0/],
    [{ beta_1: -0.1 }, 'beta_1', /must be in \[0, 1\), got -0.1/],
    [{ beta_1: 1 }, 'beta_1', /must be in \[0, 1\), got 1/],
    [{ beta_1: 1.5 }, 'beta_1', /must be in \[0, 1\)/],
    [{ beta_2: 1 }, 'beta_2', /must be in \[0, 1\), got 1/],
    [{ beta_2: -1e-9 }, 'beta_2', /must be in \[0, 1\)/],
    [{ beta_2: Infinity }, 'beta_2', /must be in \[0, 1\)/],
    [{ clipvalue: NaN }, 'clipvalue', /NaN/],
    [{ clipnorm: -1 }, 'clipnorm', /> 0/],
  ];
  if (flavour !== 'keras3') cases.push([{ lr: -1 }, 'learning_rate', /got -1/], [{ schedule_decay: NaN }, 'decay', /NaN/]);
  test.each(cases)('%j is a HyperparameterError naming %s', (options, name, expected) => {
    let error: unknown;
    try {
      new Nadam({ flavour, ...options });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HyperparameterError);
    expect((error as HyperparameterError).hyperparameter).toBe(name);
    expect((error as Error).message).toContain(name);
    expect((error as Error).message).toMatch(expected);
  });

  test('the boundaries themselves are accepted: beta 0, learning rate 0', () => {
    expect(() => new Nadam({ flavour, beta_1: 0, beta_2: 0, learning_rate: 0 })).not.toThrow();
  });
});

describe.each(FLAVOURS)('%s: setWeights with the wrong weights', (flavour) => {
  const fixture = () => {
    const t = trained(flavour);
    return { ...t, good: t.opt.getWeights() };
  };

  test('a wrong count (one fewer, one more, none) names the count expected and the weights, changing nothing', () => {
    const { opt, vars, good } = fixture();
    const expected = new RegExp(`length ${good.length - 1}, but the optimizer was expecting ${good.length} weights \\(${opt.weights.map((w) => w.name).join(', ')}\\)`);
    refused(opt, vars, () => opt.setWeights(good.slice(1)), KerasValueError, null, expected);
    refused(opt, vars, () => opt.setWeights([...good, good[2]!]), KerasValueError, null, /expecting \d+ weights/);
    refused(opt, vars, () => opt.setWeights([]), KerasValueError, null, /length 0/);
  });

  test('a wrong shape or dtype in the last weight names it and leaves the earlier ones unwritten', () => {
    const { opt, vars, good } = fixture();
    const last = good.length - 1;
    const target = opt.weights[last]!;
    const wrongShape = good.map((w) => w.clone());
    wrongShape[0] = Tensor.scalar(99, wrongShape[0]!.dtype);
    wrongShape[last] = Tensor.zeros('float32', [7]);
    refused(opt, vars, () => opt.setWeights(wrongShape), KerasValueError, target.name, new RegExp(`expected ${target.dtype}\\[[\\d, ]*\\], got float32\\[7\\]`));
    const wrongDtype = good.map((w) => w.clone());
    wrongDtype[last] = Tensor.zeros('float64', target.shape);
    refused(opt, vars, () => opt.setWeights(wrongDtype), KerasValueError, target.name, /got float64/);
    const notATensor = good.map((w) => w.clone()) as unknown[];
    notATensor[last] = [1, 2];
    refused(opt, vars, () => opt.setWeights(notATensor as Tensor[]), KerasTypeError, target.name, /must be a Tensor/);
  });

  test('an impossible value: a negative iteration count', () => {
    const { opt, vars, good } = fixture();
    const bad = good.map((w) => w.clone());
    bad[0] = Tensor.scalar(-1, 'int64');
    refused(opt, vars, () => opt.setWeights(bad), KerasValueError, opt.weights[0]!.name, /expected an iteration count >= 0, got -1/);
  });

  test('the same weights are accepted and change nothing (the failures above are not spurious)', () => {
    const { opt, vars, good } = fixture();
    const before = snapshot(opt, vars);
    opt.setWeights(good);
    expect(snapshot(opt, vars)).toEqual(before);
  });
});

test('keras3: a NaN, infinite or negative saved learning_rate is a HyperparameterError, changing nothing', () => {
  const { opt, vars } = trained('keras3');
  const index = opt.weights.findIndex((w) => w.name === 'learning_rate');
  for (const value of [NaN, -0.5, Infinity]) {
    const bad = opt.getWeights();
    bad[index] = Tensor.scalar(value, 'float32');
    const e = refused(opt, vars, () => opt.setWeights(bad), HyperparameterError, 'learning_rate', /expected a finite number >= 0/);
    expect((e as HyperparameterError).hyperparameter).toBe('learning_rate');
  }
});

test('keras3: a learning-rate schedule that returns NaN or a negative rate stops the step before anything changes', () => {
  let value = 0.01;
  const schedule = { className: 'Custom', call: () => value, getConfig: () => ({}) };
  const w = variable('w', [1, 2]);
  const opt = new Nadam({ flavour: 'keras3', learning_rate: schedule, ...quiet });
  value = NaN;
  expect(() => opt.applyGradientsSync([[grad([0.1, 0.2]), w]])).toThrow(/learning_rate at iteration 0 is NaN; expected a finite number >= 0/);
  expect(opt.built).toBe(false); // the first step did not even create the slots
  expect(opt.weights.map((x) => x.name)).toEqual(['iteration']);
  value = 0.01;
  opt.applyGradientsSync([[grad([0.1, 0.2]), w]]);
  for (const bad of [NaN, -1, Infinity]) {
    value = bad;
    refused(opt, [w], () => opt.applyGradientsSync([[grad([0.1, 0.2]), w]]), HyperparameterError, null, /learning_rate at iteration 1 is/);
  }
});

test('hyperparameters are validated once and frozen: they cannot be changed behind the validation', () => {
  const opt = new Nadam();
  expect(() => {
    (opt.hyperparameters as { learning_rate: number }).learning_rate = NaN;
  }).toThrow(TypeError);
  expect(opt.hyperparameters.learning_rate).toBe(0.001);
});
