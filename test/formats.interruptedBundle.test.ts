import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readOptimizerState } from '../src/formats/index.js';
import { copyItem, itemFiles, loadCorpus, type CorpusItem } from './helpers/corpus.js';
import { runSave } from './helpers/killSave.js';
import { privateBuild } from './helpers/privateBuild.js';
import { missingPython, PYTHON } from './helpers/python.js';

/**
 * A TF checkpoint is an index and data shards: no single rename replaces them all. kerasopt writes
 * every file under a temporary name, then a journal (the commit point), then renames them, the index
 * last (src/formats/checkpoint/update.ts commit). A save killed before the journal leaves the bundle
 * as it was; killed during the renames, it leaves the journal, and kerasopt's next read finishes the
 * renames. So, after that next read, the bundle is always the original or the complete new one.
 * Checked on the corpus's real checkpoint: a kill forced between the two renames (a test hook), and
 * SIGKILLs at random points over the save; bundles checked by kerasopt and by bundle_check.py.
 */
const KILLS = 20;

const corpus = loadCorpus();
const item: CorpusItem | undefined = corpus.items.find((i) => i.kind === 'checkpoint');
const work = mkdtempSync(join(tmpdir(), 'kerasopt-interrupted-bundle-'));
let build: ReturnType<typeof privateBuild>;
beforeAll(() => {
  build = privateBuild(['src/index.ts']);
  if (build.note) console.warn(build.note);
}, 120_000);
afterAll(() => {
  build?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

const save = (target: string, killAfterMs: number | null, env: Record<string, string> = {}) => runSave(build.url('.') + '/', target, killAfterMs, env);

/** sha256 of every file of the bundle (its prefix's .index and data shards), in name order. */
function snapshot(prefix: string): string {
  const dir = dirname(prefix);
  const base = prefix.slice(dir.length + 1);
  const files = readdirSync(dir).filter((n) => n === `${base}.index` || n.startsWith(`${base}.data-`)).sort();
  return files.map((n) => `${n}:${createHash('sha256').update(readFileSync(join(dir, n))).digest('hex')}`).join(' ');
}

/** The CRC and structure errors bundle_check.py (pure Python, independent of kerasopt) finds in the bundle. */
function crcErrors(prefix: string): string[] {
  return (JSON.parse(execFileSync(PYTHON, [resolve('test/helpers/bundle_check.py'), prefix], { encoding: 'utf8' })) as { errors: string[] }).errors;
}

describe.runIf(item !== undefined)('interrupted checkpoint saves: after the next read, the original or the complete new bundle', () => {
  const setup = (name: string): { prefix: string; original: Map<string, Buffer> } => {
    const home = join(work, name);
    mkdirSync(home, { recursive: true });
    const prefix = copyItem(item!, home);
    const original = new Map(itemFiles(item!, prefix).map((f) => [f, readFileSync(join(home, f))]));
    return { prefix, original };
  };
  const restore = (prefix: string, original: Map<string, Buffer>): void => {
    const dir = dirname(prefix);
    for (const n of readdirSync(dir)) if (!original.has(n)) rmSync(join(dir, n), { force: true });
    for (const [n, bytes] of original) writeFileSync(join(dir, n), bytes);
  };

  test('a kill between the data shard rename and the index rename: the journal is there, and the next read finishes the commit', async () => {
    const why = missingPython(['numpy']);
    const { prefix, original } = setup('forced');
    const before = snapshot(prefix);
    const clean = await save(prefix, null);
    expect(clean.saved, clean.stderr).toBe(true);
    const fresh = snapshot(prefix);
    expect(fresh).not.toBe(before);
    restore(prefix, original);
    const killed = await save(prefix, null, { KERASOPT_TEST_KILL_AFTER_RENAMES: '1' });
    expect([killed.saved, killed.signal]).toEqual([false, 'SIGKILL']);
    expect(existsSync(`${prefix}.index.kerasopt-commit`), 'the journal').toBe(true);
    // torn on disk right now: the new data shard under the old index (TF would refuse its CRCs)
    expect(snapshot(prefix)).not.toBe(before);
    expect(snapshot(prefix)).not.toBe(fresh);
    const state = await readOptimizerState(prefix); // finishes the commit
    expect(snapshot(prefix)).toBe(fresh);
    expect(existsSync(`${prefix}.index.kerasopt-commit`)).toBe(false);
    expect(readdirSync(dirname(prefix)).filter((n) => n.startsWith('.')), 'temporaries left').toEqual([]);
    expect(state.iterations).toBeGreaterThan(0);
    if (!why) expect(crcErrors(prefix)).toEqual([]);
  }, 120_000);

  test(`${KILLS} SIGKILLs at random points over the save`, async () => {
    const { prefix, original } = setup('random');
    const before = snapshot(prefix);
    const durations: number[] = [];
    let fresh = '';
    for (let i = 0; i < 3; i++) {
      restore(prefix, original);
      const r = await save(prefix, null);
      expect(r.saved, r.stderr).toBe(true);
      durations.push(r.saveMs!);
      fresh = snapshot(prefix);
    }
    const duration = durations.sort((a, b) => a - b)[1]!;
    let seed = 0xb0d1e;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const outcomes = { original: 0, new: 0, finished: 0 };
    const torn: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      restore(prefix, original);
      const delay = Math.round(((k + random()) / KILLS) * 1.2 * duration);
      await save(prefix, delay);
      if (existsSync(`${prefix}.index.kerasopt-commit`)) outcomes.finished++;
      await readOptimizerState(prefix).catch(() => null); // the next read finishes an interrupted commit
      const now = snapshot(prefix);
      if (now === before) outcomes.original++;
      else if (now === fresh) outcomes.new++;
      else torn.push(`kill ${k} after ${delay} ms`);
    }
    console.log(`checkpoint ${item!.id}: save takes ${durations.map(Math.round).join(' / ')} ms; ${KILLS} kills: ${outcomes.original} original, ${outcomes.new} new (${outcomes.finished} finished by the next read), ${torn.length} torn`);
    expect(torn).toEqual([]);
    expect(outcomes.original + outcomes.new).toBe(KILLS);
  }, 600_000);
});
