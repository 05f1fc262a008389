import { KerasValueError, KerasoptError } from '../errors.js';
import { isNewStyle, type Flavour } from '../optimizers/flavour.js';
import { Nadam, type NadamOptions } from '../optimizers/nadam/index.js';
import { RECIPES } from '../optimizers/nadam/recipes.js';
import { isLearningRateSchedule } from '../optimizers/schedules.js';
import type { CustomObjects } from './customObjects.js';
import { detectDialect, type FlavourDetection } from './detect.js';
import { DEFAULT_DIALECT, LAYOUTS, type ConfigDialect } from './dialects.js';
import { nadamOptionsFromConfig } from './fromConfig.js';
import { relayout } from './relayout.js';

/** Options of {@link convertConfig}. */
export interface ConvertOptions {
  /** The flavour to convert to. */
  readonly to: Flavour;
  /** The target release layout (default: the flavour's default, or the source's within one flavour). */
  readonly dialect?: ConfigDialect;
  /** The source flavour/dialect when detection should not decide. */
  readonly from?: Flavour;
  readonly fromDialect?: ConfigDialect;
  readonly customObjects?: CustomObjects;
}

/** What {@link convertConfig} returns: the target config and every change in behaviour. */
export interface ConvertResult {
  /** The config as the target Keras writes it. */
  readonly config: Record<string, unknown>;
  /** What the source was taken to be. */
  readonly from: FlavourDetection;
  readonly dialect: ConfigDialect;
  /** Every difference in behaviour or in saved state between the source and the target, in words. */
  readonly changes: string[];
}

const MOMENTUM_FACTOR = (decay: number): string =>
  `the momentum schedule: tf.keras and Keras 2 use mu_t = beta_1 * (1 - 0.5 * 0.96^(${decay} * t)), Keras 3 uses mu_t = beta_1 * (1 - 0.5 * 0.96^t) with no decay factor, so its momentum warms up in tens of steps instead of thousands`;

/**
 * Converts a Nadam config between standalone Keras 2, tf.keras (optimizer_v2) and Keras 3, and lists
 * what changes in behaviour. The learning rate, betas and epsilon keep their values; what each
 * Keras does with them (momentum schedule, clipping, saved state) is listed in `changes`. A setting
 * the target cannot express (a schedule for tf.keras or Keras 2) is an error, not a silent drop.
 */
