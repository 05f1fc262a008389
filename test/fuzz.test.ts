import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { count, DEFAULT_CORPORA, defaultOptions, failures, formatReport, runFuzz, type FuzzReport } from '../scripts/fuzz.js';
import { privateBuild } from './helpers/privateBuild.js';
import { missingPython } from './helpers/python.js';

/**
 * A short fixed-seed round of `npm run fuzz` (scripts/fuzz.ts): every item of both real corpora and of
 * the test helpers' files, mutated (byte flips, truncation, 64 zeroed bytes, zip central directory and
 * entries, bundle .index and .data bytes), each read by readOptimizerState in a child process, two at a
 * time, with a per-case timeout. It fails on any crash and on any hang not listed in KNOWN_HANGS.
 *
 * The seed is the fuzzer's default and the number of cases is chosen for time (3 or 4 cases per item;
 * 1 to 2 minutes on 2 cores), not to avoid any case: the round includes the hangs it finds, listed below.
 */
const SEED = 11;
const CASES = 200;
const TIMEOUT_MS = 20_000; // above the reader's default deadline (10 s), so a read it stops shows as its clean error

/**
 * issue 11: to be fixed by the worker deadline. Hangs of this round that are known and tolerated: the
 * test fails on any hang NOT listed here. Before the reader worker (commit 6dc2667) this round had two,
 * `helper/tf_keras_new_f64.h5@zero64#3148623385` and `helper/tf_keras_f16.h5@zero64#2688589935`
 * (64 zeroed bytes in the global heap holding the vlen attribute 'training_config', on which libhdf5
 * loops forever; h5py 3.7 / libhdf5 1.10.8 and h5dump hang on those files too). The worker's 10 s
 * deadline now ends them as clean FormatErrors, so none is tolerated any more: a regression of the
 * deadline shows here as a new hang. Add an id (with this comment's reason) only for a hang that is
 * understood and scheduled, never to make the round pass.
 */
const KNOWN_HANGS: readonly string[] = [];

const corporaMissing = DEFAULT_CORPORA.filter((d) => !existsSync(`${d}/manifest.json`));
const pythonMissing = missingPython(['h5py', 'numpy']); // throws in CI, where .ci/run installs them

let build: ReturnType<typeof privateBuild>;
let report: FuzzReport;

beforeAll(() => {
  build = privateBuild(['scripts/fuzz.ts']);
  if (build.note) console.warn(build.note);
}, 120_000);
afterAll(() => build?.cleanup());

describe('fuzz: a fixed-seed round over the real corpora and the helpers\' files', () => {
  test('the corpora are there', () => {
    expect(corporaMissing, `corpus folders missing: ${corporaMissing.join(', ')}`).toEqual([]);
  });

  test(`${CASES} mutated cases (seed ${SEED}) run in child processes, two at a time`, async () => {
    report = await runFuzz({
      ...defaultOptions(),
      seed: SEED,
      cases: CASES,
      timeoutMs: TIMEOUT_MS,
      jobs: 2,
      baseline: false, // the corpus suites read every unmutated item already
      helpers: !pythonMissing,
      h5py: !pythonMissing,
      childScript: build.file('scripts/fuzz.js'),
      knownHangs: KNOWN_HANGS,
    });
    console.log(formatReport(report));
    expect(report.cases.length).toBe(CASES);
    expect(report.notes.filter((n) => n.includes('failed')), 'a test helper failed to make its files').toEqual([]);
    // every file kind is mutated
    expect(new Set(report.cases.map((c) => c.kind))).toEqual(new Set(['hdf5', 'keras-archive', 'tensor-bundle']));
  }, 300_000);

  test('no crash', () => {
    expect(report, 'the round did not run').toBeDefined();
    const crashes = report.cases.filter((c) => c.outcome === 'crash');
    expect(crashes.map((c) => `${c.id}: ${c.what}: ${c.detail.split('\n').slice(0, 3).join(' | ')}`)).toEqual([]);
  });

  test('no hang beyond KNOWN_HANGS (each case finishes within its timeout, or is a listed known hang)', () => {
    expect(report, 'the round did not run').toBeDefined();
    const hangs = report.cases.filter((c) => c.outcome === 'hang');
    const fresh = hangs.filter((c) => !KNOWN_HANGS.includes(c.id));
    expect(fresh.map((c) => `${c.id}: ${c.what} (${c.detail})`), 'NEW hang(s): replay with npm run fuzz -- --replay <id>').toEqual([]);
    const gone = KNOWN_HANGS.filter((id) => !hangs.some((c) => c.id === id));
    if (gone.length) console.warn(`\n*** KNOWN_HANGS no longer hang (fixed? remove them from test/fuzz.test.ts): ${gone.join(', ')} ***\n`);
  });

  test('noisy errors are counted and shown loudly, not failed', () => {
    expect(report, 'the round did not run').toBeDefined();
    // Noise on stderr (libhdf5's "Aborted(native code called abort())", emscripten's UTF-8 warnings) with
    // a clean error is counted and printed loudly, deliberately NOT failed (issue 11): before the worker
    // isolation landed (6dc2667) such noise was expected; the worker now sends it into the error, and
    // no round since has shown any. Crash and hang are failures.
    const noisy = report.cases.filter((c) => c.outcome === 'noisy-error');
    if (noisy.length) {
      console.warn(`\n*** ${noisy.length} NOISY ERROR(S) of ${report.cases.length} cases (clean error, but stderr output) ***\n${noisy.map((c) => `  ${c.id}: ${c.stderr.trim().split('\n')[0]}`).join('\n')}\n`);
    }
    const c = count(report.cases);
    expect(c.read + c['clean-error'] + c['noisy-error'] + c.crash + c.hang + c['differs-from-h5py'] + c['read-bad-crc']).toBe(report.cases.length);
    expect(failures(report).every((f) => f.outcome === 'hang' || f.outcome === 'crash')).toBe(true);
  });
});
