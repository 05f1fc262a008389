import type { Keras3NadamCoefficients, TfKerasNadamCoefficients } from '../backends/backend.js';
import type { FloatDType } from '../tensor/dtype.js';
import { GraphArith } from './arith.js';
import { GraphBuilder, type Dim } from './graph.js';

/*
 * The Nadam update as ONNX nodes. Each emitter mirrors, statement for statement and operand for
 * operand, the typed backend's kernel source (src/backends/typed/kernels.ts): one node per TF op,
 * nothing reassociated, so that a runtime with IEEE ops reproduces the typed backend bit for bit.
 */

/** Value names of the tensors one step reads. */
export interface StepInputs {
  readonly w: string;
  readonly m: string;
  readonly v: string;
  readonly g: string;
}

/** Value names of the new variable, m and v. */
export interface StepOutputs {
  readonly w: string;
  readonly m: string;
  readonly v: string;
}

type Values<T> = { readonly [K in keyof T]: string };
export type TfKerasCoefficientValues = Values<Omit<TfKerasNadamCoefficients, 'kind'>>;
export type Keras3CoefficientValues = Values<Omit<Keras3NadamCoefficients, 'kind' | 'moments'>>;

/** tf.keras `_resource_apply_dense` (NADAM_DENSE_TF_KERAS). `names` are the hints of the outputs. */
export function emitDenseTfKeras(a: GraphArith, s: StepInputs, c: TfKerasCoefficientValues, names: StepOutputs): StepOutputs {
  const gPrime = a.div(s.g, c.oneMinusMsNew, 'g_prime');
  const m = a.add(a.mul(c.beta1, s.m, 'beta1_m'), a.mul(c.oneMinusBeta1, s.g, 'one_minus_beta1_g'), names.m);
  const mPrime = a.div(m, c.oneMinusMsNext, 'm_prime');
  const gSquared = a.mul(s.g, s.g, 'g_squared');
  const v = a.add(a.mul(c.beta2, s.v, 'beta2_v'), a.mul(c.oneMinusBeta2, gSquared, 'one_minus_beta2_g2'), names.v);
  const vPrime = a.div(v, c.vDenominator, 'v_prime');
  const mBar = a.add(a.mul(c.oneMinusMuT, gPrime, 'scaled_g_prime'), a.mul(c.muT1, mPrime, 'scaled_m_prime'), 'm_bar');
  const denominator = a.add(a.sqrt(vPrime, 'sqrt_v_prime'), c.epsilon, 'denominator');
  const step = a.div(a.mul(c.lr, mBar, 'lr_m_bar'), denominator, 'step');
  return { w: a.sub(s.w, step, names.w), m, v };
}

/** The part Keras 3 and TF 2.11+ share once m and v are updated: m_hat, v_hat and the variable's step. */
function emitKeras3VariableUpdate(a: GraphArith, s: StepInputs, c: Keras3CoefficientValues, m: string, v: string, names: StepOutputs): StepOutputs {
  const mHat = a.add(
    a.div(a.mul(c.uT1, m, 'u_next_m'), c.oneMinusUProductNext, 'm_part'),
    a.div(a.mul(c.oneMinusUT, s.g, 'one_minus_u_g'), c.oneMinusUProduct, 'g_part'),
    'm_hat',
  );
  const vHat = a.div(v, c.oneMinusBeta2Power, 'v_hat');
  const denominator = a.add(a.sqrt(vHat, 'sqrt_v_hat'), c.epsilon, 'denominator');
  const step = a.div(a.mul(mHat, c.lr, 'm_hat_lr'), denominator, 'step');
  return { w: a.sub(s.w, step, names.w), m, v };
}

/** Keras 3 `Nadam.update_step` (NADAM_DENSE_KERAS3). */
export function emitDenseKeras3(a: GraphArith, s: StepInputs, c: Keras3CoefficientValues, names: StepOutputs): StepOutputs {
  const m = a.add(s.m, a.mul(a.sub(s.g, s.m, 'g_minus_m'), c.oneMinusBeta1, 'm_increment'), names.m);
  const gSquared = a.mul(s.g, s.g, 'g_squared');
  const v = a.add(s.v, a.mul(a.sub(gSquared, s.v, 'g2_minus_v'), c.oneMinusBeta2, 'v_increment'), names.v);
  return emitKeras3VariableUpdate(a, s, c, m, v, names);
}

/**
 * TF 2.11+ `Nadam.update_step` for a sparse gradient given as its unique rows made dense
 * (NADAM_SPARSE_TF_KERAS_NEW): m and v decay first, then the gradient's share is added.
 */
export function emitSparseTfKerasNew(a: GraphArith, s: StepInputs, c: Keras3CoefficientValues, names: StepOutputs): StepOutputs {
  const mDecayed = a.sub(s.m, a.mul(s.m, c.oneMinusBeta1, 'm_times_one_minus_beta1'), 'm_decayed');
  const m = a.add(mDecayed, a.mul(s.g, c.oneMinusBeta1, 'g_scaled_beta1'), names.m);
  const gSquared = a.mul(s.g, s.g, 'g_squared');
  const vDecayed = a.sub(s.v, a.mul(s.v, c.oneMinusBeta2, 'v_times_one_minus_beta2'), 'v_decayed');
  const v = a.add(vDecayed, a.mul(gSquared, c.oneMinusBeta2, 'g2_scaled_beta2'), names.v);
  return emitKeras3VariableUpdate(a, s, c, m, v, names);
}

/**
 * tf.keras `_resource_apply_sparse` on unique rows (NADAM_SPARSE_TF_KERAS): m and v decay
 * everywhere, then the rows named by `indices` ([k, 1] int64) are gathered, updated and scattered
 * back with GatherND / ScatterND. `s.g` holds the k gradient rows.
 */
