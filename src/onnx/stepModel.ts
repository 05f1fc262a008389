import { readFileSync } from 'node:fs';
import { BackendError, FormatError, KerasValueError } from '../errors.js';
import { createSession, loadOnnxRuntime, type OnnxSessionOptions, type OrtModule, type OrtSession, type OrtTensor } from '../backends/onnx/runtime.js';
import { FLAVOUR_LIST, isFlavour, isNewStyle, type Flavour } from '../optimizers/flavour.js';
import type { Nadam } from '../optimizers/nadam/index.js';
import type { Variable } from '../tensor/variable.js';
import { isFloatDType, type FloatDType } from '../tensor/dtype.js';
import { toHalfBits, fromHalfBits } from '../tensor/float16.js';
import { sameShape, shapeToString, Tensor, type FloatTensor } from '../tensor/tensor.js';
import { NADAM_STEP_FORMAT, NADAM_STEP_KIND, nadamStepInputs, nadamStepOutputs, SCHEDULE_NAME } from './export.js';
import { decodeModel, ONNX_DATA_TYPE, type ModelObject } from './proto.js';

/** The state and hyperparameters one exported step reads. */
export interface NadamStepFeeds {
  readonly variable: FloatTensor;
  readonly gradient: FloatTensor;
  readonly m: FloatTensor;
  readonly v: FloatTensor;
  /** Steps taken so far. */
  readonly iterations: number;
  /** momentum_cache (tf-keras), m_schedule (keras2) or u_product (keras3, tf-keras-new) before the step. */
  readonly schedule: number;
  /** Hyperparameters as the flavour holds them in the variable's dtype (see the model's input docs). */
  readonly learning_rate: number;
  readonly beta_1: number;
  readonly beta_2: number;
  readonly epsilon: number;
  /** tf-keras and keras2 only (default 0.004). */
  readonly schedule_decay?: number;
}

/** The state after one exported step (new tensors). */
export interface NadamStepResult {
  readonly variable: FloatTensor;
  readonly m: FloatTensor;
  readonly v: FloatTensor;
  readonly iterations: number;
  readonly schedule: number;
}

function metadata(model: ReturnType<typeof decodeModel>): Map<string, string> {
  return new Map((model.metadata_props ?? []).map((p) => [p.key ?? '', p.value ?? '']));
}

/**
 * Runs a Nadam step model written by `exportNadamStep` (or the `export-onnx` command) with
 * onnxruntime-node. `load` refuses anything that is not such a model, naming what is missing.
 */
