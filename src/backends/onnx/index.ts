import { BackendError } from '../../errors.js';
import type { FloatDType } from '../../tensor/dtype.js';
import { sameShape, shapeToString, Tensor, type FloatTensor } from '../../tensor/tensor.js';
import { buildKernelGraph, KERNEL_OUTPUTS, type KernelKind } from '../../onnx/nadamGraph.js';
import type { Backend, DenseStep, NadamCoefficients, NadamState, TfKerasNadamCoefficients, UniqueRows } from '../backend.js';
import { TypedArrayBackend } from '../typed/index.js';
import { threadSettings } from '../typed/threads.js';
import { runWindows, type FloatStorage, type Segment, type WindowBuffers, type WindowRuntime } from './windows.js';
import { OnnxWorkerTeam } from './workers.js';
import { createSession, loadOnnxRuntime, type OnnxSessionOptions, type OrtModule, type OrtSession, type OrtTensor } from './runtime.js';

export type { OnnxSessionOptions } from './runtime.js';

/** Options of the onnx backend. */
export interface OnnxBackendOptions extends OnnxSessionOptions {
  /**
   * Dense steps run on flat chunks of this many elements, so that the graph's intermediate tensors
   * stay in cache instead of streaming N-sized temporaries through memory. Default 131072 (512 KiB
   * per float32 intermediate): the fastest of 16 K - 1 M in an interleaved scan at N = 1e7.
   */
  readonly chunkElements?: number;
  /**
   * Worker threads a large dense step is split over, each with its own onnxruntime session (default:
   * the process-wide setting of `configureThreads`, i.e. os.availableParallelism() or env
   * KERASOPT_THREADS; 1 keeps every step on the calling thread). Only state in the shared memory (the
   * default for tensors of 4096+ elements) can be handed to workers; other arrays step on this thread.
   */
  readonly threads?: number;
  /** Each thread gets at least this many elements of a step (default 262144): below, one thread. */
  readonly workerMinElements?: number;
}

const DEFAULT_CHUNK = 1 << 17;
const DEFAULT_WORKER_MIN = 1 << 18;
const OUTPUTS = [KERNEL_OUTPUTS.w, KERNEL_OUTPUTS.m, KERNEL_OUTPUTS.v] as const;

/** One compiled step graph: its session and its reusable scalar coefficient feeds. */
interface Kernel {
  readonly kind: KernelKind;
  readonly session: OrtSession;
  /** Names of the scalar coefficient inputs (keys of the coefficient object). */
  readonly coefficients: readonly string[];
  /** The ONNX type the coefficients are fed in (float16 ones travel as float32: they are half values). */
  readonly scalarType: 'float32' | 'float64';
  /** The graph's model bytes (worker threads create their own sessions from them). */
  readonly model: Uint8Array;
}

/** The ONNX element type of a kerasopt dtype's data as onnxruntime-node takes it. */
const ORT_TYPE = { float16: 'float16', float32: 'float32', float64: 'float64' } as const;

/**
 * The onnxruntime backend: the Nadam step kernels run as ONNX graphs (built in TypeScript, see
 * src/onnx/nadamGraph.ts) on onnxruntime-node's CPU execution provider. One session per (step
 * kind, dtype) serves every tensor size (tensors are fed flattened); coefficients are scalar
 * inputs; outputs are bound to preallocated tensors (the state's own buffers, or window buffers
 * kept between steps), so onnxruntime allocates none. A step's dense variables of one dtype are
 * one stream, cut into cache-sized windows, one run per window (windows.ts); large steps in the
 * shared memory are split across worker threads with their own sessions (workers.ts).
 *
 * The helper kernels (sumOfSquares, clipByValue, scaleDiv, segmentSumRows, scatterRows) are
 * delegated to the typed backend: they are short, index-driven or reductions in a fixed order,
 * where a graph would add a run-time hop and nothing else.
 *
 * Every kernel of this backend answers with a promise: use `Optimizer.applyGradients`.
 */
export class OnnxBackend implements Backend {
  readonly name = 'onnx';
  readonly synchronous = false;
  private readonly ort: OrtModule;
  private readonly helpers = new TypedArrayBackend();
  private readonly kernels = new Map<string, Promise<Kernel>>();

