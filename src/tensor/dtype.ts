import { allocateFloat16, allocateFloat32, allocateFloat64 } from './pool.js';

/** Floating dtypes a variable can have. float16 values are stored as IEEE half bits in a Uint16Array. */
export type FloatDType = 'float16' | 'float32' | 'float64';
/** Every dtype a kerasopt tensor can carry. */
export type DType = FloatDType | 'int32' | 'int64';

/** The typed array that holds the elements of each dtype. */
export interface DataTypeMap {
  float16: Uint16Array;
  float32: Float32Array;
  float64: Float64Array;
  int32: Int32Array;
  int64: BigInt64Array;
}
export type TypedData<D extends DType = DType> = DataTypeMap[D];

export const FLOAT_DTYPES: readonly FloatDType[] = ['float16', 'float32', 'float64'];
export const DTYPES: readonly DType[] = ['float16', 'float32', 'float64', 'int32', 'int64'];

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float16: 2,
  float32: 4,
  float64: 8,
  int32: 4,
  int64: 8,
};

export function isFloatDType(d: unknown): d is FloatDType {
  return d === 'float16' || d === 'float32' || d === 'float64';
}

export function isDType(d: unknown): d is DType {
  return typeof d === 'string' && (DTYPES as readonly string[]).includes(d);
}

/**
 * Allocates a zero-filled typed array for `dtype`. float32 and float64 arrays of at least 4096 elements go to the
 * managed shared wasm memory (src/tensor/pool.ts), where the typed backend's kernels run in place,
 * unless `managed` is false.
 */
export function allocate<D extends DType>(dtype: D, size: number, managed = true): TypedData<D> {
  switch (dtype) {
    case 'float16':
      return (managed ? allocateFloat16(size) : new Uint16Array(size)) as TypedData<D>;
    case 'float32':
      return (managed ? allocateFloat32(size) : new Float32Array(size)) as TypedData<D>;
    case 'float64':
      return (managed ? allocateFloat64(size) : new Float64Array(size)) as TypedData<D>;
    case 'int32':
      return new Int32Array(size) as TypedData<D>;
    case 'int64':
      return new BigInt64Array(size) as TypedData<D>;
  }
  throw new TypeError(`unknown dtype ${String(dtype)}`);
}
