import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Protobuf from 'protobufjs';
import { FormatError } from '../errors.js';
import { packageRoot } from '../paths.js';

/** Where the ONNX schema subset lives (shipped with the package; see its header for its origin). */
export const onnxProtoPath = (): string => join(packageRoot(), 'src', 'onnx', 'onnx.proto');

/** An ONNX TensorProto.DataType code. */
export const ONNX_DATA_TYPE = { float32: 1, int32: 6, int64: 7, float16: 10, float64: 11 } as const;
export type OnnxElementType = keyof typeof ONNX_DATA_TYPE;

/** AttributeProto.AttributeType codes kerasopt writes. */
export const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

/** The plain-object shape of the ModelProto fields kerasopt writes (upstream snake_case field names). */
export interface ModelObject {
  ir_version: number;
  opset_import: Array<{ domain: string; version: number }>;
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: GraphObject;
  metadata_props: Array<{ key: string; value: string }>;
}

export interface TensorObject {
  name: string;
  data_type: number;
  dims: number[];
  raw_data: Uint8Array;
}

export interface ValueInfoObject {
  name: string;
  type: { tensor_type: { elem_type: number; shape?: { dim: Array<{ dim_value: number } | { dim_param: string }> } } };
  doc_string?: string;
}

export interface AttributeObject {
  name: string;
  type: number;
  i?: number;
  f?: number;
  s?: Uint8Array;
  ints?: number[];
}

export interface NodeObject {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: AttributeObject[];
}

export interface GraphObject {
  name: string;
  doc_string?: string;
  node: NodeObject[];
  initializer: TensorObject[];
  input: ValueInfoObject[];
  output: ValueInfoObject[];
}

let modelType: Protobuf.Type | null = null;

/**
 * The ModelProto message type, parsed at run time by protobufjs from src/onnx/onnx.proto (no
 * generated code). Field names are kept in upstream's snake_case. protobufjs and the schema are
 * loaded on first use, so importing kerasopt costs nothing for users who never touch ONNX.
 */
function modelProto(): Protobuf.Type {
  if (!modelType) {
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    const root = new protobuf.Root().loadSync(onnxProtoPath(), { keepCase: true });
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/** Serializes a model to ONNX ModelProto bytes. */
export function encodeModel(model: ModelObject): Uint8Array {
  const type = modelProto();
  return type.encode(type.fromObject(model)).finish();
}

/**
 * Parses ModelProto bytes into a plain object (int64 fields as numbers). A file that is not a
 * protobuf ModelProto at all is a FormatError naming `file`.
 */
export function decodeModel(bytes: Uint8Array, file: string): Partial<ModelObject> {
  let message: Protobuf.Message;
  try {
    message = modelProto().decode(bytes);
  } catch (e) {
    throw new FormatError(file, `not an ONNX model (ModelProto does not decode: ${(e as Error).message})`);
  }
  return modelProto().toObject(message, { longs: Number, bytes: Array, defaults: false, arrays: true }) as Partial<ModelObject>;
}
