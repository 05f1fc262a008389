import { isMainThread } from 'node:worker_threads';

/*
 * The managed memory: one process-wide, growable, *shared* WebAssembly.Memory from which float16,
 * float32 and float64 tensors are allocated by default (Tensor.zeros, Tensor.from, clone, optimizer slots), so that the
 * typed backend's wasm kernels run on them in place and worker threads can share the work.
 *
 * Why shared: growing an ordinary wasm memory detaches its ArrayBuffer, and with it every tensor
 * already handed out. A shared memory is reserved up to its maximum once, so `memory.grow()` never
 * moves it: the SharedArrayBuffer objects handed out before a growth stay valid (each growth gives
 * `memory.buffer` a new, longer SharedArrayBuffer object over the same bytes, all remembered here).
 *
 * Blocks are 64-byte aligned, taken first-fit from a free list (adjacent free blocks are merged) and
 * given back when their typed array is garbage-collected (FinalizationRegistry). A view made from a
 * pooled array (`subarray`, `new Float32Array(t.data.buffer, ...)`) does not keep the block alive:
 * keep the tensor or its `data`. Allocation falls back to an ordinary typed array when the memory is
 * full (2 GiB by default), below `minElements`, off the main thread (arrays a worker posts back would be
 * shared, not copied), or when disabled (`configurePool({ enabled: false })`, KERASOPT_POOL=0).
 */

const PAGE = 65536;
const ALIGN = 64;

interface WasmSharedMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}

interface MemoryCtor {
  new (d: { initial: number; maximum: number; shared: true }): WasmSharedMemory;
}

export interface PoolOptions {
  /** Allocate float16, float32 and float64 tensors in the managed memory (default true; env KERASOPT_POOL=0 turns it off). */
  readonly enabled?: boolean;
  /** Tensors smaller than this stay in ordinary typed arrays (default 4096 elements). */
  readonly minElements?: number;
  /**
   * The shared memory's maximum, in 64 KiB pages (default 32768 = 2 GiB, env KERASOPT_POOL_PAGES; at
   * most 65536 = 4 GiB, wasm32's limit; fixed once the memory exists). It is reserved up front, and
   * since freed blocks are only known after a garbage collection, it also bounds how far a program
   * that keeps making large temporary tensors can grow the memory before allocations spill to
   * ordinary arrays (whose pressure then triggers the collection that frees blocks).
   */
  readonly maximumPages?: number;
}

const settings = {
  enabled: process.env.KERASOPT_POOL !== '0',
  minElements: 4096,
  maximumPages: Number(process.env.KERASOPT_POOL_PAGES ?? 32768),
};

/** A block of the shared memory: [start, start + bytes). */
interface Block {
  start: number;
  bytes: number;
}

export class SharedFloatPool {
  readonly memory: WasmSharedMemory;
  /** Every SharedArrayBuffer object this memory has had (one per growth). */
  private readonly buffers = new WeakSet<SharedArrayBuffer>();
  private buffer: SharedArrayBuffer;
  /** Free blocks, sorted by start, never adjacent. */
  private readonly free: Block[] = [];
  private top = 0;
  /** Bytes above this were never handed out: still the zeros of a fresh wasm memory. */
  private highWater = 0;
  private live = 0;
  private readonly registry = new FinalizationRegistry<Block>((b) => this.release(b));

  constructor(maximumPages: number) {
    const api = (globalThis as { WebAssembly?: { Memory: MemoryCtor } }).WebAssembly;
    if (!api || typeof SharedArrayBuffer === 'undefined') throw new Error('no shared WebAssembly memory in this runtime');
    this.memory = new api.Memory({ initial: 1, maximum: maximumPages, shared: true });
    this.buffer = this.memory.buffer;
    this.buffers.add(this.buffer);
    this.top = ALIGN; // offset 0 is never handed out
  }

  /** Whether `array` is a view of this memory. */
  holds(array: ArrayBufferView): boolean {
    return this.buffers.has(array.buffer as SharedArrayBuffer);
  }

  /** The current SharedArrayBuffer of the memory (its latest, longest view). */
  get currentBuffer(): SharedArrayBuffer {
    return this.buffer;
  }

  /** Bytes handed out and not yet collected. */
  get liveBytes(): number {
    return this.live;
  }

  /** Bytes the memory spans now. */
  get byteLength(): number {
    return this.buffer.byteLength;
  }

