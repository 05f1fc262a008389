import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { devNull } from 'node:os';
import type * as H5Wasm from 'h5wasm/node';
import { FormatError, KerasoptError } from '../errors.js';
import { FLOAT16_MARKER, float16Nonce, float16Placeholder, patchFloat16 } from './float16.js';
import { patchNullPad, type FixedStringAttribute } from './nullpad.js';
import { BYTES_PER_ELEMENT, type DType, type TypedData } from '../tensor/dtype.js';
import { LazyTensor } from '../tensor/lazy.js';
import { sizeOf, Tensor } from '../tensor/tensor.js';

/**
 * A thin layer over h5wasm (the Node build, which reads and writes the host file system directly):
 * raw-byte reads and writes so that every dtype keeps its bits (h5wasm's own `.value` has no float16),
 * existence checks that never make libhdf5 print errors, and the string attribute styles Keras uses.
 */

type H5Module = typeof H5Wasm.Module;
let module: H5Module | null = null;
let h5wasm: typeof H5Wasm;

/** Loads h5wasm and its wasm module once, on first use (importing kerasopt does not load it). */
export async function h5(): Promise<H5Module> {
  if (!module) {
    h5wasm = await import('h5wasm/node');
    module = (await h5wasm.ready) as H5Module;
    if (!process.env.KERASOPT_HDF5_DIAG) silenceDiagnostics(module);
  }
  return module;
}

/**
 * On a corrupt file libhdf5 prints its whole error stack ("HDF5-DIAG: ...", dozens of lines) to
 * stderr before h5wasm reports the failure, which kerasopt turns into a FormatError naming the
 * file and the object. The stack says nothing more to a user, so the wasm module's stderr goes to
 * the null device (KERASOPT_HDF5_DIAG=1 keeps it). The Node build writes the module's fd 2
 * through the host descriptor `nfd` of its stream; if that ever changes, nothing is silenced.
 */
function silenceDiagnostics(m: H5Module): void {
  const stream = (m as unknown as { FS?: { getStream?: (fd: number) => { nfd?: unknown } | null } }).FS?.getStream?.(2);
  if (stream && typeof stream.nfd === 'number') stream.nfd = openSync(devNull, 'w');
}

function mod(): H5Module {
  if (!module) throw new Error('h5wasm is not loaded: await h5() first');
  return module;
}

/** Default cap on the bytes one dataset may declare before we allocate memory for it (1 GiB). */
export const DEFAULT_MAX_DATASET_BYTES = 1 << 30;

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Checks, before libhdf5 sees the file, that it starts with the HDF5 signature and is not shorter
 * than the end-of-file address its superblock records (a truncated copy). Throws FormatError otherwise.
 */
export function checkHdf5File(file: string, label = file): void {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new FormatError(label, `cannot read the file: ${(e as Error).message}`);
  }
  const head = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 64, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.subarray(0, 8).equals(SIGNATURE)) throw new FormatError(label, 'not an HDF5 file (no HDF5 signature at offset 0)');
  const version = head[8]!;
  const offsets = version <= 1 ? head[13]! : head[9]!;
  if (offsets !== 8 && offsets !== 4) throw new FormatError(label, `corrupt HDF5 superblock (size of offsets ${offsets})`);
  const eofAt = version === 0 ? 24 + 2 * offsets : version === 1 ? 28 + 2 * offsets : 12 + 2 * offsets;
  const eof = offsets === 8 ? Number(head.readBigUInt64LE(eofAt)) : head.readUInt32LE(eofAt);
  if (eof > size) throw new FormatError(label, `truncated HDF5 file: its superblock says ${eof} bytes, the file has ${size}`);
}

/** An open HDF5 file with the helpers the Keras readers and writers need. */
export class H5File {
  readonly file: H5Wasm.File;

  private constructor(
    readonly path: string,
    readonly label: string,
    file: H5Wasm.File,
  ) {
    this.file = file;
  }

