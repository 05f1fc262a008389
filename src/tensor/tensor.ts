import { allocate, BYTES_PER_ELEMENT, type DType, type FloatDType, type TypedData } from './dtype.js';
import { fromHalfBits, toHalfBits } from './float16.js';

/** The number of elements of a shape (1 for a scalar). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * A dense tensor: a dtype, a row-major shape and a typed array of its elements.
 * It is plain data: kernels read and write `data` directly; nothing is lazy.
 */
export class Tensor<D extends DType = DType> {
  readonly shape: readonly number[];

  constructor(
    readonly dtype: D,
    shape: readonly number[],
    readonly data: TypedData<D>,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new TypeError(`invalid shape ${shapeToString(shape)}`);
    }
    if (data.length !== sizeOf(shape)) {
      throw new TypeError(`tensor of shape ${shapeToString(shape)} needs ${sizeOf(shape)} elements, got ${data.length}`);
    }
    this.shape = Object.freeze([...shape]);
  }

  /** A zero-filled tensor. */
  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new Tensor(dtype, shape, allocate(dtype, sizeOf(shape)));
  }

  /** A tensor filled with `value` (rounded to the dtype). */
  static fill<D extends DType>(dtype: D, shape: readonly number[], value: number | bigint): Tensor<D> {
    const t = Tensor.zeros(dtype, shape);
    for (let i = 0; i < t.size; i++) t.set(i, value);
    return t;
  }

  /**
   * A tensor from plain numbers (float16 values are rounded to half; int64 accepts numbers or bigints).
   * `shape` defaults to a vector of the values' length.
   */
  static from<D extends DType>(values: ArrayLike<number | bigint>, dtype: D, shape?: readonly number[]): Tensor<D> {
    const t = Tensor.zeros(dtype, shape ?? [values.length]);
    if (values.length !== t.size) {
      throw new TypeError(`${values.length} values do not fill shape ${shapeToString(t.shape)}`);
    }
    if (dtype === 'float32' || dtype === 'float64' || dtype === 'int32') {
      // plain numbers are rounded by the typed array's own conversion, as set() would
      if (ArrayBuffer.isView(values) && !(values instanceof BigInt64Array || values instanceof BigUint64Array)) (t.data as Float32Array).set(values as unknown as ArrayLike<number>);
      else for (let i = 0; i < values.length; i++) (t.data as Float32Array)[i] = Number(values[i]!);
    } else for (let i = 0; i < values.length; i++) t.set(i, values[i]!);
    return t;
  }

  /** A scalar tensor. */
  static scalar<D extends DType>(value: number | bigint, dtype: D): Tensor<D> {
    return Tensor.from([value], dtype, []);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  /** The element at flat index `i` as a number (float16 decoded; int64 converted, exact below 2^53). */
  get(i: number): number {
    const v = this.data[i];
    if (v === undefined) throw new RangeError(`index ${i} out of range for ${this.size} elements`);
    if (this.dtype === 'float16') return fromHalfBits(v as number);
    return Number(v);
  }

  /** Writes flat element `i`, rounding to the dtype. */
  set(i: number, value: number | bigint): void {
    const data = this.data as TypedData;
    if (this.dtype === 'int64') (data as BigInt64Array)[i] = BigInt(value);
    else if (this.dtype === 'float16') (data as Uint16Array)[i] = toHalfBits(Number(value));
    else (data as Float32Array)[i] = Number(value);
  }

  /** All elements as plain numbers, row-major. */
  toArray(): number[] {
    const out = new Array<number>(this.size);
    for (let i = 0; i < this.size; i++) out[i] = this.get(i);
    return out;
  }

  /** A deep copy (new buffer; float32 and float64 ones where `Tensor.zeros` allocates them). */
  clone(): Tensor<D> {
    if (this.dtype !== 'float32' && this.dtype !== 'float64') return new Tensor(this.dtype, this.shape, this.data.slice() as TypedData<D>);
    const copy = Tensor.zeros(this.dtype, this.shape);
    (copy.data as Float32Array).set(this.data as Float32Array);
    return copy;
  }

  /** Overwrites this tensor's elements with `other`'s (same dtype and shape required). */
  copyFrom(other: Tensor<D>): void {
    if (other.dtype !== this.dtype || !sameShape(other.shape, this.shape)) {
      throw new TypeError(
        `cannot copy ${other.dtype}${shapeToString(other.shape)} into ${this.dtype}${shapeToString(this.shape)}`,
      );
    }
    (this.data as Float32Array).set(other.data as Float32Array);
  }

  toString(): string {
    return `Tensor<${this.dtype}>${shapeToString(this.shape)}`;
  }
}

/** A tensor whose dtype is one of the float dtypes. */
export type FloatTensor = Tensor<FloatDType>;

/**
 * A sparse gradient in TF's `IndexedSlices` form: `values[k]` is the gradient of row `indices[k]`
 * of a variable of shape `denseShape`. Indices may repeat; repeated rows are summed before use.
 */
export class IndexedSlices {
  readonly denseShape: readonly number[];

  constructor(
    readonly indices: Tensor<'int32'> | Tensor<'int64'>,
    readonly values: FloatTensor,
    denseShape: readonly number[],
  ) {
    this.denseShape = Object.freeze([...denseShape]);
  }

  get dtype(): FloatDType {
    return this.values.dtype;
  }

  /** The indices as plain numbers. */
  indexArray(): number[] {
    return Array.from(this.indices.data as ArrayLike<number | bigint>, Number);
  }
}
