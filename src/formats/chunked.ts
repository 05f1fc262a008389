import { FormatError, KerasValueError } from '../errors.js';
import { allocate, type DType, type TypedData } from '../tensor/dtype.js';
import { fromHalfBits } from '../tensor/float16.js';
import { LazyTensor } from '../tensor/lazy.js';
import { sameShape, shapeToString, sizeOf, type Tensor } from '../tensor/tensor.js';
import { H5File } from './hdf5.js';

/**
 * Chunked I/O (issue 11): a tensor of any size is read and written as row-major slabs of at most
 * `chunkElements` elements (HDF5 hyperslabs), into buffers the caller owns, so that memory depends on
 * the chunk size and never on the tensor's. What uses it: lazy reads (`lazyAbove`: the readers return
 * {@link LazyTensor}s for big datasets), `inspect`'s streaming statistics, and stepInPlace
 * (streamStep.ts). Lazy reads cover HDF5 files read in place (.h5, .weights.h5); a .keras archive is
 * extracted to a temporary file that is gone after the read, and TF checkpoints are bundles, so both
 * are read into memory as before (`maxDatasetBytes` applies).
 *
 * The chunk reads run in the calling thread, after the reader worker has read the file's structure
 * under its deadline: they read raw data of datasets whose place and size were checked there.
 */

/** Elements per chunk by default (4 Mi: 16 MiB of float32, 32 MiB of float64). */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 22;

/** Options of lazy reads (part of ReadStateOptions). */
export interface LazyReadOptions {
  /**
   * Datasets of rank >= 1 declaring more bytes than this are returned as LazyTensors (no data; read
   * them in chunks) instead of being read into memory, and are not subject to `maxDatasetBytes`.
   * 0 makes every non-scalar dataset lazy. Applies to .h5 and .weights.h5 files read in place;
   * .keras archives and TF checkpoints are read into memory whatever this says. Default: none lazy.
   */
  lazyAbove?: number;
  /**
   * Also computes min / max / mean of every lazy tensor while reading, streaming one chunk at a time,
   * in the reader worker and so within the read's deadline (`inspect` does); {@link lazyStats} then
   * answers for each. Default false.
   */
  lazyStats?: boolean;
}

/** Checks a `lazyAbove` option: a number of bytes >= 0. */
export function lazyThreshold(bytes: unknown): number {
  if (typeof bytes !== 'number' || Number.isNaN(bytes) || bytes < 0) throw new KerasValueError(`lazyAbove must be a number of bytes >= 0, got ${String(bytes)}`);
  return bytes;
}

/** Options of the chunked reads and writes. */
export interface ChunkOptions {
  /** The most elements one chunk holds (default {@link DEFAULT_CHUNK_ELEMENTS}). */
  chunkElements?: number;
}

/** One row-major contiguous piece of a tensor: an HDF5 hyperslab and where its elements start in the flat order. */
export interface Slab {
  /** The hyperslab's start, one entry per dimension ([] for a scalar). */
  readonly start: readonly number[];
  /** The hyperslab's extent, one entry per dimension. */
  readonly count: readonly number[];
  /** Flat (row-major) index of its first element. */
  readonly offset: number;
  /** Its number of elements (the product of count). */
  readonly size: number;
}

/** Checks a chunk size: a whole number >= 1. */
export function chunkElementsOf(options: ChunkOptions = {}): number {
  const n = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
  if (!Number.isSafeInteger(n) || n < 1) throw new KerasValueError(`chunkElements must be a whole number >= 1, got ${String(options.chunkElements)}`);
  return n;
}

/**
 * Splits `shape` into row-major contiguous slabs of at most `maxElements` elements, in flat order.
 * Each slab is a run along the outermost dimension `j` whose trailing block (the product of the
 * dimensions after `j`) fits, at a fixed index of the dimensions before `j`: [d0, d1] with rows that
 * fit is split into runs of whole rows, a row longer than `maxElements` into pieces of rows. A
 * generator: a huge tensor's plan is never held whole.
 */