  /** Opens `path` ('r' to read, 'a' to edit, 'w' to create). `label` names the file in errors. */
  static async open(path: string, mode: 'r' | 'a' | 'w', label = path): Promise<H5File> {
    await h5();
    if (mode !== 'w') checkHdf5File(path, label);
    let f: H5Wasm.File;
    try {
      // libhdf5's default bounds (earliest, latest), as h5py uses: v0 superblock and v1 object headers
      f = new h5wasm.File(path, mode, { libver: ['earliest', 'latest'] });
    } catch (e) {
      throw new FormatError(label, `libhdf5 cannot open it: ${(e as Error).message}`);
    }
    if (f.file_id < 0n) throw new FormatError(label, 'libhdf5 cannot open it (corrupt HDF5 file)');
    return new H5File(path, label, f);
  }

  /** Closes a file that was only read; a failure to close (after a libhdf5 error) is not worth an error of its own. */
  closeQuietly(): void {
    try {
      this.file.close();
    } catch {
      // the read already failed, or the handle is gone; nothing was written
    }
  }

  /** The object the last call looked at, so that an unexpected libhdf5 failure can name it. */
  lastObject = '/';

  /**
   * Turns a failure that is not kerasopt's own (h5wasm throwing on corrupt structures, or libhdf5
   * aborting) into a FormatError naming the file and the object being read.
   */
  asFormatError(e: unknown, doing: 'reading' | 'updating' = 'reading'): unknown {
    if (e instanceof KerasoptError) return e;
    const message = e instanceof Error ? e.message : String(e);
    const aborted = /abort/i.test(message) ? ' (libhdf5 aborted)' : '';
    const what = doing === 'reading' ? 'corrupt HDF5 file' : 'HDF5 file cannot be updated (corrupt, or the write failed)';
    return new FormatError(this.label, `${what}: ${doing} ${this.lastObject} failed: ${message}${aborted}`);
  }

  /** float16 datasets created as float32 placeholders, to patch when the file is closed. */
  private readonly float16 = new Map<string, string>();

  /** Fixed-length string attributes written, to get h5py's NULLPAD padding when the file is closed. */
  private readonly fixedStrings: FixedStringAttribute[] = [];

  /**
   * Closes the file. What h5wasm cannot write directly is finished now: float16 datatypes
   * (float16.ts) and the NULLPAD padding of fixed-length strings (nullpad.ts).
   */
  close(): void {
    this.file.close();
    patchNullPad(this.path, this.fixedStrings.splice(0));
    if (this.float16.size === 0) return;
    patchFloat16(this.path, this.label, [...this.float16.keys()]);
    const again = new h5wasm.File(this.path, 'a', { libver: ['earliest', 'latest'] });
    try {
      for (const path of this.float16.values()) (again.get(path) as H5Wasm.Dataset).delete_attribute(FLOAT16_MARKER);
    } finally {
      again.close();
      this.float16.clear();
    }
  }

  /** Names of the members of group `path` ('' or '/' for the root), or null when it is not a group. */
  keys(path: string): string[] | null {
    this.lastObject = abs(path);
    const parts = split(path);
    let at = '/';
    for (const part of parts) {
      const names = this.childNames(at);
      if (names === null || !names.includes(part)) return null;
      at = at === '/' ? `/${part}` : `${at}/${part}`;
    }
    return this.childNames(at);
  }

  /** Whether `path` exists, as a group or a dataset. */
  kind(path: string): 'group' | 'dataset' | null {
    const parts = split(path);
    if (parts.length === 0) return 'group';
    const parent = this.keys(parts.slice(0, -1).join('/'));
    if (!parent || !parent.includes(parts[parts.length - 1]!)) return null;
    const type = mod().get_type(this.file.file_id, abs(path));
    return type === mod().H5O_TYPE_GROUP ? 'group' : type === mod().H5O_TYPE_DATASET ? 'dataset' : null;
  }

  private readonly names = new Map<string, string[] | null>();

  private childNames(path: string): string[] | null {
    if (!this.names.has(path)) this.names.set(path, this.listChildren(path));
    return this.names.get(path)!;
  }

