export * from './backend.js';
export * from './registry.js';
export { TypedArrayBackend, Float32Arena } from './typed/index.js';
export { OnnxBackend, type OnnxBackendOptions, type OnnxSessionOptions } from './onnx/index.js';
