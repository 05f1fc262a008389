import { escapeHtml as esc, ulpPlot, type Series } from './plot.js';
import { runPasses } from './report.js';
import type { ParityResult, RecordResult } from './run.js';
import { describeTolerance, firstDrift, firstFailure, fmt, fmtUlp, subjectOf, titleOf, verdictText, worstOf, type ParityError } from './summary.js';

/** The records of one model variable (its value and slots), or of the optimizer's own weights. */
export interface RecordGroup {
  /** The model variable's name, or null for optimizer weights (iterations, momentum_cache ...). */
  readonly variable: string | null;
  /** Per record key, its comparisons step by step. */
  readonly keys: ReadonlyMap<string, readonly RecordResult[]>;
}

/** Groups a result's records by model variable, in manifest order; optimizer weights come last. */
export function groupRecords(r: ParityResult): RecordGroup[] {
  const groups = new Map<string | null, Map<string, RecordResult[]>>();
  for (const rec of r.records) {
    let g = groups.get(rec.variable);
    if (!g) groups.set(rec.variable, (g = new Map()));
    let list = g.get(rec.key);
    if (!list) g.set(rec.key, (list = []));
    list.push(rec);
  }
  const all = [...groups].map(([variable, keys]) => ({ variable, keys }));
  return [...all.filter((g) => g.variable !== null), ...all.filter((g) => g.variable === null)];
}

