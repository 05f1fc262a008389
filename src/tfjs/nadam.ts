import * as tf from '@tensorflow/tfjs';
import { KerasValueError } from '../errors.js';
import { isFlavour } from '../optimizers/flavour.js';
import { Nadam, type NadamOptions } from '../optimizers/nadam/index.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';

/** A float32 view of a tfjs tensor's values, copied: the CPU backend's dataSync hands out its own storage. */
export function copyOf(t: tf.Tensor, what: string): Tensor<'float32'> {
  if (t.dtype !== 'float32') throw new KerasValueError(`${what} is ${t.dtype}: kerasopt's Nadam on tfjs steps float32 variables only`);
  return new Tensor('float32', t.shape, (t.dataSync() as Float32Array).slice());
}

/** tfjs-core's NamedTensor (not re-exported by @tensorflow/tfjs). */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Keras config keys from tfjs's camelCase conversion of a saved training config (learningRate, beta1). */
function snakeKeys(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) out[k.replace(/([A-Z])/g, '_$1').replace(/^beta(\d)$/, 'beta_$1').toLowerCase()] = v;
  return out;
}

/**
 * A `tf.Optimizer` whose update is kerasopt's Nadam, bit for bit: `model.fit`, `model.compile({ optimizer })`
 * and `minimize` drive it like any tfjs optimizer. Each step reads the gradients and the current
 * variable values (dataSync), steps a kerasopt {@link Nadam} of the chosen flavour over kerasopt
 * Variables that mirror the tfjs variables, and assigns the results back. Given the same gradients,
 * variables, slots and schedule after every step equal those of `nadam.applyGradientsSync` on the
 * typed backend, as the arithmetic is that very call.
 *
 * Registered for tfjs serialization as class 'Nadam' (tfjs has none), so a tfjs model saved with it,
 * or converted from Keras with a Nadam training config, compiles with it on load.
 *
 * @example
 * ```ts
 * const optimizer = new TfjsNadam({ learning_rate: 0.01, flavour: 'keras3' });
 * model.compile({ optimizer, loss: 'meanSquaredError' });
 * await model.fit(xs, ys, { epochs: 2 });
 * ```
 */
export class TfjsNadam extends tf.Optimizer {
  /** tfjs's serialization name. */
  static className = 'Nadam';
  /** The kerasopt optimizer doing the arithmetic (its weights, config and iterations are the state). */
  readonly nadam: Nadam;
  /** kerasopt mirror of each tfjs variable, by the tfjs variable's name. */
  private readonly mirrors = new Map<string, Variable>();
  /** Each mirror's place in Keras's variable order (global_clipnorm sums and slot creation follow it). */
  private readonly order = new Map<Variable, number>();
  /** Mirrors made from saved slot names, not yet claimed by a tfjs variable (see buildFromSlotNames). */
  private readonly pending = new Map<string, Variable>();

  /** Wraps `nadam` (e.g. from optimizerFromState), or makes a fresh one from Nadam options (default flavour: tf-keras). */
  constructor(nadam: Nadam | NadamOptions = {}) {
    super();
    this.nadam = nadam instanceof Nadam ? nadam : new Nadam(nadam);
  }

  /**
   * Ties the tfjs variable named `tfjsName` (a `LayerVariable`'s `read().name`) to `variable`, so that
   * the step uses its slots: loadKerasModel binds each weight to the variable optimizerFromState made
   * for it. Binding order is Keras's variable order. Unbound variables get a fresh mirror on first sight.
   */
  bind(tfjsName: string, variable: Variable): void {
    if (variable.dtype !== 'float32') throw new KerasValueError(`variable '${variable.name}' is ${variable.dtype}: tfjs holds float32 only`);
    this.mirrors.set(tfjsName, variable);
    if (!this.order.has(variable)) this.order.set(variable, this.order.size);
  }

  /** The kerasopt variable mirroring the tfjs variable `tfjsName`, if one is bound or was stepped. */
  mirror(tfjsName: string): Variable | undefined {
    return this.mirrors.get(tfjsName);
  }

  /** The number of steps taken (the kerasopt Nadam's, including the steps of a resumed file). */
  override get iterations(): number {
    return this.nadam.iterations;
  }

