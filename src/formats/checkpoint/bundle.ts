import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { FormatError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { BYTES_PER_ELEMENT } from '../../tensor/dtype.js';
import { shapeToString, sizeOf, Tensor } from '../../tensor/tensor.js';
import { crc32c, maskCrc } from './crc32c.js';
import { decodeMessage, type BundleEntry, type BundleHeader } from './proto.js';
import { ByteCursor, readTable } from './sstable.js';

/** TF DataType enum values (tensorflow/core/framework/types.proto) kerasopt reads. */
const DTYPES: Readonly<Record<number, DType | 'string'>> = { 1: 'float32', 2: 'float64', 3: 'int32', 7: 'string', 9: 'int64', 19: 'float16' };

/** Limits of {@link TensorBundle.open}. */
export interface BundleLimits {
  /** Cap on the .index file (default 256 MiB); it is read whole. */
  maxIndexBytes?: number;
  /** Cap on any one tensor (default 1 GiB). */
  maxDatasetBytes?: number;
}

/** One tensor's metadata: what the index says, checked. */
export interface BundleTensorInfo {
  readonly key: string;
  readonly dtype: DType | 'string';
  readonly shape: readonly number[];
  readonly shard: number;
  readonly offset: number;
  readonly size: number;
  /** The masked CRC-32C the index records for the bytes. */
  readonly crc32c: number;
}

/**
 * A TF tensor bundle (tensorflow/core/util/tensor_bundle/tensor_bundle.h): `<prefix>.index`, an SSTable
 * whose empty key holds the BundleHeaderProto and whose other keys each hold a BundleEntryProto, and
 * `<prefix>.data-NNNNN-of-NNNNN` shards holding the tensors' raw little-endian bytes (string tensors:
 * see {@link TensorBundle.strings}). Every entry's
 * position is checked against its shard's size before anything is allocated, and its CRC-32C is verified.
 */
export class TensorBundle {
  private readonly shardSizes = new Map<number, number>();

  private constructor(
    readonly prefix: string,
    readonly label: string,
    readonly numShards: number,
    private readonly entries: Map<string, Uint8Array>,
    private readonly maxDatasetBytes: number,
  ) {}

  /** Opens the bundle at `prefix` (the path without `.index`). */
  static open(prefix: string, label = prefix, limits: BundleLimits = {}): TensorBundle {
    const indexFile = `${prefix}.index`;
    const indexLabel = `${label}.index`;
    let bytes: Uint8Array;
    try {
      const size = statSync(indexFile).size;
      if (size > (limits.maxIndexBytes ?? 256 * 2 ** 20)) throw new FormatError(indexLabel, `${size} bytes, over the ${limits.maxIndexBytes ?? 256 * 2 ** 20}-byte cap on an index`);
      bytes = readFileSync(indexFile);
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(indexLabel, `cannot read the checkpoint index: ${(e as Error).message}`);
    }
    const entries = readTable(bytes, indexLabel);
    const headerBytes = entries.get('');
    if (!headerBytes) throw new FormatError(indexLabel, "no bundle header (the empty key ''): not a TF tensor bundle");
    entries.delete('');
    const header = decodeMessage<BundleHeader>('BundleHeaderProto', headerBytes, indexLabel, "key '' (bundle header)");
    if (header.endianness !== 0) throw new FormatError(indexLabel, "key '' (bundle header): big-endian bundles are not read");
    if (!(header.num_shards >= 1)) throw new FormatError(indexLabel, `key '' (bundle header): num_shards is ${header.num_shards}, expected >= 1`);
    if ((header.version?.min_consumer ?? 0) > 1) throw new FormatError(indexLabel, `key '' (bundle header): needs a bundle reader of version ${header.version?.min_consumer}, kerasopt reads version 1`);
    return new TensorBundle(prefix, label, header.num_shards, entries, limits.maxDatasetBytes ?? 2 ** 30);
  }

  /** Every tensor key, in the index's (sorted) order. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The shard file holding shard `id`. */
  shardFile(id: number): string {
    return `${this.prefix}.data-${String(id).padStart(5, '0')}-of-${String(this.numShards).padStart(5, '0')}`;
  }

  /** The entry of `key`, checked: known dtype, concrete shape, shard in range, bytes inside the shard. */
  info(key: string): BundleTensorInfo {
    const raw = this.entries.get(key);
    const indexLabel = `${this.label}.index`;
    if (!raw) throw new FormatError(indexLabel, `no tensor '${key}' in the checkpoint`);
    const e = decodeMessage<BundleEntry>('BundleEntryProto', raw, indexLabel, `entry '${key}'`);
    const fail = (msg: string): never => {
      throw new FormatError(indexLabel, `entry '${key}': ${msg}`);
    };
    const dtype = DTYPES[e.dtype];
    if (!dtype) throw new FormatError(indexLabel, `entry '${key}': dtype ${e.dtype} (TF DataType enum) is not one kerasopt reads (float16/32/64, int32, int64, string)`);
    if (e.slices.length > 0) fail('is a partitioned (sliced) variable, which kerasopt does not read');
    if (e.shape?.unknown_rank) fail('has an unknown rank');
    const shape = (e.shape?.dim ?? []).map((d) => d.size);
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`has an invalid shape ${shapeToString(shape)}`);
    if (!(e.shard_id >= 0 && e.shard_id < this.numShards)) fail(`shard_id ${e.shard_id} is outside the header's ${this.numShards} shards`);
    if (!(e.offset >= 0 && e.size >= 0) || !Number.isSafeInteger(e.offset + e.size)) fail(`offset ${e.offset} / size ${e.size} are invalid`);
    const shardSize = this.shardSize(e.shard_id, key);
    if (e.offset + e.size > shardSize) fail(`offset ${e.offset} + size ${e.size} run past the end of ${this.shardFile(e.shard_id)} (${shardSize} bytes)`);
    if (e.size > this.maxDatasetBytes) fail(`${e.size} bytes, over the ${this.maxDatasetBytes}-byte cap`);
    if (dtype !== 'string' && e.size !== sizeOf(shape) * BYTES_PER_ELEMENT[dtype]) {
      fail(`${e.size} bytes do not hold a ${dtype}${shapeToString(shape)} (${sizeOf(shape) * BYTES_PER_ELEMENT[dtype]} bytes)`);
    }
    return { key, dtype, shape, shard: e.shard_id, offset: e.offset, size: e.size, crc32c: e.crc32c };
  }

  /** A numeric tensor, bit for bit as stored. */
  tensor(key: string): Tensor {
    const info = this.info(key);
    if (info.dtype === 'string') throw new FormatError(`${this.label}.index`, `entry '${key}' is a string tensor, expected a number`);
    const bytes = this.payload(info);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const n = sizeOf(info.shape);
    const data =
      info.dtype === 'float32' ? new Float32Array(buffer, 0, n)
      : info.dtype === 'float64' ? new Float64Array(buffer, 0, n)
      : info.dtype === 'float16' ? new Uint16Array(buffer, 0, n)
      : info.dtype === 'int32' ? new Int32Array(buffer, 0, n)
      : new BigInt64Array(buffer, 0, n);
    return new Tensor(info.dtype, info.shape, data);
  }

  /**
   * A string tensor's elements as bytes, in row-major order. Stored as varint64 lengths, a masked
   * CRC-32C of the lengths, then the bytes; TF's checksums run over each length as a little-endian
   * uint32 (uint64 past 2^32), not over the varint bytes, so they are recomputed that way here.
   */
  strings(key: string): Uint8Array[] {
    const info = this.info(key);
    const label = `${this.label}.index`;
    if (info.dtype !== 'string') throw new FormatError(label, `entry '${key}' is ${info.dtype}, expected a string tensor`);
    const bytes = this.payload(info, false);
    const fail = (m: string): never => {
      throw new FormatError(label, `entry '${key}' (string tensor): ${m}`);
    };
    const c = new ByteCursor(bytes, 0, bytes.length, fail);
    const n = sizeOf(info.shape);
    if (n > bytes.length) fail(`${n} elements cannot fit in ${bytes.length} bytes`);
    const lengths: number[] = [];
    let crc = 0;
    for (let i = 0; i < n; i++) {
      const len = c.varint(`length of element ${i}`);
      lengths.push(len);
      const fixed = Buffer.alloc(len <= 0xffffffff ? 4 : 8);
      if (len <= 0xffffffff) fixed.writeUInt32LE(len);
      else fixed.writeBigUInt64LE(BigInt(len));
      crc = crc32c(fixed, crc);
    }
    const checksum = c.take(4, 'checksum of the lengths');
    if (Buffer.from(checksum).readUInt32LE(0) !== maskCrc(crc)) fail('CRC-32C mismatch on the element lengths');
    crc = crc32c(checksum, crc);
    const out = lengths.map((len, i) => c.take(len, `element ${i}`));
    if (c.pos !== bytes.length) fail(`${bytes.length - c.pos} bytes left over after the last element`);
    for (const s of out) crc = crc32c(s, crc);
    this.checkCrc(info, maskCrc(crc));
    return out;
  }

  /** The entry's bytes from its shard; numeric tensors' CRC-32C is over exactly these bytes. */
  private payload(info: BundleTensorInfo, rawCrc = true): Uint8Array {
    const file = this.shardFile(info.shard);
    const out = new Uint8Array(info.size);
    try {
      const fd = openSync(file, 'r');
      try {
        let done = 0;
        while (done < info.size) {
          const n = readSync(fd, out, done, info.size - done, info.offset + done);
          if (n === 0) throw new Error('unexpected end of file');
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new FormatError(file, `cannot read tensor '${info.key}': ${(e as Error).message}`);
    }
    if (rawCrc) this.checkCrc(info, maskCrc(crc32c(out)));
    return out;
  }

  private checkCrc(info: BundleTensorInfo, actual: number): void {
    if (actual !== info.crc32c) {
      throw new FormatError(this.shardFile(info.shard), `tensor '${info.key}': CRC-32C mismatch (the index records ${info.crc32c.toString(16)}, the data gives ${actual.toString(16)})`);
    }
  }

  private shardSize(id: number, key: string): number {
    let size = this.shardSizes.get(id);
    if (size === undefined) {
      const file = this.shardFile(id);
      try {
        size = statSync(file).size;
      } catch {
        throw new FormatError(file, `missing data shard ${id} of ${this.numShards}, needed by tensor '${key}'`);
      }
      this.shardSizes.set(id, size);
    }
    return size;
  }
}