  private listChildren(path: string): string[] | null {
    const type = path === '/' ? mod().H5O_TYPE_GROUP : mod().get_type(this.file.file_id, path);
    if (type !== mod().H5O_TYPE_GROUP) return null;
    try {
      return mod().get_names(this.file.file_id, path, false);
    } catch (e) {
      throw new FormatError(this.label, `cannot list group ${path}: ${(e as Error).message}`);
    }
  }

  /** Attribute names of the object at `path`. */
  attributeNames(path: string): string[] {
    this.lastObject = abs(path);
    return mod().get_attribute_names(this.file.file_id, abs(path));
  }

  /** How an attribute is stored: fixed-length or variable-length string, its size and shape. */
  attributeInfo(path: string, name: string): AttributeInfo {
    this.lastObject = `attribute '${name}' of ${abs(path)}`;
    const m = mod().get_attribute_metadata(this.file.file_id, abs(path), name);
    return { string: m.type === mod().H5T_class_t.H5T_STRING.value, vlen: m.vlen, size: m.size, shape: m.shape ?? [], utf8: m.cset === 1 };
  }

  /** A string or string-array attribute, as strings (null when absent). */
  stringAttribute(path: string, name: string): string | string[] | null {
    if (!this.attributeNames(path).includes(name)) return null;
    const info = this.attributeInfo(path, name);
    if (!info.string) throw new FormatError(this.label, `attribute '${name}' of ${abs(path)} is not a string`);
    const value = this.objectAt(path).get_attribute(name, false) as unknown;
    if (typeof value === 'string' || (Array.isArray(value) && value.every((x) => typeof x === 'string'))) return value as string | string[];
    throw new FormatError(this.label, `attribute '${name}' of ${abs(path)} cannot be read as text`);
  }

  /** The Keras weight dtype of a dataset, or null when its HDF5 type is none (strings, unsigned ints such as seed states). */
  datasetDtype(path: string): DType | null {
    this.lastObject = abs(path);
    const m = mod().get_dataset_metadata(this.file.file_id, abs(path));
    return dtypeOf(m.type, m.size, m.signed);
  }

  /**
   * Datasets of rank >= 1 declaring more bytes than this are read as {@link LazyTensor}s (dtype,
   * shape and place, no data; see chunked.ts); null (the default) reads every dataset into memory.
   * Only set for a file read in place: a lazy tensor points at this file after it is closed.
   */
  lazyAbove: number | null = null;

  /**
   * Reads a numeric dataset with its exact bits: float16 as half bits, int64 as bigints. Refuses
   * (before allocating) any dataset that declares more than `maxBytes`. A dataset over
   * {@link lazyAbove} is returned as a LazyTensor instead, whatever `maxBytes` (scalars never are).
   */
  readTensor(path: string, maxBytes = DEFAULT_MAX_DATASET_BYTES): Tensor {
    this.lastObject = abs(path);
    const m = mod().get_dataset_metadata(this.file.file_id, abs(path));
    const dtype = dtypeOf(m.type, m.size, m.signed);
    if (!dtype) throw new FormatError(this.label, `dataset ${abs(path)} has an HDF5 type (class ${m.type}, ${m.size} bytes) that is not a Keras weight dtype`);
    const shape = m.shape ?? [];
    const n = sizeOf(shape);
    if (n !== m.total_size) throw new FormatError(this.label, `dataset ${abs(path)}: shape [${shape.join(', ')}] disagrees with its ${m.total_size} elements`);
    const nbytes = n * m.size;
    if (this.lazyAbove !== null && shape.length > 0 && nbytes > this.lazyAbove) {
      // nothing is allocated, so no cap and no share of the compressed budget; an uncompressed one must still fit in the file
      if (mod().get_dataset_filters(this.file.file_id, abs(path)).length === 0) this.chargeMemory(path, nbytes, Infinity);
      return new LazyTensor(dtype, shape, { file: this.path, dataset: abs(path), label: this.label });
    }
    if (nbytes > maxBytes) throw new FormatError(this.label, `dataset ${abs(path)} declares ${nbytes} bytes, over the ${maxBytes}-byte cap`);
    this.chargeMemory(path, nbytes, maxBytes);
    const M = mod();
    const ptr = M._malloc(Math.max(nbytes, 1));
    if (!ptr) throw new FormatError(this.label, `cannot allocate ${nbytes} bytes for dataset ${abs(path)}`);
    let bytes: Uint8Array;
    try {
      const status = M.get_dataset_data(this.file.file_id, abs(path), null, null, null, BigInt(ptr));
      if (status < 0) throw new FormatError(this.label, `libhdf5 cannot read dataset ${abs(path)} (corrupt data?)`);
      bytes = M.HEAPU8.slice(ptr, ptr + nbytes);
    } finally {
      M._free(ptr);
    }
    return tensorFromBytes(dtype, shape, bytes);
  }

