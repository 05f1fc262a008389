import type { Backend, UniqueRows } from '../backends/backend.js';
import { getBackend } from '../backends/registry.js';
import { Float32Arena } from '../backends/typed/arena.js';
import { BackendError, GradientMismatchError, HyperparameterError, KerasTypeError, KerasValueError, UnsupportedDTypeError } from '../errors.js';
import { allocate, isFloatDType, type DType, type FloatDType } from '../tensor/dtype.js';
import { inSharedPool } from '../tensor/pool.js';
import { IndexedSlices, sameShape, shapeToString, Tensor, type FloatTensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import { clipGradients, densify, type AnyGradient, type ClipOptions } from './clipping.js';
import { isNewStyle, type Flavour } from './flavour.js';
import { runAsync, runSync, settle, type Flow } from './steps.js';

/** A gradient as callers hand it over: dense, sparse, or missing (skipped with a warning, as in TF). */
export type Gradient = Tensor | IndexedSlices | null | undefined;
/** One (gradient, variable) pair, in TF's order. */
export type GradientAndVariable = readonly [Gradient, Variable];

/** How a new weight or slot is filled. */
export type Initializer = 'zeros' | 'ones' | number;

/**
 * What `minimize` and `getGradients` call instead of TF's gradient tape: it evaluates the loss at
 * the variables' current values and returns it with one gradient per variable, in the same order.
 */
export type LossFunction = (variables: readonly Variable[]) => { loss: number; gradients: readonly Gradient[] };

/** A validated gradient ready for the update: dense, or unique sparse rows. */
export interface PreparedGradient {
  readonly variable: Variable<FloatDType>;
  readonly dense?: FloatTensor;
  readonly rows?: UniqueRows;
}

export interface OptimizerBaseOptions {
  readonly name: string;
  readonly flavour: Flavour;
  readonly iterationsName: string;
  readonly clip: ClipOptions;
  /** A backend or its registered name (default: the registry's default, 'typed'). */
  readonly backend?: string | Backend;
  /** Receives warnings such as TF's "Gradients do not exist" (default: console.warn). */
  readonly onWarning?: (message: string) => void;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (x instanceof Tensor || x instanceof Variable) return x.toString();
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return typeof x;
}

function fill(t: Tensor, init: Initializer): void {
  const value = init === 'zeros' ? 0 : init === 'ones' ? 1 : init;
  if (value !== 0) for (let i = 0; i < t.size; i++) t.set(i, value);
}

/**
 * The base every kerasopt optimizer stands on. It owns what Keras's base classes own: iterations,
 * the ordered list of weights and slots, gradient validation, clipping, sparse de-duplication,
 * get/set of weights, and the sync/async drivers. A subclass adds only its slots, its math and its config.
 */
export abstract class Optimizer {
  readonly name: string;
  readonly flavour: Flavour;
  readonly backend: Backend;
  protected readonly clip: ClipOptions;
  /** How this flavour feeds sparse gradients to the update: TF's unique rows, or made dense first. */
  protected abstract readonly sparseUpdate: 'unique-rows' | 'dense';

  private readonly saved: Variable[] = [];
  private readonly byName = new Map<string, Variable>();
  private readonly slotTable = new Map<number, Map<string, Variable>>();
  private readonly slotNames: string[] = [];
  private readonly known = new Set<number>();
  private readonly iterationsVar: Variable<'int64'>;
  private readonly warn: (message: string) => void;

  protected constructor(o: OptimizerBaseOptions) {
    this.name = o.name;
    this.flavour = o.flavour;
    this.clip = o.clip;
    this.backend = typeof o.backend === 'object' ? o.backend : getBackend(o.backend);
    this.warn = o.onWarning ?? ((m) => console.warn(m));
    this.iterationsVar = this.addWeight(o.iterationsName, [], 'int64') as Variable<'int64'>;
  }

  /** The number of steps applied so far. */
  get iterations(): number {
    return Number(this.iterationsVar.value.data[0]);
  }

  /** The int64 variable that holds `iterations` (saved as the first weight). */
  get iterationsVariable(): Variable<'int64'> {
    return this.iterationsVar;
  }

  /** The optimizer's saved variables in Keras order (what `getWeights` returns). */
  get weights(): Variable[] {
    return [...this.saved];
  }

  /** Same as `weights` (TF's `variables()`). */
  variables(): Variable[] {
    return this.weights;
  }

  /**
   * Creates a non-slot weight (like TF's add_weight). `saved: false` keeps it out of `weights`,
   * as standalone Keras 2 does with Nadam's m_schedule.
   */
  addWeight(name: string, shape: readonly number[], dtype: DType, initializer: Initializer = 'zeros', saved = true): Variable {
    if (this.byName.has(name)) throw new KerasValueError(`optimizer ${this.name} already has a weight named '${name}'`);
    const t = Tensor.zeros(dtype, shape);
    fill(t, initializer);
    const v = new Variable(t, { name, trainable: false });
    this.byName.set(name, v);
    if (saved) this.saved.push(v);
    return v;
  }

  /** A non-slot weight by name (e.g. 'momentum_cache', 'm_schedule', 'u_product', 'learning_rate'). */
  getWeight(name: string): Variable {
    const v = this.byName.get(name);
    if (!v) throw new KerasValueError(`optimizer ${this.name} has no weight named '${name}'; it has: ${[...this.byName.keys()].join(', ')}`);
    return v;
  }

  /**
   * Creates slot `slotName` for `variable` if it does not exist yet (same dtype and shape), and returns
   * it (TF's add_slot). A float32 variable that lives in a `Float32Arena` gets its slot in the same
   * arena while the arena has room, so that the typed backend's step runs in place; other float32
   * slots go to the managed shared memory (see `slotZeros`).
   */
  addSlot(variable: Variable, slotName: string, initializer: Initializer = 'zeros'): Variable {
    let slots = this.slotTable.get(variable.uid);
    if (!slots) this.slotTable.set(variable.uid, (slots = new Map()));
    const existing = slots.get(slotName);
    if (existing) return existing;
    if (!this.slotNames.includes(slotName)) this.slotNames.push(slotName);
    const t = Float32Arena.zerosBeside(variable.value) ?? this.slotZeros(variable);
    fill(t, initializer);
    const slot = new Variable(t, { name: `${variable.name}/${slotName}`, trainable: false });
    slots.set(slotName, slot);
    this.saved.push(slot);
    return slot;
  }

  /**
   * A new slot's zeros. On the typed backend: made by Tensor.zeros (float32 and float64 ones in the
   * managed shared memory, where the kernels step them in place, with worker threads when large). On
   * the others: beside the variable, in the shared memory when the variable is there (the onnx
   * backend hands such state to its worker threads), else in ordinary arrays, which onnxruntime-node
   * takes without a copy (it refuses SharedArrayBuffer-backed ones).
   */
  private slotZeros(variable: Variable): Tensor {
    if (this.backend.name === 'typed' || inSharedPool(variable.value.data)) return Tensor.zeros(variable.dtype, variable.shape);
    return new Tensor(variable.dtype, variable.shape, allocate(variable.dtype, variable.value.size, false));
  }

  /** The slot `slotName` of `variable`. */
  getSlot(variable: Variable, slotName: string): Variable {
    const slot = this.slotTable.get(variable.uid)?.get(slotName);
    if (!slot) {
      throw new KerasValueError(`optimizer ${this.name} has no slot '${slotName}' for variable '${variable.name}'; slot names: ${this.slotNames.join(', ') || 'none yet'}`);
    }
    return slot;
  }

  /** The names of the slots this optimizer has created, in creation order. */
  getSlotNames(): string[] {
    return [...this.slotNames];
  }

  /** Copies of the weights' values, in `weights` order. */
  getWeights(): Tensor[] {
    return this.saved.map((v) => v.read());
  }

  /**
   * Sets every weight at once, in `weights` order. Counts, shapes and dtypes are checked for all
   * weights before any is written, so a failed call changes nothing.
   */
  setWeights(weights: readonly Tensor[]): void {
    if (!Array.isArray(weights)) throw new KerasTypeError(`setWeights expects an array of Tensors, got ${describe(weights)}`);
    if (weights.length !== this.saved.length) {
      throw new KerasValueError(
        `You called setWeights(weights) on optimizer ${this.name} with a weight list of length ${weights.length}, ` +
          `but the optimizer was expecting ${this.saved.length} weights (${this.saved.map((v) => v.name).join(', ')}). ` +
          `Build the optimizer on its variables first (build(varList)) so that its slots exist.`,
      );
    }
    weights.forEach((w, i) => {
      const target = this.saved[i]!;
      if (!(w instanceof Tensor)) throw new KerasTypeError(`weight ${i} ('${target.name}') must be a Tensor, got ${describe(w)}`);
      if (w.dtype !== target.dtype || !sameShape(w.shape, target.shape)) {
        throw new KerasValueError(
          `weight ${i} ('${target.name}'): expected ${target.dtype}${shapeToString(target.shape)}, got ${w.dtype}${shapeToString(w.shape)}`,
        );
      }
      this.checkWeightValue(w, target, i);
    });
    weights.forEach((w, i) => this.saved[i]!.assign(w));
  }

  /**
   * Values no step could have produced: a negative iteration count, or a saved learning rate (Keras 3
   * saves it as the scalar weight 'learning_rate') that is NaN, infinite or negative.
   */
  private checkWeightValue(w: Tensor, target: Variable, i: number): void {
    if (target === this.iterationsVar && (w.data[0] as bigint) < 0n) {
      throw new KerasValueError(`weight ${i} ('${target.name}'): expected an iteration count >= 0, got ${w.data[0]}`);
    }
    if (target.name === 'learning_rate' && target.shape.length === 0) {
      const lr = w.get(0);
      if (!(lr >= 0 && Number.isFinite(lr))) {
        throw new HyperparameterError('learning_rate', `weight ${i} ('learning_rate'): expected a finite number >= 0, got ${lr}`);
      }
    }
  }

  /**
   * Creates the slots of `varList` now (TF's `_create_all_weights`, Keras 3's `build`), so that
   * `weights` has its full length before `setWeights` or a load.
   */
  build(varList: readonly Variable[]): void {
    const fresh = varList.filter((v) => !this.known.has(v.uid));
    for (const v of fresh) this.checkVariable(v);
    if (fresh.length === 0) return;
    this.createSlots(fresh, this.known.size === 0);
    for (const v of fresh) this.known.add(v.uid);
  }

  /** Whether `build` (or a first step) has created slots. */
  get built(): boolean {
    return this.known.size > 0;
  }

  /**
   * Applies one step of gradients to their variables and returns the new iteration count.
   * Works on every backend; synchronous backends resolve at once.
   */
  applyGradients(gradsAndVars: Iterable<GradientAndVariable>): Promise<number> {
    try {
      return runAsync(this.applyFlow(gradsAndVars));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `applyGradients` without a promise; only for synchronous backends such as 'typed'. */
  applyGradientsSync(gradsAndVars: Iterable<GradientAndVariable>): number {
    if (!this.backend.synchronous) {
      throw new BackendError(`backend '${this.backend.name}' is asynchronous: use applyGradients (it returns a promise)`);
    }
    return runSync(this.applyFlow(gradsAndVars), this.backend.name);
  }

  /**
   * Returns the gradients of `loss` with respect to `params` (TF's get_gradients). Throws when a
   * gradient is missing, as TF does ("gradient function not implemented").
   */
  getGradients(loss: LossFunction, params: readonly Variable[]): Tensor[] {
    const { gradients } = this.evaluate(loss, params);
    return gradients.map((g, i) => {
      if (g === null || g === undefined) {
        throw new KerasValueError(`no gradient for variable '${params[i]!.name}': the loss function returned ${String(g)} for it`);
      }
      return g instanceof IndexedSlices ? runSync(densify(this.backend, g), this.backend.name) : g;
    });
  }

  /** Evaluates `loss` for its gradients and applies them (TF's minimize); resolves to the new iteration count. */
  minimize(loss: LossFunction, varList: readonly Variable[] | (() => readonly Variable[])): Promise<number> {
    try {
      const vars = typeof varList === 'function' ? varList() : varList;
      const { gradients } = this.evaluate(loss, vars);
      return this.applyGradients(vars.map((v, i) => [gradients[i], v] as const));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The graph-mode `get_updates`: returns the update operations for `params` without running them.
   * Each call of an update evaluates `loss` at the current values and applies one step.
   */
  getUpdates(loss: LossFunction, params: readonly Variable[]): Array<() => Promise<number>> {
    return [() => this.minimize(loss, params)];
  }

  /** The optimizer's Keras config, keys exactly as the flavour's get_config writes them. */
  abstract getConfig(): Record<string, unknown>;

  /** Creates the slots (and first-time weights) for `fresh` variables, in Keras's creation order. */
  protected abstract createSlots(fresh: readonly Variable[], first: boolean): void;
  /** The flavour's update for one step (iterations is incremented by the base afterwards). */
  protected abstract updateStep(items: readonly PreparedGradient[]): Flow<void>;

  /**
   * Refuses a step whose hyperparameters went bad since construction (say, a learning-rate schedule
   * returning NaN). Runs after the gradients are validated and before anything changes.
   */
  protected checkBeforeStep(): void {}

  /** Emits a warning through the configured sink. */
  protected warning(message: string): void {
    this.warn(message);
  }

  private evaluate(loss: LossFunction, vars: readonly Variable[]): { loss: number; gradients: readonly Gradient[] } {
    if (typeof loss !== 'function') throw new KerasTypeError(`loss must be a function returning { loss, gradients }, got ${describe(loss)}`);
    if (!Array.isArray(vars)) throw new KerasTypeError(`var_list must be an array of Variables, got ${describe(vars)}`);
    for (const v of vars) if (!(v instanceof Variable)) throw new KerasValueError(`var_list holds ${describe(v)}, which is not a Variable`);
    const result = loss(vars);
    if (!result || !Array.isArray(result.gradients) || result.gradients.length !== vars.length) {
      throw new KerasTypeError(`the loss function must return { loss, gradients } with ${vars.length} gradients, one per variable`);
    }
    return result;
  }

  private checkVariable(v: Variable): asserts v is Variable<FloatDType> {
    if (!isFloatDType(v.dtype)) throw new UnsupportedDTypeError(`variable '${v.name}' has dtype ${v.dtype}; optimizers update float16, float32 or float64 variables`);
    if (!this.backend.supportsDType(v.dtype)) throw new UnsupportedDTypeError(`backend '${this.backend.name}' does not support ${v.dtype} (variable '${v.name}')`);
  }

  /** Validates every pair before anything changes; drops missing gradients with TF's warning. */
  private validate(gradsAndVars: Iterable<GradientAndVariable>): Array<{ variable: Variable<FloatDType>; grad: AnyGradient }> {
    if (gradsAndVars === null || typeof (gradsAndVars as Iterable<unknown>)?.[Symbol.iterator] !== 'function') {
      throw new KerasTypeError(`grads_and_vars must be an iterable of [gradient, variable] pairs, got ${describe(gradsAndVars)}`);
    }
    const pairs = [...gradsAndVars];
    const out: Array<{ variable: Variable<FloatDType>; grad: AnyGradient }> = [];
    const missing: Variable[] = [];
    const seen = new Set<number>();
    pairs.forEach((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new KerasTypeError(`grads_and_vars[${i}] must be a [gradient, variable] pair, got ${describe(pair)}`);
      }
      const [g, v] = pair as [unknown, unknown];
      if (!(v instanceof Variable)) throw new KerasTypeError(`grads_and_vars[${i}][1] must be a Variable, got ${describe(v)}`);
      if (seen.has(v.uid)) throw new KerasValueError(`variable '${v.name}' appears twice in grads_and_vars; sum its gradients first`);
      seen.add(v.uid);
      this.checkVariable(v);
      if (g === null || g === undefined) {
        missing.push(v);
        return;
      }
      if (isNewStyle(this.flavour) && this.built && !this.known.has(v.uid)) {
        throw new KerasValueError(
          `The optimizer cannot recognize variable '${v.name}'. It was built on other variables; call build() with the full list of trainable variables before training.`,
        );
      }
      out.push({ variable: v, grad: this.checkGradient(g, v, i) });
    });
    if (out.length === 0) {
      throw new KerasValueError(`No gradients provided for any variable: [${pairs.map((p) => `'${(p as GradientAndVariable)[1].name}'`).join(', ')}].`);
    }
    if (missing.length > 0) {
      this.warning(`Gradients do not exist for variables [${missing.map((v) => `'${v.name}'`).join(', ')}] when minimizing the loss.`);
    }
    return out;
  }

  private checkGradient(g: unknown, v: Variable<FloatDType>, i: number): AnyGradient {
    const where = `gradient for variable '${v.name}' (grads_and_vars[${i}])`;
    if (g instanceof Tensor) {
      if (g.dtype !== v.dtype) throw new GradientMismatchError(v.name, `${where} has dtype ${g.dtype}, expected ${v.dtype}`);
      if (!sameShape(g.shape, v.shape)) {
        throw new GradientMismatchError(v.name, `${where} has shape ${shapeToString(g.shape)}, expected ${shapeToString(v.shape)}`);
      }
      return g as FloatTensor;
    }
    if (g instanceof IndexedSlices) {
      if (g.values.dtype !== v.dtype) throw new GradientMismatchError(v.name, `${where}: values have dtype ${g.values.dtype}, expected ${v.dtype}`);
      if (!sameShape(g.denseShape, v.shape)) {
        throw new GradientMismatchError(v.name, `${where}: dense_shape ${shapeToString(g.denseShape)} does not match the variable's ${shapeToString(v.shape)}`);
      }
      const rows = v.shape[0] ?? 0;
      const expected = [g.indices.size, ...v.shape.slice(1)];
      if (v.shape.length === 0 || g.indices.rank !== 1 || !sameShape(g.values.shape, expected)) {
        throw new GradientMismatchError(v.name, `${where}: values of shape ${shapeToString(g.values.shape)} with ${g.indices.size} indices, expected ${shapeToString(expected)}`);
      }
      g.indexArray().forEach((index, k) => {
        if (!Number.isInteger(index) || index < 0 || index >= rows) {
          throw new GradientMismatchError(v.name, `${where}: indices[${k}] = ${index} is not in [0, ${rows})`);
        }
      });
      return g;
    }
    throw new KerasTypeError(`${where} must be a Tensor, an IndexedSlices or null, got ${describe(g)}`);
  }

  private *applyFlow(gradsAndVars: Iterable<GradientAndVariable>): Flow<number> {
    const items = this.validate(gradsAndVars);
    this.checkBeforeStep();
    const clipped = yield* clipGradients(this.flavour, this.backend, items.map((x) => x.grad), this.clip);
    this.build(items.map((x) => x.variable));
    const prepared: PreparedGradient[] = [];
    for (let i = 0; i < items.length; i++) {
      const variable = items[i]!.variable;
      const g = clipped[i]!;
      if (!(g instanceof IndexedSlices)) prepared.push({ variable, dense: g });
      else if (this.sparseUpdate === 'dense') prepared.push({ variable, dense: yield* densify(this.backend, g) });
      else prepared.push({ variable, rows: yield* settle(this.backend.segmentSumRows(g.indexArray(), g.values)) });
    }
    yield* this.updateStep(prepared);
    const iter = this.iterationsVar.value.data;
    iter[0] = iter[0]! + 1n;
    return this.iterations;
  }
}
