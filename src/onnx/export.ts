import { KerasValueError } from '../errors.js';
import { FLAVOUR_LIST, isFlavour, isNewStyle, type Flavour } from '../optimizers/flavour.js';
import { arith } from '../tensor/arith.js';
import { isFloatDType, type FloatDType } from '../tensor/dtype.js';
import { GraphArith } from './arith.js';
import { GraphBuilder, type Dim } from './graph.js';
import { ONNX_DATA_TYPE } from './proto.js';
import { emitDenseKeras3, emitDenseTfKeras, type Keras3CoefficientValues, type TfKerasCoefficientValues } from './nadamGraph.js';

/** What to export. */
export interface ExportNadamStepOptions {
  /** Which Keras Nadam the step reproduces (default 'tf-keras'). */
  readonly flavour?: Flavour;
  /** The dtype of the variable, its slots, the schedule scalar and the hyperparameters (default 'float32'). */
  readonly dtype?: FloatDType;
}

/** The metadata_props value that marks a kerasopt Nadam step model. */
export const NADAM_STEP_KIND = 'nadam-step';
export const NADAM_STEP_FORMAT = '1';

/** The schedule scalar each flavour carries between steps (its Keras weight name). */
export const SCHEDULE_NAME: Readonly<Record<Flavour, 'momentum_cache' | 'm_schedule' | 'u_product'>> = {
  'tf-keras': 'momentum_cache',
  keras2: 'm_schedule',
  keras3: 'u_product',
  'tf-keras-new': 'u_product',
};

/** The graph inputs of a step model, in order. */
export function nadamStepInputs(flavour: Flavour): string[] {
  const hypers = isNewStyle(flavour) ? ['learning_rate', 'beta_1', 'beta_2', 'epsilon'] : ['learning_rate', 'beta_1', 'beta_2', 'epsilon', 'schedule_decay'];
  return ['variable', 'gradient', 'm', 'v', 'iterations', SCHEDULE_NAME[flavour], ...hypers];
}

/** The graph outputs of a step model, in order. */
export function nadamStepOutputs(flavour: Flavour): string[] {
  return ['new_variable', 'new_m', 'new_v', 'new_iterations', `new_${SCHEDULE_NAME[flavour]}`];
}

const DOC: Readonly<Record<string, string>> = {
  variable: 'the variable before the step, flattened (row-major) to rank 1',
  gradient: 'the dense gradient, flattened like the variable',
  m: 'first-moment slot (Keras 3: momentum)',
  v: 'second-moment slot (Keras 3: velocity)',
  iterations: 'int64 step count before the step (0 for the first step)',
  momentum_cache: 'tf.keras momentum_cache: the product of mu_1..mu_t so far (1 before the first step)',
  m_schedule: 'Keras 2 m_schedule: the product of mu_1..mu_t so far (1 before the first step)',
  u_product: 'Keras 3 u_product (1 before the first step)',
  learning_rate: "in the variable's dtype; tf.keras and Keras 3 hold it in float32 first, so pass the float32 value for float64",
  beta_1: "in the variable's dtype; tf.keras holds it in float32 first",
  beta_2: "in the variable's dtype; tf.keras holds it in float32 first",
  epsilon: "in the variable's dtype",
  schedule_decay: 'the momentum schedule factor (tf.keras decay / Keras 2 schedule_decay, default 0.004)',
};

/**
 * A standalone ONNX model of one Nadam step: it takes the state, the gradient, the step count, the
 * schedule scalar and the hyperparameters, computes the per-step coefficients inside the graph
 * (Pow and all, in the op order of the flavour) and returns the new state, so any ONNX runtime can
 * run the optimizer. Tensors are rank 1 (flatten the variable row-major; the update is elementwise).
 * IR version 8, default-domain opset 17.
 *
 * @returns the serialized ModelProto
 * @example
 * writeFileSync('nadam_step.onnx', exportNadamStep({ flavour: 'tf-keras', dtype: 'float32' }));
 */
