import * as tf from '@tensorflow/tfjs';
import { shapeToString } from '../tensor/tensor.js';
import { UnsupportedModelError } from './errors.js';
import type { BoundWeight } from './origin.js';
import type { ModelSource } from './source.js';

/**
 * Sets every weight of `model` from the file, bit for bit (float32 arrays copied as they are), layer by
 * layer in each layer's saving order, which is tfjs's weight order too (kernel, bias; gamma, beta,
 * moving_mean, moving_variance; kernel, recurrent_kernel, bias). Every shape is checked, and every
 * tfjs weight must get a value: a model whose weights do not line up is refused, never half set.
 */
export function setWeightsFromFile(model: tf.LayersModel, source: ModelSource, file: string): BoundWeight[] {
  const bound: BoundWeight[] = [];
  const plan: Array<{ layer: tf.layers.Layer; values: tf.Tensor[] }> = [];
  for (const [layerName, saved] of source.layers) {
    let layer: tf.layers.Layer;
    try {
      layer = model.getLayer(layerName);
    } catch {
      throw new UnsupportedModelError(file, 'weights', `the file holds weights of layer '${layerName}', which the model built from its config lacks`);
    }
    const mine = layer.weights;
    if (mine.length !== saved.length) {
      throw new UnsupportedModelError(file, 'weights', `layer '${layerName}' (${layer.getClassName()}): the file holds ${saved.length} weights, tfjs's layer has ${mine.length}`, { name: layerName, className: layer.getClassName() });
    }
    saved.forEach((w, i) => {
      const v = mine[i]!;
      if (w.value.dtype !== 'float32') throw new UnsupportedModelError(file, 'dtype', `weight '${w.name}' is ${w.value.dtype}: tfjs holds float32 weights only`, { name: layerName, className: layer.getClassName() });
      if (shapeToString(w.value.shape) !== shapeToString(v.shape as number[])) {
        throw new UnsupportedModelError(file, 'weights', `weight '${w.name}' has shape ${shapeToString(w.value.shape)}, tfjs's '${v.originalName}' ${shapeToString(v.shape as number[])}`, { name: layerName, className: layer.getClassName() });
      }
      bound.push({ variable: v, name: w.name });
    });
    plan.push({ layer, values: saved.map((w) => tf.tensor(w.value.data.slice() as Float32Array, [...w.value.shape], 'float32')) });
  }
  const missing = model.weights.filter((v) => !bound.some((b) => b.variable === v));
  if (missing.length) throw new UnsupportedModelError(file, 'weights', `the file holds no value for tfjs's weight(s) ${missing.map((v) => `'${v.originalName}'`).join(', ')}`);
  for (const { layer, values } of plan) {
    layer.setWeights(values);
    tf.dispose(values);
  }
  return bound;
}
