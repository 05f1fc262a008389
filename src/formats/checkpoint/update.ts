import { copyFile, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseJsonSafely } from '../../io/json.js';
import { FormatError } from '../../errors.js';
import { sweepStaleTemporaries, syncFolder, temporaryPathFor, writeFileAtomic } from '../../io/atomic.js';
import { sameShape, shapeToString, type Tensor } from '../../tensor/tensor.js';
import { TensorBundle } from './bundle.js';
import { crc32c, maskCrc } from './crc32c.js';
import { ByteCursor, readTableEntries } from './sstable.js';

/** The tag of BundleEntryProto.crc32c: field 6, wire type 5 (fixed32). */
const CRC_TAG = (6 << 3) | 5;

/** One checked replacement: where its bytes go and the masked CRC-32C the index must record for them. */
interface Patch {
  readonly key: string;
  readonly shard: number;
  readonly offset: number;
  readonly bytes: Uint8Array;
  readonly crc: number;
}

/**
 * Rewrites the tensor bundle at `prefix` (`<prefix>.index` and its `<prefix>.data-NNNNN-of-NNNNN`
 * shards) into `outPrefix`, with the tensors named in `updates` (full bundle keys, e.g.
 * `'optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE'`) replaced by the given values.
 *
 * Every other byte stays as it was, except the replaced tensors' bytes in their shard, their entries'
 * crc32c in the index (TF stores the masked CRC-32C of the raw bytes: tensor_bundle.cc `BundleWriter::Add`)
 * and the trailers of the index blocks holding those entries (masked CRC-32C of contents + type byte:
 * table_builder.cc `WriteRawBlock`). The crc32c field is a fixed32, so entries keep their length and
 * the index is patched in place.
 *
 * Each file is written beside its destination under a temporary name, fsynced, and the new bundle is
 * read back (every index block CRC, each replaced tensor's CRC and bits) before anything is renamed:
 * data shards first, the index last. If a rename fails, the files already replaced are put back, so
 * `outPrefix` may equal `prefix`. Shards holding no update are left alone when `outPrefix` equals
 * `prefix`, and copied otherwise.
 *
 * @param label names the input bundle in error messages (default `prefix`).
 * @throws FormatError naming the file and the key: an unknown key, a dtype or shape other than the
 *   stored one, a string or sliced (partitioned) tensor, an entry without a crc32c field, or an index
 *   that does not read (truncated, CRC mismatch, compressed blocks).
 */
export async function updateBundleTensors(prefix: string, outPrefix: string, updates: ReadonlyMap<string, Tensor>, label = prefix): Promise<void> {
  completeInterruptedCommit(prefix);
  if (resolve(outPrefix) !== resolve(prefix)) completeInterruptedCommit(outPrefix);
  const source = TensorBundle.open(prefix, label);
  const indexLabel = `${label}.index`;
  const patches = [...updates].map(([key, value]) => planPatch(source, key, value, indexLabel));
  const index = patchIndex(await readFile(`${prefix}.index`), patches, indexLabel);

  await mkdir(dirname(resolve(outPrefix)), { recursive: true });
  const inPlace = resolve(prefix) === resolve(outPrefix);
  // The temporary files form a bundle of their own, so the existing reader can check them before the renames.
  const tmpPrefix = temporaryPathFor(outPrefix);
  const moves: Array<[tmp: string, final: string]> = [];
  try {
    for (let id = 0; id < source.numShards; id++) {
      const mine = patches.filter((p) => p.shard === id);
      if (inPlace && mine.length === 0) continue;
      const tmp = shardName(tmpPrefix, id, source.numShards);
      moves.push([tmp, shardName(outPrefix, id, source.numShards)]);
      await stat(source.shardFile(id)).catch(() => {
        throw new FormatError(source.shardFile(id), `missing data shard ${id} of ${source.numShards}`);
      });
      await copyFile(source.shardFile(id), tmp);
      await writeAt(tmp, mine, 'r+');
    }
    moves.push([`${tmpPrefix}.index`, `${outPrefix}.index`]);
    await writeAt(`${tmpPrefix}.index`, [{ offset: 0, bytes: index }], 'wx');
    verify(tmpPrefix, outPrefix, patches);
    await commit(moves);
  } finally {
    await Promise.all(moves.map(([tmp]) => rm(tmp, { force: true })));
  }
}