export function exportNadamStep(options: ExportNadamStepOptions = {}): Uint8Array {
  const flavour = options.flavour ?? 'tf-keras';
  const dtype = options.dtype ?? 'float32';
  if (!isFlavour(flavour)) throw new KerasValueError(`unknown flavour '${String(flavour)}'; expected ${FLAVOUR_LIST}`);
  if (!isFloatDType(dtype)) throw new KerasValueError(`unknown dtype '${String(dtype)}'; expected float16, float32 or float64`);
  const b = new GraphBuilder(`kerasopt_nadam_step_${flavour.replace(/-/g, '_')}_${dtype}`, `One ${flavour} Nadam step in ${dtype}, exported by kerasopt.`);
  const a = new GraphArith(b, dtype);
  const input = (name: string, dims: Dim[]) => a.input(name, dims, DOC[name]);
  const s = { w: input('variable', ['n']), g: input('gradient', ['n']), m: input('m', ['n']), v: input('v', ['n']) };
  const iterations = b.input('iterations', 'int64', [], DOC.iterations);
  const schedule = input(SCHEDULE_NAME[flavour], []);
  const lr = input('learning_rate', []);
  const beta1 = input('beta_1', []);
  const beta2 = input('beta_2', []);
  const epsilon = input('epsilon', []);
  const decay = isNewStyle(flavour) ? null : input('schedule_decay', []);

  const one = a.constant(1, 'one');
  const half = a.constant(0.5, 'half');
  // tf.keras's math_ops.cast(0.96, dtype) and Keras 3's ops.cast (tf.cast) make a float32 tensor
  // first, so float64 sees float64(float32(0.96)); Keras 2 and Keras 3's u_product update convert
  // straight to the dtype (src/optimizers/nadam/schedule.ts decayBase).
  const baseDirect = a.constant(arith(dtype).cast(0.96), 'base_0_96');
  const baseViaFloat32 = a.constant(arith(dtype).cast(Math.fround(0.96)), 'base_0_96_via_float32');
  /** x as tf.cast(python_float, dtype) gives it: through float32 (a no-op unless dtype is float64). */
  const viaFloat32 = (x: string, hint: string): string =>
    dtype === 'float64' ? b.op('Cast', [b.op('Cast', [x], `${hint}_float32`, { to: ONNX_DATA_TYPE.float32 })], hint, { to: ONNX_DATA_TYPE.float64 }) : x;
  const newIterations = b.op('Add', [iterations, b.constant(1, 'int64', 'int64_1')], 'new_iterations');
  const iterationsPlus2 = (): string => b.op('Add', [iterations, b.constant(2, 'int64', 'int64_2')], 'iterations_plus_2');
  /** mu_t = beta_1 * (1 - 0.5 * 0.96^(decay * t)) (Keras 3: exponent t), as schedule.ts momentumAt. */
  const momentumAt = (beta: string, base: string, t: string, tag: string): string => {
    const exponent = decay === null ? t : a.mul(decay, t, `exponent_${tag}`);
    const power = a.pow(base, exponent, `base_pow_${tag}`);
    return a.mul(beta, a.sub(one, a.mul(half, power, `half_pow_${tag}`), `one_minus_half_pow_${tag}`), `mu_${tag}`);
  };
  const names = { w: a.outputHint('new_variable'), m: a.outputHint('new_m'), v: a.outputHint('new_v') };
  let out: { w: string; m: string; v: string };
  let newSchedule: string;
  if (isNewStyle(flavour)) {
    const t = a.cast(newIterations, 't');
    const tNext = a.cast(iterationsPlus2(), 't_next');
    // update_step's tf.cast(beta, dtype) goes through float32 (keras3.ts keras3Coefficients).
    const castBeta1 = viaFloat32(beta1, 'beta1_cast');
    const castBeta2 = viaFloat32(beta2, 'beta2_cast');
    const uT = momentumAt(castBeta1, baseViaFloat32, t, 't');
    if (flavour === 'keras3') {
      // Keras 3 `_backend_update_step` first updates u_product, then `update_step` reads it.
      const factor = a.sub(one, a.mul(half, a.pow(baseDirect, t, 'base_pow_t_product'), 'half_pow_t_product'), 'u_factor');
      newSchedule = a.mul(a.mul(schedule, beta1, 'u_product_beta1'), factor, a.outputHint('new_u_product'));
    } else {
      // TF 2.11+ update_step: u_product * u_t in the variable's dtype (tfKerasNew.ts nextUProductTf211).
      newSchedule = a.mul(schedule, uT, a.outputHint('new_u_product'));
    }
    const uT1 = momentumAt(castBeta1, baseViaFloat32, tNext, 't_next');
    const c: Keras3CoefficientValues = {
      lr,
      oneMinusBeta1: a.sub(one, castBeta1, 'one_minus_beta1'),
      oneMinusBeta2: a.sub(one, castBeta2, 'one_minus_beta2'),
      uT1,
      oneMinusUT: a.sub(one, uT, 'one_minus_u_t'),
      oneMinusUProduct: a.sub(one, newSchedule, 'one_minus_u_product'),
      oneMinusUProductNext: a.sub(one, a.mul(newSchedule, uT1, 'u_product_next'), 'one_minus_u_product_next'),
      oneMinusBeta2Power: a.sub(one, a.pow(castBeta2, t, 'beta2_pow_t'), 'one_minus_beta2_pow_t'),
      epsilon,
    };
    out = emitDenseKeras3(a, s, c, names);
  } else {
    // tf.keras casts (iterations + 1); Keras 2.2 casts iterations, then adds 1 in the dtype.
    const t = flavour === 'tf-keras' ? a.cast(newIterations, 't') : a.add(a.cast(iterations, 'iterations_float'), one, 't');
    const tNext = flavour === 'tf-keras' ? a.cast(iterationsPlus2(), 't_next') : a.add(t, one, 't_next');
    const base = flavour === 'tf-keras' ? baseViaFloat32 : baseDirect;
    const muT = momentumAt(beta1, base, t, 't');
    const muT1 = momentumAt(beta1, base, tNext, 't_next');
    newSchedule = a.mul(schedule, muT, a.outputHint(`new_${SCHEDULE_NAME[flavour]}`));
    const msNext = a.mul(newSchedule, muT1, 'm_schedule_next');
    const c: TfKerasCoefficientValues = {
      lr,
      negLr: '', // only the sparse kernel reads it; a step model takes dense gradients
      beta1,
      beta2,
      oneMinusBeta1: a.sub(one, beta1, 'one_minus_beta1'),
      oneMinusBeta2: a.sub(one, beta2, 'one_minus_beta2'),
      oneMinusMuT: a.sub(one, muT, 'one_minus_mu_t'),
      muT1,
      oneMinusMsNew: a.sub(one, newSchedule, 'one_minus_m_schedule_new'),
      oneMinusMsNext: a.sub(one, msNext, 'one_minus_m_schedule_next'),
      vDenominator: a.sub(one, a.pow(beta2, t, 'beta2_pow_t'), 'v_denominator'),
      epsilon,
    };
    out = emitDenseTfKeras(a, s, c, names);
  }
  a.output(out.w, 'new_variable', ['n'], 'the variable after the step');
  a.output(out.m, 'new_m', ['n'], 'm after the step');
  a.output(out.v, 'new_v', ['n'], 'v after the step');
  b.output(newIterations, 'int64', [], 'iterations + 1');
  a.output(newSchedule, `new_${SCHEDULE_NAME[flavour]}`, [], `${SCHEDULE_NAME[flavour]} after the step`);
  return b.toModel(
    { 'kerasopt.kind': NADAM_STEP_KIND, 'kerasopt.format': NADAM_STEP_FORMAT, 'kerasopt.flavour': flavour, 'kerasopt.dtype': dtype },
    `kerasopt Nadam step (${flavour}, ${dtype}). Inputs: ${nadamStepInputs(flavour).join(', ')}. Outputs: ${nadamStepOutputs(flavour).join(', ')}.`,
  );
}