export class OnnxNadamStep {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    readonly flavour: Flavour,
    readonly dtype: FloatDType,
    private readonly file: string,
  ) {}

  /** Loads a step model from a path or from its bytes (`file` names it in errors). */
  static async load(source: string | Uint8Array, options: OnnxSessionOptions & { file?: string } = {}): Promise<OnnxNadamStep> {
    const file = typeof source === 'string' ? source : (options.file ?? '<onnx bytes>');
    let bytes: Uint8Array;
    try {
      bytes = typeof source === 'string' ? readFileSync(source) : source;
    } catch (e) {
      throw new FormatError(file, `cannot read: ${(e as Error).message}`);
    }
    const model = decodeModel(bytes, file);
    const meta = metadata(model);
    if (meta.get('kerasopt.kind') !== NADAM_STEP_KIND) {
      throw new FormatError(file, `not a kerasopt Nadam step model: metadata 'kerasopt.kind' is ${JSON.stringify(meta.get('kerasopt.kind') ?? null)}, expected '${NADAM_STEP_KIND}' (write one with 'kerasopt export-onnx')`);
    }
    if (meta.get('kerasopt.format') !== NADAM_STEP_FORMAT) {
      throw new FormatError(file, `Nadam step model format ${JSON.stringify(meta.get('kerasopt.format') ?? null)} is not supported; expected '${NADAM_STEP_FORMAT}'`);
    }
    const flavour = meta.get('kerasopt.flavour');
    const dtype = meta.get('kerasopt.dtype');
    if (!isFlavour(flavour)) throw new FormatError(file, `metadata 'kerasopt.flavour' is ${JSON.stringify(flavour ?? null)}, expected ${FLAVOUR_LIST}`);
    if (!isFloatDType(dtype)) throw new FormatError(file, `metadata 'kerasopt.dtype' is ${JSON.stringify(dtype ?? null)}, expected float16, float32 or float64`);
    const graph = model.graph;
    const inputs = (graph?.input ?? []).map((i) => i.name);
    const outputs = (graph?.output ?? []).map((o) => o.name);
    const wantIn = nadamStepInputs(flavour);
    const wantOut = nadamStepOutputs(flavour);
    for (const [kind, have, want] of [['input', inputs, wantIn], ['output', outputs, wantOut]] as const) {
      const missing = want.filter((n) => !have.includes(n));
      if (missing.length > 0) throw new FormatError(file, `Nadam step model (${flavour}) lacks graph ${kind}(s) ${missing.map((n) => `'${n}'`).join(', ')}`);
    }
    checkElementTypes(file, flavour, dtype, graph!);
    const ort = loadOnnxRuntime();
    const session = await createSession(bytes, `Nadam step model ${file}`, options);
    return new OnnxNadamStep(ort, session, flavour, dtype, file);
  }

  /** Runs one step; the inputs are not modified. */
  async run(feeds: NadamStepFeeds): Promise<NadamStepResult> {
    const where = `Nadam step (${this.flavour}, ${this.dtype}) of ${this.file}`;
    const w = feeds.variable;
    for (const name of ['variable', 'gradient', 'm', 'v'] as const) {
      const t = feeds[name];
      if (!(t instanceof Tensor)) throw new BackendError(`${where}: tensor '${name}' is missing or not a Tensor`);
      if (t.dtype !== this.dtype) throw new BackendError(`${where}: tensor '${name}' has dtype ${t.dtype}, the model takes ${this.dtype}`);
      if (!sameShape(t.shape, w.shape)) throw new BackendError(`${where}: tensor '${name}' has shape ${shapeToString(t.shape)}, 'variable' has ${shapeToString(w.shape)}`);
    }
    const scalars: Record<string, number | undefined> = {
      [SCHEDULE_NAME[this.flavour]]: feeds.schedule,
      learning_rate: feeds.learning_rate,
      beta_1: feeds.beta_1,
      beta_2: feeds.beta_2,
      epsilon: feeds.epsilon,
      ...(isNewStyle(this.flavour) ? {} : { schedule_decay: feeds.schedule_decay ?? 0.004 }),
    };
    const input: Record<string, OrtTensor> = {};
    for (const name of ['variable', 'gradient', 'm', 'v'] as const) input[name] = new this.ort.Tensor(this.dtype, feeds[name].data as Float32Array, [w.size]);
    for (const [name, value] of Object.entries(scalars)) {
      if (typeof value !== 'number' || Number.isNaN(value)) throw new KerasValueError(`${where}: scalar '${name}' must be a number, got ${JSON.stringify(value)}`);
      input[name] = this.scalar(value);
    }
    if (!Number.isSafeInteger(feeds.iterations) || feeds.iterations < 0) {
      throw new KerasValueError(`${where}: scalar 'iterations' must be an integer >= 0, got ${JSON.stringify(feeds.iterations)}`);
    }
    input.iterations = new this.ort.Tensor('int64', BigInt64Array.of(BigInt(feeds.iterations)), []);
    let out: Record<string, OrtTensor>;
    try {
      out = await this.session.run(input) as Record<string, OrtTensor>;
    } catch (e) {
      throw new BackendError(`${where}: onnxruntime failed: ${(e as Error).message}`);
    }
    const tensor = (name: string): FloatTensor => new Tensor(this.dtype, w.shape, out[name]!.data as Float32Array);
    const scheduleData = out[`new_${SCHEDULE_NAME[this.flavour]}`]!.data as ArrayLike<number>;
    return {
      variable: tensor('new_variable'),
      m: tensor('new_m'),
      v: tensor('new_v'),
      iterations: Number((out.new_iterations!.data as BigInt64Array)[0]),
      schedule: this.dtype === 'float16' ? fromHalfBits(scheduleData[0]!) : scheduleData[0]!,
    };
  }

  /** Releases the onnxruntime session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }

  private scalar(value: number): OrtTensor {
    if (this.dtype === 'float16') return new this.ort.Tensor('float16', Uint16Array.of(toHalfBits(value)), []);
    return new this.ort.Tensor(this.dtype, this.dtype === 'float32' ? Float32Array.of(value) : Float64Array.of(value), []);
  }
}

/** ONNX element type codes by name, for messages. */
const TYPE_NAME = new Map<number, string>(Object.entries(ONNX_DATA_TYPE).map(([name, code]) => [code, name]));

/**
 * Checks, before onnxruntime sees the model, that every tensor of the step has the element type the
 * metadata promises (iterations int64, everything else `dtype`), naming the first that does not.
 */
function checkElementTypes(file: string, flavour: Flavour, dtype: FloatDType, graph: Partial<ModelObject['graph']>): void {
  for (const [kind, values, names] of [['input', graph.input ?? [], nadamStepInputs(flavour)], ['output', graph.output ?? [], nadamStepOutputs(flavour)]] as const) {
    for (const name of names) {
      const want = name === 'iterations' || name === 'new_iterations' ? 'int64' : dtype;
      const code = values.find((v) => v.name === name)?.type?.tensor_type?.elem_type;
      const have = code === undefined ? 'no tensor type' : (TYPE_NAME.get(code) ?? `element type ${code}`);
      if (have !== want) throw new FormatError(file, `Nadam step model (${flavour}, ${dtype}): graph ${kind} '${name}' is ${have}, expected ${want}`);
    }
  }
}

/**
 * The feeds that make an exported step reproduce `optimizer`'s next step on `variable`: its
 * current state and slots, and the hyperparameters as the flavour holds them before casting to the
 * variable's dtype (tf.keras keeps learning_rate, beta_1 and beta_2 in float32 variables, Keras 3
 * keeps learning_rate in one). The optimizer must have been built on `variable`.
 */
export function nadamStepFeeds(optimizer: Nadam, variable: Variable, gradient: FloatTensor): NadamStepFeeds {
  const { recipe, hyperparameters: h } = optimizer;
  const [first, second] = recipe.slotNames;
  const held = (key: 'learning_rate' | 'beta_1' | 'beta_2', value: number): number => (recipe.float32Hypers.has(key) ? Math.fround(value) : value);
  return {
    variable: variable.value as FloatTensor,
    gradient,
    m: optimizer.getSlot(variable, first).value as FloatTensor,
    v: optimizer.getSlot(variable, second).value as FloatTensor,
    iterations: optimizer.iterations,
    schedule: optimizer.getWeight(recipe.scheduleWeight).value.get(0),
    learning_rate: held('learning_rate', optimizer.learningRateValue()),
    beta_1: held('beta_1', h.beta_1),
    beta_2: held('beta_2', h.beta_2),
    epsilon: h.epsilon,
    schedule_decay: h.schedule_decay,
  };
}