export function convertConfig(config: Readonly<Record<string, unknown>>, options: ConvertOptions): ConvertResult {
  const detected = detectDialect(config);
  const fromDialect = options.fromDialect ?? (options.from && options.from !== detected.flavour ? DEFAULT_DIALECT[options.from] : detected.dialect);
  const from: FlavourDetection = options.fromDialect || options.from ? { flavour: LAYOUTS[fromDialect].flavour, dialect: fromDialect, evidence: 'given by the caller', certain: true } : detected;
  const source = nadamOptionsFromConfig(config, { flavour: from.flavour, dialect: fromDialect, customObjects: options.customObjects, onWarning: () => {} });
  const to = options.to;
  const dialect = options.dialect ?? (to === from.flavour ? fromDialect : DEFAULT_DIALECT[to]);
  if (LAYOUTS[dialect].flavour !== to) throw new KerasValueError(`dialect ${dialect} is not a ${to} dialect`);
  if (to === from.flavour) {
    const own = new Nadam({ ...source, onWarning: () => {} });
    const changes = dialect === fromDialect ? [] : [`layout of ${LAYOUTS[dialect].writtenBy} (same behaviour)`];
    return { config: relayout(own.getConfig(), fromDialect, dialect), from, dialect, changes };
  }
  const changes: string[] = [];
  const target: NadamOptions = { flavour: to, dialect, onWarning: () => {} };
  const lr = source.lr ?? source.learning_rate ?? RECIPES[from.flavour].defaultLearningRate;
  const newFrom = isNewStyle(from.flavour);
  const newTo = isNewStyle(to);
  if (isLearningRateSchedule(lr) && !newTo) {
    throw new KerasValueError(`cannot convert to ${to}: its Nadam does not take a learning-rate schedule (${lr.className}); Keras 3 and TF 2.11+ do`);
  }
  target.learning_rate = lr;
  if (source.lr === undefined && source.learning_rate === undefined && RECIPES[from.flavour].defaultLearningRate !== RECIPES[to].defaultLearningRate) {
    changes.push(`learning_rate was not set: the ${from.flavour} default ${RECIPES[from.flavour].defaultLearningRate} is written explicitly (the ${to} default is ${RECIPES[to].defaultLearningRate})`);
  }
  for (const k of ['beta_1', 'beta_2', 'epsilon'] as const) if (source[k] !== undefined && source[k] !== null) target[k] = source[k];
  const decay = source.schedule_decay ?? 0.004;
  if (from.flavour === 'tf-keras' && source.decay !== undefined && source.decay !== decay) {
    changes.push(`decay ${source.decay} is not used: tf.keras's Nadam overwrites decay with schedule_decay (${decay}) when it reads a config, and so does the conversion`);
  }
  if (!newTo) target.schedule_decay = newFrom ? 0.004 : decay;
  if (newFrom && !newTo) changes.push(`${MOMENTUM_FACTOR(0.004)}; the converted optimizer gains the factor 0.004 (schedule_decay)`);
  else if (newTo && !newFrom) changes.push(`${MOMENTUM_FACTOR(decay)}; the converted optimizer drops it${decay !== 0.004 ? ` (schedule_decay ${decay} is lost)` : ''}`);
  if (from.flavour === 'tf-keras' && to === 'keras2') changes.push("tf.keras's key 'decay' (the momentum-schedule factor, not a learning-rate decay) is written as schedule_decay, its Keras 2 name");
  if (from.flavour === 'keras2' && to === 'tf-keras') changes.push("Keras 2's schedule_decay is written as 'decay', the key tf.keras writes for the same momentum-schedule factor");
  clipping(source, target, from.flavour, to, dialect, changes);
  if (source.name !== undefined && source.name !== RECIPES[from.flavour].defaultName && to !== 'keras2') target.name = source.name;
  if (from.flavour === 'keras2' || to === 'keras2') changes.push('name: standalone Keras 2 configs have no name key');
  if (to === 'keras2') changes.push("saved state: Keras 2 does not save m_schedule (the momentum-schedule product), so training resumed from its saved weights restarts the schedule at 1");
  if (from.flavour === 'keras2' && to !== 'tf-keras-new') changes.push('saved state: the target saves the momentum-schedule product (tf.keras momentum_cache, Keras 3 u_product), which Keras 2 did not');
  if (to === 'tf-keras-new') changes.push('saved state: TF 2.11+ saves neither u_product (the momentum-schedule product) nor learning_rate (neither is in optimizer.variables); kerasopt reconstructs u_product from iterations when it reads such a file');
  if (from.flavour === 'tf-keras-new' && to !== 'keras2') changes.push('saved state: the target saves the momentum-schedule product, which TF 2.11+ did not');
  if (newFrom && newTo) {
    changes.push('u_product: TF 2.11+ multiplies it by u_t = beta_1 * (1 - 0.5 * 0.96^t) computed in the variable dtype (beta_1 and 0.96 through float32, as tf.cast does); Keras 3 computes (u_product * beta_1) * (1 - 0.5 * 0.96^t) with those Python floats converted straight to the dtype: the two round differently, so trajectories differ in the last bits');
  }
  if (to === 'keras3' && !newFrom) changes.push('Keras 3 holds learning_rate in a float32 variable (its config shows the float32 value) and casts beta_1/beta_2 from Python floats; tf.keras and Keras 2 round beta_1/beta_2 to float32 first (this differs only for float64 variables)');
  if (from.flavour === 'keras3' && !newTo) changes.push('Keras 3 casts beta_1/beta_2 from Python floats to each variable dtype; the target rounds them to float32 first (this differs only for float64 variables)');
  if (to === 'tf-keras' || from.flavour === 'tf-keras') changes.push('sparse gradients: tf.keras updates only the touched rows of m, v and the variable with its own op order; Keras 2 and Keras 3 update densely');
  if (to === 'tf-keras-new' || from.flavour === 'tf-keras-new') {
    changes.push('sparse gradients: TF 2.11+ decays m and v on every row (m - m * (1 - beta_1)), then scatter-adds the deduplicated gradient rows (g * (1 - beta_1)), and moves every row of the variable; Keras 3 and Keras 2 make the gradient dense first (m + (g - m) * (1 - beta_1)), tf.keras optimizer_v2 moves only the touched rows');
  }
  if (newFrom) {
    const ema = config['ema_momentum'];
    if (ema !== undefined && ema !== 0.99) changes.push(`ema_momentum ${String(ema)} is dropped (inactive: use_ema is false)`);
  }
  try {
    return { config: new Nadam(target).getConfig(), from, dialect, changes };
  } catch (e) {
    if (e instanceof KerasoptError) throw new KerasValueError(`cannot convert to ${to}: ${e.message}`);
    throw e;
  }
}

