import { createRequire } from 'node:module';
import type * as Ort from 'onnxruntime-node';
import { BackendError } from '../../errors.js';

/** The onnxruntime-node module. */
export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;
export type OrtTensor = Ort.Tensor;

let loaded: OrtModule | null = null;

/**
 * Loads onnxruntime-node on first use (synchronously, through require: it is a CommonJS native
 * addon), so that importing kerasopt never loads it unless the 'onnx' backend or the ONNX step
 * runner is actually used.
 */
export function loadOnnxRuntime(): OrtModule {
  if (!loaded) {
    try {
      loaded = createRequire(import.meta.url)('onnxruntime-node') as OrtModule;
    } catch (e) {
      throw new BackendError(`the onnx backend needs the onnxruntime-node package, which cannot be loaded: ${(e as Error).message}`);
    }
  }
  return loaded;
}

/** Session options kerasopt uses: CPU execution provider, no graph rewrites (the op order is the contract). */
export interface OnnxSessionOptions {
  /**
   * Threads per operator (onnxruntime's intraOpNumThreads). Default 1, like the typed backend:
   * dense steps run in cache-sized chunks where a thread pool's hand-offs cost more than they
   * save on small machines; 0 lets onnxruntime use every physical core.
   */
  readonly intraOpNumThreads?: number;
  /**
   * onnxruntime graph optimizations (default 'disabled'): kerasopt's graphs have nothing to fold,
   * and fusions could change the rounding order that the numerical promise rests on.
   */
  readonly graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let onnxruntime's intra-op threads spin after a run (its own default). Off by default here: a
   * spinning pool burns the cores that the typed backend's worker threads and everything else need
   * between steps (measured: a third more CPU time for the same runs, and no faster).
   */
  readonly allowSpinning?: boolean;
}

/** The InferenceSession options kerasopt uses for `o` (plain data: the onnx worker threads get the same). */
export function sessionOptions(o: OnnxSessionOptions = {}): Ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    executionMode: 'sequential',
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'disabled',
    intraOpNumThreads: o.intraOpNumThreads ?? 1,
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: o.allowSpinning ? '1' : '0' } } },
  };
}

/** Creates a CPU session for `model`, turning any onnxruntime failure into a BackendError naming `what`. */
export async function createSession(model: Uint8Array, what: string, o: OnnxSessionOptions = {}): Promise<OrtSession> {
  const ort = loadOnnxRuntime();
  try {
    return await ort.InferenceSession.create(model, sessionOptions(o));
  } catch (e) {
    throw new BackendError(`onnxruntime cannot load ${what}: ${(e as Error).message}`);
  }
}

/** Where onnxruntime-node's entry point is (the onnx worker threads require it from there). */
export function onnxRuntimePath(): string {
  return createRequire(import.meta.url).resolve('onnxruntime-node');
}
