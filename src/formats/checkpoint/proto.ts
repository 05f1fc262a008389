import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Protobuf from 'protobufjs';
import { FormatError } from '../../errors.js';
import { packageRoot } from '../../paths.js';

/** Where the TF checkpoint schema subset lives (shipped with the package; see its header for its origin). */
export const checkpointProtoPath = (): string => join(packageRoot(), 'src', 'formats', 'checkpoint', 'tf_checkpoint.proto');

let root: Protobuf.Root | null = null;

/**
 * Decodes `bytes` as the message `tensorflow.<type>` into a plain object (snake_case fields, int64 as
 * numbers, defaults filled in). A decoding failure is a FormatError naming the file and `what`.
 */
export function decodeMessage<T>(type: string, bytes: Uint8Array, label: string, what: string): T {
  if (!root) {
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    root = new protobuf.Root().loadSync(checkpointProtoPath(), { keepCase: true });
  }
  const t = root.lookupType(`tensorflow.${type}`);
  try {
    return t.toObject(t.decode(bytes), { longs: Number, enums: Number, defaults: true, arrays: true }) as T;
  } catch (e) {
    throw new FormatError(label, `${what}: not a valid ${type} (${(e as Error).message})`);
  }
}

/** The decoded fields of a BundleEntryProto kerasopt uses. */
export interface BundleEntry {
  dtype: number;
  shape: { dim: Array<{ size: number }>; unknown_rank: boolean } | null;
  shard_id: number;
  offset: number;
  size: number;
  crc32c: number;
  slices: Uint8Array[];
}

/** The decoded fields of a BundleHeaderProto. */
export interface BundleHeader {
  num_shards: number;
  endianness: number;
  version: { producer: number; min_consumer: number } | null;
}

/** A decoded TrackableObjectGraph. */
export interface ObjectGraph {
  nodes: Array<{
    children: Array<{ node_id: number; local_name: string }>;
    attributes: Array<{ name: string; full_name: string; checkpoint_key: string }>;
    slot_variables: Array<{ original_variable_node_id: number; slot_name: string; slot_variable_node_id: number }>;
  }>;
}
