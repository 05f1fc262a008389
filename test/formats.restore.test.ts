import { describe, expect, test } from 'vitest';
import { KerasValueError, optimizerFromState, readOptimizerState, Tensor } from '../src/index.js';
import { useMadeKerasFiles } from './helpers/kerasFiles.js';

const { missing, made } = useMadeKerasFiles('restore');

// Files made by kerasopt's test helper in the Keras 2.2.4 and TF 2.11 layouts (not written by Keras).
describe.each([
  ['keras2_2.2.4.h5', 'm_schedule'],
  ['tf_keras_new.h5', 'u_product'],
])('an unsaved schedule scalar (%s, %s)', (name, weight) => {
  test('reconstruct (default) continues the trajectory; restart does what Keras does on reload', async () => {
    if (missing) return;
    const state = await readOptimizerState(made.files[name]!.file);
    expect(state.schedule).toMatchObject({ name: weight, reconstructed: true });
    expect(state.iterations).toBeGreaterThan(0);

    const reconstructed = optimizerFromState(state, { onWarning: () => {} });
    const restarted = optimizerFromState(state, { onWarning: () => {}, unsavedSchedule: 'restart' });
    const value = (o: typeof reconstructed) => o.optimizer.getWeight(weight).value.get(0);
    expect(value(reconstructed)).toBe(state.schedule.value.get(0));
    expect(value(reconstructed)).not.toBe(1);
    expect(value(restarted)).toBe(1);
    // Everything else is the same: the saved weights and the model variables.
    const bits = (o: typeof reconstructed) => o.optimizer.getWeights().map((w) => Array.from(w.data as ArrayLike<number | bigint>, String));
    expect(bits(restarted)).toEqual(bits(reconstructed));

    // The next step differs only through the schedule scalar.
    for (const o of [reconstructed, restarted]) {
      o.optimizer.applyGradientsSync(o.variables.map((v) => [Tensor.fill(v.dtype, v.shape, 0.01), v] as const));
    }
    const first = (o: typeof reconstructed) => Array.from(o.variables[0]!.value.data as Float32Array);
    expect(first(restarted)).not.toEqual(first(reconstructed));
  });
});

test('an unknown unsavedSchedule choice is refused by name', async () => {
  if (missing) return;
  const state = await readOptimizerState(made.files['keras2_2.2.4.h5']!.file);
  expect(() => optimizerFromState(state, { unsavedSchedule: 'zero' as 'restart' })).toThrow(KerasValueError);
  expect(() => optimizerFromState(state, { unsavedSchedule: 'zero' as 'restart' })).toThrow(/unsavedSchedule must be 'reconstruct' or 'restart', got "zero"/);
});
