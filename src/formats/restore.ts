import { KerasValueError } from '../errors.js';
import { Nadam, type NadamOptions } from '../optimizers/nadam/index.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import { FLAVOUR_LIST } from '../optimizers/flavour.js';
import type { KerasOptimizerState } from './state.js';

/** Whether a read state is a Nadam's (the optimizer kerasopt steps), whatever name the file gives the class. */
export function isNadamState(state: KerasOptimizerState): boolean {
  return state.className !== null && /^(custom>)?nadam$/i.test(state.className);
}

/** Options of {@link optimizerFromState}. */
export interface RestoreOptions extends Pick<NadamOptions, 'backend' | 'onWarning'> {
  /**
   * What to do with a momentum-schedule scalar the file does not save (Keras 2.2's m_schedule,
   * TF 2.11-2.15's u_product):
   * - `'reconstruct'` (default): the state's reconstruction from the iteration count, i.e. the value
   *   uninterrupted training would hold, so the next steps continue the original trajectory;
   * - `'restart'`: 1, exactly what Keras itself does when it loads such a file, so the next steps
   *   match what Keras would compute after its own reload.
   */
  readonly unsavedSchedule?: 'reconstruct' | 'restart';
}

/**
 * Rebuilds a Nadam of the file's flavour from a read state: the model variables (with the file's
 * values) and an optimizer built on them whose weights equal the file's, bit for bit. Each weight is
 * filled by what it is (iterations, learning rate, schedule, the slot of a variable), whatever order
 * the file's release saved them in. Slots of variables the saved model lacks (an optimizer reused
 * across models) are not part of the optimizer: they stay in the state and are written back as read.
 * For Keras 2.2 and TF 2.11-2.15 files the unsaved m_schedule / u_product is set as `options.unsavedSchedule` says.
 */
export function optimizerFromState(
  state: KerasOptimizerState,
  options: RestoreOptions = {},
): { optimizer: Nadam; variables: Variable[] } {
  const { unsavedSchedule = 'reconstruct', ...nadamOptions } = options;
  if (unsavedSchedule !== 'reconstruct' && unsavedSchedule !== 'restart') {
    throw new KerasValueError(`unsavedSchedule must be 'reconstruct' or 'restart', got ${JSON.stringify(unsavedSchedule)}`);
  }
  const schedule = state.schedule;
  if (!isNadamState(state) || schedule === null || state.iterations === null) {
    throw new KerasValueError(
      `${state.file}: the optimizer is ${state.className === null ? `not recorded (it fits ${state.fits?.join(', ') || 'no known optimizer'})` : `'${state.className}'`}; kerasopt steps Nadam only (every flavour: ${FLAVOUR_LIST}). ` +
        'It reads and writes the saved state of the others (readOptimizerState, saveOptimizerState with the state) without stepping them',
    );
  }
  const iterations = state.iterations;
  const optimizer = Nadam.fromConfig(state.config, { flavour: state.flavour, ...nadamOptions });
  const variables = state.variables.map((v) => new Variable(v.value.clone(), { name: v.name }));
  // a state saved before its first build has no slots: the optimizer builds on its first step, as Keras does
  if (variables.length > 0 && state.slots.some((s) => s.inModel)) optimizer.build(variables);
  const slots = new Map(state.slots.filter((s) => s.inModel).map((s) => [`${s.variable}/${s.slot}`, s.value]));
  const learningRate = state.weights.find((w) => w.role?.kind === 'learning_rate');
  const values = optimizer.weights.map((w) => {
    if (w === optimizer.iterationsVariable) return Tensor.scalar(BigInt(iterations), 'int64');
    if (w.name === schedule.name) return schedule.value;
    if (w.name === 'learning_rate') return learningRate?.value ?? w.value;
    const slot = slots.get(w.name);
    if (!slot && state.slots.length === 0) return w.value; // saved before its first build: fresh zero slots, as Keras builds them
    if (!slot) throw new KerasValueError(`${state.file}: the file holds no value for the optimizer weight '${w.name}' of a ${state.flavour} Nadam on its ${variables.length} variables`);
    return slot;
  });
  optimizer.setWeights(values);
  // These flavours keep their schedule scalar outside `weights` (saved by Keras 2.3 only), so set it here;
  // an optimizer not built yet has none: it makes it (at 1) on its first step, as Keras does.
  if ((state.flavour === 'keras2' || state.flavour === 'tf-keras-new') && optimizer.built) {
    const restart = schedule.reconstructed && unsavedSchedule === 'restart';
    const weight = optimizer.getWeight(schedule.name);
    weight.assign(restart ? Tensor.scalar(1, weight.dtype) : schedule.value);
  }
  return { optimizer, variables };
}
