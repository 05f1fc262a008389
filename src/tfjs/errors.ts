import { KerasoptError } from '../errors.js';

/**
 * A Keras model that TensorFlow.js cannot build or run: a layer class tfjs lacks (Lambda, a custom
 * Python class), a layer option tfjs does not implement (GRU `reset_after=True`), a non-float32
 * dtype, or a file that records no model config at all (`.weights.h5`, checkpoints).
 */
export class UnsupportedModelError extends KerasoptError {
  constructor(
    /** The file the model came from. */
    readonly file: string,
    /** Why: a layer class or option tfjs lacks, a dtype, no model config in the file, weights that do not fit, or tfjs's own refusal to build. */
    readonly reason: 'layer-class' | 'layer-option' | 'dtype' | 'no-model-config' | 'weights' | 'build',
    message: string,
    /** The layer at fault and its Keras class, when one is. */
    readonly layer: { readonly name: string; readonly className: string } | null = null,
  ) {
    super(`${file}: ${message}`, 'TFJS_UNSUPPORTED_MODEL');
  }
}
