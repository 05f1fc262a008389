import type { Backend, DenseStep, NadamCoefficients, NadamState } from '../../backends/backend.js';
import { HyperparameterError, KerasValueError } from '../../errors.js';
import { arith } from '../../tensor/arith.js';
import type { FloatDType } from '../../tensor/dtype.js';
import type { FloatTensor } from '../../tensor/tensor.js';
import type { Variable } from '../../tensor/variable.js';
import { FLAVOUR_LIST, isFlavour, isNewStyle, type Flavour } from '../flavour.js';
import { Optimizer, type PreparedGradient } from '../optimizer.js';
import { isLearningRateSchedule, type LearningRateSchedule } from '../schedules.js';
import { settle, type Flow } from '../steps.js';
import type { ConfigDialect } from '../../config/dialects.js';
import { nadamOptionsFromConfig, type ConfigReadOptions } from '../../config/fromConfig.js';
import { configExtras, nadamConfig, type NadamConfigExtras } from './config.js';
import { refuseUnimplemented, validateClip, validateHyperparameters, type NadamHyperparameters } from './hyper.js';
import { keras3Coefficients, nextUProduct } from './keras3.js';
import { RECIPES, type NadamRecipe } from './recipes.js';
import { tfKerasCoefficients } from './tfKeras.js';
import { nextUProductTf211, tfKerasNewCoefficients } from './tfKerasNew.js';

/**
 * Nadam's constructor arguments: the Keras config keys, snake_case exactly as Keras spells them
 * (with Keras's aliases `lr` and `schedule_decay`), plus kerasopt's own camelCase options.
 */
export interface NadamOptions {
  /** The step size, >= 0 (default 0.001; keras2: 0.002). A schedule only in the keras3 and tf-keras-new flavours, as in Keras. */
  learning_rate?: number | LearningRateSchedule;
  /** Legacy alias of learning_rate; when both are given, `lr` wins, as in TF. */
  lr?: number;
  /** Decay rate of the first moment (m), in [0, 1) (default 0.9). */
  beta_1?: number;
  /** Decay rate of the second moment (v), in [0, 1) (default 0.999). */
  beta_2?: number;
  /** null means Keras's backend epsilon, 1e-7; so does 0 in the tf-keras flavour (TF's `epsilon or 1e-7`), not in keras2/keras3. */
  epsilon?: number | null;
  /**
   * tf-keras: accepted for compatibility but, exactly as in TF's Nadam, overwritten by
   * schedule_decay (default 0.004), with a warning when they differ.
   */
  decay?: number;
  /** Momentum-schedule exponent factor (tf-keras and keras2; default 0.004). */
  schedule_decay?: number;
  /** The optimizer's name, written in its config (default 'Nadam'; keras3: 'nadam'). */
  name?: string;
  /** Clip each gradient to this L2 norm (> 0), as the flavour applies it (README "Nadam flavours"). */
  clipnorm?: number | null;
  /** Clip each gradient element to [-clipvalue, clipvalue] (> 0). */
  clipvalue?: number | null;
  /** Clip all gradients together to this global L2 norm (> 0); not in keras2. */
  global_clipnorm?: number | null;
  /** Keras 3 / TF 2.11+ keys kerasopt does not implement; any active value is refused with an error naming it. */
  weight_decay?: number | null;
  use_ema?: boolean;
  ema_momentum?: number;
  ema_overwrite_frequency?: number | null;
  loss_scale_factor?: number | null;
  gradient_accumulation_steps?: number | null;
  /** TF 2.11-2.15 config keys; kept so getConfig() writes them back (they change no number). */
  jit_compile?: boolean;
  is_legacy_optimizer?: boolean;
  /** Which Keras release's key layout getConfig() writes (default: the flavour's; see src/config/dialects.ts). */
  dialect?: ConfigDialect;
  /** Which Keras Nadam to reproduce: 'tf-keras' (default), 'keras2', 'keras3' or 'tf-keras-new'. */
  flavour?: Flavour;
  /** A backend or the name it is registered under (default: 'typed'). */
  backend?: string | Backend;
  /** Where warnings go (default: console.warn). */
  onWarning?: (message: string) => void;
}

const F32 = Math.fround;

/**
 * The Nadam optimizer (Adam with Nesterov momentum), reproducing one of four Keras flavours op by
 * op: tf.keras optimizer_v2 (default; TF 1.14 to 2.10), standalone Keras 2, Keras 3, or the TF 2.11-2.15
 * tf.keras new optimizers (`tf-keras-new`).
 *
 * @example
 * const w = new Variable(Tensor.from([1, 2], 'float32'), { name: 'w' });
 * const opt = new Nadam({ learning_rate: 0.01 });
 * opt.applyGradientsSync([[Tensor.from([0.1, -0.2], 'float32'), w]]);
 */
