import type { ParityResult } from './run.js';

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

function tol(r: ParityResult): string {
  const t = r.tolerance;
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

const fmt = (x: number): string => (x === 0 ? '0' : x >= 1e-3 && x < 1e4 ? x.toPrecision(3) : x.toExponential(2));

/** A fixed-width table of parity results, one line per fixture, with provenance always shown. */
export function formatSummary(results: readonly ParityResult[]): string {
  const header = ['fixture', 'provenance', 'flavour', 'dtype', 'steps', 'tensors', 'max ulp', 'max abs', 'max rel', 'tolerance', 'result'];
  const rows = results.map((r) => {
    const w = worstOf(r);
    const verdict = r.compared === 0 ? 'NOTHING CHECKED' : r.pass ? 'pass' : `FAIL (${w.failing})`;
    return [r.fixture, r.provenance, r.flavour, r.dtype, String(r.steps), String(r.compared), fmt(w.maxUlp), fmt(w.maxAbs), fmt(w.maxRel), tol(r), verdict];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const passed = results.filter((r) => r.pass).length;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', `${passed} passed, ${results.length - passed} failed`].join('\n');
}
