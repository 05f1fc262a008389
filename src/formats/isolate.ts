import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ConfigError } from '../config/errors.js';
import * as errors from '../errors.js';
import { FormatError, KerasValueError } from '../errors.js';
import { packageRoot } from '../paths.js';
import type { DType, TypedData } from '../tensor/dtype.js';
import { LazyTensor, type LazySource } from '../tensor/lazy.js';
import { knownStats, rememberStats, type TensorStats } from './chunked.js';
import { Tensor } from '../tensor/tensor.js';
import type { ReadStateOptions } from './read.js';
import type { KerasOptimizerState } from './state.js';

/**
 * Reads in a worker thread, with a deadline (issue 11). libhdf5 (h5wasm) runs synchronously: a
 * corrupt or crafted HDF5 file can make it loop forever (a global heap object of size 0 does, in
 * h5wasm's libhdf5 2.0.0 as in h5py's 1.10.8), and a corrupt file makes the wasm print `Aborted(...)` on
 * stderr. So `readOptimizerState` runs the read in one reused worker thread: past the deadline the
 * worker is terminated (V8 interrupts wasm loops too) and the call rejects with a FormatError naming
 * the file, the time and the object libhdf5 was reading; the worker's stderr never reaches the
 * process's stderr (what it printed during a failed read becomes part of the error message).
 *
 * Protocol: the worker posts `ready`, then for each request `where` (the object it is about to
 * read, deduplicated), `progress` (when the caller gave onProgress), and one `result` (tensors as
 * transferred ArrayBuffers, rebuilt here as Tensor instances) or `error` (name, message and fields,
 * rebuilt here as the same error class). A worker that aborted, trapped or was stopped is replaced
 * by a fresh one on the next read.
 *
 * The worker entry is isolateWorker.js beside this file (dist/src/formats/ in the package). When
 * this module runs as TypeScript source (vitest runs src/ directly), the worker gets the same .ts
 * sources through a module hook that transpiles them with the `typescript` dev dependency, cached
 * on disk in node_modules/.cache/kerasopt-ts (keyed by the source's hash, never stale), so the
 * tests exercise the sources they import, with no build step.
 */

/** Options of the isolated read (part of ReadStateOptions). */
export interface IsolateOptions {
  /**
   * Milliseconds the read may take before the worker is stopped and the call rejects with a
   * FormatError. Default: {@link defaultDeadlineMs} of the file: 10 s plus 1 s per 50 MB
   * (50 000 000 bytes) of file, to the nearest second (a 1 GB file gets 30 s). `Infinity` waits
   * forever. Ignored with `isolate: false`.
   */
  deadlineMs?: number;
  /**
   * false reads in the calling thread (as {@link readOptimizerStateInProcess}): no worker, no
   * deadline, and libhdf5's abort text goes to the process's stderr. Default true.
   */
  isolate?: boolean;
}

/** The fixed part of the default deadline (10 s). */
export const BASE_DEADLINE_MS = 10_000;
/** Bytes of file per extra second of the default deadline (50 MB). */
export const BYTES_PER_DEADLINE_SECOND = 50_000_000;

/**
 * The default deadline of a read: 10 s plus 1 s per 50 MB of the file (for a checkpoint prefix or a
 * SavedModel directory, of the files that make it up), to the nearest second: 10 s up to 25 MB,
 * 12 s for 100 MB, 30 s for 1 GB. A missing file gets the base 10 s (the read then fails at once).
 * Reading is far faster (a few ms per MB); the margin is for a loaded machine.
 */
export function defaultDeadlineMs(file: string): number {
  return BASE_DEADLINE_MS + Math.round(readSize(file) / BYTES_PER_DEADLINE_SECOND) * 1000;
}

/** Bytes a read will go through: the file, a checkpoint prefix's files, or a directory's files (bounded walk). */
function readSize(file: string): number {
  try {
    const s = statSync(file);
    if (s.isFile()) return s.size;
    if (s.isDirectory()) return directorySize(file, 3);
  } catch {
    // not a file: perhaps a checkpoint prefix (<prefix>.index, <prefix>.data-*)
  }
  try {
    const name = basename(file);
    const dir = dirname(file);
    return readdirSync(dir)
      .filter((n) => n.startsWith(`${name}.`))
      .reduce((sum, n) => sum + fileSize(join(dir, n)), 0);
  } catch {
    return 0;
  }
}

