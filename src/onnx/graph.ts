import { ATTRIBUTE_TYPE, encodeModel, ONNX_DATA_TYPE, type AttributeObject, type GraphObject, type OnnxElementType, type ValueInfoObject } from './proto.js';

/** The ONNX IR version and default-domain opset kerasopt writes: what Debian's python3-onnx 1.12 checks, and every onnxruntime since 1.13 runs. */
export const IR_VERSION = 8;
export const OPSET = 17;

/** A dimension: a fixed size or a symbolic name (one shape class per name). */
export type Dim = number | string;

export type AttributeValue = number | string | readonly number[];

/** `dims` null leaves the shape out: any rank (elementwise graphs accept every shape). */
function valueInfo(name: string, type: OnnxElementType, dims: readonly Dim[] | null, doc?: string): ValueInfoObject {
  const shape = dims === null ? {} : { shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } };
  return { name, type: { tensor_type: { elem_type: ONNX_DATA_TYPE[type], ...shape } }, ...(doc ? { doc_string: doc } : {}) };
}

function attribute(name: string, value: AttributeValue): AttributeObject {
  if (typeof value === 'string') return { name, type: ATTRIBUTE_TYPE.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return Number.isInteger(value) ? { name, type: ATTRIBUTE_TYPE.INT, i: value } : { name, type: ATTRIBUTE_TYPE.FLOAT, f: value };
  return { name, type: ATTRIBUTE_TYPE.INTS, ints: [...value] };
}

function scalarBytes(value: number, type: OnnxElementType): Uint8Array {
  switch (type) {
    case 'float32':
      return new Uint8Array(Float32Array.of(value).buffer);
    case 'float64':
      return new Uint8Array(Float64Array.of(value).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.of(BigInt(value)).buffer);
    case 'int32':
      return new Uint8Array(Int32Array.of(value).buffer);
    case 'float16':
      throw new TypeError('float16 constants are not written by kerasopt');
  }
}

/**
 * Builds one ONNX graph node by node. Values are named (readable names make onnxruntime's error
 * messages point at the right step of the formula); names are made unique with a counter.
 */
export class GraphBuilder {
  private readonly graph: GraphObject;
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, string>();

  constructor(name: string, doc?: string) {
    this.graph = { name, node: [], initializer: [], input: [], output: [], ...(doc ? { doc_string: doc } : {}) };
  }

  private fresh(hint: string): string {
    let name = hint;
    for (let k = 1; this.used.has(name); k++) name = `${hint}_${k}`;
    this.used.add(name);
    return name;
  }

  /** Declares a graph input and returns its value name (exactly `name`). */
  input(name: string, type: OnnxElementType, dims: readonly Dim[] | null, doc?: string): string {
    if (this.used.has(name)) throw new TypeError(`graph ${this.graph.name}: duplicate value name '${name}'`);
    this.used.add(name);
    this.graph.input.push(valueInfo(name, type, dims, doc));
    return name;
  }

  /** A scalar initializer holding `value` exactly as `type` stores it (shared per value and type). */
  constant(value: number, type: OnnxElementType, hint = 'const'): string {
    const key = `${type}:${Object.is(value, -0) ? '-0' : value}`;
    const existing = this.constants.get(key);
    if (existing) return existing;
    const name = this.fresh(hint);
    this.graph.initializer.push({ name, data_type: ONNX_DATA_TYPE[type], dims: [], raw_data: scalarBytes(value, type) });
    this.constants.set(key, name);
    return name;
  }

  /** Adds a node with one output and returns the output's value name. */
  op(opType: string, inputs: readonly string[], hint: string, attributes: Record<string, AttributeValue> = {}): string {
    const out = this.fresh(hint);
    this.graph.node.push({
      name: `${opType}:${out}`,
      op_type: opType,
      input: [...inputs],
      output: [out],
      attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
    });
    return out;
  }

  /** Declares the value `value` a graph output (its name is the output's name). */
  output(value: string, type: OnnxElementType, dims: readonly Dim[] | null, doc?: string): void {
    this.graph.output.push(valueInfo(value, type, dims, doc));
  }

  /** The graph as ModelProto bytes, with kerasopt's metadata. */
  toModel(metadata: Readonly<Record<string, string>>, doc?: string): Uint8Array {
    return encodeModel({
      ir_version: IR_VERSION,
      opset_import: [{ domain: '', version: OPSET }],
      producer_name: 'kerasopt',
      producer_version: '0.1.0',
      ...(doc ? { doc_string: doc } : {}),
      graph: this.graph,
      metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    });
  }
}
