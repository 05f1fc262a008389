import type * as tf from '@tensorflow/tfjs';
import type { KerasOptimizerState } from '../formats/state.js';

/** One tfjs model weight and the name the Keras file gives it (what saveOptimizerState's modelVariables take). */
export interface BoundWeight {
  readonly variable: tf.LayerVariable;
  readonly name: string;
}

/** Where a loaded model came from: saveKerasModel writes its weights back by these names, in this state's layout. */
export interface ModelOrigin {
  readonly file: string;
  readonly state: KerasOptimizerState;
  readonly weights: readonly BoundWeight[];
}

/** Weak, so that a disposed model does not keep its origin (and the state's tensors) alive. */
const ORIGINS = new WeakMap<object, ModelOrigin>();

export const setOrigin = (model: tf.LayersModel, origin: ModelOrigin): void => void ORIGINS.set(model, origin);
export const originOf = (model: tf.LayersModel): ModelOrigin | undefined => ORIGINS.get(model);