  /** One Nadam step over the given gradients (tfjs calls this from `minimize` and `model.fit`). */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries = Array.isArray(variableGradients) ? variableGradients.map((g) => [g.name, g.tensor] as const) : Object.entries(variableGradients);
    const registered = tf.engine().registeredVariables;
    const steps: Array<{ grad: Tensor | null; mirror: Variable; target: tf.Variable }> = [];
    for (const [name, grad] of entries) {
      const target = registered[name];
      if (!target) throw new KerasValueError(`tfjs has no variable named '${name}' to apply a gradient to`);
      let mirror = this.mirrors.get(name) ?? this.claim(name);
      if (!mirror) {
        mirror = new Variable(Tensor.zeros('float32', target.shape), { name });
        this.bind(name, mirror);
      }
      // read the value each step: tfjs code (setWeights, another optimizer) may have changed it since
      mirror.assign(copyOf(target, `variable '${name}'`));
      steps.push({ grad: grad ? copyOf(grad, `the gradient of '${name}'`) : null, mirror, target });
    }
    steps.sort((a, b) => this.order.get(a.mirror)! - this.order.get(b.mirror)!);
    this.nadam.applyGradientsSync(steps.map((s) => [s.grad, s.mirror] as const));
    for (const s of steps) {
      // a copy: the CPU backend keeps the array it is given, and the next step writes the mirror in place
      if (s.grad) s.target.assign(tf.tensor(s.mirror.value.data.slice() as Float32Array, s.target.shape, 'float32'));
    }
  }

  /** The optimizer's weights for tfjs's `model.save({ includeOptimizer })`: 'iter' first (int32), then every kerasopt weight. */
  override async getWeights(): Promise<NamedTensor[]> {
    const rest = this.nadam.weights.filter((w) => w !== this.nadam.iterationsVariable);
    return [
      { name: 'iter', tensor: tf.scalar(this.nadam.iterations, 'int32') },
      ...rest.map((w) => ({ name: w.name, tensor: tf.tensor(Array.from(w.value.data as Float32Array), [...w.shape], 'float32') })),
    ];
  }

  /** Sets the weights {@link getWeights} returned (by name; the optimizer must be built on the same variables). */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const [iter, ...rest] = weightValues;
    const byName = new Map(rest.map((w) => [w.name, w.tensor]));
    const n = iter ? Number(iter.tensor.dataSync()[0]) : 0;
    if (!this.nadam.built) this.buildFromSlotNames(rest);
    this.nadam.setWeights(
      this.nadam.weights.map((w) => {
        if (w === this.nadam.iterationsVariable) return Tensor.scalar(w.dtype === 'int64' ? BigInt(n) : n, w.dtype);
        const t = byName.get(w.name);
        if (!t) throw new KerasValueError(`setWeights: no value for the optimizer weight '${w.name}'`);
        return copyOf(t, `weight '${w.name}'`);
      }),
    );
  }

  /**
   * An optimizer made from a config (tfjs's loadLayersModel) has no variables yet: mirrors named as the
   * saved slots name their variables ('dense/kernel/m' → 'dense/kernel') are made and built on, in the
   * saved order, so that the slots can be set; each is claimed by the tfjs variable of its name on the first step.
   */
  private buildFromSlotNames(weights: NamedTensor[]): void {
    const first = `/${this.nadam.recipe.slotNames[0]}`;
    const made = weights.filter((w) => w.name.endsWith(first)).map((w) => new Variable(Tensor.zeros('float32', w.tensor.shape), { name: w.name.slice(0, -first.length) }));
    for (const v of made) {
      this.order.set(v, this.order.size);
      this.pending.set(v.name, v);
    }
    if (made.length) this.nadam.build(made);
  }

  /**
   * The pending mirror of tfjs variable `name`: saved under that name, or under it without the `_<n>`
   * tfjs appends when a model of the same variable names is loaded twice in one process.
   */
  private claim(name: string): Variable | undefined {
    const key = this.pending.has(name) ? name : name.replace(/_\d+$/, '');
    const mirror = this.pending.get(key);
    if (!mirror) return undefined;
    this.pending.delete(key);
    this.mirrors.set(name, mirror);
    return mirror;
  }

  /** The Keras config (snake_case keys, as Keras writes it) plus the flavour. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...this.nadam.getConfig(), flavour: this.nadam.flavour } as tf.serialization.ConfigDict;
  }

  /** tfjs's deserialization entry: a Keras config (snake_case, or camelCase as tfjs converts it), flavour optional. */
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    // tfjs adds its custom_objects to the config it deserializes; they are tfjs's, not the optimizer's
    const { flavour, custom_objects: _tfjs, ...keras } = snakeKeys(config as Record<string, unknown>);
    const nadam = Nadam.fromConfig(keras, isFlavour(flavour) ? { flavour } : {});
    return new cls(nadam);
  }
}

tf.serialization.registerClass(TfjsNadam, 'kerasopt');
