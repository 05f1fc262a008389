import { convertConfig } from '../../config/convert.js';
import type { ConfigDialect } from '../../config/dialects.js';
import type { Flavour } from '../../optimizers/flavour.js';
import { nextUProduct } from '../../optimizers/nadam/keras3.js';
import { RECIPES } from '../../optimizers/nadam/recipes.js';
import { tfKerasCoefficients } from '../../optimizers/nadam/tfKeras.js';
import { nextUProductTf211 } from '../../optimizers/nadam/tfKerasNew.js';
import { arith } from '../../tensor/arith.js';
import type { FloatDType } from '../../tensor/dtype.js';
import type { KerasOptimizerState } from '../state.js';

/** The smallest normal number of each float dtype: below it a result is subnormal (flushed to zero by TF's CPU kernels). */
const SMALLEST_NORMAL: Readonly<Record<FloatDType, number>> = { float16: 2 ** -14, float32: 2 ** -126, float64: 2 ** -1022 };

/** The momentum-schedule scalar written into the target, and why it has that value. */
export interface ScheduleConversion {
  /** The source's weight (momentum_cache, m_schedule, u_product) and its value. */
  readonly from: { readonly name: string; readonly value: number; readonly dtype: string; readonly reconstructed: boolean };
  /** The target flavour's weight and the value written (or held, where the target release does not save it). */
  readonly to: { readonly name: string; readonly value: number; readonly dtype: FloatDType; readonly saved: boolean };
  /** 'carried': the source's bits; 'recomputed': the target flavour's recurrence from iterations (see {@link scheduleAfter}). */
  readonly rule: 'carried' | 'recomputed';
  readonly text: string;
}

/**
 * The rule for the schedule weight (docs/transplant.md): a product of the per-step momentum factors
 * mu_1..mu_t, so it is a function of the iteration count and the hyperparameters only. The target
 * flavour's own recurrence is run from 1 for `iterations` steps, op by op in `dtype` as that
 * flavour's Nadam runs it each step (the value an uninterrupted run of the target flavour would
 * hold): tf.keras momentum_cache (float32 beta_1, schedule_decay, t = cast(iterations + 1)), Keras 2
 * m_schedule (Python beta_1, t = cast(iterations) + 1), Keras 3 u_product ((u * beta_1) * factor),
 * TF 2.11-2.15 u_product (u * (beta_1 * factor), beta_1 and 0.96 through float32). Once the product
 * underflows to 0 it stays 0, so the loop stops there.
 *
 * Subnormal results are flushed to zero after each step, as TensorFlow computes on CPU (its executor,
 * Eigen thread pools and XLA's CPU runtime run kernels under `port::ScopedFlushDenormal`): the real
 * Keras 3.13 archive of the corpus saved u_product = 0 after 726 steps, where the recurrence without
 * the flush gives the float32 subnormal 5.43e-40. `keepSubnormals` turns the flush off (the value
 * kerasopt's own Nadam would hold: its arithmetic keeps subnormals).
 */
export function scheduleAfter(flavour: Flavour, hyper: { readonly beta_1: number; readonly schedule_decay: number }, iterations: number, dtype: FloatDType, keepSubnormals = false): number {
  const a = arith(dtype);
  const tiny = keepSubnormals ? 0 : SMALLEST_NORMAL[dtype];
  const beta1 = hyper.beta_1;
  const decay = hyper.schedule_decay;
  let product = a.cast(1);
  for (let k = 0; k < iterations && product !== 0; k++) {
    if (flavour === 'keras3') product = nextUProduct(a, product, beta1, k);
    else if (flavour === 'tf-keras-new') product = nextUProductTf211(a, product, beta1, k);
    else {
      product = tfKerasCoefficients(a, {
        lr: 0.001, beta_1: flavour === 'tf-keras' ? Math.fround(beta1) : beta1, beta_2: 0.999, epsilon: 1e-7, schedule_decay: decay,
        iterations: k, cache: product, stepForm: flavour === 'keras2' ? 'cast-then-add' : 'add-then-cast',
      }).msNew;
    }
    if (Math.abs(product) < tiny) product = 0;
  }
  return product;
}

/**
 * The target's schedule scalar: the source's own bits when source and target are the same flavour
 * and the source saved it in the target's dtype; otherwise recomputed by {@link scheduleAfter} with
 * the target's (converted) config.
 */
export function convertSchedule(source: KerasOptimizerState, to: Flavour, hyper: { readonly beta_1: number; readonly schedule_decay: number }, dtype: FloatDType): ScheduleConversion {
  const s = source.schedule!;
  const from = { name: s.name, value: s.value.get(0), dtype: s.value.dtype, reconstructed: s.reconstructed };
  const name = RECIPES[to].scheduleWeight;
  const saved = RECIPES[to].scheduleSaved;
  const iterations = source.iterations!;
  if (source.flavour === to && !s.reconstructed && s.value.dtype === dtype) {
    return { from, to: { name, value: from.value, dtype, saved }, rule: 'carried', text: `${name} carried bit for bit from the source (${from.value}, same flavour ${to})` };
  }
  const value = scheduleAfter(to, hyper, iterations, dtype);
  const why = source.flavour === to ? `the source did not save it (${s.name} was reconstructed)` : `${source.flavour} ${s.name} follows another recurrence`;
  return {
    from, to: { name, value, dtype, saved }, rule: 'recomputed',
    text: `${name} = ${value}: recomputed with the ${to} recurrence from 1 over ${iterations} iterations (beta_1 ${hyper.beta_1}${to === 'tf-keras' || to === 'keras2' ? `, schedule_decay ${hyper.schedule_decay}` : ''}, ${dtype}, subnormals flushed to zero as TF does on CPU), as ${why}; the source's ${s.name} was ${from.value}`,
  };
}

/** The source's config in the target flavour's release layout, with every change in behaviour (config convert's list). */
export function convertStateConfig(source: KerasOptimizerState, to: Flavour, dialect: ConfigDialect): { config: Record<string, unknown>; changes: string[] } {
  const r = convertConfig(source.config, { to, from: source.flavour, dialect });
  return { config: r.config, changes: r.changes };
}
