import type { Flavour } from '../flavour.js';
import { OPTIMIZERS } from './index.js';
import type { OptimizerDescriptor } from './types.js';

const HEADINGS: Record<Flavour, string> = {
  keras2: 'Keras 2 / tf.keras v1 (.h5)',
  'tf-keras': 'tf.keras optimizer_v2, TF 1.14-2.10 (.h5)',
  'tf-keras-new': 'TF 2.11-2.15 (.h5, .keras)',
  keras3: 'Keras 3 (.keras, .weights.h5)',
};

/** Lineages in the order of Keras history. */
const ORDER: readonly Flavour[] = ['keras2', 'tf-keras', 'tf-keras-new', 'keras3'];

/**
 * A row's saved slots as the README shows them: `m/v` are interleaved per variable, groups separated
 * by `, ` are blocked (that slot for every variable, then the next); conditions follow `if`.
 */
function slotsOf(d: OptimizerDescriptor): string {
  const groups = d.slotGroups
    .map((g) => g.filter((s) => !['average', 'gradient_accumulator'].includes(s.name)))
    .filter((g) => g.length > 0)
    .map((g) => g.map((s) => `${s.name}${s.shape === 'one' ? '[1]' : ''}${s.when ? ` if ${s.when.is === 'falsy' ? 'not ' : ''}${s.when.key}` : ''}`).join('/'));
  const head = [...(d.savesIterations ? [] : ['(no iterations)']), ...d.extras.map((e) => `${e};`)];
  return [...head, groups.join(', ') || 'none'].join(' ');
}

/**
 * The README's table of supported optimizers per flavour, made from the catalog (a test checks that
 * the README holds exactly this table). A cell lists what is saved after iterations; `-` where the
 * lineage has no such optimizer. Where a lineage has several rows (Keras 2.0-2.2 and 2.3), the newest
 * is shown; docs/optimizers.md has every row.
 */
export function supportTable(): string {
  const classes = [...new Set(OPTIMIZERS.map((d) => d.className))];
  const lines = [`| optimizer | ${ORDER.map((f) => HEADINGS[f]).join(' | ')} |`, `|---|${ORDER.map(() => '---').join('|')}|`];
  for (const c of classes) {
    const cells = ORDER.map((f) => {
      const rows = OPTIMIZERS.filter((d) => d.className === c && d.flavour === f);
      return rows.length === 0 ? '-' : slotsOf(rows[rows.length - 1]!);
    });
    lines.push(`| ${c}${c === 'Nadam' ? ' (also stepped)' : ''} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Every catalog row with its release range, saved list, config defaults and source: docs/optimizers.md holds exactly this. */
export function catalogDetails(): string {
  const out: string[] = [];
  for (const f of ORDER) {
    out.push(`### ${HEADINGS[f]}`, '', '| optimizer | releases | saved after iterations | config (Keras\'s defaults) | not saved | source |', '|---|---|---|---|---|---|');
    for (const d of OPTIMIZERS.filter((x) => x.flavour === f)) {
      const config = Object.entries(d.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
      const releases = `${d.versions[0]}${d.versions[1] ? ` to ${d.versions[1]} (excl.)` : '+'}`;
      out.push(`| ${d.className} | ${releases} | ${slotsOf(d)} | ${config} | ${d.notSaved?.join('; ') ?? ''} | ${d.source} |`);
    }
    out.push('');
  }
  return out.join('\n').trimEnd();
}
