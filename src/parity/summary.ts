import type { RecordResult, ParityResult } from './run.js';
import type { Tolerance } from './fixture.js';

/** A fixture that could not be checked at all (bad manifest, payload, backend ...): never a pass. */
export interface ParityError {
  readonly path: string;
  readonly message: string;
}

/** The worst difference of a parity result over all steps and tensors. */
export function worstOf(r: ParityResult): { maxAbs: number; maxRel: number; maxUlp: number; failing: number } {
  let maxAbs = 0, maxRel = 0, maxUlp = 0, failing = 0;
  for (const rec of r.records) {
    maxAbs = Math.max(maxAbs, rec.maxAbs);
    maxRel = Math.max(maxRel, rec.maxRel);
    maxUlp = Math.max(maxUlp, rec.maxUlp);
    if (!rec.pass) failing++;
  }
  return { maxAbs, maxRel, maxUlp, failing };
}

/** The first record outside its tolerance (lowest step, then manifest order), or null. */
export function firstFailure(r: ParityResult): RecordResult | null {
  return r.records.find((rec) => !rec.pass) ?? null;
}

/** The first record that is not bit-identical (where a trajectory starts to drift), or null. */
export function firstDrift(r: ParityResult): RecordResult | null {
  return r.records.find((rec) => rec.differing > 0) ?? null;
}

/** A tolerance in words: `bit-exact`, `<= 4 ulp`, `allclose(rtol=1e-6, atol=1e-8)`, ... */
export function describeTolerance(t: Tolerance): string {
  switch (t.kind) {
    case 'exact':
      return 'bit-exact';
    case 'ulp':
      return `<= ${t.maxUlp} ulp`;
    case 'allclose':
      return `allclose(rtol=${t.rtol}, atol=${t.atol})`;
    case 'relative':
      return `rel <= ${t.rtol}${t.floor ? ` (floor ${t.floor})` : ''}`;
  }
}

/** A number for a report: 3 significant digits, exponent form when small or large. */
export const fmt = (x: number): string => (x === 0 ? '0' : !Number.isFinite(x) ? String(x) : x >= 1e-3 && x < 1e4 ? x.toPrecision(3) : x.toExponential(2));

/** A ULP count for a report: exact below a million, exponent form above. */
export const fmtUlp = (x: number): string => (Number.isFinite(x) && x < 1e6 ? String(x) : fmt(x));

/** The verdict of one result in words; a result that compared nothing is never a pass. */
export function verdictText(r: ParityResult): string {
  if (r.compared === 0) return 'NOTHING CHECKED';
  return r.pass ? 'pass' : `FAIL (${worstOf(r).failing})`;
}

/** The name shown for a result: the fixture's, or `expected vs actual` for a comparison of trajectories. */
export function titleOf(r: ParityResult): string {
  return r.actual ? `${r.fixture} vs ${r.actual.name}` : r.fixture;
}

/** What was compared with what: the backend that replayed the fixture, or the recorded trajectory under test. */
export function subjectOf(r: ParityResult): string {
  if (!r.actual) return `backend ${r.backend}`;
  const only = r.actual.scope === 'variables' ? '; variables only (slots and optimizer weights not compared)' : '';
  return `recorded: ${r.actual.producer} (provenance ${r.actual.provenance})${only}`;
}

function describeRecord(rec: RecordResult): string {
  return `step ${rec.step}, '${rec.key}' (max ulp ${fmtUlp(rec.maxUlp)}, max abs ${fmt(rec.maxAbs)}, ${rec.failing || rec.differing}/${rec.elements} elements)`;
}

/** Provenance is always shown: each distinct producer once, with the fixtures it produced. */
function provenanceLines(results: readonly ParityResult[]): string[] {
  const byProducer = new Map<string, string[]>();
  for (const r of results) {
    const key = `${r.provenance} — ${r.producer}${r.source ? ` (source: ${r.source})` : ''}`;
    byProducer.set(key, [...(byProducer.get(key) ?? []), titleOf(r)]);
  }
  if (byProducer.size === 0) return [];
  const list = (names: string[]) => (names.length <= 3 ? names.join(', ') : `${names.length} fixtures`);
  return ['provenance of the expected numbers:', ...[...byProducer].map(([p, names]) => `  ${p}: ${list(names)}`)];
}

/** What the expected numbers were compared with: one line when it is the same for all. */
function subjectLines(results: readonly ParityResult[]): string[] {
  const subjects = new Set(results.map(subjectOf));
  if (subjects.size === 0) return [];
  if (subjects.size === 1) return [`compared with: ${[...subjects][0]}`];
  return ['compared with:', ...results.map((r) => `  ${titleOf(r)}: ${subjectOf(r)}`)];
}

/** Where each fixture first fails, or first drifts within its tolerance; nothing for bit-identical ones. */
function driftLines(results: readonly ParityResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const fail = firstFailure(r);
    const drift = firstDrift(r);
    if (fail) {
      out.push(`  ${titleOf(r)}: first failure: ${describeRecord(fail)}`);
      if (drift && drift !== fail) out.push(`  ${' '.repeat(titleOf(r).length)}  drifting since (within tolerance): ${describeRecord(drift)}`);
    }
    else if (drift) out.push(`  ${titleOf(r)}: first drift (within tolerance): ${describeRecord(drift)}`);
  }
  return out.length ? ['where trajectories leave bit-identity:', ...out] : [];
}

/**
 * A fixed-width table of parity results, one line per fixture; then the provenance of the expected
 * numbers (always shown), what they were compared with, where each fixture first drifts or fails,
 * and the fixtures that could not be checked.
 */
export function formatSummary(results: readonly ParityResult[], errors: readonly ParityError[] = []): string {
  const header = ['fixture', 'provenance', 'flavour', 'dtype', 'steps', 'tensors', 'max ulp', 'max abs', 'max rel', 'tolerance', 'result'];
  const rows = results.map((r) => {
    const w = worstOf(r);
    return [titleOf(r), r.provenance, r.flavour, r.dtype, String(r.steps), String(r.compared), fmtUlp(w.maxUlp), fmt(w.maxAbs), fmt(w.maxRel), describeTolerance(r.tolerance), verdictText(r)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const details = [...provenanceLines(results), ...subjectLines(results), ...driftLines(results)];
  const passed = results.filter((r) => r.pass).length;
  const lines = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', ...details];
  if (errors.length > 0) lines.push('', `${errors.length} fixture(s) could not be checked:`, ...errors.map((e) => `  ERROR ${e.message.includes(e.path) ? e.message : `${e.path}: ${e.message}`}`));
  lines.push(
    '',
    'iterations are compared exactly; float tensors by each fixture\'s tolerance; ulp are counted in the tensor\'s dtype',
    `${passed} passed, ${results.length - passed} failed${errors.length ? `, ${errors.length} not checked (errors)` : ''}`,
  );
  return lines.join('\n');
}
