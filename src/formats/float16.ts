import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { FormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * h5wasm's libhdf5 build creates only 32- and 64-bit float datasets, yet Keras saves float16 state
 * for float16 models. kerasopt therefore creates a float16 dataset as a float32 placeholder of the
 * same shape whose storage begins with the half bits, tags it with a marker attribute holding a
 * random nonce, and after the file is closed rewrites the placeholder's datatype message (20 bytes,
 * the same length for both types) from IEEE float32 LE to IEEE float16 LE, found as the nearest
 * float32 datatype message before the nonce in the dataset's object header. The storage keeps its
 * float32 size (HDF5 reads the first half; h5py and h5dump accept it). The caller removes the
 * markers and reads every dataset back, so a patch that missed cannot go unnoticed.
 */

/** The datatype message bodies, as libhdf5 encodes them (version 1, class float, little-endian). */
const FLOAT32_LE = Buffer.from('11201f000400000000002000170800177f000000', 'hex');
const FLOAT16_LE = Buffer.from('11200f0002000000000010000a05000a0f000000', 'hex');

/** The attribute that marks a placeholder until the patch. */
export const FLOAT16_MARKER = '__kerasopt_float16__';

/** How far before the marker's value the datatype message may sit (one object header). */
const WINDOW = 4096;

/** A float32 placeholder for a float16 tensor: its first half bytes are the half bits. */
export function float16Placeholder(t: Tensor): Float32Array {
  const out = new Float32Array(Math.max(t.size, 1)).subarray(0, t.size);
  const half = t.data as Uint16Array;
  new Uint16Array(out.buffer, out.byteOffset, t.size).set(half);
  return out;
}

/** A fresh nonce for one placeholder's marker. */
export function float16Nonce(): string {
  return `f16-${randomBytes(12).toString('hex')}`;
}

/** Rewrites the datatype message of each marked placeholder in `file` (closed) to float16. */
export function patchFloat16(file: string, label: string, nonces: readonly string[]): void {
  const fd = openSync(file, 'r+');
  try {
    const size = fstatSync(fd).size;
    for (const nonce of nonces) {
      const at = findOnce(fd, size, Buffer.from(nonce, 'latin1'), label);
      const start = Math.max(0, at - WINDOW);
      const window = Buffer.alloc(at - start);
      readSync(fd, window, 0, window.length, start);
      const hit = window.lastIndexOf(FLOAT32_LE);
      if (hit < 0) throw new FormatError(label, `cannot locate the datatype of a float16 dataset (marker ${nonce}) to finish writing it`);
      writeSync(fd, FLOAT16_LE, 0, FLOAT16_LE.length, start + hit);
    }
  } finally {
    closeSync(fd);
  }
}

/** The only offset of `needle` in the file (streamed in 1 MiB chunks). */
function findOnce(fd: number, size: number, needle: Buffer, label: string): number {
  const chunk = 1 << 20;
  const buf = Buffer.alloc(chunk + needle.length);
  let found = -1;
  for (let pos = 0; pos < size; pos += chunk) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
    let i = buf.subarray(0, n).indexOf(needle);
    while (i >= 0 && i < chunk) {
      if (found >= 0 && found !== pos + i) throw new FormatError(label, `float16 marker ${needle.toString('latin1')} occurs twice`);
      found = pos + i;
      i = buf.subarray(0, n).indexOf(needle, i + 1);
    }
  }
  if (found < 0) throw new FormatError(label, `float16 marker ${needle.toString('latin1')} not found after writing`);
  return found;
}