export class Nadam extends Optimizer {
  readonly hyperparameters: NadamHyperparameters;
  readonly recipe: NadamRecipe;
  protected readonly sparseUpdate: 'unique-rows' | 'dense';
  private schedule: Variable | null = null;
  private readonly learningRateVar: Variable | null = null;
  private readonly configExtras: NadamConfigExtras;

  constructor(options: NadamOptions = {}) {
    const flavour = options.flavour ?? 'tf-keras';
    if (!isFlavour(flavour)) throw new KerasValueError(`unknown flavour '${String(flavour)}'; expected ${FLAVOUR_LIST}`);
    const recipe = RECIPES[flavour];
    const clip = {
      clipnorm: validateClip('clipnorm', options.clipnorm),
      clipvalue: validateClip('clipvalue', options.clipvalue),
      global_clipnorm: validateClip('global_clipnorm', options.global_clipnorm),
    };
    Nadam.checkFlavourOptions(flavour, options, clip);
    super({ name: options.name ?? recipe.defaultName, flavour, iterationsName: recipe.iterationsName, clip, backend: options.backend, onWarning: options.onWarning });
    this.recipe = recipe;
    this.configExtras = configExtras(options, flavour);
    this.sparseUpdate = recipe.sparseUpdate;
    const scheduleDecay = options.schedule_decay ?? 0.004;
    if (flavour === 'tf-keras' && options.decay !== undefined && options.decay !== scheduleDecay) {
      this.warning(`tf.keras Nadam ignores decay=${options.decay}: TF overwrites it with schedule_decay (${scheduleDecay}).`);
    }
    this.hyperparameters = Object.freeze({ // validated once, so never changed afterwards
      learning_rate: options.lr ?? options.learning_rate ?? recipe.defaultLearningRate,
      beta_1: options.beta_1 ?? 0.9,
      beta_2: options.beta_2 ?? 0.999,
      // tf.keras: `epsilon or backend_config.epsilon()` (0 too); Keras 2: only None; Keras 3 keeps what it is given. NaN is refused below, not replaced.
      epsilon: options.epsilon === null || options.epsilon === undefined || (options.epsilon === 0 && flavour === 'tf-keras') ? 1e-7 : options.epsilon,
      schedule_decay: scheduleDecay,
    });
    validateHyperparameters(this.hyperparameters, flavour);
    const lr = this.hyperparameters.learning_rate;
    // Keras 3 saves its float32 learning_rate variable; TF 2.11+ keeps it out of `variables`.
    if (isNewStyle(flavour) && !isLearningRateSchedule(lr)) this.learningRateVar = this.addWeight('learning_rate', [], 'float32', lr, flavour === 'keras3');
  }

  /**
   * Recreates a Nadam from its Keras config, as Keras's from_config does: `lr` and `schedule_decay`
   * accepted where that Keras accepts them, a serialized schedule recreated (custom ones only from
   * `customObjects`), any other unknown key refused with its name.
   */
  static fromConfig(config: Readonly<Record<string, unknown>>, options: ConfigReadOptions & Pick<NadamOptions, 'backend'> = {}): Nadam {
    return new Nadam({ ...nadamOptionsFromConfig(config, options), backend: options.backend });
  }

  /** The Keras release whose config layout getConfig() writes. */
  get dialect(): ConfigDialect {
    return this.configExtras.dialect;
  }

  /** The Keras config, key for key as the dialect's get_config() writes it (see README "Configs"). */
  getConfig(): Record<string, unknown> {
    return nadamConfig({
      name: this.name,
      hyper: this.hyperparameters,
      clip: this.clip,
      learningRate: this.learningRateValue(),
      built: this.built,
      extras: this.configExtras,
    });
  }

  /** The learning rate used by the next step (a schedule is evaluated at the current iterations). */
  learningRateValue(): number {
    const lr = this.hyperparameters.learning_rate;
    if (isLearningRateSchedule(lr)) return lr.call(this.iterations);
    if (this.learningRateVar) return this.learningRateVar.value.get(0);
    return lr;
  }

  protected override checkBeforeStep(): void {
    const lr = this.learningRateValue();
    if (!(lr >= 0 && Number.isFinite(lr))) {
      throw new HyperparameterError('learning_rate', `learning_rate at iteration ${this.iterations} is ${lr}; expected a finite number >= 0`);
    }
  }

