import { BackendError } from '../../errors.js';
import type { FloatDType } from '../../tensor/dtype.js';
import { sameShape, shapeToString, Tensor, type FloatTensor } from '../../tensor/tensor.js';
import { buildKernelGraph, KERNEL_OUTPUTS, type KernelKind } from '../../onnx/nadamGraph.js';
import type { Backend, NadamCoefficients, NadamState, TfKerasNadamCoefficients, UniqueRows } from '../backend.js';
import { TypedArrayBackend } from '../typed/index.js';
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
}

const DEFAULT_CHUNK = 1 << 17;

/** One compiled step graph: its session and its reusable scalar coefficient feeds. */
interface Kernel {
  readonly kind: KernelKind;
  readonly session: OrtSession;
  /** Names of the scalar coefficient inputs (keys of the coefficient object). */
  readonly coefficients: readonly string[];
  /** The ONNX type the coefficients are fed in (float16 ones travel as float32: they are half values). */
  readonly scalarType: 'float32' | 'float64';
}

/** The ONNX element type of a kerasopt dtype's data as onnxruntime-node takes it. */
const ORT_TYPE = { float16: 'float16', float32: 'float32', float64: 'float64' } as const;

/**
 * The onnxruntime backend: the Nadam step kernels run as ONNX graphs (built in TypeScript, see
 * src/onnx/nadamGraph.ts) on onnxruntime-node's CPU execution provider. One session per (step
 * kind, dtype) serves every tensor size (tensors are fed flattened); coefficients are scalar
 * inputs; the state tensors' own buffers are fed without copying and are bound as the
 * preallocated outputs, so onnxruntime writes the new state in place.
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

  constructor(private readonly options: OnnxBackendOptions = {}) {
    this.ort = loadOnnxRuntime();
    this.chunk = options.chunkElements ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(this.chunk) || this.chunk < 1) throw new BackendError(`onnx backend: chunkElements must be an integer >= 1, got ${this.chunk}`);
  }

  supportsDType(dtype: FloatDType): boolean {
    return dtype === 'float16' || dtype === 'float32' || dtype === 'float64';
  }

  async nadamDense(state: NadamState, grad: FloatTensor, c: NadamCoefficients): Promise<void> {
    const kind: KernelKind = c.kind === 'tf-keras' ? 'dense-tf-keras' : c.moments === 'decay-then-scatter' ? 'dense-tf-keras-new-sparse' : 'dense-keras3';
    checkState(kind, state, grad, state.variable.shape);
    const n = state.variable.size;
    if (n === 0) return;
    const k = await this.kernel(kind, state.variable.dtype);
    const coefficients = this.coefficientFeeds(k, c);
    const where = `${state.variable.dtype}${shapeToString(state.variable.shape)}`;
    const arrays = [state.variable, state.m, state.v, grad];
    if (!arrays.some((t) => isShared(t.data))) {
      // Elementwise, so it runs on flat chunks whose intermediates stay in cache; each chunk's
      // tensors are views of the state's own buffers (no copies).
      for (let start = 0; start < n; start += this.chunk) {
        const end = Math.min(n, start + this.chunk);
        const view = (t: FloatTensor) => this.view(t, start, end);
        await this.run(k, where, { ...coefficients, variable: view(state.variable), m: view(state.m), v: view(state.v), gradient: view(grad) });
      }
      return;
    }
    // onnxruntime-node refuses SharedArrayBuffer-backed arrays (the managed memory of src/tensor/pool.ts):
    // those are staged through two sets of ordinary buffers, so that copying chunk k + 1 in and chunk
    // k - 1 out overlaps onnxruntime's run of chunk k on its own thread.
    const dtype = state.variable.dtype;
    const width = Math.min(this.chunk, n);
    const sets = [0, 1].map(() => arrays.map((t) => (isShared(t.data) ? newData(dtype, width) : null)));
    const feedsOf = (set: (TypedArray | null)[], start: number, end: number) => {
      const t = arrays.map((x, i) => {
        const staged = set[i];
        if (!staged) return this.view(x, start, end);
        const part = staged.subarray(0, end - start);
        return new this.ort.Tensor(ORT_TYPE[dtype], part as Float32Array, [end - start]);
      });
      return { ...coefficients, variable: t[0]!, m: t[1]!, v: t[2]!, gradient: t[3]! };
    };
    const copyIn = (set: (TypedArray | null)[], start: number, end: number) => {
      arrays.forEach((x, i) => set[i]?.set((x.data as TypedArray).subarray(start, end)));
    };
    const copyOut = (set: (TypedArray | null)[], start: number, end: number) => {
      for (let i = 0; i < 3; i++) if (set[i]) (arrays[i]!.data as TypedArray).set(set[i]!.subarray(0, end - start), start);
    };
    let pending: { run: Promise<void>; set: (TypedArray | null)[]; start: number; end: number } | null = null;
    for (let start = 0, j = 0; start < n; start += this.chunk, j++) {
      const end = Math.min(n, start + this.chunk);
      const set = sets[j & 1]!;
      copyIn(set, start, end);
      const run = this.run(k, where, feedsOf(set, start, end));
      run.catch(() => {}); // awaited below; avoids an unhandled rejection while the previous chunk settles
      if (pending) {
        await pending.run;
        copyOut(pending.set, pending.start, pending.end);
      }
      pending = { run, set, start, end };
    }
    if (pending) {
      await pending.run;
      copyOut(pending.set, pending.start, pending.end);
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

  /** Releases every onnxruntime session this backend created. */
  async dispose(): Promise<void> {
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
    return { kind, session, coefficients: graph.coefficients, scalarType: dtype === 'float64' ? 'float64' : 'float32' };
  }

  /**
   * This step's coefficient feeds: fresh one-element tensors per step (not per chunk), so that two
   * optimizers stepping concurrently on one backend never see each other's coefficients.
   */
  private coefficientFeeds(k: Kernel, c: NadamCoefficients): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    const values = c as unknown as Record<string, number>;
    for (const name of k.coefficients) {
      const data = k.scalarType === 'float64' ? Float64Array.of(values[name]!) : Float32Array.of(values[name]!);
      feeds[name] = new this.ort.Tensor(k.scalarType, data, []);
    }
    return feeds;
  }

  private view(t: FloatTensor, start: number, end: number): OrtTensor {
    return new this.ort.Tensor(ORT_TYPE[t.dtype], (t.data as Float32Array).subarray(start, end), [end - start]);
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

type TypedArray = Float32Array | Float64Array | Uint16Array;

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