/** Checks one update against the stored entry; the bytes are copied so later changes to the tensor do not leak in. */
function planPatch(bundle: TensorBundle, key: string, value: Tensor, label: string): Patch {
  if (!bundle.has(key)) throw new FormatError(label, `no tensor '${key}' in the checkpoint to update`);
  const info = bundle.info(key); // refuses sliced entries, unknown dtypes and spans outside their shard
  if (info.dtype === 'string') throw new FormatError(label, `tensor '${key}' is a string tensor: only numeric tensors can be updated`);
  if (value.dtype !== info.dtype || !sameShape(value.shape, info.shape)) {
    throw new FormatError(label, `tensor '${key}': the update is ${value.dtype}${shapeToString(value.shape)}, expected ${info.dtype}${shapeToString(info.shape)} (a replaced tensor keeps its dtype and shape)`);
  }
  // Typed arrays hold host-order bytes; like the reader, this assumes a little-endian host (the bundle's order).
  const bytes = new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength).slice();
  if (bytes.length !== info.size) throw new FormatError(label, `tensor '${key}': ${bytes.length} bytes to write, the entry holds ${info.size}`);
  return { key, shard: info.shard, offset: info.offset, bytes, crc: maskCrc(crc32c(bytes)) };
}

/** Writes each patch's crc into its entry, then re-seals every block that changed. */
function patchIndex(index: Uint8Array, patches: readonly Patch[], label: string): Uint8Array {
  const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
  const entries = readTableEntries(index, label); // refuses compressed blocks, whose values could not be patched in place
  const blocks = new Map<number, number>();
  for (const p of patches) {
    const e = entries.get(p.key);
    if (!e) throw new FormatError(label, `tensor '${p.key}' vanished from the index while it was being updated`);
    view.setUint32(e.valueOffset + crcFieldAt(e.value, p.key, label), p.crc, true);
    blocks.set(e.block.offset, e.block.size);
  }
  for (const [offset, size] of blocks) {
    view.setUint32(offset + size + 1, maskCrc(crc32c(index.subarray(offset, offset + size + 1))), true);
  }
  return index;
}

/** Where the 4 bytes of a serialized BundleEntryProto's crc32c start, walking its top-level fields. */
function crcFieldAt(value: Uint8Array, key: string, label: string): number {
  const fail = (m: string): never => {
    throw new FormatError(label, `entry '${key}': ${m}`);
  };
  const c = new ByteCursor(value, 0, value.length, fail);
  let at = -1;
  while (c.pos < value.length) {
    const tag = c.varint('field tag');
    if (tag === CRC_TAG) {
      if (at >= 0) fail('holds two crc32c fields');
      at = c.pos;
    }
    const wire = tag % 8;
    if (wire === 0) c.varint('varint field');
    else if (wire === 1) c.take(8, 'fixed64 field');
    else if (wire === 2) c.take(c.varint('field length'), 'length-delimited field');
    else if (wire === 5) c.take(4, 'fixed32 field');
    else fail(`unexpected protobuf wire type ${wire}`);
  }
  // proto3 omits a zero checksum; adding the field would change the entry's length, so it is refused.
  // (A new checksum of zero is written as an explicit fixed32 0, which parsers accept.)
  if (at < 0) fail('records no crc32c field, so it cannot be patched in place');
  return at;
}

