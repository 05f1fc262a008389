import { crc32c, maskCrc } from './crc32c.js';

/**
 * A writer of the LevelDB-style immutable table TensorFlow uses as a bundle's `.index`, laid out as
 * tensorflow/core/lib/io/table_builder.cc and block_builder.cc do with the options BundleWriter::Finish
 * passes (tensor_bundle.cc: default table::Options, no compression): data blocks of at most about
 * 256 KiB (a block is flushed once its size estimate reaches `block_size`, or before an entry of twice
 * that size), keys prefix-compressed with a restart point every 16 keys; each block followed by its
 * type byte and the masked CRC-32C of contents + type; an empty metaindex block; the index block
 * (restart interval 1) mapping each data block to its handle under the shortest separator between
 * its last key and the next block's first key (the last block: the short successor of its last
 * key); the 48-byte footer (two BlockHandles as varints, zero padding, the magic number).
 */

const BLOCK_SIZE = 262144;
const RESTART_INTERVAL = 16;
const MAGIC = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb];

/** Bytes of a protobuf / LevelDB varint (up to 2^53). */
export function varintBytes(n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint ${n} is not a non-negative safe integer`);
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

class BlockBuilder {
  private buffer: number[] = [];
  private restarts: number[] = [0];
  private counter = 0;
  private last: Uint8Array = new Uint8Array(0);

  constructor(private readonly restartInterval: number) {}

  get empty(): boolean {
    return this.buffer.length === 0;
  }

  sizeEstimate(): number {
    return this.buffer.length + this.restarts.length * 4 + 4;
  }

  add(key: Uint8Array, value: Uint8Array): void {
    let shared = 0;
    if (this.counter < this.restartInterval) {
      const n = Math.min(key.length, this.last.length);
      while (shared < n && key[shared] === this.last[shared]) shared++;
    } else {
      this.restarts.push(this.buffer.length);
      this.counter = 0;
    }
    this.buffer.push(...varintBytes(shared), ...varintBytes(key.length - shared), ...varintBytes(value.length));
    for (let i = shared; i < key.length; i++) this.buffer.push(key[i]!);
    for (let i = 0; i < value.length; i++) this.buffer.push(value[i]!);
    this.last = key;
    this.counter++;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.buffer.length + this.restarts.length * 4 + 4);
    out.set(this.buffer);
    const view = new DataView(out.buffer);
    this.restarts.forEach((r, i) => view.setUint32(this.buffer.length + i * 4, r, true));
    view.setUint32(this.buffer.length + this.restarts.length * 4, this.restarts.length, true);
    this.buffer = [];
    this.restarts = [0];
    this.counter = 0;
    this.last = new Uint8Array(0);
    return out;
  }
}

/** table_builder.cc FindShortestSeparator: a short key >= `start` and < `limit`. */
function shortestSeparator(start: Uint8Array, limit: Uint8Array): Uint8Array {
  const n = Math.min(start.length, limit.length);
  let i = 0;
  while (i < n && start[i] === limit[i]) i++;
  if (i >= n) return start; // one is a prefix of the other: not shortened
  const b = start[i]!;
  if (b < 0xff && b + 1 < limit[i]!) {
    const out = start.slice(0, i + 1);
    out[i] = b + 1;
    return out;
  }
  return start;
}

/** table_builder.cc FindShortSuccessor: the first byte that is not 0xff, incremented, and the key cut after it. */
function shortSuccessor(key: Uint8Array): Uint8Array {
  for (let i = 0; i < key.length; i++) {
    if (key[i] !== 0xff) {
      const out = key.slice(0, i + 1);
      out[i] = key[i]! + 1;
      return out;
    }
  }
  return key;
}

/** Compares keys as unsigned bytes (the table's order). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * The table file holding `entries` (keys strictly increasing as unsigned bytes; checked), byte for
 * byte as TensorFlow's TableBuilder writes it with BundleWriter's options.
 */
export function buildTable(entries: ReadonlyArray<readonly [key: Uint8Array, value: Uint8Array]>): Uint8Array {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const data = new BlockBuilder(RESTART_INTERVAL);
  const index = new BlockBuilder(1);
  let pending: number[] | null = null; // encoded handle of the last flushed data block, not yet in the index
  let lastKey: Uint8Array = new Uint8Array(0);
  let count = 0;

  const writeBlock = (block: BlockBuilder): number[] => {
    const contents = block.finish();
    const trailer = new Uint8Array(5);
    trailer[0] = 0; // kNoCompression
    const crc = maskCrc(crc32c(trailer.subarray(0, 1), crc32c(contents)));
    new DataView(trailer.buffer).setUint32(1, crc, true);
    const handle = [...varintBytes(offset), ...varintBytes(contents.length)];
    chunks.push(contents, trailer);
    offset += contents.length + 5;
    return handle;
  };
  const flush = (): void => {
    if (data.empty) return;
    pending = writeBlock(data);
  };

  for (const [key, value] of entries) {
    if (count > 0) {
      if (compareBytes(key, lastKey) <= 0) throw new Error(`table keys out of order: '${Buffer.from(key).toString()}' after '${Buffer.from(lastKey).toString()}'`);
      if (key.length + value.length >= 2 * BLOCK_SIZE) flush();
    }
    if (pending) {
      index.add(shortestSeparator(lastKey, key), Uint8Array.from(pending));
      pending = null;
    }
    lastKey = key;
    count++;
    data.add(key, value);
    if (data.sizeEstimate() >= BLOCK_SIZE) flush();
  }
  flush();
  const metaHandle = writeBlock(new BlockBuilder(RESTART_INTERVAL));
  if (pending) {
    index.add(shortSuccessor(lastKey), Uint8Array.from(pending));
    pending = null;
  }
  const indexHandle = writeBlock(index);
  const footer = new Uint8Array(48);
  footer.set([...metaHandle, ...indexHandle]);
  footer.set(MAGIC, 40);
  chunks.push(footer);
  return Buffer.concat(chunks);
}
