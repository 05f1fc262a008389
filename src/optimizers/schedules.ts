/**
 * A learning-rate schedule: a function of the step (the optimizer's iterations before the update)
 * that returns the learning rate, with the Keras config that serializes it.
 */
export interface LearningRateSchedule {
  readonly className: string;
  /** The learning rate for `step`, already rounded to float32 as Keras computes schedules in floatx. */
  call(step: number): number;
  getConfig(): Record<string, unknown>;
}

export function isLearningRateSchedule(x: unknown): x is LearningRateSchedule {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as LearningRateSchedule).call === 'function' &&
    typeof (x as LearningRateSchedule).getConfig === 'function'
  );
}
