import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createParityCommand, parseTolerance } from '../src/cli/commands/parity.js';
import { COMMANDS } from '../src/cli/commands/index.js';
import { loadFixture, shippedFixtures } from '../src/parity/fixture.js';
import { fixturesDir } from '../src/paths.js';
import { writeFixture } from '../src/parity/write.js';
import { nadamFixture, tempDir } from './helpers/parityFixtures.js';

/** Runs `kerasopt parity ARGS` in-process, capturing stdout and stderr. */
async function cli(args: string[], o: { fixturesDir?: string; tty?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const command = createParityCommand({
    stdout: { write: (s: string) => (out += s) },
    stderr: { isTTY: o.tty ?? false, write: (s: string) => (err += s) },
    ...(o.fixturesDir ? { fixturesDir: o.fixturesDir } : {}),
  });
  const code = await command.run(args);
  return { code, out, err };
}

/** Writes a copy of the fixture at `path` whose expected `var:b` at step 2 is off by one ulp in element 1. */
function broken(path: string, dir: string): string {
  const f = loadFixture(path);
  const steps = f.steps.map((m) => new Map([...m].map(([k, t]) => [k, t.clone()])));
  new Int32Array((steps[1]!.get('var:b')!.data as Float32Array).buffer)[1]! += 1;
  const { format: _f, version: _v, steps: _s, payload: _p, initial: _i, step: _st, ...spec } = f.manifest;
  return writeFixture(dir, { ...spec, name: 'broken' }, { initial: f.initial, steps });
}

describe('kerasopt parity', () => {
  test('is registered in the CLI', () => {
    expect(COMMANDS.some((c) => c.name === 'parity')).toBe(true);
  });

  test('without arguments and without fixtures it fails loudly (exit 2), never passes', async () => {
    const empty = tempDir();
    const r = await cli([], { fixturesDir: empty });
    expect(r.code).toBe(2);
    expect(r.err).toContain(`no parity fixtures found in ${empty}: nothing was checked, so nothing passed`);
    expect(r.out).toBe('');
    const missing = await cli([], { fixturesDir: join(empty, 'nope') });
    expect(missing.code).toBe(2);
  });

  test('without arguments it runs every fixture of the folder; exit 0 when all pass', async () => {
    const dir = tempDir();
    await nadamFixture(dir, { name: 'a-dense', steps: 3 });
    await nadamFixture(dir, { name: 'b-sparse', steps: 3, sparse: true, flavour: 'keras2' });
    const r = await cli([], { fixturesDir: dir });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^fixture\s+provenance\s+flavour/);
    expect(r.out).toMatch(/a-dense\s+external\s+tf-keras\s+float32\s+3\s+24\s+0\s+0\s+0\s+bit-exact\s+pass/);
    expect(r.out).toMatch(/b-sparse\s+external\s+keras2/);
    expect(r.out).toContain('  external — kerasopt Nadam, typed backend (recorded by the test suite, not TensorFlow): a-dense, b-sparse\ncompared with: backend typed');
    expect(r.out).not.toContain('where trajectories leave bit-identity'); // both bit-exact
    expect(r.out).toContain('2 passed, 0 failed');
    expect(r.err).toBe(''); // not a TTY: no progress bar in logs
  });

  test('a folder argument stands for its fixtures; an empty folder or a payload is refused', async () => {
    const dir = tempDir();
    await nadamFixture(dir, { name: 'a', steps: 2 });
    await nadamFixture(dir, { name: 'b', steps: 2 });
    const r = await cli([dir]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('2 passed, 0 failed');
    const empty = tempDir();
    const none = await cli([empty]);
    expect(none.code).toBe(2);
    expect(none.err).toContain(`no parity fixtures found in ${empty}`);
    const bin = await cli([join(dir, 'a.json'), join(dir, 'a.bin')]);
    expect(bin.code).toBe(2);
    expect(bin.err).toContain(`${join(dir, 'a.bin')} is a payload; name its manifest`);
  });

  test('a failing fixture exits 1 and names the step and tensor', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 3 });
    const bad = broken(good, dir);
    const r = await cli([good, bad]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/broken\s+external.*FAIL \(1\)/);
    expect(r.out).toContain("first failure: step 2, 'var:b' (max ulp 1");
    expect(r.out).toContain('1 passed, 1 failed');
  });

  test('an unknown backend exits 2 and lists the registered backends', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 1 });
    const r = await cli([good, '--backend', 'cuda']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/kerasopt parity: no backend named 'cuda'; registered backends: .*typed/);
    expect(r.out).toBe('');
  });

  test('a bad fixture among good ones: the others are still checked, the error is reported, exit 2', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 2 });
    const badDir = join(dir, 'bad');
    mkdirSync(badDir);
    const bad = await nadamFixture(badDir, { name: 'bad', steps: 2 });
    writeFileSync(join(badDir, 'bad.bin'), readFileSync(join(badDir, 'bad.bin')).subarray(0, 10));
    const json = join(dir, 'out.json');
    const r = await cli([bad, good, '--json', json]);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/good\s+external.*pass/);
    expect(r.out).toMatch(/1 fixture\(s\) could not be checked:\n {2}ERROR .*bad\.bin: payload is 10 bytes.*\(truncated\)/);
    expect(r.out).toContain('1 passed, 0 failed, 1 not checked (errors)');
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.pass).toBe(false);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0].path).toBe(bad);
  });

  test('--json writes every per-step, per-tensor record', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 4 });
    const json = join(dir, 'report.json');
    const r = await cli([good, broken(good, dir), '--json', json]);
    expect(r.code).toBe(1);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report).toMatchObject({ format: 'kerasopt-parity-report', version: 1, pass: false });
    expect(report.results.map((x: { fixture: string }) => x.fixture)).toEqual(['good', 'broken']);
    const [ok, ko] = report.results;
    expect(ok.records).toHaveLength(4 * 8);
    expect(ok.records[0]).toMatchObject({ step: 1, key: 'var:w', variable: 'w', maxAbs: 0, maxRel: 0, maxUlp: 0, failing: 0, pass: true, elements: 6 });
    expect(ok.toleranceText).toBe('bit-exact');
    expect(ko.firstFailure).toEqual({ step: 2, key: 'var:b' });
    expect(ko.records.filter((x: { pass: boolean }) => !x.pass)).toHaveLength(1);
    expect(ko.provenance).toBe('external');
    expect(ko.producer).toMatch(/not TensorFlow/);
    // A report path that cannot be written is a FormatError naming it (main: exit 2), after the summary.
    await expect(cli([good, '--json', join(dir, 'missing-dir', 'r.json')])).rejects.toThrow(/missing-dir\/r\.json: cannot write the report: ENOENT/);
  });

  test('--html writes a self-contained page: one SVG per variable (plus the optimizer weights), names escaped', async () => {
    const dir = tempDir();
    const evil = await nadamFixture(dir, { name: 'evil', steps: 5, names: ['<script>alert(1)</script>', 'a&b"c\'d'] });
    const html = join(dir, 'report.html');
    const r = await cli([evil, '--html', html]);
    expect(r.code).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page.match(/<svg /g)).toHaveLength(3); // two variables + the optimizer weights
    expect(page).not.toContain('<script>');
    expect(page).toContain('variable &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('variable a&amp;b&quot;c&#39;d');
    expect(page).not.toMatch(/(src|href)="(https?:)?\/\//); // nothing external
    expect(page).toContain('provenance: <b>external</b>');
    expect(page).toContain('integer records (iterations) bit-exact');
    for (const legend of ['value', 'slot m', 'slot v', 'iterations', 'momentum_cache']) expect(page).toContain(`class="legend">${legend}</text>`);
  });

  test('--against compares recorded trajectories; --tolerance applies to that comparison only', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 3 });
    const bad = broken(good, dir); // as an "actual" trajectory: off by one ulp at step 2
    const strict = await cli(['--against', good, bad]);
    expect(strict.code).toBe(1);
    expect(strict.out).toContain("first failure: step 2, 'var:b'");
    expect(strict.out).toContain('compared with: recorded: kerasopt Nadam');
    expect((await cli(['--against', good, bad, '--tolerance', 'ulp:1'])).code).toBe(0);
    expect((await cli(['--against', good, good])).code).toBe(0);
    const onlyVars = await cli(['--against', good, good, '--compare', 'variables']);
    expect(onlyVars.out).toMatch(/good vs good\s+external\s+tf-keras\s+float32\s+3\s+6\s/); // 3 steps x 2 variables
    // The report says what was not compared, and the provenance of the trajectory under test.
    expect(onlyVars.out).toMatch(/compared with: recorded: kerasopt Nadam.* \(provenance external\); variables only \(slots and optimizer weights not compared\)/);
    expect(strict.out).not.toContain('variables only');
    expect((await cli(['--against', good, good, '--compare', 'slots'])).err).toContain("--compare 'slots': expected all or variables");
    const withBackend = await cli(['--against', good, good, '--backend', 'onnx']);
    expect(withBackend.code).toBe(2);
    expect(withBackend.err).toContain('--backend applies to replays');
    const noActual = await cli(['--against', good]);
    expect(noActual.code).toBe(2);
    expect(noActual.err).toContain('--against needs at least one ACTUAL.json');
    const replayCompare = await cli([good, '--compare', 'variables']);
    expect(replayCompare.code).toBe(2);
    expect(replayCompare.err).toContain('--compare applies to --against comparisons only');
    const replayTol = await cli([good, '--tolerance', 'ulp:1']);
    expect(replayTol.code).toBe(2);
    expect(replayTol.err).toContain('--tolerance applies to --against comparisons only');
  });

  test('the progress bar is drawn only on a TTY, and erased', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 3 });
    const tty = await cli([good], { tty: true });
    expect(tty.err).toContain('good [');
    expect(tty.err).toContain('3/3');
    expect(tty.err.endsWith('\r\x1b[K')).toBe(true);
    expect((await cli([good])).err).toBe('');
  });

  test('--backend onnx replays through onnxruntime, and the report says which backend ran', async () => {
    const dir = tempDir();
    const good = await nadamFixture(dir, { name: 'good', steps: 3 });
    const r = await cli([good, '--backend', 'onnx']);
    expect(r.out).toContain('compared with: backend onnx');
    expect(r.code).toBe(0);
  });

  test('an unknown option is a parse error (main maps it to exit 2)', async () => {
    await expect(cli(['--jsn', 'x.json'])).rejects.toMatchObject({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  });

  test('parseTolerance', () => {
    expect(parseTolerance('exact')).toEqual({ kind: 'exact' });
    expect(parseTolerance('ulp:4')).toEqual({ kind: 'ulp', maxUlp: 4 });
    expect(parseTolerance('allclose:1e-6:1e-8')).toEqual({ kind: 'allclose', rtol: 1e-6, atol: 1e-8 });
    expect(parseTolerance('relative:1e-5:1e-3')).toEqual({ kind: 'relative', rtol: 1e-5, floor: 1e-3 });
    expect(() => parseTolerance('ulp:-1')).toThrow(/expected exact, ulp:N/);
    expect(() => parseTolerance('close')).toThrow(/--tolerance 'close'/);
  });
});

describe('the shipped fixtures (fixtures/*.json)', () => {
  test('`kerasopt parity` with no argument runs them all and passes, or fails loudly when there are none', async () => {
    const shipped = shippedFixtures();
    const r = await cli([]);
    if (shipped.length === 0) {
      console.warn(`\n*** 0 shipped parity fixtures in ${fixturesDir()}: kerasopt parity must (and does) refuse to pass ***\n`);
      expect(r.code).toBe(2);
      return;
    }
    expect(r.out).toContain(`${shipped.length} passed, 0 failed`);
    expect(r.code).toBe(0);
  });
});
