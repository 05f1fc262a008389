/**
 * Keras files: read and write optimizer state in tf.keras / Keras 2 HDF5 models (.h5), Keras 3
 * weights files (.weights.h5) and Keras 3 archives (.keras); read TF2 object-based checkpoints.
 */
import './configSource.js';
export { readOptimizerState, readOptimizerStateInProcess, type ReadStateOptions } from './read.js';
export { defaultDeadlineMs, stopReaderWorker, type IsolateOptions } from './isolate.js';
export { saveOptimizerState, weightsToWrite, type SaveOptions } from './write.js';
export { optimizerFromState, type RestoreOptions } from './restore.js';
export { transplantOptimizerState, matchVariables, scheduleAfter, type TransplantOptions, type TransplantResult, type MatchTable, type VariableMatch } from './transplant/index.js';
export { reconstructMSchedule, reconstructUProduct } from './kerasH5.js';
export type { ArchiveLimits } from './archive.js';
export { TensorBundle, type BundleLimits, type BundleTensorInfo } from './checkpoint/bundle.js';
export type { KerasFileFormat, KerasOptimizerState, ModelVariable, ReleaseDetection, SlotState, StoredWeight, WeightRole } from './state.js';
export { LAYOUTS as RELEASE_LAYOUTS, type LayoutRow } from './layouts.js';
export { updateBundleTensors } from './checkpoint/update.js';
export { DEFAULT_CHUNK_ELEMENTS, lazyStats, readChunks, slabs, streamStats, tensorStats, RunningStats, type Chunk, type ChunkOptions, type LazyReadOptions, type Slab, type TensorStats } from './chunked.js';
export { stepInPlace, type GradientRequest, type StepInPlaceOptions, type StepInPlaceResult, type StreamGradient } from './streamStep.js';
export { LazyTensor, isLazy, type LazySource } from '../tensor/lazy.js';
