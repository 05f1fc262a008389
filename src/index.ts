/**
 * kerasopt: portable Keras optimizer state, and a Nadam that reproduces TensorFlow step by step.
 * @packageDocumentation
 */
export * from './errors.js';
export * from './tensor/dtype.js';
export { Tensor, IndexedSlices, sizeOf, type FloatTensor } from './tensor/tensor.js';
export { Variable } from './tensor/variable.js';
export { roundToHalf, toHalfBits, fromHalfBits } from './tensor/float16.js';
export { arith, type Arith } from './tensor/arith.js';
export * from './backends/index.js';
export { FLAVOURS, isFlavour, type Flavour } from './optimizers/flavour.js';
export {
  Optimizer,
  type Gradient,
  type GradientAndVariable,
  type Initializer,
  type LossFunction,
} from './optimizers/optimizer.js';
export {
  ExponentialDecay,
  InverseTimeDecay,
  PiecewiseConstantDecay,
  PolynomialDecay,
  SCHEDULE_CLASSES,
  isLearningRateSchedule,
  type LearningRateSchedule,
  type DecayOptions,
  type PiecewiseOptions,
  type PolynomialOptions,
} from './optimizers/schedules.js';
export { Nadam, type NadamOptions } from './optimizers/nadam/index.js';
export type { NadamHyperparameters } from './optimizers/nadam/hyper.js';
export * from './onnx/index.js';
export * from './parity/index.js';
export * from './config/index.js';
export * from './formats/index.js';