function directorySize(dir: string, depth: number): number {
  let sum = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true }).slice(0, 10_000)) {
    const path = join(dir, entry.name);
    if (entry.isFile()) sum += fileSize(path);
    else if (entry.isDirectory() && depth > 0) sum += directorySize(path, depth - 1);
  }
  return sum;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// What crosses the thread boundary (both sides use these).

/** The options the worker gets: the caller's, without functions and without the isolation options. */
export type WorkerReadOptions = Omit<ReadStateOptions, 'onProgress' | 'deadlineMs' | 'isolate'>;

/** A request from the parent: read a file's optimizer state, or (`kind: 'config'`) its optimizer-config text. */
export interface WorkerRequest {
  readonly id: number;
  readonly kind?: 'state' | 'config';
  readonly file: string;
  readonly options: WorkerReadOptions;
  /** Whether to post progress messages (the caller gave onProgress). */
  readonly progress: boolean;
}

/** A Keras file's optimizer-config JSON text and where in the file it was (formats/configSource.ts). */
export interface ConfigText {
  readonly text: string;
  readonly origin: string;
}

/** A tensor's parts; `data` is a typed array whose buffer is transferred. */
interface PackedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedData;
}

/** A lazy tensor's parts: no data, only where it is (chunked.ts). */
interface PackedLazy {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly source: LazySource;
  /** Its statistics, when the read computed them (`lazyStats`). */
  readonly stats?: TensorStats;
}

/** A state whose tensors were taken out: `refs` says where each one goes back (`lazy`: an index into `lazies`). */
export interface PackedState {
  readonly skeleton: unknown;
  readonly tensors: readonly PackedTensor[];
  readonly lazies?: readonly PackedLazy[];
  readonly refs: readonly { readonly path: readonly (string | number)[]; readonly tensor: number; readonly lazy?: boolean }[];
}

/** An error as it crosses: its class name, message, stack and own primitive fields (file, code, ...). */
export interface PackedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly fields: Record<string, string | number | boolean | null>;
}

/** Messages from the worker. `tainted`: libhdf5 aborted or trapped, so the worker must be replaced. */
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'where'; readonly id: number; readonly where: string }
  | { readonly type: 'progress'; readonly id: number; readonly done: number; readonly total: number }
  | { readonly type: 'result'; readonly id: number; readonly state: PackedState; readonly tainted: boolean }
  | { readonly type: 'config'; readonly id: number; readonly config: ConfigText; readonly tainted: boolean }
  | { readonly type: 'error'; readonly id: number; readonly error: PackedError; readonly tainted: boolean };

/**
 * Takes the Tensors out of a state (the same Tensor referenced twice stays one tensor) and lists
 * their buffers to transfer. The skeleton is a copy; the state is not changed.
 */
export function packState(state: KerasOptimizerState): { packed: PackedState; transfer: ArrayBuffer[] } {
  const tensors: PackedTensor[] = [];
  const index = new Map<Tensor, number>();
  const lazies: PackedLazy[] = [];
  const refs: { path: (string | number)[]; tensor: number; lazy?: boolean }[] = [];
  const seen = new Set<object>();
  const walk = (value: unknown, path: (string | number)[]): unknown => {
    if (value instanceof LazyTensor) {
      // crosses as where it is: the parent reads it in chunks from the same file
      let i = index.get(value);
      if (i === undefined) {
        const stats = knownStats(value);
        i = lazies.push({ dtype: value.dtype, shape: [...value.shape], source: { ...value.source }, ...(stats === undefined ? {} : { stats }) }) - 1;
        index.set(value, i);
      }
      refs.push({ path, tensor: i, lazy: true });
      return null;
    }
    if (value instanceof Tensor) {
      let i = index.get(value);
      if (i === undefined) {
        i = tensors.push({ dtype: value.dtype, shape: [...value.shape], data: value.data }) - 1;
        index.set(value, i);
      }
      refs.push({ path, tensor: i });
      return null;
    }
    if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
    if (seen.has(value)) throw new Error(`kerasopt: the state read has a cycle at ${path.join('.')}`);
    seen.add(value);
    try {
      if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, i]));
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return value; // left to the structured clone
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, [...path, k]);
      return out;
    } finally {
      seen.delete(value);
    }
  };
  const skeleton = walk(state, []);
  const buffers = new Set<ArrayBuffer>();
  for (const t of tensors) if (t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
  return { packed: { skeleton, tensors, ...(lazies.length > 0 ? { lazies } : {}), refs }, transfer: [...buffers] };
}