  /** Bytes of uncompressed datasets read so far, and of compressed ones (see chargeMemory). */
  private readonly charged = { plain: 0, filtered: 0 };

  /**
   * Bounds the memory a read can take, whatever the file declares. An uncompressed dataset's bytes
   * are stored in the file, so all the uncompressed datasets read cannot declare more than the file's
   * size (a 30 KB file declaring a hundred 1 GB datasets, unallocated, is refused instead of read as
   * fill values). Keras never compresses its datasets; compressed ones, which can legitimately
   * inflate past the file size, share one `maxBytes` budget.
   */
  private chargeMemory(path: string, nbytes: number, maxBytes: number): void {
    const filtered = mod().get_dataset_filters(this.file.file_id, abs(path)).length > 0;
    if (filtered) {
      this.charged.filtered += nbytes;
      if (this.charged.filtered > maxBytes) {
        throw new FormatError(this.label, `dataset ${abs(path)}: the compressed datasets read declare ${this.charged.filtered} bytes in all, over the ${maxBytes}-byte cap`);
      }
      return;
    }
    this.charged.plain += nbytes;
    const size = statSync(this.path).size;
    if (this.charged.plain > size) {
      throw new FormatError(this.label, `dataset ${abs(path)} declares ${nbytes} bytes; with the datasets read before it that is ${this.charged.plain} bytes of uncompressed data, more than the file's ${size} bytes (corrupt, or not written by Keras)`);
    }
  }

  /** A numeric dataset's Keras dtype and shape (FormatError for any other dataset). */
  datasetInfo(path: string): { dtype: DType; shape: number[] } {
    this.lastObject = abs(path);
    const m = mod().get_dataset_metadata(this.file.file_id, abs(path));
    const dtype = dtypeOf(m.type, m.size, m.signed);
    if (!dtype) throw new FormatError(this.label, `dataset ${abs(path)} has an HDF5 type (class ${m.type}, ${m.size} bytes) that is not a Keras weight dtype`);
    return { dtype, shape: m.shape ?? [] };
  }

  /**
   * Reads the hyperslab `start` + `count` (one entry per dimension; both [] for a scalar) of a
   * numeric dataset into `out`, which the caller owns and which holds exactly the slab's elements
   * in row-major order, with their bits (float16 as half bits). The bytes pass through a wasm buffer
   * of the slab's size, freed on return: the memory a read takes is the caller's slab size.
   */
  readSlab(path: string, start: readonly number[], count: readonly number[], out: TypedData): void {
    this.slabIo(path, start, count, out, false);
  }

  /** Writes `data` (the slab's elements, row-major, exact bits) over the hyperslab `start` + `count`; see readSlab. */
  writeSlab(path: string, start: readonly number[], count: readonly number[], data: TypedData): void {
    this.slabIo(path, start, count, data, true);
  }

