import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readOptimizerState } from '../src/formats/index.js';
import { copyItem, datasetPath, loadCorpus, type CorpusItem } from './helpers/corpus.js';
import { runSave } from './helpers/killSave.js';
import { privateBuild } from './helpers/privateBuild.js';
import { missingPython, python } from './helpers/python.js';

/**
 * Interrupted writes (issue 11). A child process resumes a real corpus file (the largest tf.keras
 * .h5 model and the largest .keras archive of ../shared/corpus/real, copied) by one step and calls
 * saveOptimizerState(file, optimizer, { like: state }); the parent SIGKILLs it at 30 points spread
 * over the save (stratified random delays from 0 to 1.2 x the save's measured duration). After each
 * kill the target must be byte for byte either the original or the complete new file (the new file,
 * the same bytes at every successful save, reads back with kerasopt and h5py with iterations + 1, and
 * a .keras passes Python zipfile's CRC check). Never anything else.
 *
 * Temporary files: a SIGKILLed process cannot remove anything. Temporary names carry the writer's pid
 * (`.<name>.<pid>.<hex>.tmp` beside the target, `kerasopt-<pid>-*` in the temporary folder), so the
 * test checks that every leftover is recognisably kerasopt's, and that the next successful save
 * removes them all (src/io/atomic.ts sweeps the temporaries of processes that no longer run).
 */
const KILLS = 30;
const CALIBRATION_RUNS = 3;


/** h5py's reading (and, for a .keras, zipfile's CRC check) of a written file: sha256 of each dataset asked for. */
const H5PY = String.raw`
import hashlib, io, json, sys, zipfile
import h5py, numpy as np
job = json.loads(sys.stdin.read())
out = {'crc': None}
src = job['file']
if job['zip']:
    with zipfile.ZipFile(src) as zf:
        out['crc'] = zf.testzip()  # None when every entry's CRC-32 matches
        src = io.BytesIO(zf.read('model.weights.h5'))
with h5py.File(src, 'r') as h:
    def sha(p):
        a = np.asarray(h[p][()])
        return hashlib.sha256(np.ascontiguousarray(a.astype(a.dtype.newbyteorder('<'))).tobytes()).hexdigest()
    out['sha'] = {p: sha(p) for p in job['paths']}
print(json.dumps(out))
`;

const corpus = loadCorpus();
const largest = (kind: CorpusItem['kind'], ok: (i: CorpusItem) => boolean = () => true): CorpusItem | undefined =>
  corpus.items.filter((i) => i.kind === kind && ok(i)).sort((a, b) => Number(b.entry.bytes) - Number(a.entry.bytes))[0];
const ITEMS = [largest('hdf5', (i) => !i.id.endsWith('.weights.h5')), largest('keras-archive')].filter((i): i is CorpusItem => i !== undefined);
const noPython = missingPython(['h5py', 'numpy']); // throws in CI, where .ci/run installs them