/** Rebuilds the state a worker packed: every tensor a Tensor again, shared ones shared. */
export function unpackState(packed: PackedState): KerasOptimizerState {
  const tensors = packed.tensors.map((t) => new Tensor(t.dtype, t.shape, t.data));
  const lazies = (packed.lazies ?? []).map((t) => {
    const lazy = new LazyTensor(t.dtype, t.shape, t.source);
    if (t.stats !== undefined) rememberStats(lazy, t.stats);
    return lazy;
  });
  const root = { value: packed.skeleton };
  for (const ref of packed.refs) {
    let at: Record<string | number, unknown> = root;
    let key: string | number = 'value';
    for (const k of ref.path) {
      at = at[key] as Record<string | number, unknown>;
      key = k;
    }
    at[key] = ref.lazy ? lazies[ref.tensor] : tensors[ref.tensor];
  }
  return root.value as KerasOptimizerState;
}

/** An error's name, message, stack and own primitive fields (FormatError's `file`, `code`, ...). */
export function packError(e: unknown): PackedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e), fields: {} };
  const fields: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'name' || k === 'message' || k === 'stack') continue;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields[k] = v;
  }
  return { name: e.name, message: e.message, ...(e.stack === undefined ? {} : { stack: e.stack }), fields };
}

/** kerasopt's error classes by name, so that a packed error comes back as the same class. */
const ERROR_CLASSES: Record<string, new (...args: never[]) => Error> = {
  ...Object.fromEntries(Object.entries(errors).filter(([, v]) => typeof v === 'function' && v.prototype instanceof Error)),
  ConfigError,
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/**
 * Rebuilds a packed error as an instance of the same class (kerasopt's classes, the built-in
 * ones; any other becomes an Error keeping its name) with the same message, fields and stack. No
 * constructor runs: FormatError's would prefix the file a second time.
 */
export function unpackError(p: PackedError): Error {
  const Class = Object.prototype.hasOwnProperty.call(ERROR_CLASSES, p.name) ? ERROR_CLASSES[p.name]! : Error;
  const e = Reflect.construct(Error, [p.message], Class) as Error;
  for (const [k, v] of Object.entries(p.fields)) Object.defineProperty(e, k, { value: v, enumerable: true, writable: true, configurable: true });
  // an own name as KerasoptError's constructor (or `err.name = ...`) sets it; built-in classes keep their prototype's
  if (e instanceof errors.KerasoptError || e.name !== p.name) Object.defineProperty(e, 'name', { value: p.name, enumerable: true, writable: true, configurable: true });
  if (p.stack !== undefined) Object.defineProperty(e, 'stack', { value: p.stack, enumerable: false, writable: true, configurable: true });
  return e;
}

// ---------------------------------------------------------------------------------------------
// The parent side: one worker, reused; requests queued; replaced after a deadline or a crash.

interface Job {
  readonly id: number;
  readonly kind: 'state' | 'config';
  readonly file: string;
  readonly label: string;
  readonly options: ReadStateOptions;
  readonly deadlineMs: number;
  readonly resolve: (result: KerasOptimizerState | ConfigText) => void;
  readonly reject: (e: unknown) => void;
  where: string;
}

const START_TIMEOUT_MS = 120_000;

/** Where a read is before its first HDF5 object (a checkpoint's reads never reach one). */
export const START = 'the file (no HDF5 object reached yet)';

/**
 * One worker thread and its private temporary folder (archives are extracted there). The folder's
 * name is unguessable; the worker makes it when a read needs it and removes it after the read, and
 * the parent removes it when it stops the worker (whatever the read was doing).
 */
class ReaderWorker {
  readonly worker: Worker;
  readonly tmp: string;
  readonly ready: Promise<void>;
  job: Job | null = null;
  private timer: NodeJS.Timeout | null = null;
  private gone = false;

  constructor() {
    this.tmp = join(tmpdir(), `kerasopt-worker-${process.pid}-${randomUUID()}`); // the pid lets a later kerasopt remove it if this process is killed
    this.worker = startWorker({ tmp: this.tmp });
    LIVE_TMP.add(this.tmp);
    this.ready = new Promise<void>((resolve, reject) => {
      const startTimer = setTimeout(() => reject(new Error(`kerasopt: the reader worker did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      startTimer.unref();
      const started = (m: WorkerReply) => {
        if (m.type !== 'ready') return;
        clearTimeout(startTimer);
        this.worker.off('message', started);
        resolve();
      };
      this.worker.on('message', started);
      this.worker.once('error', (e) => {
        clearTimeout(startTimer);
        reject(new Error(`kerasopt: the reader worker failed to start: ${e.message}${this.stderrText()}`));
      });
      this.worker.once('exit', (code) => {
        clearTimeout(startTimer);
        reject(new Error(`kerasopt: the reader worker exited (code ${code}) before it was ready${this.stderrText()}`));
      });
    });
    this.ready.catch(() => this.retire());
    this.worker.on('message', (m: WorkerReply) => this.onMessage(m));
    this.worker.on('error', (e) => this.onDeath(`it failed: ${e.message}`));
    this.worker.on('exit', (code) => this.onDeath(`it exited (code ${code})`));
  }

  /**
   * What reached the worker's stdout and stderr streams (the worker itself records and swallows
   * what is written while it reads, so normally nothing). Read only once the worker is gone: a
   * stdio stream that is read keeps the process alive as long as the worker lives.
   */
  private stderrText(): string {
    const chunks = [this.worker.stderr.read() as Buffer | null, this.worker.stdout.read() as Buffer | null];
    const t = chunks.map((c) => (c ? c.toString('utf8') : '')).join('').trim().slice(-2048);
    return t ? `; it printed: ${t.replace(/\s+/g, ' ')}` : '';
  }

  /**
   * True when something reached the worker's stdio streams. Node then keeps the process alive while
   * the worker lives (even unref'd), so an idle worker in that state is replaced instead of kept.
   */
  private printed(): boolean {
    return this.worker.stderr.readableLength > 0 || this.worker.stdout.readableLength > 0;
  }

  /** Sends a job; its deadline runs from now. */
  run(job: Job): void {
    this.job = job;
    if (this.idleCheck) clearTimeout(this.idleCheck);
    this.idleCheck = null;
    this.worker.ref();
    if (Number.isFinite(job.deadlineMs) && job.deadlineMs <= 2 ** 31 - 1) {
      this.timer = setTimeout(() => this.onDeadline(job), job.deadlineMs);
    }
    const { onProgress, deadlineMs: _d, isolate: _i, ...options } = job.options;
    const request: WorkerRequest = { id: job.id, kind: job.kind, file: job.file, options, progress: typeof onProgress === 'function' };
    this.worker.postMessage(request);
  }

  private finish(job: Job, replace: boolean): void {
    if (this.job !== job) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.job = null;
    if (replace || this.printed()) this.retire();
    else if (queue.length === 0) this.idle();
    pump();
  }

  private idleCheck: NodeJS.Timeout | null = null;

  /**
   * Lets the process exit while the worker waits for the next read. Output that reaches the stdio
   * streams late (after the reply) would keep the process alive: an unref'd timer, which fires only
   * when something else keeps the process alive, replaces the worker then.
   */
  private idle(): void {
    this.worker.unref();
    this.idleCheck = setTimeout(() => {
      this.idleCheck = null;
      if (!this.job && this.printed()) this.retire();
    }, 1000);
    this.idleCheck.unref();
  }

  private onMessage(m: WorkerReply): void {
    const job = this.job;
    if (!job || m.type === 'ready' || m.id !== job.id) return;
    switch (m.type) {
      case 'where':
        job.where = m.where;
        return;
      case 'progress':
        try {
          job.options.onProgress?.(m.done, m.total);
        } catch (e) {
          // the caller's callback failed: the read fails with its error, as in process
          this.finish(job, true);
          job.reject(e);
        }
        return;
      case 'result': {
        let state: KerasOptimizerState;
        try {
          state = unpackState(m.state);
        } catch (e) {
          this.finish(job, true);
          job.reject(e);
          return;
        }
        this.finish(job, m.tainted);
        job.resolve(state);
        return;
      }
      case 'config':
        this.finish(job, m.tainted);
        job.resolve(m.config);
        return;
      case 'error':
        this.finish(job, m.tainted);
        job.reject(unpackError(m.error));
        return;
    }
  }

  private onDeadline(job: Job): void {
    if (this.job !== job) return;
    const seconds = Number((job.deadlineMs / 1000).toFixed(3));
    this.finish(job, true);
    job.reject(
      new FormatError(
        job.label,
        `gave up after ${seconds} s, still reading ${job.where}: the read was stopped (libhdf5 can loop forever on a corrupt or crafted file; a larger deadlineMs, or kerasopt inspect --deadline SECONDS, allows more time)`,
      ),
    );
  }

  private onDeath(how: string): void {
    const job = this.job;
    const stderr = this.stderrText();
    this.gone = true;
    if (current === this) current = null;
    if (job) {
      this.finish(job, true);
      job.reject(new FormatError(job.label, `the reader stopped while reading ${job.where}: ${how}${stderr}`));
    }
    this.cleanup();
  }

  /** Stops the worker (whatever it is doing) and forgets it; the next read starts a new one. */
  retire(): void {
    if (current === this) current = null;
    if (this.gone) return;
    this.gone = true;
    this.worker.removeAllListeners('message');
    this.worker.removeAllListeners('error');
    this.worker.on('error', () => {});
    void this.worker.terminate().finally(() => this.cleanup());
  }

  private cleanup(): void {
    rmSync(this.tmp, { recursive: true, force: true });
    LIVE_TMP.delete(this.tmp);
  }
}

/** Temporary folders of live workers, removed at exit (an idle worker does not keep the process alive). */
const LIVE_TMP = new Set<string>();
let exitHook = false;

let current: ReaderWorker | null = null;
const queue: Job[] = [];
let nextId = 1;
let starting = false;

/** Runs the next queued job on the current worker, starting one if needed. */
function pump(): void {
  if (starting || queue.length === 0 || current?.job) return;
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const dir of LIVE_TMP) rmSync(dir, { recursive: true, force: true });
    });
  }
  let w: ReaderWorker;
  try {
    w = current ??= new ReaderWorker();
  } catch (e) {
    for (const job of queue.splice(0)) job.reject(e);
    return;
  }
  starting = true;
  w.ready.then(
    () => {
      starting = false;
      if (current !== w || w.job) return pump();
      const job = queue.shift();
      if (job) w.run(job);
    },
    (e: unknown) => {
      starting = false;
      // the worker cannot start: every waiting read fails with why (not the files' fault)
      for (const job of queue.splice(0)) job.reject(e);
    },
  );
}

/**
 * Reads `file` in the reader worker (see the module comment), with the deadline of
 * `options.deadlineMs` or {@link defaultDeadlineMs}. Reads queue: one runs at a time, and a read's
 * deadline starts when the worker takes it.
 */
export function readIsolated(file: string, options: ReadStateOptions = {}): Promise<KerasOptimizerState> {
  return submit('state', file, options) as Promise<KerasOptimizerState>;
}

/**
 * The optimizer-config text of a Keras HDF5 file (its training_config attribute), read in the reader
 * worker with the same deadline as {@link readIsolated}: `config show` / `config convert` of an
 * untrusted .h5 cannot hang the process either.
 */
export function readConfigTextIsolated(file: string, options: Pick<ReadStateOptions, 'deadlineMs' | 'label'> = {}): Promise<ConfigText> {
  return submit('config', file, options) as Promise<ConfigText>;
}

function submit(kind: 'state' | 'config', file: string, options: ReadStateOptions): Promise<KerasOptimizerState | ConfigText> {
  const deadlineMs = options.deadlineMs ?? defaultDeadlineMs(file);
  if (typeof deadlineMs !== 'number' || Number.isNaN(deadlineMs) || deadlineMs <= 0) {
    return Promise.reject(new KerasValueError(`deadlineMs must be a positive number of milliseconds (or Infinity), got ${String(options.deadlineMs)}`));
  }
  return new Promise<KerasOptimizerState | ConfigText>((resolve, reject) => {
    queue.push({ id: nextId++, kind, file, label: options.label ?? file, options, deadlineMs, resolve, reject, where: START });
    pump();
  });
}

/** Stops the reader worker now (tests, or a host that wants its thread back); the next read starts a new one. */
export function stopReaderWorker(): void {
  current?.retire();
}

/** The reader worker's thread id (null when none runs): lets tests see whether a worker was replaced. */
export function readerWorkerId(): number | null {
  return current?.worker.threadId ?? null;
}

// ---------------------------------------------------------------------------------------------
// Starting the worker from JavaScript (dist) or from the TypeScript sources (tests).

function startWorker(workerData: { tmp: string }): Worker {
  // execArgv: none of the parent's flags (some, such as --input-type or --eval, make a worker fail; none is needed to read)
  const stdio = { stdout: true, stderr: true, workerData, execArgv: [] };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./isolateWorker.js', import.meta.url), stdio);
  const require = createRequire(import.meta.url);
  let typescript: string;
  try {
    typescript = require.resolve('typescript');
  } catch {
    throw new Error('kerasopt: running from the TypeScript sources, the reader worker needs the `typescript` dev dependency (npm ci), or read with { isolate: false }');
  }
  const version = (JSON.parse(readFileSync(join(dirname(dirname(typescript)), 'package.json'), 'utf8')) as { version: string }).version;
  const config = { typescript: pathToFileURL(typescript).href, cacheDir: join(packageRoot(), 'node_modules', '.cache', 'kerasopt-ts'), salt: `typescript ${version}; ${TRANSPILE_OPTIONS}` };
  const entry = new URL('./isolateWorker.ts', import.meta.url).href;
  const boot = [
    `import { register } from 'node:module';`,
    `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(TS_HOOKS)}`)}, { data: ${JSON.stringify(config)} });`,
    `process.setSourceMapsEnabled(true);`,
    `await import(${JSON.stringify(entry)});`,
  ].join('\n');
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), stdio);
}

/** ts.transpileModule's options for the worker's sources: what tsc emits for tsconfig.json (ES2022 modules). */
const TRANSPILE_OPTIONS = '{"module":99,"target":9,"inlineSourceMap":true,"useDefineForClassFields":true}';

/**
 * Module hooks (run by Node in the worker's loader) for the TypeScript sources: `./x.js` imported
 * from a .ts file resolves to `./x.ts` when that exists (as TypeScript's NodeNext resolution does),
 * and a .ts file loads as its transpiled JavaScript, from the disk cache when the same source was
 * transpiled before (typescript itself is loaded only on a cache miss).
 */
const TS_HOOKS = `
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
let config;
let ts;
export function initialize(data) { config = data; }
export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (parent && parent.startsWith('file:') && parent.endsWith('.ts') && /^\\.\\.?\\//.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(specifier.slice(0, -3) + '.ts', parent);
    if (existsSync(fileURLToPath(url))) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const source = readFileSync(file, 'utf8');
  const key = createHash('sha256').update(config.salt).update('\\0').update(file).update('\\0').update(source).digest('hex');
  const cached = join(config.cacheDir, key.slice(0, 40) + '.js');
  let code = null;
  try { code = readFileSync(cached, 'utf8'); } catch {}
  if (code === null) {
    ts ??= (await import(config.typescript)).default;
    code = ts.transpileModule(source, { fileName: file, compilerOptions: ${TRANSPILE_OPTIONS} }).outputText;
    try {
      mkdirSync(config.cacheDir, { recursive: true });
      const tmp = cached + '.' + process.pid + '.' + Math.random().toString(36).slice(2);
      writeFileSync(tmp, code);
      renameSync(tmp, cached);
    } catch {}
  }
  return { format: 'module', source: code, shortCircuit: true };
}
`;
