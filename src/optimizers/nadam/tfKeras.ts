import type { TfKerasNadamCoefficients } from '../../backends/backend.js';
import type { Arith } from '../../tensor/arith.js';
import { decayBase, momentumAt } from './schedule.js';

/** Inputs of one step's coefficients in the tf.keras / Keras 2 Nadam. */
export interface TfKerasStepInputs {
  readonly lr: number;
  readonly beta_1: number;
  readonly beta_2: number;
  readonly epsilon: number;
  readonly schedule_decay: number;
  /** iterations before the step */
  readonly iterations: number;
  /** momentum_cache (tf-keras) or m_schedule (keras2) as read before the step */
  readonly cache: number;
  /**
   * tf-keras casts (iterations + 1) to the dtype; Keras 2.2 casts iterations then adds 1 in the
   * dtype. The two differ only past 2^24 steps in float32.
   */
  readonly stepForm: 'cast-then-add' | 'add-then-cast';
}

/**
 * optimizer_v2 Nadam `_prepare_local` for one dtype: every scalar the dense and sparse kernels use,
 * plus the new schedule product (`msNew`), which becomes momentum_cache / m_schedule.
 */
export function tfKerasCoefficients(a: Arith, s: TfKerasStepInputs): { c: TfKerasNadamCoefficients; msNew: number } {
  const lr = a.cast(s.lr);
  const beta1 = a.cast(s.beta_1);
  const beta2 = a.cast(s.beta_2);
  const t = s.stepForm === 'add-then-cast' ? a.cast(s.iterations + 1) : a.add(a.cast(s.iterations), 1);
  const tNext = s.stepForm === 'add-then-cast' ? a.cast(s.iterations + 2) : a.add(t, 1);
  // tf.keras (add-then-cast) writes math_ops.cast(0.96, dtype); Keras 2 (cast-then-add) K.cast_to_floatx(0.96).
  const base = decayBase(a, s.stepForm === 'add-then-cast');
  const muT = momentumAt(a, beta1, t, s.schedule_decay, base);
  const muT1 = momentumAt(a, beta1, tNext, s.schedule_decay, base);
  const msNew = a.mul(a.cast(s.cache), muT);
  const msNext = a.mul(msNew, muT1);
  return {
    msNew,
    c: {
      kind: 'tf-keras',
      lr,
      negLr: -lr,
      beta1,
      beta2,
      oneMinusBeta1: a.sub(1, beta1),
      oneMinusBeta2: a.sub(1, beta2),
      oneMinusMuT: a.sub(1, muT),
      muT1,
      oneMinusMsNew: a.sub(1, msNew),
      oneMinusMsNext: a.sub(1, msNext),
      vDenominator: a.sub(1, a.pow(beta2, t)),
      epsilon: a.cast(s.epsilon),
    },
  };
}
