import type { FloatDType } from '../../tensor/dtype.js';
import { fromHalfBits, roundToHalf, toHalfBits } from '../../tensor/float16.js';
import { CHUNK, F16X4, F32X4, F64X2, simdKernel } from './simd.js';

/**
 * A kernel written once as JavaScript source in which every rounding point is spelled `R(...)`.
 * It is compiled per dtype: float32 turns `R(` into `Math.fround(`, float64 drops the rounding,
 * float16 runs on decoded doubles with half rounding. One source per formula keeps the op order
 * identical across dtypes, and each dtype still gets its own monomorphic, JIT-friendly function.
 */
export interface KernelSource {
  readonly name: string;
  /** Parameter names, in call order. */
  readonly params: readonly string[];
  /** Parameters that are float arrays in the kernel's dtype (decoded for float16). */
  readonly floatArrays: readonly string[];
  /** Float arrays the kernel writes (re-encoded for float16). */
  readonly writes: readonly string[];
  /** Function body; may `return` a value. */
  readonly body: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CompiledKernel = (...args: any[]) => any;

const ROUNDING = /\bR\(/g;

function build(source: KernelSource, replacement: string): CompiledKernel {
  const body = source.body.replace(ROUNDING, replacement);
  // The factory binds R for float16; other dtypes never reference it.
  const factory = new Function('R', `"use strict"; return function ${source.name}(${source.params.join(', ')}) {${body}\n};`);
  return factory(roundToHalf) as CompiledKernel;
}

function withHalfDecoding(source: KernelSource, inner: CompiledKernel): CompiledKernel {
  const floatPositions = source.floatArrays.map((p) => source.params.indexOf(p));
  const writePositions = source.writes.map((p) => source.params.indexOf(p));
  return (...args: unknown[]) => {
    const decoded = [...args];
    for (const p of floatPositions) {
      const bits = args[p] as Uint16Array;
      const values = new Float64Array(bits.length);
      for (let i = 0; i < bits.length; i++) values[i] = fromHalfBits(bits[i]!);
      decoded[p] = values;
    }
    const result = inner(...decoded);
    for (const p of writePositions) {
      const bits = args[p] as Uint16Array;
      const values = decoded[p] as Float64Array;
      for (let i = 0; i < bits.length; i++) bits[i] = toHalfBits(values[i]!);
    }
    return result;
  };
}

const cache = new Map<string, CompiledKernel>();

/**
 * The kernel compiled for `dtype` (compiled once, then cached). For float32, a dense kernel whose every
 * op is rounded on its own also gets a WebAssembly f32x4 form (see simd.ts), bit-identical to the
 * Math.fround one; for float64, an f64x2 form (IEEE double ops, as JavaScript's own); for float16, an
 * f32x4 form rounded to half after every op (half.ts); `{ simd: false }` asks for the plain JavaScript kernel.
 */
export function compileKernel(source: KernelSource, dtype: FloatDType, options: { simd?: boolean } = {}): CompiledKernel {
  const simd = options.simd !== false;
  const key = `${source.name}/${dtype}${simd ? '/simd' : ''}`;
  let kernel = cache.get(key);
  if (!kernel) {
    const plain = () => compileKernel(source, dtype, { simd: false });
    if (simd) kernel = simdKernel(source, plain(), CHUNK, dtype === 'float32' ? F32X4 : dtype === 'float64' ? F64X2 : F16X4) ?? plain();
    else if (dtype === 'float32') kernel = build(source, 'Math.fround(');
    else if (dtype === 'float64') kernel = build(source, '(');
    else kernel = withHalfDecoding(source, build(source, 'R('));
    cache.set(key, kernel);
  }
  return kernel;
}
