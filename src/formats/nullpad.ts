import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

/**
 * h5py stores numpy 'S' strings (Keras's fixed-length names and configs) with H5T_STR_NULLPAD;
 * h5wasm always writes H5T_STR_NULLTERM. After the file is closed, kerasopt flips the padding bit of
 * the fixed-length string attributes it wrote, found by their version-1 attribute message (what
 * libhdf5 writes with its default bounds): header, the NUL-terminated name padded to 8 bytes, then the
 * string datatype `13 00 00 00 <size>`. Only messages with exactly that name and size are touched,
 * and the caller reads the file back afterwards.
 */
export interface FixedStringAttribute {
  readonly name: string;
  /** The string size in bytes (the datatype's size). */
  readonly size: number;
}

/** Sets H5T_STR_NULLPAD on each attribute message that matches; returns how many were patched. */
export function patchNullPad(file: string, attributes: readonly FixedStringAttribute[]): number {
  if (attributes.length === 0) return 0;
  const fd = openSync(file, 'r+');
  let patched = 0;
  try {
    const size = fstatSync(fd).size;
    const chunk = 1 << 20;
    const buf = Buffer.alloc(chunk + 4096);
    for (let pos = 0; pos < size; pos += chunk) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
      const view = buf.subarray(0, n);
      for (const a of attributes) {
        const name = Buffer.from(`${a.name}\0`, 'utf8');
        const header = Buffer.alloc(4);
        header.writeUInt8(1, 0); // attribute message version 1
        header.writeUInt16LE(name.length, 2);
        for (let i = view.indexOf(name); i >= 0 && i < chunk; i = view.indexOf(name, i + 1)) {
          if (i < 8 || !view.subarray(i - 8, i - 4).equals(header)) continue;
          const dt = i + Math.ceil(name.length / 8) * 8;
          if (dt + 8 > n || view[dt] !== 0x13 || view[dt + 1] !== 0x00 || view.readUInt32LE(dt + 4) !== a.size) continue;
          writeSync(fd, Buffer.from([0x01]), 0, 1, pos + dt + 1);
          patched++;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return patched;
}