  private readonly chunk: number;
  private readonly workerMinElements: number;
  private team: OnnxWorkerTeam | null = null;
  /** Window buffers of this thread, per dtype (kept for every later step). */
  private readonly buffers = new Map<FloatDType, WindowBuffers>();
  /** Serializes this thread's windows: concurrent steps would otherwise share the window buffers. */
  private lock: Promise<void> = Promise.resolve();
  /** onnxruntime runs of dense windows so far, on this thread and on the workers (for tests and the bench). */
  windowRuns = 0;
  workerRuns = 0;

  constructor(private readonly options: OnnxBackendOptions = {}) {
    this.ort = loadOnnxRuntime();
    this.chunk = options.chunkElements ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(this.chunk) || this.chunk < 1) throw new BackendError(`onnx backend: chunkElements must be an integer >= 1, got ${this.chunk}`);
    if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1)) {
      throw new BackendError(`onnx backend: threads must be an integer >= 1, got ${options.threads}`);
    }
    this.workerMinElements = Math.max(1, options.workerMinElements ?? DEFAULT_WORKER_MIN);
  }

  /** Threads a large step uses (this option, else the process-wide setting). */
  private get threads(): number {
    return this.options.threads ?? threadSettings().threads;
  }

  supportsDType(dtype: FloatDType): boolean {
    return dtype === 'float16' || dtype === 'float32' || dtype === 'float64';
  }

  async nadamDense(state: NadamState, grad: FloatTensor, c: NadamCoefficients): Promise<void> {
    await this.nadamDenseBatch([{ state, grad }], c);
  }

  /**
   * One dense step of every variable in `items` (all of one dtype, sharing `c`): their elements are
   * one stream cut into windows, one onnxruntime run per window however many variables it covers
   * (see windows.ts). Arrays in the shared memory, when there are at least 2 x `workerMinElements`
   * elements of them, are split over worker threads, each running its own session.
   */
  async nadamDenseBatch(items: readonly DenseStep[], c: NadamCoefficients): Promise<void> {
    const kind: KernelKind = c.kind === 'tf-keras' ? 'dense-tf-keras' : c.moments === 'decay-then-scatter' ? 'dense-tf-keras-new-sparse' : 'dense-keras3';
    if (items.length === 0) return;
    const dtype = items[0]!.state.variable.dtype;
    for (const { state, grad } of items) {
      checkState(kind, state, grad, state.variable.shape);
      if (state.variable.dtype !== dtype) throw new BackendError(`onnx backend, step ${kind}: one batch mixes ${dtype} and ${state.variable.dtype} variables`);
    }
    const live = items.filter((x) => x.state.variable.size > 0);
    if (live.length === 0) return;
    const k = await this.kernel(kind, dtype);
    const where = live.length === 1 ? `${dtype}${shapeToString(live[0]!.state.variable.shape)}` : `${live.length} ${dtype} variables`;
    const segments = live.map(({ state, grad }) => [state.variable, state.m, state.v, grad].map((t) => t.data as FloatStorage) as unknown as Segment);
    const shared = segments.filter((s) => s.every(isShared));
    const own = segments.filter((s) => !s.every(isShared));
    const total = shared.reduce((n, s) => n + s[0].length, 0);
    const threads = Math.min(this.threads, Math.max(1, Math.floor(total / this.workerMinElements)));
    try {
      if (threads <= 1) {
        await this.inProcess(k, dtype, segments, c);
        return;
      }
      // contiguous ranges of the shared stream, one per worker; this thread meanwhile steps the other
      // arrays. (Measured: this thread taking a range too made the step slower, not faster: its runs
      // go through the event loop, and the workers' halves took as long as the whole on one thread.)
      const team = (this.team ??= new OnnxWorkerTeam(this.options));
      const per = Math.ceil(total / threads);
      const jobs = [];
      for (let t = 0; t < threads; t++) {
        jobs.push(team.run(t, {
          key: `${kind}/${dtype}`, model: k.model, segments: shared, start: t * per, end: Math.min(total, (t + 1) * per),
          chunk: this.chunk, type: ORT_TYPE[dtype], scalarType: k.scalarType, coefficients: coefficientValues(k, c), outputs: OUTPUTS,
        }));
      }
      jobs.forEach((j) => j.catch(() => {})); // awaited below, after this thread's part
      if (own.length > 0) await this.inProcess(k, dtype, own, c);
      const runs = await Promise.all(jobs);
      this.workerRuns += runs.reduce((x, y) => x + y, 0);
    } catch (e) {
      throw new BackendError(`onnx backend, step ${kind} (${where}): onnxruntime failed: ${(e as Error).message}`);
    }
  }

  async nadamSparse(state: NadamState, rows: UniqueRows, c: TfKerasNadamCoefficients): Promise<void> {
    const kind: KernelKind = 'sparse-tf-keras';
    const w = state.variable;
    if (w.rank === 0) throw new BackendError(`onnx backend, step ${kind}: tensor 'variable' is a scalar; sparse rows need rank >= 1`);
    const width = w.shape.slice(1).reduce((x, y) => x * y, 1);
    checkState(kind, state, rows.values, [rows.indices.length, ...w.shape.slice(1)]);
    if (w.size === 0) return;
    const k = await this.kernel(kind, w.dtype);
    const indices = BigInt64Array.from(rows.indices, (i) => BigInt(i));
    const dims = [w.shape[0]!, width];
    // arrays in the managed (shared) memory go through ordinary copies: onnxruntime-node refuses them
    const own = (t: FloatTensor): FloatTensor => (isShared(t.data) ? new Tensor(t.dtype, t.shape, (t.data as TypedArray).slice() as Float32Array) : t);
    const [ws, ms, vs] = [own(w), own(state.m), own(state.v)];
    await this.run(k, `${w.dtype}${shapeToString(w.shape)}`, {
      ...this.coefficientFeeds(k, c),
      variable: this.tensor(ws, dims),
      m: this.tensor(ms, dims),
      v: this.tensor(vs, dims),
      gradient: this.tensor(own(rows.values), [rows.indices.length, width]),
      indices: new this.ort.Tensor('int64', indices, [rows.indices.length, 1]),
    });
    for (const [from, to] of [[ws, w], [ms, state.m], [vs, state.v]] as const) if (from !== to) (to.data as TypedArray).set(from.data as TypedArray);
  }

  sumOfSquares(x: FloatTensor): number {
    return this.helpers.sumOfSquares(x);
  }

  clipByValue(x: FloatTensor, lo: number, hi: number): FloatTensor {
    return this.helpers.clipByValue(x, lo, hi);
  }

  scaleDiv(x: FloatTensor, mul: number, div: number): FloatTensor {
    return this.helpers.scaleDiv(x, mul, div);
  }

  segmentSumRows(indices: ArrayLike<number>, values: FloatTensor): UniqueRows {
    return this.helpers.segmentSumRows(indices, values);
  }

  scatterRows(rows: UniqueRows, shape: readonly number[]): FloatTensor {
    return this.helpers.scatterRows(rows, shape);
  }

  /** Releases every onnxruntime session this backend created and stops its worker threads. */
  async dispose(): Promise<void> {
    const team = this.team;
    this.team = null;
    await team?.terminate();
    const kernels = [...this.kernels.values()];
    this.kernels.clear();
    for (const k of kernels) await (await k.catch(() => null))?.session.release();
  }

  /** How many sessions exist (one per step kind and dtype used so far). */
  get sessionCount(): number {
    return this.kernels.size;
  }

  private tensor(t: FloatTensor, dims: readonly number[]): OrtTensor {
    return new this.ort.Tensor(ORT_TYPE[t.dtype], t.data as Float32Array, dims);
  }

  private kernel(kind: KernelKind, dtype: FloatDType): Promise<Kernel> {
    const key = `${kind}/${dtype}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = this.compile(kind, dtype);
      this.kernels.set(key, k);
      k.catch(() => this.kernels.delete(key));
    }
    return k;
  }

  private async compile(kind: KernelKind, dtype: FloatDType): Promise<Kernel> {
    const graph = buildKernelGraph(kind, dtype);
    const session = await createSession(graph.model, `the ${kind} ${dtype} step graph`, this.options);
    return { kind, session, coefficients: graph.coefficients, scalarType: dtype === 'float64' ? 'float64' : 'float32', model: graph.model };
  }

  /**
   * This step's coefficient feeds: fresh one-element tensors per step (not per chunk), so that two
   * optimizers stepping concurrently on one backend never see each other's coefficients.
   */
  private coefficientFeeds(k: Kernel, c: NadamCoefficients): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, value] of Object.entries(coefficientValues(k, c))) {
      feeds[name] = new this.ort.Tensor(k.scalarType, k.scalarType === 'float64' ? Float64Array.of(value) : Float32Array.of(value), []);
    }
    return feeds;
  }

  /** Runs elements [start, end) of the stream of `segments` on this thread, one step at a time. */
  private async inProcess(k: Kernel, dtype: FloatDType, segments: readonly Segment[], c: NadamCoefficients, start = 0, end = Infinity): Promise<void> {
    const total = segments.reduce((n, s) => n + s[0].length, 0);
    const job = { segments, start, end: Math.min(end, total), chunk: this.chunk, type: ORT_TYPE[dtype], coefficients: this.coefficientFeeds(k, c), outputs: OUTPUTS };
    const run = this.lock.then(() => runWindows(this.ort as unknown as WindowRuntime, k.session, this.windowBuffers(dtype), job));
    this.lock = run.then(() => {}, () => {});
    this.windowRuns += await run;
  }

  private windowBuffers(dtype: FloatDType): WindowBuffers {
    let b = this.buffers.get(dtype);
    if (!b) {
      const arrays = [0, 1, 2, 3].map(() => newData(dtype, this.chunk));
      b = { arrays, tensors: arrays.map((a) => new this.ort.Tensor(ORT_TYPE[dtype], a as Float32Array, [this.chunk])) };
      this.buffers.set(dtype, b);
    }
    return b;
  }

  /**
   * Runs a step graph on `inputs` (coefficients, variable, m, v, gradient, and indices for sparse). The outputs
   * are bound to the input state's own buffers: every node that reads an old value is an ancestor
   * of the node that writes its new value, so writing in place never clobbers a pending read.
   */
  private async run(k: Kernel, where: string, inputs: Record<string, OrtTensor>): Promise<void> {
    const fetches = { [KERNEL_OUTPUTS.w]: inputs.variable!, [KERNEL_OUTPUTS.m]: inputs.m!, [KERNEL_OUTPUTS.v]: inputs.v! };
    try {
      await k.session.run(inputs, fetches);
    } catch (e) {
      throw new BackendError(`onnx backend, step ${k.kind} (${where}): onnxruntime failed: ${(e as Error).message}`);
    }
  }
}

type TypedArray = FloatStorage;

/** The values of a kernel's coefficient inputs, by input name. */
function coefficientValues(k: Kernel, c: NadamCoefficients): Record<string, number> {
  const values = c as unknown as Record<string, number>;
  return Object.fromEntries(k.coefficients.map((name) => [name, values[name]!]));
}

/** Whether an array lives in a SharedArrayBuffer (the managed memory), which onnxruntime-node cannot take. */
function isShared(data: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer;
}

/** An ordinary zero-filled array of `n` elements of `dtype`'s storage. */
function newData(dtype: FloatDType, n: number): TypedArray {
  return dtype === 'float64' ? new Float64Array(n) : dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
}

/** Checks that m, v and the gradient match the variable before anything is fed (names the tensor at fault). */
function checkState(kind: KernelKind, state: NadamState, grad: FloatTensor, gradShape: readonly number[]): void {
  const w = state.variable;
  const fail = (name: string, t: FloatTensor, shape: readonly number[]): never => {
    throw new BackendError(
      `onnx backend, step ${kind}: tensor '${name}' is ${t.dtype}${shapeToString(t.shape)}, expected ${w.dtype}${shapeToString(shape)} to match 'variable'`,
    );
  };
  if (state.m.dtype !== w.dtype || !sameShape(state.m.shape, w.shape)) fail('m', state.m, w.shape);
  if (state.v.dtype !== w.dtype || !sameShape(state.v.shape, w.shape)) fail('v', state.v, w.shape);
  if (grad.dtype !== w.dtype || !sameShape(grad.shape, gradShape)) fail('gradient', grad, gradShape);
}