let build: ReturnType<typeof privateBuild>;
const work = mkdtempSync(join(tmpdir(), 'kerasopt-interrupted-'));
beforeAll(() => {
  build = privateBuild(['src/index.ts']);
  if (build.note) console.warn(build.note);
}, 120_000);
afterAll(() => {
  build?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The save child with TMPDIR=`tmp` (test/helpers/killSave.ts). */
const runSaveIn = (target: string, tmp: string, killAfterMs: number | null) => runSave(build.url('.') + '/', target, killAfterMs, { TMPDIR: tmp });

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const TEMP_BESIDE = (name: string) => new RegExp(`^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d+\\.[0-9a-f]{8}\\.tmp$`);

/** Entries beside the target (other than it) and in the child's temporary folder. */
function leftovers(dir: string, tmp: string, name: string): { beside: string[]; inTmp: string[] } {
  return { beside: readdirSync(dir).filter((n) => n !== name).sort(), inTmp: readdirSync(tmp).sort() };
}

describe.runIf(corpus.items.length > 0)('interrupted saves: SIGKILL at random points leaves the original or the complete new file', () => {
  test('the corpus has a tf.keras .h5 and a .keras archive to interrupt', () => {
    expect(corpus.problem).toBeNull();
    expect(ITEMS.map((i) => i.kind)).toEqual(['hdf5', 'keras-archive']);
  });

  for (const item of ITEMS) {
    test(`${item.kind} ${item.id}: ${KILLS} kills over the save`, async () => {
      const dir = mkdtempSync(join(work, `${item.kind}-`));
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp);
      const home = join(dir, 'work');
      const target = copyItem(item, home);
      const name = basename(target);
      const original = readFileSync(target);
      const before = await readOptimizerState(target);
      const restore = () => writeFileSync(target, original);

      // 1. the save uninterrupted: its duration, and the new file (the same bytes every time)
      const durations: number[] = [];
      const news = new Set<string>();
      let fresh: Buffer | null = null;
      for (let i = 0; i < CALIBRATION_RUNS; i++) {
        restore();
        const r = await runSaveIn(target, tmp, null);
        expect(r.saved && r.code === 0, `uninterrupted save failed: exit ${r.code}\n${r.stderr}`).toBe(true);
        durations.push(r.saveMs!);
        fresh = readFileSync(target);
        news.add(sha(fresh));
      }
      expect(news.size, 'an uninterrupted save writes the same bytes every time').toBe(1);
      const newSha = [...news][0]!;
      expect(newSha, 'the save changed the file').not.toBe(sha(original));
      // the new file reads back with kerasopt (iterations + 1) and with h5py (same bytes per weight; .keras: CRCs)
      const after = await readOptimizerState(target);
      expect(after.iterations).toBe(before.iterations + 1);
      if (!noPython) {
        const answer = JSON.parse(python(H5PY, [], JSON.stringify({ file: target, zip: item.kind === 'keras-archive', paths: after.weights.map((w) => datasetPath(w.name)) }))) as { crc: string | null; sha: Record<string, string> };
        expect(answer.crc, 'zipfile: first entry with a bad CRC').toBeNull();
        for (const w of after.weights) {
          const d = w.value.data;
          expect(answer.sha[datasetPath(w.name)], `h5py's reading of ${w.name}`).toBe(createHash('sha256').update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).digest('hex'));
        }
      }
      expect(leftovers(home, tmp, name), 'uninterrupted saves leave no temporary file').toEqual({ beside: [], inTmp: [] });
      const duration = [...durations].sort((a, b) => a - b)[Math.floor(durations.length / 2)]!;

      // 2. SIGKILL at stratified random points over 1.2 x the duration
      let seed = 0x5eed1;
      const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const rows: string[] = [];
      const outcomes = { original: 0, new: 0 };
      const torn: string[] = [];
      let stray = leftovers(home, tmp, name);
      const kill = async (k: number, delay: number): Promise<void> => {
        restore();
        const r = await runSaveIn(target, tmp, delay);
        const now = sha(readFileSync(target));
        const state = now === sha(original) ? 'original' : now === newSha ? 'new' : 'TORN';
        if (state === 'TORN') torn.push(`kill ${k} after ${delay} ms: ${readFileSync(target).length} bytes, sha256 ${now.slice(0, 12)} (neither the original nor the new file)`);
        else outcomes[state]++;
        const next = leftovers(home, tmp, name);
        const added = { beside: next.beside.filter((n) => !stray.beside.includes(n)), inTmp: next.inTmp.filter((n) => !stray.inTmp.includes(n)) };
        stray = next;
        rows.push(`  kill ${String(k).padStart(2)} at ${String(delay).padStart(4)} ms${r.killed ? '' : ' (had exited)'}${r.saved ? ', after SAVED' : ''}: ${state}; left ${added.beside.length} beside, ${added.inTmp.length} in TMPDIR`);
      };
      for (let k = 0; k < KILLS; k++) await kill(k, Math.round(((k + random()) / KILLS) * 1.2 * duration));
      // a loaded machine can make the saves slower than measured: then kill later until one lands after the save
      for (let k = KILLS, f = 1.5; outcomes.new === 0 && f <= 8; k++, f *= 2) await kill(k, Math.round(f * duration));
      console.log(`${item.id}: save takes ${durations.map((d) => Math.round(d)).join(' / ')} ms; ${rows.length} kills: ${outcomes.original} original, ${outcomes.new} new, ${torn.length} torn\n${rows.join('\n')}`);
      expect(torn).toEqual([]);
      // the kills did land before and after the rename (else the delays missed the save)
      expect(outcomes.original).toBeGreaterThan(0);
      expect(outcomes.new).toBeGreaterThan(0);

      // 3. leftovers: kerasopt's temporaries only; then the next successful save
      const strangers = [...stray.beside.filter((n) => !TEMP_BESIDE(name).test(n)), ...stray.inTmp.filter((n) => !/^kerasopt-/.test(n)).map((n) => `TMPDIR/${n}`)];
      expect(strangers, 'files left by killed saves that are not kerasopt temporaries').toEqual([]);
      restore();
      const last = await runSaveIn(target, tmp, null);
      expect(last.saved && last.code === 0, `the next save failed: exit ${last.code}\n${last.stderr}`).toBe(true);
      expect(sha(readFileSync(target))).toBe(newSha);
      const end = leftovers(home, tmp, name);
      const own = { beside: end.beside.filter((n) => !stray.beside.includes(n)), inTmp: end.inTmp.filter((n) => !stray.inTmp.includes(n)) };
      expect(own, 'the successful save leaves no temporary of its own').toEqual({ beside: [], inTmp: [] });
      // the next save removes what the killed ones left: temporaries beside the target, kerasopt's folders in TMPDIR
      expect(end, `temporaries left by the ${KILLS} killed saves are still there after the next successful save`).toEqual({ beside: [], inTmp: [] });
    }, 600_000);
  }
});
