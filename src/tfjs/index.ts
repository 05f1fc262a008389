/**
 * kerasopt/tfjs: resume Keras training in TensorFlow.js. Load a Keras `.h5` / `.keras` file into a
 * tfjs model and a {@link TfjsNadam} holding the file's optimizer state, train with `model.fit`, and
 * write weights and optimizer state back into the file. Needs `@tensorflow/tfjs` 4.x (an optional
 * peer dependency: `import 'kerasopt'` never loads it).
 * @packageDocumentation
 */
export { TfjsNadam } from './nadam.js';
export { loadKerasModel, type LoadKerasModelOptions, type LoadedKerasModel } from './load.js';
export { saveKerasModel, type SaveKerasModelOptions } from './save.js';
export { UnsupportedModelError } from './errors.js';
