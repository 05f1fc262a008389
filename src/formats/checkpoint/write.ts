import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FormatError } from '../../errors.js';
import { temporaryPathFor } from '../../io/atomic.js';
import type { Tensor } from '../../tensor/tensor.js';
import { TensorBundle } from './bundle.js';
import { crc32c, maskCrc } from './crc32c.js';
import { ByteCursor, readTable } from './sstable.js';
import { buildTable, compareBytes, varintBytes } from './tableWriter.js';
import { commit, completeInterruptedCommit } from './update.js';

/**
 * Writes a whole tensor bundle (a new `.index` and one data shard) from an existing one plus new
 * tensors, as TensorFlow's BundleWriter lays it out (tensorflow/core/util/tensor_bundle/tensor_bundle.cc):
 * the tensors' bytes one after another in the order they are given (BundleWriter::Add order; no
 * alignment padding), each entry a BundleEntryProto (dtype, shape, shard_id, offset, size, the masked
 * CRC-32C; proto3, so zero fields are left out) under its key in the sorted table, the header entry
 * under the empty key first (kept byte for byte from the existing bundle).
 */

/** DataType enum values (tensorflow/core/framework/types.proto). */
const DTYPE_CODES: Readonly<Record<string, number>> = { float32: 1, float64: 2, int32: 3, string: 7, int64: 9, float16: 19 };

/** One tensor of the bundle to write, in data order. */
export type BundleTensorSpec =
  /** An entry of the existing bundle: its bytes copied as they are (dtype, shape, size and CRC kept; only its position changes). */
  | { readonly key: string; readonly existing: true }
  /** A new numeric tensor (little-endian host bytes, as TensorBundle reads them). */
  | { readonly key: string; readonly tensor: Tensor }
  /** A new string tensor of the given shape. */
  | { readonly key: string; readonly strings: readonly Uint8Array[]; readonly shape: readonly number[] };

/** Protobuf field tag + varint value, or nothing for zero (proto3). */
function fieldVarint(num: number, value: number): number[] {
  return value === 0 ? [] : [...varintBytes(num << 3), ...varintBytes(value)];
}

function fieldBytes(num: number, payload: ArrayLike<number>): number[] {
  return [...varintBytes((num << 3) | 2), ...varintBytes(payload.length), ...Array.from(payload)];
}

/** A serialized TensorShapeProto field of a BundleEntryProto (always present, as `mutable_shape()` makes it). */
function shapeField(shape: readonly number[]): number[] {
  return fieldBytes(2, shape.flatMap((d) => fieldBytes(2, fieldVarint(1, d))));
}

/** A BundleEntryProto as the C++ serializer writes it (fields in number order, zeros left out). */
export function encodeBundleEntry(e: { dtype: string; shape: readonly number[]; shard: number; offset: number; size: number; crc: number }): Uint8Array {
  const code = DTYPE_CODES[e.dtype];
  if (code === undefined) throw new Error(`dtype ${e.dtype} has no TF DataType code here`);
  const crc = e.crc === 0 ? [] : [...varintBytes((6 << 3) | 5), e.crc & 0xff, (e.crc >>> 8) & 0xff, (e.crc >>> 16) & 0xff, (e.crc >>> 24) & 0xff];
  return Uint8Array.from([...fieldVarint(1, code), ...shapeField(e.shape), ...fieldVarint(3, e.shard), ...fieldVarint(4, e.offset), ...fieldVarint(5, e.size), ...crc]);
}

/** An existing serialized entry with shard_id and offset replaced, every other field kept byte for byte in place. */
function moveEntry(raw: Uint8Array, shard: number, offset: number, key: string, label: string): Uint8Array {
  const fail = (m: string): never => {
    throw new FormatError(label, `entry '${key}': ${m}`);
  };
  const c = new ByteCursor(raw, 0, raw.length, fail);
  const fields: Array<{ num: number; bytes: Uint8Array }> = [];
  while (c.pos < raw.length) {
    const start = c.pos;
    const tag = c.varint('field tag');
    const wire = tag % 8;
    if (wire === 0) c.varint('varint field');
    else if (wire === 1) c.take(8, 'fixed64 field');
    else if (wire === 2) c.take(c.varint('field length'), 'length-delimited field');
    else if (wire === 5) c.take(4, 'fixed32 field');
    else fail(`unexpected protobuf wire type ${wire}`);
    fields.push({ num: Math.floor(tag / 8), bytes: raw.subarray(start, c.pos) });
  }
  const kept = fields.filter((f) => f.num !== 3 && f.num !== 4);
  const before = kept.filter((f) => f.num < 3).flatMap((f) => Array.from(f.bytes));
  const after = kept.filter((f) => f.num > 4).flatMap((f) => Array.from(f.bytes));
  return Uint8Array.from([...before, ...fieldVarint(3, shard), ...fieldVarint(4, offset), ...after]);
}

/** A string tensor's bytes as BundleWriter writes them, and the masked CRC-32C its entry records. */
export function encodeStrings(strings: readonly Uint8Array[]): { bytes: Uint8Array; crc: number } {
  let crc = 0;
  const lengths: number[] = [];
  for (const s of strings) {
    lengths.push(...varintBytes(s.length));
    const fixed = Buffer.alloc(s.length <= 0xffffffff ? 4 : 8);
    if (s.length <= 0xffffffff) fixed.writeUInt32LE(s.length);
    else fixed.writeBigUInt64LE(BigInt(s.length));
    crc = crc32c(fixed, crc);
  }
  const checksum = Buffer.alloc(4);
  checksum.writeUInt32LE(maskCrc(crc));
  crc = crc32c(checksum, crc);
  for (const s of strings) crc = crc32c(s, crc);
  return { bytes: Buffer.concat([Uint8Array.from(lengths), checksum, ...strings]), crc: maskCrc(crc) };
}