  private slabIo(path: string, start: readonly number[], count: readonly number[], buffer: TypedData, write: boolean): void {
    const { dtype, shape } = this.datasetInfo(path);
    const what = `${write ? 'writing' : 'reading'} slab start [${start.join(', ')}] count [${count.join(', ')}] of dataset ${abs(path)} (${dtype}[${shape.join(', ')}])`;
    const fits = start.length === shape.length && count.length === shape.length && shape.every((d, i) => Number.isSafeInteger(start[i]) && Number.isSafeInteger(count[i]) && start[i]! >= 0 && count[i]! >= 0 && start[i]! + count[i]! <= d);
    if (!fits) throw new FormatError(this.label, `${what}: the slab is not inside the dataset`);
    const nbytes = sizeOf(count) * BYTES[dtype];
    if (buffer.byteLength !== nbytes || BYTES_PER_ELEMENT[dtype] !== buffer.BYTES_PER_ELEMENT) {
      throw new FormatError(this.label, `${what}: the buffer holds ${buffer.byteLength} bytes of ${buffer.BYTES_PER_ELEMENT}-byte elements, the slab ${nbytes} bytes of ${dtype}`);
    }
    if (nbytes === 0) return;
    const M = mod();
    const ptr = M._malloc(nbytes);
    if (!ptr) throw new FormatError(this.label, `${what}: cannot allocate ${nbytes} bytes`);
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, nbytes);
    try {
      // a scalar has no hyperslab: its one element is the whole dataset
      const sel = shape.length === 0 ? ([null, null, null] as const) : ([count.map(BigInt), start.map(BigInt), count.map(() => 1n)] as const);
      if (write) M.HEAPU8.set(bytes, ptr);
      const status = write ? M.set_dataset_data(this.file.file_id, abs(path), sel[0], sel[1], sel[2], BigInt(ptr)) : M.get_dataset_data(this.file.file_id, abs(path), sel[0], sel[1], sel[2], BigInt(ptr));
      if (status < 0) throw new FormatError(this.label, `${what}: libhdf5 failed (corrupt data, or the write failed)`);
      if (!write) bytes.set(M.HEAPU8.subarray(ptr, ptr + nbytes));
    } finally {
      M._free(ptr);
    }
  }

  /** Overwrites every element of an existing dataset with `t`'s bits (same dtype and shape, checked). */
  overwriteTensor(path: string, t: Tensor): void {
    this.lastObject = abs(path);
    const m = mod().get_dataset_metadata(this.file.file_id, abs(path));
    const dtype = dtypeOf(m.type, m.size, m.signed);
    if (dtype !== t.dtype || !sameShape(m.shape ?? [], t.shape)) {
      throw new FormatError(this.label, `dataset ${abs(path)} is ${dtype}[${(m.shape ?? []).join(', ')}], cannot hold ${t.dtype}[${t.shape.join(', ')}]`);
    }
    const bytes = bytesOf(t);
    const M = mod();
    const ptr = M._malloc(Math.max(bytes.length, 1));
    try {
      M.HEAPU8.set(bytes, ptr);
      const status = M.set_dataset_data(this.file.file_id, abs(path), null, null, null, BigInt(ptr));
      if (status < 0) throw new FormatError(this.label, `libhdf5 cannot write dataset ${abs(path)}`);
    } finally {
      M._free(ptr);
    }
  }

  /** Creates the groups of `path` that do not exist yet (like h5py's create_dataset on 'a/b/c'). */
  ensureGroups(path: string): void {
    let at = '';
    for (const part of split(path)) {
      at = `${at}/${part}`;
      const kind = this.kind(at);
      if (kind === 'dataset') throw new FormatError(this.label, `${at} is a dataset, expected a group`);
      if (kind === null) {
        mod().create_group(this.file.file_id, at, false);
        this.names.clear();
      }
    }
  }

  /**
   * Creates a dataset holding `t` (contiguous, no compression, as Keras's create_dataset). float16
   * datasets are finished when the file is closed (h5wasm cannot create them directly).
   */
  createTensor(path: string, t: Tensor): void {
    const parts = split(path);
    this.ensureGroups(parts.slice(0, -1).join('/'));
    this.lastObject = abs(path);
    const half = t.dtype === 'float16';
    const placeholder = half ? float16Placeholder(t) : null;
    const bytes = placeholder ? new Uint8Array(placeholder.buffer, placeholder.byteOffset, placeholder.byteLength) : bytesOf(t);
    const M = mod();
    const ptr = M._malloc(Math.max(bytes.length, 1));
    try {
      M.HEAPU8.set(bytes, ptr);
      const shape = t.shape.map(BigInt);
      const meta = {
        type: t.dtype.startsWith('float') ? M.H5T_class_t.H5T_FLOAT.value : M.H5T_class_t.H5T_INTEGER.value,
        size: half ? 4 : BYTES[t.dtype],
        signed: !t.dtype.startsWith('float'),
        vlen: false,
        littleEndian: true,
        shape,
        maxshape: shape,
        chunks: null,
        compression: 0,
        compression_opts: [],
        track_order: false,
      };
      const status = M.create_dataset(this.file.file_id, abs(path), BigInt(ptr), meta as never);
      this.names.clear();
      if (status < 0) throw new FormatError(this.label, `libhdf5 cannot create dataset ${abs(path)}`);
    } finally {
      M._free(ptr);
    }
    if (half) {
      const nonce = float16Nonce();
      this.objectAt(path).create_attribute(FLOAT16_MARKER, nonce, null, `A${nonce.length}`);
      this.float16.set(nonce, abs(path));
    }
  }

  /**
   * Writes a string attribute in one of Keras's two styles: 'fixed' (numpy 'S' arrays, what h5py 2
   * wrote for bytes) or 'vlen' (variable-length ASCII, what h5py 3 writes for bytes). An existing
   * attribute of that name is replaced.
   */
  writeStringAttribute(path: string, name: string, value: string | string[], style: 'fixed' | 'vlen'): void {
    this.lastObject = `attribute '${name}' of ${abs(path)}`;
    const obj = this.objectAt(path);
    if (this.attributeNames(path).includes(name)) obj.delete_attribute(name);
    const values = Array.isArray(value) ? value : [value];
    const shape = Array.isArray(value) ? [value.length] : null;
    if (style === 'vlen') {
      obj.create_attribute(name, Array.isArray(value) ? value : value, shape, 'A');
    } else {
      const width = Math.max(1, ...values.map((s) => Buffer.byteLength(s, 'utf8')));
      obj.create_attribute(name, Array.isArray(value) ? value : value, shape, `A${width}`);
      this.fixedStrings.push({ name, size: width });
    }
  }

  private objectAt(path: string): H5Wasm.Group | H5Wasm.Dataset {
    const p = abs(path);
    const obj = p === '/' ? this.file : this.file.get(p);
    if (!(obj instanceof h5wasm.Group) && !(obj instanceof h5wasm.Dataset)) throw new FormatError(this.label, `${p} does not exist`);
    return obj;
  }
}