/** Keras 2 clips by the norm of all gradients together; tf.keras and Keras 3 call that global_clipnorm. */
function clipping(source: NadamOptions, target: NadamOptions, from: Flavour, to: Flavour, dialect: ConfigDialect, changes: string[]): void {
  if (source.clipvalue != null) target.clipvalue = source.clipvalue;
  const canGlobal = dialect !== 'tf-2.0' && to !== 'keras2';
  if (from === 'keras2' && source.clipnorm != null) {
    if (canGlobal) {
      target.global_clipnorm = source.clipnorm;
      changes.push(`clipnorm ${source.clipnorm} becomes global_clipnorm: Keras 2 scales all gradients by their joint norm, which ${to} calls global_clipnorm (its clipnorm clips each gradient by its own norm)`);
    } else {
      target.clipnorm = source.clipnorm;
      changes.push(`clipnorm ${source.clipnorm}: Keras 2 clips by the joint norm of all gradients, ${LAYOUTS[dialect].writtenBy} by each gradient's own norm (no global_clipnorm there)`);
    }
  } else if (to === 'keras2' && source.global_clipnorm != null) {
    target.clipnorm = source.global_clipnorm;
    changes.push(`global_clipnorm ${source.global_clipnorm} becomes Keras 2's clipnorm, which clips by the joint norm of all gradients`);
  } else {
    if (source.clipnorm != null) {
      target.clipnorm = source.clipnorm;
      if (to === 'keras2') changes.push(`clipnorm ${source.clipnorm}: ${from} clips each gradient by its own norm, Keras 2 by the joint norm of all gradients`);
    }
    if (source.global_clipnorm != null) target.global_clipnorm = source.global_clipnorm;
  }
  const set = ['clipnorm', 'clipvalue', 'global_clipnorm'].filter((k) => target[k as 'clipnorm'] != null);
  if (to === 'keras3' && set.length > 1) throw new KerasValueError(`cannot convert to keras3: Keras 3 takes only one of clipnorm, clipvalue and global_clipnorm; the source sets ${set.join(', ')}`);
  if (to === 'tf-keras-new' && set.length > 1) throw new KerasValueError(`cannot convert to tf-keras-new: TF 2.11+ applies only the first of clipnorm, global_clipnorm and clipvalue (the others would be silently unused); the source sets ${set.join(', ')}`);
  if (isNewStyle(to) && !isNewStyle(from) && source.clipvalue != null) changes.push(`clipping order: ${to === 'keras3' ? 'Keras 3' : 'TF 2.11+'} applies its single clipping option; tf.keras clips by value first, then by norm`);
}
