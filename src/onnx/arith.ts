import type { FloatDType } from '../tensor/dtype.js';
import { ONNX_DATA_TYPE, type OnnxElementType } from './proto.js';
import type { Dim, GraphBuilder } from './graph.js';

/**
 * Float arithmetic emitted into a graph, one ONNX node per TF op, each rounded to `dtype`.
 * float32 and float64 use the dtype's own ops. float16 is carried as float32 and rounded back to
 * half after every op (Cast to FLOAT16 and back): the float32 result of + - * / sqrt rounded to
 * half is the correctly rounded half result (24 >= 2*11 + 2 bits), which is also how the typed
 * backend and Eigen compute half.
 */
export class GraphArith {
  /** The ONNX type values are carried in. */
  readonly carrier: OnnxElementType;

  constructor(
    readonly b: GraphBuilder,
    readonly dtype: FloatDType,
  ) {
    this.carrier = dtype === 'float16' ? 'float32' : dtype;
  }

  private round(value: string, hint: string): string {
    if (this.dtype !== 'float16') return value;
    const half = this.b.op('Cast', [value], `${hint}_f16`, { to: ONNX_DATA_TYPE.float16 });
    return this.b.op('Cast', [half], hint, { to: ONNX_DATA_TYPE.float32 });
  }

  private binary(opType: string, a: string, c: string, hint: string): string {
    return this.round(this.b.op(opType, [a, c], this.dtype === 'float16' ? `${hint}_f32` : hint), hint);
  }

  add = (a: string, c: string, hint: string): string => this.binary('Add', a, c, hint);
  sub = (a: string, c: string, hint: string): string => this.binary('Sub', a, c, hint);
  mul = (a: string, c: string, hint: string): string => this.binary('Mul', a, c, hint);
  div = (a: string, c: string, hint: string): string => this.binary('Div', a, c, hint);
  pow = (a: string, c: string, hint: string): string => this.binary('Pow', a, c, hint);

  sqrt(a: string, hint: string): string {
    return this.round(this.b.op('Sqrt', [a], this.dtype === 'float16' ? `${hint}_f32` : hint), hint);
  }

  /** A constant already representable in the dtype. */
  constant(value: number, hint = 'const'): string {
    return this.b.constant(value, this.carrier, hint);
  }

  /** Casts any numeric value (e.g. int64 iterations) to the dtype, rounding once. */
  cast(value: string, hint: string): string {
    if (this.dtype === 'float16') {
      const half = this.b.op('Cast', [value], `${hint}_f16`, { to: ONNX_DATA_TYPE.float16 });
      return this.b.op('Cast', [half], hint, { to: ONNX_DATA_TYPE.float32 });
    }
    return this.b.op('Cast', [value], hint, { to: ONNX_DATA_TYPE[this.dtype] });
  }

  /** Declares a float input of the dtype and returns it in the carrier type. */
  input(name: string, dims: readonly Dim[] | null, doc?: string): string {
    const raw = this.b.input(name, this.dtype, dims, doc);
    return this.dtype === 'float16' ? this.b.op('Cast', [raw], `${name}_f32`, { to: ONNX_DATA_TYPE.float32 }) : raw;
  }

  /** Declares a scalar input in the carrier type (per-step coefficients, already rounded to the dtype by the caller). */
  scalarInput(name: string): string {
    return this.b.input(name, this.carrier, []);
  }

  /**
   * The name to give the value that becomes output `name`: the output itself for float32/float64
   * (no copy node), a carrier value for float16 (cast to half by `output`).
   */
  outputHint(name: string): string {
    return this.dtype === 'float16' ? `${name}_value` : name;
  }

  /** Declares graph output `name`, computed as `value` (named `outputHint(name)`). */
  output(value: string, name: string, dims: readonly Dim[] | null, doc?: string): void {
    const out = this.dtype === 'float16' ? this.b.op('Cast', [value], name, { to: ONNX_DATA_TYPE.float16 }) : value;
    if (out !== name) throw new TypeError(`graph output '${name}' was named '${out}'`);
    this.b.output(out, this.dtype, dims, doc);
  }
}
