import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

/**
 * A temporary path in the same folder as `path`, so that the final rename stays on one file system.
 * Its name, `.<name>.<pid>.<8 hex>.tmp`, carries the writer's pid, so that a later write can tell
 * a temporary left by a killed process from one being written now (see sweepStaleTemporaries).
 */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Whether a process with this pid runs on this machine (one we may not signal still runs). */
function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Removes the temporaries beside `path` that a write killed mid-way left (SIGKILL, power loss: the
 * process could not clean up): those named by temporaryPathFor whose pid no longer runs (`suffix`, a
 * regular expression, matches what follows `.tmp` in names made from one, as a bundle's `.tmp.index`). A temporary
 * of a live process (a write in progress) is never touched. Best effort: a failure to list or remove
 * is ignored, as the write itself does not depend on it.
 */
export function sweepStaleTemporaries(path: string, suffix = ''): string[] {
  const pattern = new RegExp(`^\\.${escape(basename(path))}\\.(\\d+)\\.[0-9a-f]{8}\\.tmp${suffix}$`);
  return sweep(dirname(path), (name) => pattern.exec(name)?.[1]);
}

/** Removes the entries of `dir` whose name gives (through `pidOf`) the pid of a process that no longer runs. */
function sweep(dir: string, pidOf: (name: string) => string | undefined): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = pidOf(name);
    if (pid === undefined || alive(Number(pid))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // another process may be sweeping it too
    }
  }
  return removed;
}

/**
 * A private folder in the temporary folder for one operation (an archive's extracted weights),
 * named `kerasopt-<pid>-<random>`; folders of that form whose process no longer runs (left by a
 * killed read or write) are removed first. The caller removes its own folder when done.
 */
export function privateTempDir(): string {
  sweepStaleTempDirs();
  return mkdtempSync(join(tmpdir(), `kerasopt-${process.pid}-`));
}

/**
 * Removes kerasopt's folders in the temporary folder whose process no longer runs: `kerasopt-<pid>-*`
 * (privateTempDir) and `kerasopt-worker-<pid>-*` (the reader worker's, see formats/isolate.ts).
 */
export function sweepStaleTempDirs(): string[] {
  return sweep(tmpdir(), (name) => /^kerasopt-(?:worker-)?(\d+)-[A-Za-z0-9-]+$/.exec(name)?.[1]);
}

/**
 * Writes a file atomically: `produce` writes into a temporary file beside `path`, which is then
 * renamed over `path`. If `produce` throws, the temporary file is removed and `path` is untouched.
 * Temporaries of `path` and temporary folders left by killed kerasopt processes are removed first
 * (sweepStaleTemporaries, sweepStaleTempDirs).
 */
export async function replaceFileAtomically(path: string, produce: (tmpPath: string) => void | Promise<void>): Promise<void> {
  sweepStaleTemporaries(path);
  sweepStaleTempDirs();
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

/** fsync of a folder, which makes the renames in it durable (skipped where the platform refuses it). */
export function syncFolder(path: string): void {
  syncFile(path);
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
  sweepStaleTemporaries(path);
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
