import { createWriteStream, type WriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { crc32 } from 'node:zlib';
import { FormatError } from '../errors.js';

/** Limits applied to every archive before anything is extracted. */
export interface ArchiveLimits {
  /** Largest uncompressed size any entry may declare or actually inflate to (default 4 GiB). */
  maxEntryBytes?: number;
  /** Most entries an archive may hold (default 10000). */
  maxEntries?: number;
}

const DEFAULT_MAX_ENTRY_BYTES = 4 * 2 ** 30;
const DEFAULT_MAX_ENTRIES = 10_000;

/** An open zip archive whose entries were all checked (names, declared sizes, count). */
export class Archive {
  private constructor(
    readonly label: string,
    private readonly zip: yauzl.ZipFile,
    readonly entries: readonly yauzl.Entry[],
    private readonly maxEntryBytes: number,
  ) {}

  /** Opens `file` and checks every entry: no absolute path, no '..', no size over the cap. */
  static async open(file: string, limits: ArchiveLimits = {}, label = file): Promise<Archive> {
    const maxEntryBytes = limits.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
    const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
    const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      yauzl.open(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true }, (err, z) =>
        err ? reject(new FormatError(label, `not a readable zip archive: ${err.message}`)) : resolve(z!),
      );
    });
    if (zip.entryCount > maxEntries) {
      zip.close();
      throw new FormatError(label, `archive declares ${zip.entryCount} entries, over the cap of ${maxEntries}`);
    }
    const entries: yauzl.Entry[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (entry: yauzl.Entry) => {
          try {
            checkEntry(label, entry, maxEntryBytes);
            entries.push(entry);
            zip.readEntry();
          } catch (e) {
            reject(e);
          }
        });
        zip.on('end', () => resolve());
        zip.on('error', (err: Error) => reject(new FormatError(label, `archive entry rejected: ${err.message}`)));
        zip.readEntry();
      });
    } catch (e) {
      zip.close();
      throw e;
    }
    return new Archive(label, zip, entries, maxEntryBytes);
  }

  close(): void {
    this.zip.close();
  }

  entry(name: string): yauzl.Entry | undefined {
    return this.entries.find((e) => e.fileName === name);
  }

  /**
   * A stream of the entry's bytes that fails past the cap (and past its declared size, checked by
   * yauzl) and, at its end, when the bytes do not match the entry's CRC-32 (yauzl does not check it:
   * a corrupt entry would otherwise be read as good data).
   */
  async stream(entry: yauzl.Entry): Promise<Readable> {
    const s = await new Promise<Readable>((resolve, reject) => {
      this.zip.openReadStream(entry, (err, stream) => (err ? reject(new FormatError(this.label, `entry ${entry.fileName}: ${err.message}`)) : resolve(stream!)));
    });
    let seen = 0;
    let crc = 0;
    const { label, maxEntryBytes } = this;
    const checked = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        seen += chunk.length;
        if (seen > maxEntryBytes) return done(new FormatError(label, `entry ${entry.fileName} inflates past the cap of ${maxEntryBytes} bytes`));
        crc = crc32(chunk, crc);
        done(null, chunk);
      },
      flush(done) {
        if (crc >>> 0 !== entry.crc32 >>> 0) return done(new FormatError(label, `entry ${entry.fileName} is corrupt: its bytes have CRC-32 ${hex(crc)}, the archive says ${hex(entry.crc32)}`));
        done();
      },
    });
    s.on('error', (e) => checked.destroy(e));
    return s.pipe(checked);
  }

  /** Extracts one entry to `dest` (a path we chose; entry names never become paths). */
  async extract(entry: yauzl.Entry, dest: string): Promise<void> {
    try {
      await pipeline(await this.stream(entry), createWriteStream(dest));
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(this.label, `entry ${entry.fileName} cannot be extracted: ${(e as Error).message}`);
    }
  }

  /** An entry's text (for small entries such as config.json; capped at `maxBytes`). */
  async text(entry: yauzl.Entry, maxBytes = 64 * 2 ** 20): Promise<string> {
    if (entry.uncompressedSize > maxBytes) throw new FormatError(this.label, `entry ${entry.fileName} declares ${entry.uncompressedSize} bytes, over the ${maxBytes}-byte cap for text entries`);
    const chunks: Buffer[] = [];
    try {
      for await (const c of await this.stream(entry)) chunks.push(c as Buffer);
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(this.label, `entry ${entry.fileName} cannot be read: ${(e as Error).message}`);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /**
   * Writes a new archive to `dest` with the same entries in the same order, each copied unchanged
   * unless `replace` gives a file path or bytes for its name.
   */
  async rewrite(dest: string, replace: ReadonlyMap<string, { file: string } | { bytes: Buffer }>): Promise<void> {
    const out = new yazl.ZipFile();
    const done = pipeline(out.outputStream, createWriteStream(dest) as WriteStream);
    for (const entry of this.entries) {
      const options = { mtime: entry.getLastModDate(), compress: entry.compressionMethod === 8 };
      const r = replace.get(entry.fileName);
      if (entry.fileName.endsWith('/')) out.addEmptyDirectory(entry.fileName, { mtime: options.mtime });
      else if (r && 'file' in r) out.addFile(r.file, entry.fileName, options);
      else if (r) out.addBuffer(r.bytes, entry.fileName, options);
      else out.addReadStream(await this.stream(entry), entry.fileName, options);
    }
    out.end();
    await done;
  }
}

const hex = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');

function checkEntry(label: string, entry: yauzl.Entry, maxEntryBytes: number): void {
  const name = entry.fileName;
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) throw new FormatError(label, `archive entry '${name}' has an absolute path`);
  if (name.split(/[/\\]/).includes('..')) throw new FormatError(label, `archive entry '${name}' has '..' in its path`);
  if (entry.uncompressedSize > maxEntryBytes) {
    throw new FormatError(label, `archive entry '${name}' declares ${entry.uncompressedSize} uncompressed bytes, over the cap of ${maxEntryBytes} (zip bomb?)`);
  }
}