export function* slabs(shape: readonly number[], maxElements: number = DEFAULT_CHUNK_ELEMENTS): Generator<Slab> {
  if (!Number.isSafeInteger(maxElements) || maxElements < 1) throw new KerasValueError(`maxElements must be a whole number >= 1, got ${maxElements}`);
  const rank = shape.length;
  if (rank === 0) {
    yield { start: [], count: [], offset: 0, size: 1 };
    return;
  }
  if (sizeOf(shape) === 0) return;
  // inner[j]: elements of one index of dimension j (the product of the dimensions after it)
  const inner = new Array<number>(rank);
  inner[rank - 1] = 1;
  for (let j = rank - 2; j >= 0; j--) inner[j] = inner[j + 1]! * shape[j + 1]!;
  let j = 0;
  while (inner[j]! > maxElements) j++; // j = rank - 1 at the latest (inner 1)
  const run = Math.min(shape[j]!, Math.floor(maxElements / inner[j]!));
  const prefix = new Array<number>(j).fill(0);
  for (;;) {
    for (let s = 0; s < shape[j]!; s += run) {
      const len = Math.min(run, shape[j]! - s);
      const start = [...prefix, s, ...new Array<number>(rank - j - 1).fill(0)];
      const count = [...new Array<number>(j).fill(1), len, ...shape.slice(j + 1)];
      let offset = 0;
      for (let d = 0; d < rank; d++) offset += start[d]! * (d === rank - 1 ? 1 : inner[d]!);
      yield { start, count, offset, size: len * inner[j]! };
    }
    // the next index of the dimensions before j, row-major (done when it wraps)
    let d = j - 1;
    while (d >= 0 && ++prefix[d]! === shape[d]!) prefix[d--] = 0;
    if (d < 0) return;
  }
}

/** One chunk of a tensor: its flat offset and its elements (a view the next chunk overwrites: copy what you keep). */
export interface Chunk<D extends DType = DType> {
  readonly offset: number;
  readonly data: TypedData<D>;
}

/**
 * The elements of `t` in row-major chunks of at most `chunkElements`: views into `t.data` for an
 * in-memory tensor; for a LazyTensor, slabs read from its file into one buffer this generator owns
 * (so each chunk's data is overwritten by the next: copy what you keep). The file is opened read
 * only for the iteration and closed when it ends (or the loop breaks), and must still hold the
 * dataset with the dtype and shape it had when read.
 */
export async function* readChunks<D extends DType>(t: Tensor<D>, options: ChunkOptions = {}): AsyncGenerator<Chunk<D>> {
  const max = chunkElementsOf(options);
  if (!(t instanceof LazyTensor)) {
    for (let offset = 0; offset < t.size; offset += max) {
      yield { offset, data: t.data.subarray(offset, Math.min(t.size, offset + max)) as TypedData<D> };
    }
    return;
  }
  const h = await openSource(t);
  try {
    const buffer = allocate(t.dtype, Math.min(max, t.size));
    for (const slab of slabs(t.shape, max)) {
      const data = buffer.subarray(0, slab.size) as TypedData<D>;
      h.readSlab(t.source.dataset, slab.start, slab.count, data);
      yield { offset: slab.offset, data };
    }
  } catch (e) {
    throw h.asFormatError(e);
  } finally {
    h.closeQuietly();
  }
}

/** Opens a lazy tensor's file read only and checks that its dataset is still what was read. */
export async function openSource(t: LazyTensor, mode: 'r' | 'a' = 'r', path = t.source.file): Promise<H5File> {
  const h = await H5File.open(path, mode, t.source.label);
  try {
    checkSame(h, t);
  } catch (e) {
    h.closeQuietly();
    throw h.asFormatError(e);
  }
  return h;
}

/** Throws unless `h` holds `t`'s dataset with `t`'s dtype and shape (the file may have changed since it was read). */
export function checkSame(h: H5File, t: LazyTensor): void {
  if (h.kind(t.source.dataset) !== 'dataset') throw new FormatError(t.source.label, `dataset ${t.source.dataset} is gone (the file changed since it was read)`);
  const info = h.datasetInfo(t.source.dataset);
  if (info.dtype !== t.dtype || !sameShape(info.shape, t.shape)) {
    throw new FormatError(t.source.label, `dataset ${t.source.dataset} is now ${info.dtype}${shapeToString(info.shape)}, it was ${t.dtype}${shapeToString(t.shape)} when read (the file changed)`);
  }
}

