import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A temporary path in the same folder as `path`, so that the final rename stays on one file system. */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes a file atomically: `produce` writes into a temporary file beside `path`, which is then
 * renamed over `path`. If `produce` throws, the temporary file is removed and `path` is untouched.
 */
export async function replaceFileAtomically(path: string, produce: (tmpPath: string) => void | Promise<void>): Promise<void> {
  const tmp = temporaryPathFor(path);
  try {
    await produce(tmp);
    syncFile(tmp); // the new bytes are on disk before the name points at them (a crash then leaves old or new, whole)
    renameSync(tmp, path);
    syncFile(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** fsync of a file or a folder (a folder's fsync makes a rename in it durable; refused on some file systems, then skipped). */
function syncFile(path: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // a folder cannot be opened or synced on every platform: the rename is still atomic, only its durability is less sure
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = temporaryPathFor(path);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
