import { BackendError } from '../errors.js';
import type { MaybePromise } from '../backends/backend.js';

/**
 * Optimizer flows are written once as generators that yield each backend call's result; a driver
 * then runs them synchronously (typed arrays) or awaits each yield (onnxruntime). This keeps one
 * copy of the logic while letting synchronous backends stay synchronous.
 */
export type Flow<T> = Generator<MaybePromise<unknown>, T, unknown>;

/** Yields a kernel result and resumes with its settled value. */
export function* settle<T>(value: MaybePromise<T>): Flow<T> {
  return (yield value) as T;
}

function isPromiseLike(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/** Runs a flow whose backend calls must all be synchronous. */
export function runSync<T>(flow: Flow<T>, backendName: string): T {
  let r = flow.next();
  while (!r.done) {
    if (isPromiseLike(r.value)) {
      flow.return(undefined as T);
      throw new BackendError(`backend '${backendName}' is asynchronous: use applyGradients (it returns a promise)`);
    }
    r = flow.next(r.value);
  }
  return r.value;
}

/** Runs a flow, awaiting every backend call. */
export async function runAsync<T>(flow: Flow<T>): Promise<T> {
  let r = flow.next();
  while (!r.done) r = flow.next(await r.value);
  return r.value;
}
