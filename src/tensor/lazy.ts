import { FormatError } from '../errors.js';
import type { DType, TypedData } from './dtype.js';
import { shapeToString, sizeOf, Tensor } from './tensor.js';

/** Where a lazy tensor's elements are: an HDF5 file on the host file system and a dataset in it. */
export interface LazySource {
  /** The HDF5 file's path (read in place, never a temporary copy). */
  readonly file: string;
  /** The dataset's absolute path in the file ('/optimizer/vars/2'). */
  readonly dataset: string;
  /** The name errors give the file (the path the caller passed, by default). */
  readonly label: string;
}

/**
 * A tensor whose elements stay in the file: it knows its dtype, shape and where it is stored, and
 * holds no data. The readers return one for a big dataset when asked to (`lazyAbove`, see
 * src/formats/chunked.ts), so that a state of any size can be read, inspected and stepped in bounded
 * memory. It is a Tensor so that everything that looks only at dtype, shape and size (the readers'
 * checks, the slot-to-variable ties, the worker's packing) works unchanged; asking for its `data`
 * (or anything built on it: get, toArray, clone, copyFrom) throws a FormatError naming the file and
 * the dataset. Its elements are read and written in chunks by src/formats/chunked.ts and
 * src/formats/streamStep.ts.
 */
export class LazyTensor<D extends DType = DType> extends Tensor<D> {
  readonly source: LazySource;
  private readonly elements: number;

  constructor(dtype: D, shape: readonly number[], source: LazySource) {
    const n = sizeOf(shape);
    // Tensor checks that `data` has one element per shape element; a lazy one has none, so it gets a
    // stand-in with that length, replaced at once by the accessor below (nothing can see it).
    super(dtype, shape, { length: n } as unknown as TypedData<D>);
    this.elements = n;
    this.source = Object.freeze({ file: source.file, dataset: source.dataset, label: source.label });
    Object.defineProperty(this, 'data', {
      configurable: false,
      enumerable: false,
      get: (): never => {
        throw new FormatError(
          this.source.label,
          `dataset ${this.source.dataset} (${this.dtype}${shapeToString(this.shape)}) was read lazily: its elements are not in memory. Read it in chunks (readChunks, tensorStats), step it with stepInPlace, or read the file without lazyAbove`,
        );
      },
    });
  }

  override get size(): number {
    return this.elements;
  }

  override toString(): string {
    return `LazyTensor<${this.dtype}>${shapeToString(this.shape)} (${this.source.dataset} of ${this.source.label})`;
  }
}

/** Whether `t` is a {@link LazyTensor} (its elements are in a file, not in memory). */
export function isLazy(t: unknown): t is LazyTensor {
  return t instanceof LazyTensor;
}
