export * from './backend.js';
export * from './registry.js';
export { TypedArrayBackend, Float32Arena } from './typed/index.js';
export { OnnxBackend, type OnnxBackendOptions, type OnnxSessionOptions } from './onnx/index.js';
export { configureThreads, startThreads, stopThreads, threadSettings, type ThreadOptions } from './typed/threads.js';
export { configurePool, poolSettings, poolStats, inSharedPool, type PoolOptions, type PoolStats } from '../tensor/pool.js';