  /**
   * `bytes` bytes (64-byte aligned, zero-filled) or null when the memory is full. Nothing frees the
   * block but `releaseBlock` (float32 / float64 register their arrays for release on collection).
   */
  allocateBlock(bytes: number): Block | null {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let k = 0; k < this.free.length; k++) {
      const b = this.free[k]!;
      if (b.bytes < size) continue;
      const block = { start: b.start, bytes: size };
      if (b.bytes === size) this.free.splice(k, 1);
      else {
        b.start += size;
        b.bytes -= size;
      }
      new Uint8Array(this.buffer, block.start, size).fill(0);
      this.live += size;
      return block;
    }
    const end = this.top + size;
    if (end > this.buffer.byteLength) {
      const need = Math.ceil((end - this.buffer.byteLength) / PAGE);
      // grow by at least a quarter of the current size, to keep the number of growths small
      const pages = Math.max(need, Math.ceil(this.buffer.byteLength / PAGE / 4));
      if (!this.grow(pages) && !this.grow(need)) return null;
    }
    const block = { start: this.top, bytes: size };
    if (this.highWater > block.start) new Uint8Array(this.buffer, block.start, Math.min(size, this.highWater - block.start)).fill(0);
    this.top = end;
    this.highWater = Math.max(this.highWater, end);
    this.live += size;
    return block;
  }

  private grow(pages: number): boolean {
    try {
      this.memory.grow(pages);
    } catch {
      return false;
    }
    this.buffer = this.memory.buffer;
    this.buffers.add(this.buffer);
    return true;
  }

  /** A zero-filled Float32Array of `n` elements in the memory, or null when it is full. */
  float32(n: number): Float32Array | null {
    return this.array(n, Float32Array);
  }

  /** A zero-filled Float64Array of `n` elements in the memory, or null when it is full. */
  float64(n: number): Float64Array | null {
    return this.array(n, Float64Array);
  }

  /** A zero-filled Uint16Array (float16 bits) of `n` elements in the memory, or null when it is full. */
  float16(n: number): Uint16Array | null {
    return this.array(n, Uint16Array);
  }

  /** `n` elements of `Ctor` in a new block, given back when the array is collected. */
  private array<T extends Float32Array | Float64Array | Uint16Array>(n: number, Ctor: new (buffer: ArrayBuffer, offset: number, length: number) => T): T | null {
    const block = this.allocateBlock(n * (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT);
    if (!block) return null;
    const array = new Ctor(this.buffer as unknown as ArrayBuffer, block.start, n);
    this.registry.register(array, block);
    return array;
  }

  /** Gives back a block from `allocateBlock` that no array was registered for. */
  releaseBlock(block: Block): void {
    this.release(block);
  }

  private release(block: Block): void {
    this.live -= block.bytes;
    const free = this.free;
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (free[mid]!.start < block.start) lo = mid + 1;
      else hi = mid;
    }
    const b = { start: block.start, bytes: block.bytes };
    free.splice(lo, 0, b);
    const next = free[lo + 1];
    if (next && b.start + b.bytes === next.start) {
      b.bytes += next.bytes;
      free.splice(lo + 1, 1);
    }
    const prev = free[lo - 1];
    if (prev && prev.start + prev.bytes === b.start) {
      prev.bytes += b.bytes;
      free.splice(lo, 1);
    }
    const last = free[free.length - 1];
    if (last && last.start + last.bytes === this.top) {
      this.top = last.start;
      free.pop();
    }
  }
}

let instance: SharedFloatPool | null | undefined;

/** The process-wide managed memory, or null when it is disabled or unavailable. */
export function sharedPool(): SharedFloatPool | null {
  if (instance === undefined) {
    instance = null;
    if (settings.enabled && isMainThread) {
      try {
        instance = new SharedFloatPool(settings.maximumPages);
      } catch {
        instance = null;
      }
    }
  }
  return instance;
}

/** The managed memory if it already exists (never creates it). */
export function existingPool(): SharedFloatPool | null {
  return instance ?? null;
}

/**
 * Changes where new float32 tensors go. `enabled: false` makes Tensor.zeros and friends allocate
 * ordinary Float32Arrays again (tensors already in the managed memory keep working);
 * `minElements` moves the size below which they always do.
 */
export function configurePool(o: PoolOptions): void {
  if (o.enabled !== undefined) settings.enabled = o.enabled;
  if (o.minElements !== undefined) settings.minElements = Math.max(0, o.minElements);
  if (o.maximumPages !== undefined && instance === undefined) settings.maximumPages = o.maximumPages;
}

/** The current pool settings. */
export function poolSettings(): Readonly<Required<PoolOptions>> {
  return { ...settings };
}

let spills = 0;

/** `n` zero-filled elements from the managed memory when it applies (`take`), else `ordinary()`. */
function allocateIn<T>(n: number, take: (pool: SharedFloatPool) => T | null, ordinary: () => T): T {
  if (settings.enabled && n >= settings.minElements && n > 0) {
    const pool = sharedPool();
    const a = pool ? take(pool) : null;
    if (a) return a;
    if (pool) spills++;
  }
  return ordinary();
}

/** A zero-filled float32 array of `n` elements: in the managed memory when it applies, else ordinary. */
export function allocateFloat32(n: number): Float32Array {
  return allocateIn(n, (p) => p.float32(n), () => new Float32Array(n));
}

/** A zero-filled float64 array of `n` elements: in the managed memory when it applies, else ordinary. */
export function allocateFloat64(n: number): Float64Array {
  return allocateIn(n, (p) => p.float64(n), () => new Float64Array(n));
}

/** Zero-filled float16 bits for `n` elements: in the managed memory when it applies, else ordinary. */
export function allocateFloat16(n: number): Uint16Array {
  return allocateIn(n, (p) => p.float16(n), () => new Uint16Array(n));
}

/** What the managed memory holds now, and how many tensors went to ordinary arrays because it was full. */
export interface PoolStats {
  /** Bytes handed out and not yet collected. */
  readonly liveBytes: number;
  /** Bytes the memory spans now (it grows up to maximumPages x 64 KiB). */
  readonly byteLength: number;
  /** Allocations that fell back to ordinary arrays because the memory was full, since the process started. */
  readonly spills: number;
}

export function poolStats(): PoolStats {
  const pool = existingPool();
  return { liveBytes: pool?.liveBytes ?? 0, byteLength: pool?.byteLength ?? 0, spills };
}

/** Whether `array` lives in the managed memory. */
export function inSharedPool(array: ArrayBufferView): boolean {
  return instance ? instance.holds(array) : false;
}
