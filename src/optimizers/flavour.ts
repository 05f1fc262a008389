/**
 * The Keras lineages whose optimizers kerasopt reproduces. They share names but not numerics or
 * saved state; see the README's flavour table.
 * - `tf-keras`: tf.keras optimizer_v2 (TF 1.14 to 2.10), the seed page's Nadam.
 * - `keras2`: standalone Keras 2.x (`keras.optimizers`, Keras 2.2/2.3).
 * - `keras3`: Keras 3, and the TF 2.11+ "new" optimizers that share its math.
 */
export type Flavour = 'tf-keras' | 'keras2' | 'keras3';

export const FLAVOURS: readonly Flavour[] = ['tf-keras', 'keras2', 'keras3'];

export function isFlavour(x: unknown): x is Flavour {
  return x === 'tf-keras' || x === 'keras2' || x === 'keras3';
}
