/**
 * The reader worker (see isolate.ts): reads Keras files in process, in this worker thread, for
 * `readOptimizerState`. Started by isolate.ts only; importing it elsewhere throws.
 *
 * What it adds around the in-process read:
 * - before each libhdf5 call it posts the object it is about to read (H5File's `lastObject`, made
 *   observable on every file this worker opens), so that the parent can say where a read hung;
 * - it records what is written on its stderr (the wasm's `Aborted(...)` text) and puts it in the
 *   error of a failed read; the parent never forwards the worker's stderr;
 * - a read during which libhdf5 aborted or trapped marks the worker `tainted`: the parent replaces it;
 * - archives are extracted in a folder private to this worker, which the parent removes when it
 *   stops the worker (a read stopped at its deadline leaves nothing behind).
 */
import { existsSync, mkdirSync, rmSync, writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { KerasoptError } from '../errors.js';
import { H5File, h5 } from './hdf5.js';
import { packError, packState, START, type WorkerReply, type WorkerRequest } from './isolate.js';
import { readOptimizerStateInProcess } from './read.js';
import { h5ConfigTextInProcess } from './configSource.js';

if (!parentPort) throw new Error('kerasopt: isolateWorker is the reader worker, started by readOptimizerState; do not import it');
const port = parentPort;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

// Temporary files (archives' model.weights.h5) go to this worker's folder, named by the parent, made
// here when a read asks for it (owner only) and removed after the read; the parent removes it if it
// stops the worker mid-read.
const { tmp } = workerData as { tmp: string };
(os as { tmpdir: () => string }).tmpdir = () => {
  if (!existsSync(tmp)) mkdirSync(tmp, { mode: 0o700 });
  return tmp;
};
syncBuiltinESMExports();

/** The request being served, where it is, and what was written on stderr meanwhile. */
let request: WorkerRequest | null = null;
let where = '';
let said = '';
let trapped = false;

// What the worker prints (the wasm's `Aborted(...)`, console output) is recorded for the error of the
// read and swallowed: the parent never reads the worker's stdio streams (see isolate.ts, printed()).
// KERASOPT_HDF5_DIAG=1 asks for libhdf5's diagnostics: then it goes to the process's stderr (fd 2).
const diagnostics = Boolean(process.env.KERASOPT_HDF5_DIAG);
for (const stream of [process.stdout, process.stderr]) {
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    said = (said + text).slice(-2048);
    if (diagnostics) writeSync(2, text);
    const done = rest.find((r) => typeof r === 'function') as ((e?: Error | null) => void) | undefined;
    if (done) process.nextTick(done);
    return true;
  }) as typeof stream.write;
}

function at(place: string): void {
  if (!request || place === where) return;
  where = place;
  post({ type: 'where', id: request.id, where: place });
}

// Every H5File opened here reports the object it is about to read: lastObject becomes an accessor.
const open = H5File.open.bind(H5File);
H5File.open = async (path: string, mode: 'r' | 'a' | 'w', label = path): Promise<H5File> => {
  at(`the superblock of ${label} (libhdf5 opening the file)`);
  const h = await open(path, mode, label);
  const own = label === request?.options.label || label === request?.file ? '' : ` of ${label}`;
  let object = h.lastObject;
  Object.defineProperty(h, 'lastObject', {
    configurable: true,
    enumerable: true,
    get: () => object,
    set: (v: string) => {
      object = v;
      at(`${v}${own}`);
    },
  });
  at(`${object}${own}`);
  return h;
};

// A wasm trap (memory access out of bounds, unreachable) or abort reaches asFormatError as a
// RuntimeError: the module's state is not to be trusted after it.
const { RuntimeError } = (globalThis as unknown as { WebAssembly: { RuntimeError: new () => Error } }).WebAssembly;
const asFormatError = H5File.prototype.asFormatError;
H5File.prototype.asFormatError = function (this: H5File, e: unknown, doing?: 'reading' | 'updating'): unknown {
  if (e instanceof RuntimeError) trapped = true;
  return asFormatError.call(this, e, doing);
};

async function serve(req: WorkerRequest): Promise<void> {
  request = req;
  where = '';
  said = '';
  trapped = false;
  at(START);
  try {
    if (req.kind === 'config') {
      const config = await h5ConfigTextInProcess(req.file);
      rmSync(tmp, { recursive: true, force: true });
      post({ type: 'config', id: req.id, config, tainted: trapped || /Aborted\(/.test(said) });
      return;
    }
    const state = await readOptimizerStateInProcess(req.file, {
      ...req.options,
      ...(req.progress ? { onProgress: (done: number, total: number) => post({ type: 'progress', id: req.id, done, total }) } : {}),
    });
    const tainted = trapped || /Aborted\(/.test(said);
    const { packed, transfer } = packState(state);
    rmSync(tmp, { recursive: true, force: true }); // before answering: the caller may look at TMPDIR at once
    try {
      post({ type: 'result', id: req.id, state: packed, tainted }, transfer);
    } catch {
      post({ type: 'result', id: req.id, state: packed, tainted }); // a buffer that cannot move: copied
    }
  } catch (e) {
    const tainted = trapped || /Aborted\(/.test(said) || !(e instanceof KerasoptError);
    const printed = said.trim();
    const error = packError(e);
    const message = printed && !error.message.includes(printed) ? `${error.message} [the reader printed: ${printed.replace(/\s+/g, ' ')}]` : error.message;
    rmSync(tmp, { recursive: true, force: true });
    post({ type: 'error', id: req.id, error: { ...error, message }, tainted });
  } finally {
    request = null;
    rmSync(tmp, { recursive: true, force: true });
  }
}

let chain = Promise.resolve();
port.on('message', (req: WorkerRequest) => {
  chain = chain.then(() => serve(req));
});

await h5(); // load the wasm module before saying ready, so that the first read's deadline is all read
post({ type: 'ready' });
