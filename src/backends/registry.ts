import { BackendError } from '../errors.js';
import type { Backend } from './backend.js';
import { OnnxBackend } from './onnx/index.js';
import { TypedArrayBackend } from './typed/index.js';

type Factory = () => Backend;

const factories = new Map<string, Factory>();
const instances = new Map<string, Backend>();
let defaultName = 'typed';

/**
 * Registers a backend under `name`. The factory runs on first use, so a backend with heavy
 * dependencies (onnxruntime) costs nothing until it is selected.
 */
export function registerBackend(name: string, factory: Factory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new BackendError(`invalid backend name '${name}'`);
  factories.set(name, factory);
  instances.delete(name);
}

/** Names of all registered backends. */
export function listBackends(): string[] {
  return [...factories.keys()];
}

/** The backend registered as `name` (default: the current default backend). */
export function getBackend(name: string = defaultName): Backend {
  const existing = instances.get(name);
  if (existing) return existing;
  const factory = factories.get(name);
  if (!factory) {
    throw new BackendError(`no backend named '${name}'; registered backends: ${listBackends().join(', ') || 'none'}`);
  }
  const backend = factory();
  instances.set(name, backend);
  return backend;
}

/** Makes `name` the backend used when none is given. */
export function setDefaultBackend(name: string): void {
  getBackend(name);
  defaultName = name;
}

export function getDefaultBackendName(): string {
  return defaultName;
}

registerBackend('typed', () => new TypedArrayBackend());
// onnxruntime-node is loaded by the OnnxBackend constructor, i.e. only when 'onnx' is first selected.
registerBackend('onnx', () => new OnnxBackend());