export function emitSparseTfKeras(a: GraphArith, s: StepInputs, indices: string, c: TfKerasCoefficientValues, names: StepOutputs): StepOutputs {
  const b = a.b;
  const mDecayed = a.mul(s.m, c.beta1, 'm_decayed');
  const vDecayed = a.mul(s.v, c.beta2, 'v_decayed');
  const gPrime = a.div(s.g, c.oneMinusMsNew, 'g_prime');
  const mRows = a.add(b.op('GatherND', [mDecayed, indices], 'm_rows_decayed'), a.mul(s.g, c.oneMinusBeta1, 'g_scaled_beta1'), 'm_rows');
  const mPrime = a.div(mRows, c.oneMinusMsNext, 'm_prime');
  const mBar = a.add(a.mul(c.oneMinusMuT, gPrime, 'scaled_g_prime'), a.mul(c.muT1, mPrime, 'scaled_m_prime'), 'm_bar');
  const gSquared = a.mul(s.g, s.g, 'g_squared');
  const vRows = a.add(b.op('GatherND', [vDecayed, indices], 'v_rows_decayed'), a.mul(gSquared, c.oneMinusBeta2, 'g2_scaled_beta2'), 'v_rows');
  const vPrime = a.div(vRows, c.vDenominator, 'v_prime');
  const denominator = a.add(a.sqrt(vPrime, 'sqrt_v_prime'), c.epsilon, 'denominator');
  const step = a.div(a.mul(c.negLr, mBar, 'neg_lr_m_bar'), denominator, 'step');
  const wRows = a.add(b.op('GatherND', [s.w, indices], 'w_rows_old'), step, 'w_rows');
  return {
    m: b.op('ScatterND', [mDecayed, indices, mRows], names.m),
    v: b.op('ScatterND', [vDecayed, indices, vRows], names.v),
    w: b.op('ScatterND', [s.w, indices, wRows], names.w),
  };
}

/** Which of the backend's step graphs. */
export type KernelKind = 'dense-tf-keras' | 'dense-keras3' | 'sparse-tf-keras' | 'dense-tf-keras-new-sparse';

/** A step graph for the onnx backend: its model bytes and the coefficient inputs it expects. */
export interface KernelGraph {
  readonly kind: KernelKind;
  readonly dtype: FloatDType;
  readonly model: Uint8Array;
  /** Names of the scalar coefficient inputs, which are also the coefficient object's keys. */
  readonly coefficients: readonly string[];
}

const TF_KERAS_KEYS = ['lr', 'negLr', 'beta1', 'beta2', 'oneMinusBeta1', 'oneMinusBeta2', 'oneMinusMuT', 'muT1',
  'oneMinusMsNew', 'oneMinusMsNext', 'vDenominator', 'epsilon'] as const;
const KERAS3_KEYS = ['lr', 'oneMinusBeta1', 'oneMinusBeta2', 'uT1', 'oneMinusUT', 'oneMinusUProduct',
  'oneMinusUProductNext', 'oneMinusBeta2Power', 'epsilon'] as const;

/** Graph output names of the backend's step graphs. */
export const KERNEL_OUTPUTS = { w: 'new_variable', m: 'new_m', v: 'new_v' } as const;

/**
 * The backend's graph for one step kind and dtype, for one shape class: dense tensors are fed
 * flattened ([n]); sparse ones as [rows, width] with [k, width] gradient rows and [k, 1] indices.
 * Per-step coefficients are scalar inputs (computed by the optimizer), so one session serves every step.
 */
export function buildKernelGraph(kind: KernelKind, dtype: FloatDType): KernelGraph {
  const b = new GraphBuilder(`kerasopt_${kind.replace(/-/g, '_')}_${dtype}`);
  const a = new GraphArith(b, dtype);
  const sparse = kind === 'sparse-tf-keras';
  const stateDims: Dim[] = sparse ? ['rows', 'width'] : ['n'];
  const s: StepInputs = {
    w: a.input('variable', stateDims),
    m: a.input('m', stateDims),
    v: a.input('v', stateDims),
    g: a.input('gradient', sparse ? ['k', 'width'] : ['n']),
  };
  const indices = sparse ? b.input('indices', 'int64', ['k', 1]) : '';
  const keras3Keys = kind === 'dense-keras3' || kind === 'dense-tf-keras-new-sparse';
  const keys = keras3Keys ? KERAS3_KEYS : TF_KERAS_KEYS.filter((k) => (sparse ? k !== 'lr' : k !== 'negLr'));
  const c = Object.fromEntries(keys.map((k) => [k, a.scalarInput(k)]));
  const names = { w: a.outputHint(KERNEL_OUTPUTS.w), m: a.outputHint(KERNEL_OUTPUTS.m), v: a.outputHint(KERNEL_OUTPUTS.v) };
  const out = kind === 'dense-keras3'
    ? emitDenseKeras3(a, s, c as unknown as Keras3CoefficientValues, names)
    : kind === 'dense-tf-keras-new-sparse'
      ? emitSparseTfKerasNew(a, s, c as unknown as Keras3CoefficientValues, names)
    : sparse
      ? emitSparseTfKeras(a, s, indices, c as unknown as TfKerasCoefficientValues, names)
      : emitDenseTfKeras(a, s, c as unknown as TfKerasCoefficientValues, names);
  a.output(out.w, KERNEL_OUTPUTS.w, stateDims);
  a.output(out.m, KERNEL_OUTPUTS.m, stateDims);
  a.output(out.v, KERNEL_OUTPUTS.v, stateDims);
  return { kind, dtype, model: b.toModel({ 'kerasopt.kind': `kernel:${kind}`, 'kerasopt.dtype': dtype }), coefficients: keys };
}