  protected createSlots(fresh: readonly Variable[], first: boolean): void {
    const [a, b] = this.recipe.slotNames;
    if (this.recipe.flavour === 'tf-keras-new' || this.recipe.flavour === 'keras3') {
      // build(): m then v per variable (interleaved). TF 2.11+ keeps u_product out of `variables`;
      // Keras 3.10+ tracks it after the slots (3.0-3.9 before them: see docs/keras-releases.md).
      if (first && this.recipe.flavour === 'tf-keras-new') this.addScheduleWeight(fresh[0]!.dtype as FloatDType);
      for (const v of fresh) {
        this.addSlot(v, a);
        this.addSlot(v, b);
      }
      if (first && this.recipe.flavour === 'keras3') this.addScheduleWeight(fresh[0]!.dtype as FloatDType);
      return;
    }
    if (first) this.addScheduleWeight(fresh[0]!.dtype as FloatDType);
    for (const v of fresh) this.addSlot(v, a);
    for (const v of fresh) this.addSlot(v, b);
  }

  protected *updateStep(items: readonly PreparedGradient[]): Flow<void> {
    if (this.recipe.flavour === 'keras3') yield* this.keras3Step(items);
    else if (this.recipe.flavour === 'tf-keras-new') yield* this.tfKerasNewStep(items);
    else yield* this.tfKerasStep(items);
  }

  private static checkFlavourOptions(flavour: Flavour, o: NadamOptions, clip: { clipnorm: number | null; clipvalue: number | null; global_clipnorm: number | null }): void {
    const set = Object.entries(clip).filter(([, v]) => v !== null).map(([k]) => k);
    if (flavour === 'keras3') {
      if (set.length > 1) throw new KerasValueError(`Only one of clipnorm, clipvalue and global_clipnorm can be set; got ${set.join(', ')}`);
      refuseUnimplemented('weight_decay', o.weight_decay ?? undefined, undefined);
      refuseUnimplemented('use_ema', o.use_ema, false);
      refuseUnimplemented('loss_scale_factor', o.loss_scale_factor ?? undefined, undefined);
      refuseUnimplemented('gradient_accumulation_steps', o.gradient_accumulation_steps ?? undefined, undefined);
      return;
    }
    if (flavour === 'tf-keras-new') {
      // TF 2.11 refuses only this pair; with clipvalue too, clipnorm (then global_clipnorm) wins, as in _clip_gradients.
      if (clip.clipnorm !== null && clip.global_clipnorm !== null) {
        throw new KerasValueError(`At most one of clipnorm and global_clipnorm can be set. Received: clipnorm=${clip.clipnorm}, global_clipnorm=${clip.global_clipnorm}.`);
      }
      refuseUnimplemented('weight_decay', o.weight_decay ?? undefined, undefined);
      refuseUnimplemented('use_ema', o.use_ema, false);
      for (const key of ['loss_scale_factor', 'gradient_accumulation_steps'] as const) {
        if (o[key] !== undefined && o[key] !== null) throw new KerasValueError(`${key} is a Keras 3 option; the TF 2.11-2.15 Nadam (tf-keras-new) does not take it`, 'UNSUPPORTED_FEATURE');
      }
      return;
    }
    for (const key of ['weight_decay', 'use_ema', 'ema_momentum', 'ema_overwrite_frequency', 'loss_scale_factor', 'gradient_accumulation_steps', 'jit_compile', 'is_legacy_optimizer'] as const) {
      if (o[key] !== undefined && o[key] !== null) throw new KerasValueError(`${key} is a Keras 3 option; the ${flavour} Nadam does not take it`, 'UNSUPPORTED_FEATURE');
    }
    if (flavour === 'keras2' && clip.global_clipnorm !== null) throw new KerasValueError('global_clipnorm is not an option of standalone Keras 2 optimizers', 'UNSUPPORTED_FEATURE');
    if (flavour === 'tf-keras' && clip.clipnorm !== null && clip.global_clipnorm !== null) {
      throw new KerasValueError(`Cannot accept both clipnorm and global_clipnorm, passed clipnorm ${clip.clipnorm}, global_clipnorm ${clip.global_clipnorm}`);
    }
  }

  private addScheduleWeight(dtype: FloatDType): void {
    this.schedule = this.addWeight(this.recipe.scheduleWeight, [], dtype, 'ones', this.recipe.scheduleSaved);
  }

  /** A hyperparameter as the flavour stores it before casting it to a variable's dtype. */
  private stored(key: 'learning_rate' | 'beta_1' | 'beta_2', value: number): number {
    return this.recipe.float32Hypers.has(key) ? F32(value) : value;
  }

