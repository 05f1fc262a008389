/** Escapes text for HTML and SVG (element content and quoted attributes). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** One line of a plot: the max ULP distance of one record at steps 1..n, and which steps failed. */
export interface Series {
  readonly label: string;
  readonly ulp: readonly number[];
  readonly failing: readonly boolean[];
}

/** Size and labels of an inline SVG plot. */
export interface PlotOptions {
  readonly title: string;
  /** Draws the tolerance as a dashed line when it is a ULP bound. */
  readonly maxUlp?: number;
  readonly width?: number;
  readonly height?: number;
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf', '#7f7f7f', '#bcbd22'];
const MAX_POINTS = 600;

/** Log scale with a place for zero: 0 ulp → 0, n ulp → 1 + log10(n); infinite (NaN) sits one decade above the top. */
const level = (ulp: number): number => (ulp <= 0 ? 0 : 1 + Math.log10(ulp));

/** Keeps at most MAX_POINTS points per series: the max of each bucket of steps, so drift is never hidden. */
function buckets(n: number): Array<[number, number]> {
  const size = Math.max(1, Math.ceil(n / MAX_POINTS));
  const out: Array<[number, number]> = [];
  for (let start = 0; start < n; start += size) out.push([start, Math.min(n, start + size)]);
  return out;
}

function niceSteps(n: number): number[] {
  if (n <= 1) return [1];
  const raw = n / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * p).find((k) => k >= raw)!;
  const ticks = [1];
  for (let t = step; t <= n; t += step) if (t > 1) ticks.push(t);
  return ticks;
}

/**
 * An inline SVG plot of max ULP distance (log scale) against step, one polyline per series, failing
 * steps as red dots and non-finite distances (NaN in the actual values) on a separate top row.
 * Every text in it is escaped.
 */
export function ulpPlot(series: readonly Series[], o: PlotOptions): string {
  const width = o.width ?? 640, height = o.height ?? 240;
  const left = 56, right = 150, top = 28, bottom = 36;
  const plotW = width - left - right, plotH = height - top - bottom;
  const steps = series.reduce((n, s) => Math.max(n, s.ulp.length), 1);
  let largest = o.maxUlp ?? 0, hasInf = false;
  for (const s of series) for (const u of s.ulp) Number.isFinite(u) ? (largest = Math.max(largest, u)) : (hasInf = true);
  const decades = Math.max(1, Math.ceil(level(largest)));
  const topLevel = decades + (hasInf ? 1 : 0);
  const x = (step: number) => left + (steps === 1 ? plotW / 2 : ((step - 1) / (steps - 1)) * plotW);
  const y = (ulp: number) => top + plotH - ((Number.isFinite(ulp) ? level(ulp) : topLevel) / topLevel) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">`);
  parts.push(`<title>${escapeHtml(o.title)}</title>`);
  parts.push(`<text x="${left}" y="16" class="plot-title">${escapeHtml(o.title)}</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="#fff" stroke="#999"/>`);
  const every = Math.ceil((decades + 1) / 7); // at most ~7 labelled grid lines
  for (let d = 0; d <= decades; d += every) {
    const ulp = d === 0 ? 0 : 10 ** (d - 1);
    const yy = y(ulp).toFixed(1);
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" class="tick">${ulp === 0 ? '0' : ulp >= 1e4 ? `1e${d - 1}` : String(ulp)}</text>`);
  }
  if (hasInf) parts.push(`<text x="${left - 6}" y="${y(Infinity).toFixed(1)}" text-anchor="end" dominant-baseline="middle" class="tick" fill="#d62728">NaN</text>`);
  for (const t of niceSteps(steps)) {
    parts.push(`<text x="${x(t).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle" class="tick">${t}</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${height - 4}" text-anchor="middle" class="axis">step</text>`);
  parts.push(`<text x="14" y="${top + plotH / 2}" text-anchor="middle" class="axis" transform="rotate(-90 14 ${top + plotH / 2})">max ulp (log)</text>`);
  if (o.maxUlp !== undefined) {
    const yy = y(o.maxUlp).toFixed(1);
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="#d62728" stroke-dasharray="5 4"/>`);
    parts.push(`<text x="${left + plotW - 4}" y="${Number(yy) - 4}" text-anchor="end" class="tick" fill="#d62728">tolerance ${o.maxUlp} ulp</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points: string[] = [];
    const bad: string[] = [];
    for (const [a, b] of buckets(s.ulp.length)) {
      let worst = 0, fails = false, at = a;
      for (let k = a; k < b; k++) {
        const u = s.ulp[k]!;
        if (!(u <= worst)) (worst = u), (at = k);
        fails ||= s.failing[k] ?? false;
      }
      const px = `${x(at + 1).toFixed(1)},${y(worst).toFixed(1)}`;
      points.push(px);
      if (fails) bad.push(px);
    }
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.join(' ')}"><title>${escapeHtml(s.label)}</title></polyline>`);
    if (points.length <= 60) {
      // Few steps: mark every point, so that a single step is visible too.
      for (const p of points) {
        const [cx, cy] = p.split(',');
        parts.push(`<circle cx="${cx}" cy="${cy}" r="2" fill="${color}"/>`);
      }
    }
    for (const p of bad) {
      const [cx, cy] = p.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="#d62728"/>`);
    }
    const ly = top + 10 + i * 16;
    parts.push(`<line x1="${left + plotW + 10}" x2="${left + plotW + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${left + plotW + 30}" y="${ly}" dominant-baseline="middle" class="legend">${escapeHtml(s.label)}</text>`);
  });
  parts.push(`<text x="${left + plotW}" y="16" text-anchor="end" class="tick">red dot: outside tolerance</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
