/**
 * The Keras lineages whose optimizers kerasopt reproduces. They share names but not numerics or
 * saved state; see the README's flavour table.
 * - `tf-keras`: tf.keras optimizer_v2 (TF 1.14 to 2.10), the seed page's Nadam.
 * - `keras2`: standalone Keras 2.x (`keras.optimizers`, Keras 2.2/2.3).
 * - `keras3`: Keras 3.
 * - `tf-keras-new`: the TF 2.11-2.15 "new" tf.keras optimizers (tf_keras/optimizers/nadam.py). Keras 3's
 *   dense per-element math, but u_product rounded as u_product * u_t in the variable's dtype, its own
 *   sparse path, and u_product never saved.
 */
export type Flavour = 'tf-keras' | 'keras2' | 'keras3' | 'tf-keras-new';

export const FLAVOURS: readonly Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];

/** The flavours listed for error messages: "tf-keras, keras2, keras3 or tf-keras-new". */
export const FLAVOUR_LIST = 'tf-keras, keras2, keras3 or tf-keras-new';

export function isFlavour(x: unknown): x is Flavour {
  return x === 'tf-keras' || x === 'keras2' || x === 'keras3' || x === 'tf-keras-new';
}

/** Flavours built on the Keras 3 style optimizer base (one clipping option, learning_rate variable, build()). */
export function isNewStyle(f: Flavour): f is 'keras3' | 'tf-keras-new' {
  return f === 'keras3' || f === 'tf-keras-new';
}
