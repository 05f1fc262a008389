import { HyperparameterError } from '../errors.js';
import { powFloat32 } from '../tensor/pow.js';

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

const f32 = Math.fround;

function positiveSteps(className: string, key: string, v: number): number {
  if (!(v > 0)) throw new HyperparameterError(key, `${className}: Argument \`${key}\` must be > 0. Received: ${key}=${v}`);
  return v;
}

/** Keras 3's float32 power: TF and numpy call powf; kerasopt's is correctly rounded (see src/tensor/pow.ts). */
const pow32 = powFloat32;

/** Options of ExponentialDecay and InverseTimeDecay (Keras config keys). */
export interface DecayOptions {
  initial_learning_rate: number;
  decay_steps: number;
  decay_rate: number;
  staircase?: boolean;
  /** Keras 3 default: the class name; tf.keras wrote null. */
  name?: string | null;
}

/** initial_learning_rate * decay_rate ^ (step / decay_steps), floored exponent when staircase; float32 like Keras 3. */
export class ExponentialDecay implements LearningRateSchedule {
  readonly className = 'ExponentialDecay';
  readonly options: Required<DecayOptions>;

  constructor(o: DecayOptions) {
    positiveSteps(this.className, 'decay_steps', o.decay_steps);
    this.options = { staircase: false, name: 'ExponentialDecay', ...o };
  }

  call(step: number): number {
    const o = this.options;
    let p = f32(f32(step) / f32(o.decay_steps));
    if (o.staircase) p = Math.floor(p);
    return f32(f32(o.initial_learning_rate) * pow32(f32(o.decay_rate), p));
  }

  getConfig(): Record<string, unknown> {
    const o = this.options;
    return { initial_learning_rate: o.initial_learning_rate, decay_steps: o.decay_steps, decay_rate: o.decay_rate, staircase: o.staircase, name: o.name };
  }
}

/** initial_learning_rate / (1 + decay_rate * step / decay_steps), floored when staircase; float32 like Keras 3. */
export class InverseTimeDecay implements LearningRateSchedule {
  readonly className = 'InverseTimeDecay';
  readonly options: Required<DecayOptions>;

  constructor(o: DecayOptions) {
    positiveSteps(this.className, 'decay_steps', o.decay_steps);
    this.options = { staircase: false, name: 'InverseTimeDecay', ...o };
  }

  call(step: number): number {
    const o = this.options;
    let p = f32(f32(step) / f32(o.decay_steps));
    if (o.staircase) p = Math.floor(p);
    return f32(f32(o.initial_learning_rate) / f32(1 + f32(f32(o.decay_rate) * p)));
  }

  getConfig(): Record<string, unknown> {
    const o = this.options;
    return { initial_learning_rate: o.initial_learning_rate, decay_steps: o.decay_steps, decay_rate: o.decay_rate, staircase: o.staircase, name: o.name };
  }
}

/** Options of PiecewiseConstantDecay. */
export interface PiecewiseOptions {
  boundaries: number[];
  values: number[];
  name?: string | null;
}

/**
 * values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
 * values[last] after. Computed as Keras 3 does: boundaries cast to the (integer) step type, and the
 * result a float32 sum of indicator * value terms.
 */
export class PiecewiseConstantDecay implements LearningRateSchedule {
  readonly className = 'PiecewiseConstantDecay';
  readonly options: Required<PiecewiseOptions>;

  constructor(o: PiecewiseOptions) {
    if (o.boundaries.length !== o.values.length - 1) {
      throw new HyperparameterError(
        'boundaries',
        `The length of boundaries should be 1 less than the length of values. Received: boundaries of length ${o.boundaries.length}, and values of length ${o.values.length}.`,
      );
    }
    this.options = { name: 'PiecewiseConstant', ...o, boundaries: [...o.boundaries], values: [...o.values] };
  }

  call(step: number): number {
    const b = this.options.boundaries.map(Math.trunc);
    const v = this.options.values.map(f32);
    let result = 0;
    const add = (on: boolean, value: number): void => {
      result = f32(result + (on ? value : f32(0 * value)));
    };
    add(step <= b[0]!, v[0]!);
    add(step > b[b.length - 1]!, v[v.length - 1]!);
    for (let i = 0; i + 1 < b.length; i++) add(step > b[i]! && step <= b[i + 1]!, v[i + 1]!);
    return result;
  }

  getConfig(): Record<string, unknown> {
    const o = this.options;
    return { boundaries: [...o.boundaries], values: [...o.values], name: o.name };
  }
}

/** Options of PolynomialDecay. */
export interface PolynomialOptions {
  initial_learning_rate: number;
  decay_steps: number;
  end_learning_rate?: number;
  power?: number;
  cycle?: boolean;
  name?: string | null;
}

/** (initial - end) * (1 - step / decay_steps) ^ power + end, step capped (or cycled); float32 like Keras 3. */
export class PolynomialDecay implements LearningRateSchedule {
  readonly className = 'PolynomialDecay';
  readonly options: Required<PolynomialOptions>;

  constructor(o: PolynomialOptions) {
    positiveSteps(this.className, 'decay_steps', o.decay_steps);
    this.options = { end_learning_rate: 0.0001, power: 1.0, cycle: false, name: 'PolynomialDecay', ...o };
  }

  call(step: number): number {
    const o = this.options;
    const lr0 = f32(o.initial_learning_rate);
    const end = f32(o.end_learning_rate);
    let s = f32(step);
    let ds = f32(o.decay_steps);
    if (o.cycle) ds = f32(ds * (s === 0 ? 1 : Math.ceil(f32(s / ds))));
    else s = Math.min(s, ds);
    const p = f32(s / ds);
    return f32(f32(f32(lr0 - end) * pow32(f32(1 - p), f32(o.power))) + end);
  }

  getConfig(): Record<string, unknown> {
    const o = this.options;
    return {
      initial_learning_rate: o.initial_learning_rate,
      decay_steps: o.decay_steps,
      end_learning_rate: o.end_learning_rate,
      power: o.power,
      cycle: o.cycle,
      name: o.name,
    };
  }
}

/** The schedule classes kerasopt implements, by Keras class name. */
export const SCHEDULE_CLASSES = {
  ExponentialDecay,
  InverseTimeDecay,
  PiecewiseConstantDecay,
  PolynomialDecay,
} as const;

export type ScheduleClassName = keyof typeof SCHEDULE_CLASSES;
