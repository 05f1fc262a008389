import { BackendError } from '../../errors.js';
import { Tensor } from '../../tensor/tensor.js';
import { Variable } from '../../tensor/variable.js';
import { wasmApi, type WasmMemory } from './wasmBinary.js';

const PAGE = 65536;
/** Allocations start on 64-byte boundaries (a cache line; any f32x4 alignment). */
const ALIGN = 64;
const arenas = new WeakMap<ArrayBuffer, Float32Arena>();
/**
 * Bytes at the end of every arena that kernels use to stage arrays living outside it (a gradient in
 * an ordinary typed array, say) while the arena's own arrays are used in place. Not allocatable.
 */
export const ARENA_SCRATCH_BYTES = 256 * 1024;

/**
 * A fixed block of WebAssembly memory to allocate float32 tensors from. The typed backend's float32
 * dense kernels run *in place* on tensors that all live in the same arena; on ordinary typed arrays
 * they copy chunks in and out of their own wasm memory, which costs time at large sizes. (Tensors
 * made by `Tensor.zeros` / `Tensor.from` already live in the managed shared memory of
 * src/tensor/pool.ts, where kernels also run in place, and on every core; an arena is a fixed,
 * private block, stepped on one thread.)
 *
 * An optimizer creates the slots of a variable that lives in an arena (m and v for Nadam) in the same
 * arena when it has room, so a step then runs entirely in place; only arrays outside it (a gradient
 * in an ordinary typed array, say) are staged.
 *
 * The arena never grows: its wasm memory has `maximum` = `initial`, so even `memory.grow()` throws
 * instead of detaching the arrays already handed out. It never frees single tensors either: its
 * memory is released when neither the arena nor any of its arrays is reachable. Size it with
 * `Float32Arena.capacityFor` for the variables, their slots and the gradients that will live in it.
 *
 * @example
 * const arena = new Float32Arena(Float32Arena.capacityFor([[n]]));  // w, its m and v, and a gradient
 * const w = arena.variable(initialValues, { name: 'w' });
 * const g = arena.zeros([n]);                                      // fill it with the gradient each step
 * new Nadam().applyGradientsSync([[g, w]]);                        // w, m, v and g all in place
 */
export class Float32Arena {
  readonly memory: WasmMemory;
  /** Where the kernels' staging area starts (the end of the allocatable bytes). */
  readonly scratchOffset: number;
  private used = 0;

  /** An arena for `capacity` float32 elements (plus alignment padding). */
  constructor(capacity: number) {
    if (!wasmApi) throw new BackendError('Float32Arena needs WebAssembly, which this runtime lacks');
    if (!Number.isInteger(capacity) || capacity < 0) throw new BackendError(`Float32Arena capacity must be a non-negative integer, got ${capacity}`);
    const pages = Math.ceil((capacity * 4 + 16 * ALIGN + ARENA_SCRATCH_BYTES) / PAGE);
    if (pages > 65536) throw new BackendError(`Float32Arena of ${capacity} float32 elements exceeds wasm32's 4 GiB`);
    this.memory = new wasmApi.Memory({ initial: pages, maximum: pages });
    this.scratchOffset = pages * PAGE - ARENA_SCRATCH_BYTES;
    arenas.set(this.memory.buffer, this);
  }

  /** The largest array `allocate` can still hand out. */
  get remaining(): number {
    return Math.max(0, Math.floor((this.scratchOffset - this.nextStart()) / 4));
  }

  private nextStart(): number {
    return Math.ceil(this.used / ALIGN) * ALIGN;
  }

  /** A zero-filled Float32Array of `n` elements inside the arena. */
  allocate(n: number): Float32Array {
    if (!Number.isInteger(n) || n < 0) throw new BackendError(`cannot allocate ${n} float32 elements`);
    const start = this.nextStart();
    if (start + n * 4 > this.scratchOffset) {
      throw new BackendError(`Float32Arena is full: ${n} float32 elements requested, ${this.remaining} left`);
    }
    this.used = start + n * 4;
    return new Float32Array(this.memory.buffer, start, n);
  }

  /** A zero-filled float32 tensor of `shape` inside the arena. */
  zeros(shape: readonly number[]): Tensor<'float32'> {
    return new Tensor('float32', shape, this.allocate(shape.reduce((a, b) => a * b, 1)));
  }

  /** Like `zeros`, but null instead of an error when the arena cannot hold it. */
  tryZeros(shape: readonly number[]): Tensor<'float32'> | null {
    const n = shape.reduce((a, b) => a * b, 1);
    return this.nextStart() + n * 4 <= this.scratchOffset ? this.zeros(shape) : null;
  }

  /** A float32 tensor inside the arena holding a copy of `values` (rounded to float32). */
  from(values: ArrayLike<number>, shape: readonly number[] = [values.length]): Tensor<'float32'> {
    if (values.length !== shape.reduce((a, b) => a * b, 1)) throw new BackendError(`${values.length} values do not fill shape [${shape.join(', ')}]`);
    const t = this.zeros(shape);
    t.data.set(values);
    return t;
  }

  /** A float32 Variable whose value is a copy of `init` (rounded to float32), inside the arena. */
  variable(init: Tensor | ArrayLike<number>, options: { name?: string; trainable?: boolean } = {}): Variable<'float32'> {
    if (!(init instanceof Tensor)) return new Variable(this.from(init), options);
    const values = init.dtype === 'float32' || init.dtype === 'float64' ? (init.data as ArrayLike<number>) : init.toArray();
    const value = this.from(values, init.shape);
    return new Variable(value, options);
  }

  /**
   * The capacity (in float32 elements, alignment included) that holds `arraysPerShape` arrays of each
   * of `shapes`: 4 by default, a variable, the two Nadam slots and a gradient.
   */
  static capacityFor(shapes: readonly (readonly number[])[], arraysPerShape = 4): number {
    const aligned = (n: number) => Math.ceil(n / (ALIGN / 4)) * (ALIGN / 4);
    return shapes.reduce((sum, shape) => sum + arraysPerShape * aligned(shape.reduce((a, b) => a * b, 1)), 0);
  }

  /**
   * Zeros shaped like `tensor`, in the arena that holds it, when it is a float32 tensor inside an arena
   * with room left; otherwise null. Optimizers create their slots with it.
   */
  static zerosBeside(tensor: Tensor): Tensor<'float32'> | null {
    if (tensor.dtype !== 'float32') return null;
    return Float32Arena.of(tensor.data as Float32Array)?.tryZeros(tensor.shape) ?? null;
  }

  /** The arena whose memory holds `array`, if any. */
  static of(array: ArrayBufferView): Float32Arena | undefined {
    return arenas.get(array.buffer as ArrayBuffer);
  }
}