/** A short legend label: `value`, `slot m`, or the weight's name. */
function label(key: string): string {
  if (key.startsWith('var:')) return 'value';
  const slot = /^slot:([a-z_]+):/.exec(key);
  if (slot) return `slot ${slot[1]}`;
  return key.replace(/^weight:/, '');
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; }
.fail { color: #c62828; font-weight: 600; }
.meta { color: #555; margin: 2px 0; }
section.fixture { border-top: 2px solid #ddd; margin-top: 28px; padding-top: 8px; }
.variable { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 16px; margin: 0 0 16px; }
.plot-title { font-weight: 600; font-size: 13px; }
.tick, .legend, .axis { font-size: 11px; fill: #444; }
code { background: #f6f6f6; padding: 0 3px; }
`;

function where(rec: RecordResult | null): string {
  return rec ? `step ${rec.step}, <code>${esc(rec.key)}</code> (max ulp ${esc(fmtUlp(rec.maxUlp))})` : 'none';
}

function verdictCell(r: ParityResult): string {
  return `<span class="${r.pass ? 'pass' : 'fail'}">${esc(verdictText(r))}</span>`;
}

function groupHtml(r: ParityResult, g: RecordGroup, index: string): string {
  const title = g.variable === null ? 'optimizer weights' : `variable ${g.variable}`;
  const series: Series[] = [...g.keys].map(([key, recs]) => ({ label: label(key), ulp: recs.map((x) => x.maxUlp), failing: recs.map((x) => !x.pass) }));
  const maxUlp = r.tolerance.kind === 'ulp' ? r.tolerance.maxUlp : r.tolerance.kind === 'exact' ? 0 : undefined;
  const rows = [...g.keys].map(([key, recs]) => {
    const fail = recs.find((x) => !x.pass);
    const drift = recs.find((x) => x.differing > 0);
    const m = (f: (x: RecordResult) => number, show = fmt) => show(recs.reduce((acc, x) => Math.max(acc, f(x)), 0));
    return `<tr><td><code>${esc(key)}</code></td><td class="num">${m((x) => x.maxUlp, fmtUlp)}</td><td class="num">${m((x) => x.maxAbs)}</td><td class="num">${m((x) => x.maxRel)}</td><td class="num">${drift ? drift.step : '–'}</td><td class="num">${fail ? `<span class="fail">${fail.step}</span>` : '–'}</td></tr>`;
  });
  return `<div class="variable" id="${esc(index)}">
${ulpPlot(series, { title, ...(maxUlp === undefined ? {} : { maxUlp }) })}
<table><tr><th>record</th><th>max ulp</th><th>max abs</th><th>max rel</th><th>first differing step</th><th>first failing step</th></tr>
${rows.join('\n')}</table></div>`;
}

function fixtureHtml(r: ParityResult, i: number): string {
  const w = worstOf(r);
  const groups = groupRecords(r);
  return `<section class="fixture" id="fixture-${i}">
<h2>${esc(titleOf(r))} — ${verdictCell(r)}</h2>
<p class="meta">provenance: <b>${esc(r.provenance)}</b> — ${esc(r.producer)}${r.source ? ` (source: ${esc(r.source)})` : ''}</p>
<p class="meta">file: <code>${esc(r.path)}</code>; compared with ${esc(subjectOf(r))}${r.actual ? `, <code>${esc(r.actual.path)}</code>` : ''}</p>
<p class="meta">flavour ${esc(r.flavour)}, ${esc(r.dtype)}, ${r.steps} steps, ${r.compared} tensors compared; tolerance: float records ${esc(describeTolerance(r.tolerance))}, integer records (iterations) bit-exact</p>
<p class="meta">worst: ${esc(fmtUlp(w.maxUlp))} ulp, abs ${esc(fmt(w.maxAbs))}, rel ${esc(fmt(w.maxRel))}; first drift: ${where(firstDrift(r))}; first failure: ${where(firstFailure(r))}</p>
${groups.length === 0 ? '<p class="fail">Nothing was compared: this fixture is not a pass.</p>' : groups.map((g, k) => groupHtml(r, g, `fixture-${i}-var-${k}`)).join('\n')}
</section>`;
}

/**
 * A self-contained HTML report (no scripts, no external resources): a summary table, then per
 * fixture its provenance, tolerance and, per model variable (plus one for the optimizer's weights),
 * an inline SVG plot of max ULP distance against step and a table of the worst differences.
 */
export function formatReportHtml(results: readonly ParityResult[], errors: readonly ParityError[] = []): string {
  const pass = runPasses(results, errors);
  const summary = results.map((r, i) => {
    const w = worstOf(r);
    return `<tr><td><a href="#fixture-${i}">${esc(titleOf(r))}</a></td><td>${esc(r.provenance)}</td><td>${esc(subjectOf(r))}</td><td>${esc(r.flavour)}</td><td>${esc(r.dtype)}</td><td class="num">${r.steps}</td><td class="num">${r.compared}</td><td class="num">${esc(fmtUlp(w.maxUlp))}</td><td class="num">${esc(fmt(w.maxAbs))}</td><td class="num">${esc(fmt(w.maxRel))}</td><td>${esc(describeTolerance(r.tolerance))}</td><td>${verdictCell(r)}</td></tr>`;
  });
  const errorList = errors.length === 0 ? '' : `<h2 class="fail">${errors.length} fixture(s) could not be checked</h2><ul>${errors.map((e) => `<li><code>${esc(e.path)}</code>: ${esc(e.message)}</li>`).join('')}</ul>`;
  const passed = results.filter((r) => r.pass).length;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kerasopt parity report</title><style>${CSS}</style></head>
<body>
<h1>kerasopt parity report — <span class="${pass ? 'pass' : 'fail'}">${pass ? 'PASS' : results.length === 0 ? 'NOTHING CHECKED' : 'FAIL'}</span></h1>
<p class="meta">${passed} of ${results.length} fixture(s) passed${errors.length ? `, ${errors.length} not checked` : ''}. ULP distances are counted in each tensor's dtype; plots use a log scale with 0 at the bottom; red dots mark steps outside the tolerance; the dashed line is the ULP tolerance.</p>
<table><tr><th>fixture</th><th>provenance</th><th>compared with</th><th>flavour</th><th>dtype</th><th>steps</th><th>tensors</th><th>max ulp</th><th>max abs</th><th>max rel</th><th>tolerance</th><th>result</th></tr>
${summary.join('\n')}</table>
${errorList}
${results.map(fixtureHtml).join('\n')}
</body></html>
`;
}