/** How one attribute is stored. */
export interface AttributeInfo {
  readonly string: boolean;
  readonly vlen: boolean;
  readonly size: number;
  readonly shape: readonly number[];
  readonly utf8: boolean;
}

const BYTES: Record<DType, number> = { float16: 2, float32: 4, float64: 8, int32: 4, int64: 8 };

function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}

function abs(path: string): string {
  return `/${split(path).join('/')}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function dtypeOf(type: number, size: number, signed: boolean): DType | null {
  const M = mod();
  if (type === M.H5T_class_t.H5T_FLOAT.value) return size === 2 ? 'float16' : size === 4 ? 'float32' : size === 8 ? 'float64' : null;
  if (type === M.H5T_class_t.H5T_INTEGER.value && signed) return size === 8 ? 'int64' : size === 4 ? 'int32' : null;
  return null;
}

function tensorFromBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array): Tensor {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (dtype) {
    case 'float16':
      return new Tensor(dtype, shape, new Uint16Array(buf));
    case 'float32':
      return new Tensor(dtype, shape, new Float32Array(buf));
    case 'float64':
      return new Tensor(dtype, shape, new Float64Array(buf));
    case 'int32':
      return new Tensor(dtype, shape, new Int32Array(buf));
    case 'int64':
      return new Tensor(dtype, shape, new BigInt64Array(buf));
  }
}

function bytesOf(t: Tensor): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