/** Writes the chunks into `file` (opened with `flags`) and fsyncs it before it is renamed into place. */
async function writeAt(file: string, chunks: ReadonlyArray<{ offset: number; bytes: Uint8Array }>, flags: string): Promise<void> {
  const fh = await open(file, flags);
  try {
    for (const { offset, bytes } of chunks) {
      for (let done = 0; done < bytes.length; ) done += (await fh.write(bytes, done, bytes.length - done, offset + done)).bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads the temporary bundle back with the reader: its index, and each replaced tensor's CRC and bits. */
function verify(tmpPrefix: string, outPrefix: string, patches: readonly Patch[]): void {
  try {
    const written = TensorBundle.open(tmpPrefix, outPrefix);
    for (const p of patches) {
      const d = written.tensor(p.key).data;
      if (!Buffer.from(d.buffer, d.byteOffset, d.byteLength).equals(p.bytes)) throw new Error(`tensor '${p.key}' reads back different bits`);
    }
  } catch (e) {
    throw new FormatError(`${outPrefix}.index`, `the rewritten bundle fails its read-back check, so nothing was replaced: ${(e as Error).message}`);
  }
}

/**
 * Renames each temporary file over its destination, in order (the index last). A bundle is several
 * files, and no rename covers them all, so the moves are first written to a journal beside the index
 * (`<prefix>.index.kerasopt-commit`, itself written atomically): from then on the commit is decided.
 * A process killed during the renames leaves the journal, and kerasopt's next read or write of the
 * bundle finishes the renames ({@link completeInterruptedCommit}); killed before the journal exists,
 * the destinations are untouched and the temporaries are swept later. A rename that fails (throws) puts
 * back the files already replaced and removes the journal.
 */
export async function commit(moves: ReadonlyArray<readonly [string, string]>): Promise<void> {
  if (moves.length === 0) return;
  const journal = journalOf(moves[moves.length - 1]![1]);
  for (const [tmp, final] of moves) {
    if (dirname(resolve(tmp)) !== dirname(resolve(journal)) || dirname(resolve(final)) !== dirname(resolve(journal))) {
      throw new Error(`commit: ${tmp} -> ${final} is not in the folder of ${journal}`);
    }
  }
  writeFileAtomic(journal, JSON.stringify({ moves: moves.map(([tmp, final]) => [basename(tmp), basename(final)]) }));
  // @internal test hook: the process kills itself after this many renames (test/formats.interruptedBundle.test.ts)
  const killAfter = process.env.KERASOPT_TEST_KILL_AFTER_RENAMES === undefined ? -1 : Number(process.env.KERASOPT_TEST_KILL_AFTER_RENAMES);
  const done: Array<{ final: string; backup: string | null }> = [];
  try {
    for (const [tmp, final] of moves) {
      if (done.length === killAfter) process.kill(process.pid, 'SIGKILL');
      const backup = await keepOld(final);
      try {
        await rename(tmp, final);
      } catch (e) {
        if (backup) await rm(backup, { force: true }); // `final` was not replaced
        throw e;
      }
      done.push({ final, backup });
    }
  } catch (e) {
    const stuck: string[] = [];
    for (const { final, backup } of done.reverse()) {
      await (backup ? rename(backup, final) : rm(final, { force: true })).catch(() => stuck.push(backup ? `${final} (its old content is in ${backup})` : final));
    }
    await rm(journal, { force: true });
    if (stuck.length > 0) (e as Error).message += `; restoring ${stuck.join(', ')} failed too`;
    throw e;
  }
  syncFolder(dirname(journal));
  rmSync(journal, { force: true }); // the commit is complete: nothing to finish
  await Promise.all(done.map(({ backup }) => backup && rm(backup, { force: true })));
}

/** The journal of a bundle's commit, beside its index. */
function journalOf(index: string): string {
  return `${index}.kerasopt-commit`;
}

/**
 * Finishes a commit that a killed process left half done: when the journal of `<prefix>.index`
 * exists, every listed temporary that still exists is renamed over its destination, then the journal
 * is removed. kerasopt calls it before it reads or writes a bundle; a bundle without a journal is
 * left alone. A journal that does not parse, or names files outside the bundle's folder, is a
 * FormatError (nothing is renamed).
 */
export function completeInterruptedCommit(prefix: string): boolean {
  const journal = journalOf(`${prefix}.index`);
  if (!existsSync(journal)) {
    sweepBundle(prefix); // files of a write killed before its commit
    return false;
  }
  const dir = dirname(resolve(journal));
  let moves: unknown;
  try {
    moves = (parseJsonSafely(readFileSync(journal, 'utf8'), journal) as { moves?: unknown } | null)?.moves;
  } catch (e) {
    throw new FormatError(journal, `the journal of an interrupted commit does not parse: ${(e as Error).message}`);
  }
  const ok = Array.isArray(moves) && moves.every((m) => Array.isArray(m) && m.length === 2 && m.every((n) => typeof n === 'string' && n === basename(n) && n !== '' && n !== '.' && n !== '..'));
  if (!ok) throw new FormatError(journal, 'the journal of an interrupted commit should list [temporary, destination] file names in its folder');
  for (const [tmp, final] of moves as Array<[string, string]>) {
    if (existsSync(join(dir, tmp))) renameSync(join(dir, tmp), join(dir, final));
  }
  syncFolder(dir);
  rmSync(journal, { force: true });
  sweepBundle(prefix);
  return true;
}

/**
 * Removes the temporaries killed writers left beside a bundle: whole temporary bundles
 * (`.<prefix>.<pid>.<hex>.tmp.index`, `.data-*`) and the backups of replaced files
 * (`.<prefix>.index.<pid>.<hex>.tmp`), of processes that no longer run.
 */
function sweepBundle(prefix: string): void {
  sweepStaleTemporaries(prefix, '\\.(index|data-\\d{5}-of-\\d{5})');
  sweepStaleTemporaries(`${prefix}.index`);
  const dir = dirname(resolve(prefix));
  const base = basename(prefix);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(`${base}.data-`) && /^\S+\.data-\d{5}-of-\d{5}$/.test(n)) sweepStaleTemporaries(join(dir, n));
}

/** A second name for `file`'s current content (null if there is no file), so a failed commit can restore it. */
async function keepOld(file: string): Promise<string | null> {
  const backup = temporaryPathFor(file);
  try {
    await link(file, backup);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    await copyFile(file, backup); // a file system without hard links
  }
  return backup;
}

function shardName(prefix: string, id: number, count: number): string {
  return `${prefix}.data-${String(id).padStart(5, '0')}-of-${String(count).padStart(5, '0')}`;
}
