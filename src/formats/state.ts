import { parsePythonJson } from '../config/pyjson.js';
import { FormatError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import { sameShape, type Tensor } from '../tensor/tensor.js';

/**
 * The Keras file layouts kerasopt reads and writes: tf.keras optimizer_v2 .h5, standalone Keras 2 .h5,
 * TF 2.11-2.15 new-optimizer .h5 (`tf-keras-new-h5`), Keras 3 .weights.h5 and .keras; and, read only,
 * TF2 object-based checkpoints (`tf-checkpoint`: tensor bundles, including a SavedModel's variables).
 */
export type KerasFileFormat = 'tf-keras-h5' | 'keras2-h5' | 'tf-keras-new-h5' | 'keras3-weights-h5' | 'keras3-archive' | 'tf-checkpoint';

/** One model variable as the file stores it. */
export interface ModelVariable {
  /** Keras's name without the ':0' suffix (tf.keras / Keras 2), or 'layers/<layer>/vars/<i>' (Keras 3). */
  readonly name: string;
  readonly value: Tensor;
  /**
   * False when the file says the variable is not trainable (its layer was frozen, or it is a
   * BatchNormalization moving statistic): the optimizer holds no slots for it. Absent when unknown.
   */
  readonly trainable?: boolean;
}

/** What a saved optimizer weight is, so that a write can refill it from an optimizer whatever the layout. */
export type WeightRole =
  | { readonly kind: 'iterations' }
  | { readonly kind: 'learning_rate' }
  | { readonly kind: 'schedule' }
  /** `slot` is kerasopt's slot name (m, v, momentum, velocity); `variable` the model variable's name. */
  | { readonly kind: 'slot'; readonly variable: string; readonly slot: string };

/** One optimizer weight exactly as stored: its name (or Keras 3 index path) and its bits. */
export interface StoredWeight {
  readonly name: string;
  readonly value: Tensor;
  /** What the weight is (set by the readers; absent on weights built by hand). */
  readonly role?: WeightRole;
}

/** A slot (m / v, momentum / velocity) tied to the model variable it belongs to. */
export interface SlotState {
  /** The model variable's name (see ModelVariable.name). */
  readonly variable: string;
  /** The slot name as kerasopt's Nadam calls it (m, v, momentum, velocity). */
  readonly slot: string;
  /** The weight's name in the file. */
  readonly weightName: string;
  readonly value: Tensor;
  /**
   * False when the model in the file has no such variable: the optimizer was reused across models and
   * kept slots of variables the saved model no longer has. Such slots are kept as read and written
   * back unchanged; a resumed optimizer steps only the model's variables.
   */
  readonly inModel: boolean;
}

/** Which Keras release wrote the state, and why kerasopt thinks so. */
export interface ReleaseDetection {
  /** The layout row's id (src/formats/layouts.ts, docs/keras-releases.md). */
  readonly layout: string;
  /** The release range that writes this layout, in words. */
  readonly range: string;
  /** What decided it: keras_version, weight names, config keys, shapes. */
  readonly evidence: readonly string[];
}

/** Everything kerasopt read from a Keras file about its optimizer. */
export interface KerasOptimizerState {
  readonly file: string;
  readonly format: KerasFileFormat;
  readonly flavour: Flavour;
  /** keras_version as the file records it (null when absent). */
  readonly kerasVersion: string | null;
  /**
   * Keras's class name of the optimizer as the file records it ('Nadam', 'Adam', TF 2.11-2.15's
   * 'Custom>Adam'); null when the file records none and more than one optimizer fits (see `fits`).
   */
  readonly className: string | null;
  /**
   * A file without an optimizer config (Keras 3 .weights.h5): the optimizers whose saved layout fits
   * the variables found, e.g. ['Adam', 'Adamax', 'RMSprop (momentum)'].
   */
  readonly fits?: readonly string[];
  /** The optimizer's config as the file stores it (Keras's snake_case keys). */
  readonly config: Record<string, unknown>;
  /** The iteration count; null when the release does not save it (Keras 2.0-2.2 RMSprop, Adagrad, Adadelta). */
  readonly iterations: number | null;
  /** Every optimizer weight in file order: what Keras's set_weights receives. */
  readonly weights: readonly StoredWeight[];
  /** The slots, each tied to its model variable by name (tf.keras) or by position, checked by shape. */
  readonly slots: readonly SlotState[];
  /** The model variables that own slots, in the optimizer's order. */
  readonly variables: readonly ModelVariable[];
  /**
   * Nadam's momentum-schedule scalar (momentum_cache, m_schedule or u_product); `reconstructed` when
   * the file does not save it. Null for other optimizers.
   */
  readonly schedule: { readonly name: string; readonly value: Tensor; readonly reconstructed: boolean } | null;
  /** How the file stores strings, so that a write keeps the style. */
  readonly stringStyle: 'fixed' | 'vlen' | null;
  /** Keras 2 only: whether m_schedule was saved (2.3) or not (2.2, reconstructed). */
  readonly keras2Layout?: '2.2' | '2.3';
  /** Facts the caller should know (reconstructions, how slots were tied). */
  readonly notes: readonly string[];
  /** The Keras release range and layout that wrote the state, with the evidence. */
  readonly release: ReleaseDetection;
}

/** Whether two tensors have the same dtype, shape and bits (memcmp of their bytes: NaN payloads and -0 count). */
export function sameBits(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || !sameShape(a.shape, b.shape)) return false;
  const x = a.data;
  const y = b.data;
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/**
 * Parses JSON stored inside a Keras file (training_config, config.json) as Python wrote it; a
 * FormatError names the file and, in its message, the object that holds the text.
 */
export function parseStoredJson(text: string, file: string, object: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parsePythonJson(text, file);
  } catch (e) {
    const message = (e as Error).message.startsWith(`${file}: `) ? (e as Error).message.slice(file.length + 2) : (e as Error).message;
    throw new FormatError(file, `${object}: ${message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new FormatError(file, `${object} is not a JSON object`);
  return parsed as Record<string, unknown>;
}