/** min / max / mean of a tensor's values, NaNs left out (null when there is no other value). */
export type TensorStats = { min: number; max: number; mean: number } | null;

/**
 * min / max / mean accumulated chunk by chunk, in element order: the same additions in the same
 * order as one pass over the whole tensor, so the mean is the same to the bit.
 */
export class RunningStats {
  private min = Infinity;
  private max = -Infinity;
  private sum = 0;
  private count = 0;

  constructor(readonly dtype: DType) {}

  add(data: TypedData): void {
    const half = this.dtype === 'float16';
    for (let i = 0; i < data.length; i++) {
      const raw = data[i]!;
      const x = half ? fromHalfBits(raw as number) : Number(raw);
      if (Number.isNaN(x)) continue;
      if (x < this.min) this.min = x;
      if (x > this.max) this.max = x;
      this.sum += x;
      this.count++;
    }
  }

  result(): TensorStats {
    return this.count === 0 ? null : { min: this.min, max: this.max, mean: this.sum / this.count };
  }
}

/** min / max / mean of `t`, streamed in chunks for a LazyTensor (memory: one chunk). */
export async function tensorStats(t: Tensor, options: ChunkOptions = {}): Promise<TensorStats> {
  const acc = new RunningStats(t.dtype);
  for await (const chunk of readChunks(t, options)) acc.add(chunk.data);
  return acc.result();
}

const streamed = new WeakMap<LazyTensor, TensorStats>();

/**
 * Computes (streaming, one chunk in memory at a time) and remembers the statistics of the lazy
 * tensors among `tensors`, so that {@link lazyStats} can answer synchronously afterwards (inspect's
 * table is built synchronously). Lazy tensors of one file share one opening of it.
 */
export async function streamStats(tensors: Iterable<Tensor>, options: ChunkOptions = {}): Promise<void> {
  const max = chunkElementsOf(options);
  const byFile = new Map<string, LazyTensor[]>();
  for (const t of tensors) {
    if (!(t instanceof LazyTensor) || streamed.has(t)) continue;
    const list = byFile.get(t.source.file) ?? [];
    if (!list.includes(t)) list.push(t);
    byFile.set(t.source.file, list);
  }
  for (const [file, list] of byFile) {
    const h = await H5File.open(file, 'r', list[0]!.source.label);
    try {
      let buffer: TypedData | null = null;
      for (const t of list) {
        checkSame(h, t);
        if (!buffer || buffer.constructor !== allocate(t.dtype, 0).constructor || buffer.length < Math.min(max, t.size)) buffer = allocate(t.dtype, Math.min(max, t.size));
        const acc = new RunningStats(t.dtype);
        for (const slab of slabs(t.shape, max)) {
          const data = buffer.subarray(0, slab.size) as TypedData;
          h.readSlab(t.source.dataset, slab.start, slab.count, data);
          acc.add(data);
        }
        streamed.set(t, acc.result());
      }
    } catch (e) {
      throw h.asFormatError(e);
    } finally {
      h.closeQuietly();
    }
  }
}

/** The statistics computed for `t`, if any (they cross from the reader worker with the tensor). */
export function knownStats(t: LazyTensor): TensorStats | undefined {
  return streamed.get(t);
}

/** Records statistics computed elsewhere (in the reader worker) for `t`. */
export function rememberStats(t: LazyTensor, stats: TensorStats): void {
  streamed.set(t, stats);
}

/** Every lazy tensor of a read state (its model variables, weights and slots). */
export function lazyTensorsOf(state: { readonly variables: readonly { readonly value: Tensor }[]; readonly weights: readonly { readonly value: Tensor }[]; readonly slots: readonly { readonly value: Tensor }[] }): LazyTensor[] {
  const all = [...state.variables, ...state.weights, ...state.slots].map((x) => x.value);
  return [...new Set(all.filter((t): t is LazyTensor => t instanceof LazyTensor))];
}

/** The statistics {@link streamStats} (or a read with `lazyStats`) computed for `t` (a KerasValueError when none did). */
export function lazyStats(t: LazyTensor): TensorStats {
  if (!streamed.has(t)) throw new KerasValueError(`the statistics of ${t.toString()} were not computed: await streamStats([...]) first`);
  return streamed.get(t)!;
}
