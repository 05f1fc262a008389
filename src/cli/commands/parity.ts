import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { getBackend } from '../../backends/registry.js';
import { FormatError, KerasoptError, KerasValueError } from '../../errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { fixturesDir } from '../../paths.js';
import { compareTrajectories, type CompareScope } from '../../parity/against.js';
import { loadFixture, shippedFixtures, type Fixture, type Tolerance } from '../../parity/fixture.js';
import { formatReportHtml } from '../../parity/html.js';
import { progressBar, type ProgressStream } from '../../parity/progress.js';
import { formatReportJson, runPasses } from '../../parity/report.js';
import { runParity, type ParityResult } from '../../parity/run.js';
import { formatSummary, type ParityError } from '../../parity/summary.js';
import type { Command } from '../command.js';

/** Where the parity command writes and looks; tests pass their own. */
export interface ParityIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: ProgressStream;
  /** The folder `kerasopt parity` without arguments runs (default: the package's fixtures/). */
  readonly fixturesDir?: string;
}

/** Parses `exact`, `ulp:N`, `allclose:RTOL:ATOL` or `relative:RTOL[:FLOOR]`. */
export function parseTolerance(text: string): Tolerance {
  const [kind, ...args] = text.split(':');
  const nums = args.map(Number);
  const ok = nums.every((x) => Number.isFinite(x) && x >= 0);
  if (kind === 'exact' && args.length === 0) return { kind: 'exact' };
  if (kind === 'ulp' && args.length === 1 && ok && Number.isInteger(nums[0])) return { kind: 'ulp', maxUlp: nums[0]! };
  if (kind === 'allclose' && args.length === 2 && ok) return { kind: 'allclose', rtol: nums[0]!, atol: nums[1]! };
  if (kind === 'relative' && (args.length === 1 || args.length === 2) && ok) return { kind: 'relative', rtol: nums[0]!, ...(args.length === 2 ? { floor: nums[1]! } : {}) };
  throw new KerasValueError(`--tolerance '${text}': expected exact, ulp:N, allclose:RTOL:ATOL or relative:RTOL[:FLOOR]`);
}

const USAGE = `parity [FIXTURE.json|DIR ...] [--backend NAME] [--json OUT.json] [--html OUT.html]
parity --against EXPECTED.json ACTUAL.json ... [--compare all|variables] [--tolerance T] [--json ..] [--html ..]
    Replays parity fixtures with kerasopt's Nadam (default: every fixture shipped in fixtures/) and
    prints per fixture its provenance, the largest ULP / absolute / relative distance, where it first
    drifts and the verdict. With --against, compares recorded trajectories of another implementation
    (same format, same gradients) with EXPECTED instead. --json writes every per-step, per-tensor
    comparison; --html a page with a plot of ULP distance against step per variable.
    Exit: 0 all passed, 1 a comparison failed, 2 bad input or nothing checked.`;

/** Writes a report atomically; a path that cannot be written is a FormatError naming it (exit 2). */
function writeReport(path: string, text: string): void {
  try {
    writeFileAtomic(path, text);
  } catch (e) {
    throw new FormatError(path, `cannot write the report: ${(e as Error).message}`);
  }
}

/** Builds the `parity` command over the given streams. */
export function createParityCommand(io: ParityIo): Command {
  return {
    name: 'parity',
    docs: 'docs/parity.md',
    usage: USAGE,
    async run(argv) {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          backend: { type: 'string' },
          json: { type: 'string' },
          html: { type: 'string' },
          against: { type: 'string' },
          compare: { type: 'string' },
          tolerance: { type: 'string' },
        },
      });
      const fail = (message: string): number => {
        io.stderr.write(`kerasopt parity: ${message}\n`);
        return 2;
      };
      let tolerance: Tolerance | undefined;
      try {
        if (!values.against) {
          if (values.tolerance !== undefined) return fail('--tolerance applies to --against comparisons only; a replay is held to the fixture\'s own tolerance');
          getBackend(values.backend ?? 'typed'); // an unknown name fails here, listing the registered backends
        } else {
          if (values.backend !== undefined) return fail('--backend applies to replays; --against compares trajectories already recorded, nothing is run');
          if (values.tolerance !== undefined) tolerance = parseTolerance(values.tolerance);
        }
      } catch (e) {
        if (e instanceof KerasoptError) return fail(e.message);
        throw e;
      }
      if (values.compare !== undefined && !values.against) return fail('--compare applies to --against comparisons only; a replay compares every record of the fixture');
      const scope = values.compare ?? 'all';
      if (scope !== 'all' && scope !== 'variables') return fail(`--compare '${scope}': expected all or variables`);
      const dir = io.fixturesDir ?? fixturesDir();
      // A folder stands for the fixtures in it, so `kerasopt parity my-fixtures/` works.
      const expand = (p: string): string[] => (existsSync(p) && statSync(p).isDirectory() ? shippedFixtures(p) : [p]);
      const files = positionals.length > 0 ? positionals.flatMap((p) => expand(resolve(p))) : values.against ? [] : shippedFixtures(dir);
      if (files.length === 0) {
        if (values.against) return fail('--against needs at least one ACTUAL.json trajectory to compare');
        const where = positionals.length > 0 ? positionals.join(', ') : dir;
        return fail(`no parity fixtures found in ${where}: nothing was checked, so nothing passed (generate them with npm run fixtures, or name FIXTURE.json files)`);
      }
      const payload = files.find((f) => f.endsWith('.bin'));
      if (payload) return fail(`${payload} is a payload; name its manifest (the .json beside it), or the folder`);
      let expected: Fixture | null = null;
      if (values.against) {
        try {
          expected = loadFixture(resolve(values.against));
        } catch (e) {
          if (e instanceof KerasoptError) return fail(e.message);
          throw e;
        }
      }
      const results: ParityResult[] = [];
      const errors: ParityError[] = [];
      for (const file of files) {
        try {
          if (expected) {
            results.push(compareTrajectories(expected, loadFixture(file, { allowNaN: true }), { scope: scope as CompareScope, ...(tolerance ? { tolerance } : {}) }));
            continue;
          }
          const fixture = loadFixture(file);
          const bar = progressBar(io.stderr, fixture.manifest.name);
          try {
            results.push(await runParity(fixture, { backend: values.backend ?? 'typed', onStep: bar ? (s, n) => bar.update(s, n) : undefined }));
          } finally {
            bar?.done();
          }
        } catch (e) {
          if (!(e instanceof KerasoptError)) throw e;
          errors.push({ path: file, message: e.message });
        }
      }
      io.stdout.write(`${formatSummary(results, errors)}\n`);
      if (values.json) writeReport(resolve(values.json), formatReportJson(results, errors));
      if (values.html) writeReport(resolve(values.html), formatReportHtml(results, errors));
      if (errors.length > 0) return 2;
      return runPasses(results, errors) ? 0 : 1;
    },
  };
}

export const parity: Command = createParityCommand({ stdout: process.stdout, stderr: process.stderr });
