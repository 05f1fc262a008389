import { describe, expect, test } from 'vitest';
import { formatReportHtml, groupRecords } from '../src/parity/html.js';
import { escapeHtml, ulpPlot } from '../src/parity/plot.js';
import { progressBar } from '../src/parity/progress.js';
import { formatReportJson, parityReport } from '../src/parity/report.js';
import type { ParityResult, RecordResult } from '../src/parity/run.js';
import { formatSummary } from '../src/parity/summary.js';

const rec = (step: number, key: string, variable: string | null, maxUlp: number, pass = true): RecordResult => ({
  step, key, variable, maxUlp, maxAbs: maxUlp * 1e-7, maxRel: maxUlp * 1e-7, differing: maxUlp > 0 ? 1 : 0, failing: pass ? 0 : 1,
  worst: maxUlp > 0 ? 0 : -1, elements: 2, tolerance: { kind: 'ulp', maxUlp: 4 }, pass,
});

function result(records: RecordResult[], over: Partial<ParityResult> = {}): ParityResult {
  return {
    fixture: 'fx', path: '/tmp/fx.json', provenance: 'reference', producer: 'numpy <reference>', flavour: 'tf-keras', dtype: 'float32',
    backend: 'typed', tolerance: { kind: 'ulp', maxUlp: 4 }, steps: 3, records, compared: records.length,
    pass: records.length > 0 && records.every((r) => r.pass), ...over,
  };
}

describe('ulpPlot', () => {
  test('one polyline per series, red dots on failing steps, a NaN row for infinite distances, text escaped', () => {
    const svg = ulpPlot(
      [
        { label: 'value<&>', ulp: [0, 0, 5, Infinity], failing: [false, false, true, true] },
        { label: 'slot m', ulp: [0, 1, 2, 3], failing: [false, false, false, false] },
      ],
      { title: 'variable "w"', maxUlp: 4 },
    );
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle [^>]*fill="#d62728"/g)).toHaveLength(2);
    expect(svg).toContain('>NaN</text>');
    expect(svg).toContain('tolerance 4 ulp');
    expect(svg).toContain('value&lt;&amp;&gt;');
    expect(svg).toContain('variable &quot;w&quot;');
    expect(svg).not.toContain('value<&>');
  });

  test('log scale: 0 at the bottom, each decade one grid step up; more steps than pixels are bucketed by their max', () => {
    const ulp = Array.from({ length: 5000 }, (_, i) => (i === 3210 ? 1000 : 0));
    const svg = ulpPlot([{ label: 'v', ulp, failing: ulp.map(() => false) }], { title: 't' });
    const points = /<polyline [^>]*points="([^"]+)"/.exec(svg)![1]!.split(' ');
    expect(points.length).toBeLessThanOrEqual(600);
    const ys = points.map((p) => Number(p.split(',')[1]));
    expect(new Set(ys).size).toBe(2); // the single spike survived the bucketing
    for (const tick of ['>0<', '>1<', '>10<', '>100<', '>1000<']) expect(svg).toContain(tick);
  });

  test('escapeHtml', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

describe('reports', () => {
  const records = [
    rec(1, 'var:w', 'w', 0), rec(1, 'slot:m:w', 'w', 0), rec(1, 'weight:momentum_cache', null, 0), rec(1, 'var:b', 'b', 0),
    rec(2, 'var:w', 'w', 2), rec(2, 'slot:m:w', 'w', 0), rec(2, 'weight:momentum_cache', null, 0), rec(2, 'var:b', 'b', 9, false),
  ];

  test('groupRecords: per model variable in order of appearance, optimizer weights last', () => {
    const groups = groupRecords(result(records));
    expect(groups.map((g) => g.variable)).toEqual(['w', 'b', null]);
    expect([...groups[0]!.keys.keys()]).toEqual(['var:w', 'slot:m:w']);
    expect(groups[0]!.keys.get('var:w')!.map((r) => r.maxUlp)).toEqual([0, 2]);
  });

  test('summary, JSON and HTML agree on the verdict and show provenance', () => {
    const r = result(records);
    const text = formatSummary([r]);
    expect(text).toContain("  reference — numpy <reference>: fx\ncompared with: backend typed\nwhere trajectories leave bit-identity:\n  fx: first failure: step 2, 'var:b' (max ulp 9");
    const json = JSON.parse(formatReportJson([r]));
    expect(json).toMatchObject({ pass: false, errors: [] });
    expect(json.results[0]).toMatchObject({ firstFailure: { step: 2, key: 'var:b' }, firstDrift: { step: 2, key: 'var:w' }, toleranceText: '<= 4 ulp' });
    expect(json.results[0].records).toHaveLength(8);
    const html = formatReportHtml([r]);
    expect(html).toContain('numpy &lt;reference&gt;');
    expect(html).toContain('— <span class="fail">FAIL</span>');
    expect(html.match(/<svg /g)).toHaveLength(3);
  });

  test('no results, or results plus errors, never make a passing report', () => {
    expect(parityReport([]).pass).toBe(false);
    expect(formatReportHtml([])).toContain('NOTHING CHECKED');
    const ok = result(records.filter((x) => x.pass));
    expect(parityReport([ok]).pass).toBe(true);
    expect(parityReport([ok], [{ path: 'bad.json', message: 'bad.json: truncated' }]).pass).toBe(false);
    expect(formatSummary([ok], [{ path: 'bad.json', message: 'bad.json: truncated' }])).toContain('1 passed, 0 failed, 1 not checked (errors)');
    const empty = result([]);
    expect(parityReport([empty]).pass).toBe(false);
    expect(formatReportHtml([empty])).toContain('Nothing was compared: this fixture is not a pass.');
  });
});

describe('progressBar', () => {
  test('null when the stream is not a TTY; throttled redraws otherwise, always the last step, erased at the end', () => {
    expect(progressBar({ isTTY: false, write: () => true }, 'x')).toBeNull();
    let out = '';
    let now = 0;
    const bar = progressBar({ isTTY: true, columns: 80, write: (s: string) => (out += s) }, 'fx', 100, () => now)!;
    bar.update(1, 1000);
    now = 50;
    bar.update(2, 1000); // within the interval: not drawn
    now = 200;
    bar.update(500, 1000);
    bar.update(1000, 1000); // the last step is always drawn
    expect(out.split('\r\x1b[K').filter(Boolean)).toEqual([
      'fx [..............................] 1/1000',
      'fx [###############...............] 500/1000',
      'fx [##############################] 1000/1000',
    ]);
    bar.done();
    expect(out.endsWith('\r\x1b[K')).toBe(true);
  });
});
