export * from './backend.js';
export * from './registry.js';
export { TypedArrayBackend } from './typed/index.js';
export { OnnxBackend, type OnnxSessionOptions } from './onnx/index.js';
