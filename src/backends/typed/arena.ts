import { BackendError } from '../../errors.js';
import { Tensor } from '../../tensor/tensor.js';
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
 * they copy chunks in and out of their own wasm memory, which costs time at large sizes.
 *
 * The arena never grows (growing wasm memory would detach every array already handed out) and never
 * frees single tensors: its memory is released when neither the arena nor any of its arrays is
 * reachable. Size it for the variables, their m and v slots and the gradients that will live in it.
 *
 * @example
 * const arena = new Float32Arena(4 * n);
 * const w = new Variable(arena.zeros([n]), { name: 'w' });
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
    const t = this.zeros(shape);
    if (values.length !== t.size) throw new BackendError(`${values.length} values do not fill shape [${shape.join(', ')}]`);
    t.data.set(values);
    return t;
  }

  /** The arena whose memory holds `array`, if any. */
  static of(array: ArrayBufferView): Float32Arena | undefined {
    return arenas.get(array.buffer as ArrayBuffer);
  }
}