  private *tfKerasStep(items: readonly PreparedGradient[]): Flow<void> {
    const h = this.hyperparameters;
    const schedule = this.schedule!;
    const cache = schedule.value.get(0); // read once, before any variable moves
    const byDtype = new Map<FloatDType, ReturnType<typeof tfKerasCoefficients>>();
    for (const { variable } of items) {
      if (byDtype.has(variable.dtype)) continue;
      byDtype.set(variable.dtype, tfKerasCoefficients(arith(variable.dtype), {
        lr: this.stored('learning_rate', this.learningRateValue()),
        beta_1: this.stored('beta_1', h.beta_1),
        beta_2: this.stored('beta_2', h.beta_2),
        epsilon: h.epsilon,
        schedule_decay: h.schedule_decay,
        iterations: this.iterations,
        cache,
        stepForm: this.recipe.flavour === 'keras2' ? 'cast-then-add' : 'add-then-cast',
      }));
    }
    const own = byDtype.get(schedule.dtype as FloatDType);
    if (own) schedule.value.set(0, own.msNew);
    for (const [dtype, { c }] of byDtype) {
      const mine = items.filter((x) => x.variable.dtype === dtype);
      for (const item of mine) if (item.rows) yield* settle(this.backend.nadamSparse(this.stateOf(item.variable), item.rows, c));
      yield* this.denseSteps(mine.filter((x) => !x.rows).map((x) => ({ state: this.stateOf(x.variable), grad: x.dense! })), c);
    }
  }

  private *keras3Step(items: readonly PreparedGradient[]): Flow<void> {
    const h = this.hyperparameters;
    const schedule = this.schedule!;
    const uProduct = nextUProduct(arith(schedule.dtype as FloatDType), schedule.value.get(0), h.beta_1, this.iterations);
    schedule.value.set(0, uProduct);
    const lr = this.stored('learning_rate', this.learningRateValue());
    for (const dtype of new Set(items.map((x) => x.variable.dtype))) {
      const c = keras3Coefficients(arith(dtype), {
        lr, beta_1: h.beta_1, beta_2: h.beta_2, epsilon: h.epsilon, iterations: this.iterations, uProduct,
      });
      const mine = items.filter((x) => x.variable.dtype === dtype);
      yield* this.denseSteps(mine.map((x) => ({ state: this.stateOf(x.variable), grad: x.dense! })), c);
    }
  }

  /**
   * TF 2.11-2.15: the first variable's update_step multiplies u_product by u_t in that variable's
   * dtype (later ones read it back); every variable then uses Keras 3's per-element math, or the
   * decay-then-scatter moments for a sparse gradient (its unique rows made dense).
   */
  private *tfKerasNewStep(items: readonly PreparedGradient[]): Flow<void> {
    const h = this.hyperparameters;
    const schedule = this.schedule!;
    for (const { variable } of items) {
      if (variable.dtype !== schedule.dtype) {
        throw new KerasValueError(`variable '${variable.name}' is ${variable.dtype} but u_product is ${schedule.dtype} (the dtype of the first variable Nadam was built on): TF 2.11+ Nadam fails on mixed dtypes (u_product * u_t)`);
      }
    }
    const dtype = schedule.dtype as FloatDType;
    const uProduct = nextUProductTf211(arith(dtype), schedule.value.get(0), h.beta_1, this.iterations);
    schedule.value.set(0, uProduct);
    const lr = this.stored('learning_rate', this.learningRateValue());
    const inputs = { lr, beta_1: h.beta_1, beta_2: h.beta_2, epsilon: h.epsilon, iterations: this.iterations, uProduct };
    const dense = items.filter((x) => !x.rows).map((x) => ({ state: this.stateOf(x.variable), grad: x.dense! }));
    yield* this.denseSteps(dense, tfKerasNewCoefficients(arith(dtype), inputs, false));
    const cSparse = tfKerasNewCoefficients(arith(dtype), inputs, true);
    for (const item of items) {
      // one at a time: each sparse gradient is made dense only for its own step
      if (item.rows) yield* this.denseSteps([{ state: this.stateOf(item.variable), grad: yield* settle(this.backend.scatterRows(item.rows, item.variable.shape)) }], cSparse);
    }
  }

  /** Dense steps sharing `c`: one backend call when the backend batches (onnx), else one per variable. */
  private *denseSteps(steps: readonly DenseStep[], c: NadamCoefficients): Flow<void> {
    if (steps.length === 0) return;
    if (this.backend.nadamDenseBatch) yield* settle(this.backend.nadamDenseBatch(steps, c));
    else for (const x of steps) yield* settle(this.backend.nadamDense(x.state, x.grad, c));
  }

  private stateOf(variable: Variable<FloatDType>): NadamState {
    const [a, b] = this.recipe.slotNames;
    return {
      variable: variable.value,
      m: this.getSlot(variable, a).value as FloatTensor,
      v: this.getSlot(variable, b).value as FloatTensor,
    };
  }
}
