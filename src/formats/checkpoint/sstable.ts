import { FormatError } from '../../errors.js';
import { crc32c, maskCrc } from './crc32c.js';

/**
 * A reader of the LevelDB-style immutable table TensorFlow writes as a bundle's `.index`
 * (tensorflow/core/lib/io/table.cc, block.cc, format.cc): data blocks of prefix-compressed keys with
 * restart points, each followed by a 5-byte trailer (compression type, masked CRC-32C of block and
 * type byte); an index block mapping each data block's last key to its BlockHandle; and a 48-byte
 * footer (metaindex and index BlockHandles as varint64, zero padding, the 8-byte magic number).
 * Everything is bounds-checked and CRC-checked; snappy-compressed blocks are refused (TF's bundle
 * writer does not compress).
 */

const FOOTER_BYTES = 48;
const TRAILER_BYTES = 5;
const MAGIC_LO = 0x8b80fb57;
const MAGIC_HI = 0xdb477524;

/** A cursor over bytes that throws FormatError on any read past `end`. */
export class ByteCursor {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
    private readonly fail: (msg: string) => never,
  ) {}

  /** A varint of at most 64 bits, as a number (values past 2^53 are refused). */
  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(`${what}: varint runs past the end of its region`);
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) this.fail(`${what}: varint ${value} is too large`);
        return value;
      }
      scale *= 128;
    }
    return this.fail(`${what}: varint longer than 10 bytes`);
  }

  take(n: number, what: string): Uint8Array {
    if (n > this.end - this.pos) this.fail(`${what}: ${n} bytes run past the end of its region`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Where a block's contents sit in the file; its 5-byte trailer follows them. */
export interface BlockHandle {
  readonly offset: number;
  readonly size: number;
}

/** One key's value and where it sits, so a writer can patch the value in place and re-seal its block. */
export interface TableEntry {
  readonly value: Uint8Array;
  /** Offset of the value's first byte in the file. */
  readonly valueOffset: number;
  /** The data block holding the entry. */
  readonly block: BlockHandle;
}

/** Every key/value pair of a table file, in file order. Keys are decoded as UTF-8. */
export function readTable(bytes: Uint8Array, label: string): Map<string, Uint8Array> {
  return new Map([...readTableEntries(bytes, label)].map(([key, e]) => [key, e.value]));
}

/** {@link readTable} with each value's position in the file and its data block. */
export function readTableEntries(bytes: Uint8Array, label: string): Map<string, TableEntry> {
  const fail = (msg: string): never => {
    throw new FormatError(label, msg);
  };
  if (bytes.length < FOOTER_BYTES) fail(`${bytes.length} bytes, shorter than the 48-byte table footer (truncated .index?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const footerAt = bytes.length - FOOTER_BYTES;
  if (view.getUint32(footerAt + 40, true) !== MAGIC_LO || view.getUint32(footerAt + 44, true) !== MAGIC_HI) {
    fail('bad table magic number in the footer: not a TensorFlow tensor-bundle .index (or truncated)');
  }
  const footer = new ByteCursor(bytes, footerAt, footerAt + 40, (m) => fail(`table footer: ${m}`));
  const handle = (c: ByteCursor, what: string): BlockHandle => ({ offset: c.varint(`${what} offset`), size: c.varint(`${what} size`) });
  handle(footer, 'metaindex handle');
  const indexHandle = handle(footer, 'index handle');

  const readBlock = (h: BlockHandle, what: string): Uint8Array => {
    if (h.offset + h.size + TRAILER_BYTES > footerAt) fail(`${what} at offset ${h.offset} size ${h.size} runs past the table data (${footerAt} bytes)`);
    const contents = bytes.subarray(h.offset, h.offset + h.size);
    const type = bytes[h.offset + h.size]!;
    const stored = view.getUint32(h.offset + h.size + 1, true);
    const actual = maskCrc(crc32c(bytes.subarray(h.offset, h.offset + h.size + 1)));
    if (stored !== actual) fail(`${what} at offset ${h.offset}: CRC-32C mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
    if (type === 1) fail(`${what} is snappy-compressed, which kerasopt does not decompress (TF's bundle writer never compresses)`);
    if (type !== 0) fail(`${what} has unknown compression type ${type}`);
    return contents;
  };

  const out = new Map<string, TableEntry>();
  const index = blockEntries(readBlock(indexHandle, 'index block'), 'index block', fail);
  index.forEach(([, value], i) => {
    const c = new ByteCursor(value, 0, value.length, (m) => fail(`index entry ${i}: ${m}`));
    const h = handle(c, 'data block handle');
    for (const [key, v] of blockEntries(readBlock(h, `data block ${i}`), `data block ${i}`, fail)) {
      const name = new TextDecoder().decode(key);
      if (out.has(name)) fail(`key '${name}' appears twice`);
      // Blocks and values are subarrays of `bytes`, never copies, so the offsets give file positions.
      out.set(name, { value: v, valueOffset: v.byteOffset - bytes.byteOffset, block: h });
    }
  });
  return out;
}

/** The entries of one block: each restart of the shared-prefix run is honoured, keys must ascend. */
function blockEntries(block: Uint8Array, what: string, fail: (msg: string) => never): Array<[Uint8Array, Uint8Array]> {
  if (block.length < 4) fail(`${what}: ${block.length} bytes, too short for its restart count`);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const restarts = view.getUint32(block.length - 4, true);
  const restartsAt = block.length - 4 - 4 * restarts;
  if (restarts === 0 || restartsAt < 0) fail(`${what}: restart count ${restarts} does not fit in its ${block.length} bytes`);
  const c = new ByteCursor(block, 0, restartsAt, (m) => fail(`${what}: ${m}`));
  const out: Array<[Uint8Array, Uint8Array]> = [];
  let last = new Uint8Array(0);
  while (c.pos < restartsAt) {
    const shared = c.varint('shared key length');
    const unshared = c.varint('unshared key length');
    const valueLength = c.varint('value length');
    if (shared > last.length) fail(`${what}: entry ${out.length} shares ${shared} key bytes with a previous key of ${last.length}`);
    const key = new Uint8Array(shared + unshared);
    key.set(last.subarray(0, shared));
    key.set(c.take(unshared, 'key'), shared);
    if (out.length > 0 && compareBytes(key, last) <= 0) fail(`${what}: keys are not in ascending order at entry ${out.length}`);
    out.push([key, c.take(valueLength, 'value')]);
    last = key;
  }
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
