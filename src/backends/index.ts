export * from './backend.js';
export * from './registry.js';
export { TypedArrayBackend } from './typed/index.js';