function readRange(file: string, offset: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const fd = openSync(file, 'r');
  try {
    for (let done = 0; done < size; ) {
      const n = readSync(fd, out, done, size - done, offset + done);
      if (n === 0) throw new FormatError(file, `unexpected end of file reading ${size} bytes at ${offset}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Writes the bundle `tensors` describe to `outPrefix` (`.index` and `.data-00000-of-00001`), taking
 * existing entries from the single-shard bundle at `prefix`. Every key of the result must be listed
 * once; existing tensors' bytes are copied verbatim (their CRCs checked on the way). The files are
 * written under temporary names, fsynced, read back (every entry's CRC, every byte compared), then
 * renamed: the data shard first, the index last (a failed rename puts the old files back), so
 * `outPrefix` may equal `prefix`.
 */
export async function writeBundle(prefix: string, outPrefix: string, tensors: readonly BundleTensorSpec[], label = prefix): Promise<void> {
  completeInterruptedCommit(prefix);
  if (resolve(outPrefix) !== resolve(prefix)) completeInterruptedCommit(outPrefix);
  const source = TensorBundle.open(prefix, label);
  const indexLabel = `${label}.index`;
  if (source.numShards !== 1) throw new FormatError(indexLabel, `the bundle has ${source.numShards} data shards; kerasopt rewrites single-shard bundles only`);
  const table = readTable(readFileSync(`${prefix}.index`), indexLabel);
  const header = table.get('')!;

  const chunks: Uint8Array[] = [];
  const expected = new Map<string, Uint8Array>();
  const entries: Array<[Uint8Array, Uint8Array]> = [];
  let offset = 0;
  for (const t of tensors) {
    if (expected.has(t.key)) throw new FormatError(indexLabel, `key '${t.key}' is written twice`);
    let bytes: Uint8Array;
    let entry: Uint8Array;
    if ('existing' in t) {
      const info = source.info(t.key);
      if (info.dtype === 'string') source.strings(t.key);
      else source.tensor(t.key); // both check the stored CRC
      bytes = readRange(source.shardFile(info.shard), info.offset, info.size);
      entry = moveEntry(table.get(t.key)!, 0, offset, t.key, indexLabel);
    } else if ('tensor' in t) {
      const d = t.tensor.data;
      bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
      entry = encodeBundleEntry({ dtype: t.tensor.dtype, shape: t.tensor.shape, shard: 0, offset, size: bytes.length, crc: maskCrc(crc32c(bytes)) });
    } else {
      const s = encodeStrings(t.strings);
      bytes = s.bytes;
      entry = encodeBundleEntry({ dtype: 'string', shape: t.shape, shard: 0, offset, size: bytes.length, crc: s.crc });
    }
    expected.set(t.key, bytes);
    chunks.push(bytes);
    entries.push([Buffer.from(t.key, 'utf8'), entry]);
    offset += bytes.length;
  }
  const missing = source.keys().filter((k) => !expected.has(k));
  if (missing.length > 0) throw new FormatError(indexLabel, `the rewritten bundle would lose ${missing.length} tensor(s): ${missing.slice(0, 5).join(', ')}`);
  entries.sort((a, b) => compareBytes(a[0], b[0]));
  const index = buildTable([[new Uint8Array(0), header], ...entries]);

  await mkdir(dirname(resolve(outPrefix)), { recursive: true });
  const tmpPrefix = temporaryPathFor(outPrefix);
  const shard = (p: string): string => `${p}.data-00000-of-00001`;
  const moves: Array<[string, string]> = [[shard(tmpPrefix), shard(outPrefix)], [`${tmpPrefix}.index`, `${outPrefix}.index`]];
  try {
    await writeFileSynced(shard(tmpPrefix), chunks);
    await writeFileSynced(`${tmpPrefix}.index`, [index]);
    verify(tmpPrefix, outPrefix, expected);
    await commit(moves);
  } finally {
    await Promise.all(moves.map(([tmp]) => rm(tmp, { force: true })));
  }
}

async function writeFileSynced(file: string, chunks: readonly Uint8Array[]): Promise<void> {
  const fh = await open(file, 'wx');
  try {
    for (const c of chunks) for (let done = 0; done < c.length; ) done += (await fh.write(c, done, c.length - done)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads the temporary bundle back: the same keys, every entry's CRC, every tensor's bytes. */
function verify(tmpPrefix: string, outPrefix: string, expected: ReadonlyMap<string, Uint8Array>): void {
  try {
    const b = TensorBundle.open(tmpPrefix, outPrefix);
    const keys = b.keys();
    if (keys.length !== expected.size) throw new Error(`${keys.length} keys, wrote ${expected.size}`);
    for (const k of keys) {
      const want = expected.get(k);
      if (!want) throw new Error(`unexpected key '${k}'`);
      const info = b.info(k);
      if (info.dtype === 'string') b.strings(k);
      else b.tensor(k);
      if (!Buffer.from(readRange(b.shardFile(info.shard), info.offset, info.size)).equals(want)) throw new Error(`tensor '${k}' reads back other bytes`);
    }
  } catch (e) {
    throw new FormatError(`${outPrefix}.index`, `the written bundle fails its read-back check, so nothing was replaced: ${(e as Error).message}`);
  }
}
