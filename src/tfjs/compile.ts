/**
 * Keras loss and metric identifiers as tfjs names them. Only losses whose tfjs function computes the
 * same quantity from the same inputs are listed: a Keras loss object with `from_logits=True` or label
 * smoothing, or any custom function, is not (the caller compiles).
 */
const LOSSES: Readonly<Record<string, string>> = {
  mean_squared_error: 'meanSquaredError', mse: 'meanSquaredError', MeanSquaredError: 'meanSquaredError',
  mean_absolute_error: 'meanAbsoluteError', mae: 'meanAbsoluteError', MeanAbsoluteError: 'meanAbsoluteError',
  mean_absolute_percentage_error: 'meanAbsolutePercentageError', mape: 'meanAbsolutePercentageError', MeanAbsolutePercentageError: 'meanAbsolutePercentageError',
  mean_squared_logarithmic_error: 'meanSquaredLogarithmicError', msle: 'meanSquaredLogarithmicError', MeanSquaredLogarithmicError: 'meanSquaredLogarithmicError',
  categorical_crossentropy: 'categoricalCrossentropy', CategoricalCrossentropy: 'categoricalCrossentropy',
  sparse_categorical_crossentropy: 'sparseCategoricalCrossentropy', SparseCategoricalCrossentropy: 'sparseCategoricalCrossentropy',
  binary_crossentropy: 'binaryCrossentropy', BinaryCrossentropy: 'binaryCrossentropy',
  hinge: 'hinge', Hinge: 'hinge', squared_hinge: 'squaredHinge', SquaredHinge: 'squaredHinge',
  categorical_hinge: 'categoricalHinge', CategoricalHinge: 'categoricalHinge',
  logcosh: 'logcosh', log_cosh: 'logcosh', LogCosh: 'logcosh',
  kullback_leibler_divergence: 'kullbackLeiblerDivergence', kld: 'kullbackLeiblerDivergence', kl_divergence: 'kullbackLeiblerDivergence', KLDivergence: 'kullbackLeiblerDivergence',
  poisson: 'poisson', Poisson: 'poisson',
};

/** Keras metrics tfjs computes under another name ('accuracy' / 'acc' tfjs resolves from the loss, as Keras does). */
const METRICS: Readonly<Record<string, string>> = {
  accuracy: 'accuracy', acc: 'accuracy',
  categorical_accuracy: 'categoricalAccuracy', binary_accuracy: 'binaryAccuracy',
  mae: 'mae', mean_absolute_error: 'mae', mse: 'mse', mean_squared_error: 'mse',
  mape: 'mape', mean_absolute_percentage_error: 'mape',
};

/** What to pass to `model.compile` besides the optimizer, or why the caller must compile. */
export type CompileChoice = { loss: string | string[]; metrics: string[]; notes: string[] } | { loss: null; why: string };

type Json = Record<string, unknown>;
const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The Keras name of a serialized loss, or null when it is a custom or configured one tfjs cannot reproduce. */
function lossName(loss: unknown): string | null {
  if (typeof loss === 'string') return LOSSES[loss] ?? null;
  if (!isObject(loss) || typeof loss.class_name !== 'string') return null;
  const config = isObject(loss.config) ? loss.config : {};
  // Keras 3 saves a built-in loss function as {class_name: 'function', config: 'mean_squared_error', module: 'keras.losses'}
  if (loss.class_name === 'function') return typeof loss.module === 'string' && loss.module.startsWith('keras') && typeof loss.config === 'string' ? (LOSSES[loss.config] ?? null) : null;
  if (config.from_logits === true || (typeof config.label_smoothing === 'number' && config.label_smoothing !== 0)) return null;
  return LOSSES[loss.class_name] ?? null;
}

/** Every metric identifier of a Keras metrics entry (a name, a MeanMetricWrapper dict, nested per-output lists). */
function metricNames(metrics: unknown): unknown[] {
  if (Array.isArray(metrics)) return metrics.flatMap(metricNames);
  if (isObject(metrics) && isObject(metrics.config)) return [metrics.config.fn ?? metrics.config.name];
  if (isObject(metrics)) return Object.values(metrics).flatMap(metricNames); // per-output dict
  return metrics === null || metrics === undefined ? [] : [metrics];
}

/**
 * Maps the file's compile settings (tf.keras `training_config`, Keras 3 `compile_config`) to tfjs's:
 * the loss when tfjs has the same one (per output for a list; a dict or loss_weights is left to the
 * caller), and the metrics tfjs knows (others are dropped, each with a note).
 */
export function compileChoice(compile: Json | null): CompileChoice {
  if (!compile || compile.loss === undefined || compile.loss === null) return { loss: null, why: 'the file records no loss (the model was not compiled)' };
  if (compile.loss_weights !== undefined && compile.loss_weights !== null) return { loss: null, why: 'the file weights its losses (loss_weights), which kerasopt/tfjs does not map' };
  const raw = compile.loss;
  if (isObject(raw) && !('class_name' in raw)) return { loss: null, why: 'the file gives one loss per named output (a dict), which kerasopt/tfjs does not map' };
  const list = Array.isArray(raw) ? raw : [raw];
  const names = list.map(lossName);
  const unknown = list.filter((_, i) => names[i] === null);
  if (unknown.length) return { loss: null, why: `tfjs has no loss equal to ${JSON.stringify(unknown[0])} (a custom or configured loss): compile the model yourself` };
  const notes: string[] = [];
  const metrics: string[] = [];
  for (const m of metricNames(compile.metrics)) {
    const mapped = typeof m === 'string' ? METRICS[m] : undefined;
    if (mapped) {
      if (!metrics.includes(mapped)) metrics.push(mapped);
    } else notes.push(`metric ${JSON.stringify(m)} left out: tfjs has no equal metric`);
  }
  return { loss: Array.isArray(raw) ? (names as string[]) : names[0]!, metrics, notes };
}
