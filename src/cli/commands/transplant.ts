import { parseArgs } from 'node:util';
import { KerasValueError } from '../../errors.js';
import { matchTableText, transplantOptimizerState, type TransplantResult } from '../../formats/transplant/index.js';
import { FLAVOUR_LIST, isFlavour } from '../../optimizers/flavour.js';
import type { Command } from '../command.js';

const USAGE = `transplant SOURCE --into TARGET [-o OUT] [--map SOURCE_VAR=TARGET_VAR ...] [--to FLAVOUR] [--json]
    Moves a Nadam optimizer state from SOURCE (any file kerasopt reads) into the model file TARGET
    (tf.keras / Keras 2 / TF 2.11+ .h5, .keras, .weights.h5, a TF2 checkpoint or SavedModel holding an
    optimizer state), in the layout TARGET's Keras release writes (its flavour; --to ${FLAVOUR_LIST}
    to choose where the format allows). m and v carry over bit for bit, iterations is carried, the
    schedule weight (momentum_cache, m_schedule, u_product) is carried within a flavour and recomputed
    with the target flavour's recurrence across flavours (docs/transplant.md). Variables match by name
    where both files name them by layer, else by TARGET's saving order; shapes and dtypes must agree
    (--map overrides, repeatable). Prints the match table, what was not carried, and every change in
    behaviour. Writes into TARGET in place, or into a copy at OUT.
    Exit: 0 written, 2 bad input or a mismatch (nothing written).`;

/** The report printed after a transplant. */
export function transplantText(r: TransplantResult): string {
  const lines = [
    `source:      ${r.source.file} (${r.source.format}, ${r.source.flavour}, layout ${r.source.layout}, ${r.source.iterations} iterations)`,
    `target:      ${r.target.file} (${r.target.evidence})`,
    `written:     ${r.target.written} (${r.target.format}, ${r.target.flavour}, layout ${r.target.layout}; optimizer state ${r.target.created ? 'created' : 'updated'})`,
    `matched:     ${r.matches.how}`,
    '',
    matchTableText(r.matches),
    '',
    ...(r.notCarried.length > 0 ? ['not carried:', ...r.notCarried.map((n) => `  ${n}`), ''] : []),
    'changes:',
    ...r.changes.map((c) => `  - ${c}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Builds the `transplant` command over the given output stream. */
export function createTransplantCommand(stdout: { write(text: string): unknown }): Command {
  return {
    name: 'transplant',
    usage: USAGE,
    docs: 'docs/transplant.md',
    async run(argv) {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: { into: { type: 'string' }, output: { type: 'string', short: 'o' }, map: { type: 'string', multiple: true }, to: { type: 'string' }, json: { type: 'boolean', default: false } },
      });
      if (positionals.length !== 1 || !values.into) throw new KerasValueError(`transplant takes one SOURCE and --into TARGET\nusage: kerasopt ${USAGE}`);
      if (values.to !== undefined && !isFlavour(values.to)) throw new KerasValueError(`--to takes a flavour (${FLAVOUR_LIST}), got '${values.to}'`);
      const map = new Map<string, string>();
      for (const pair of values.map ?? []) {
        const cut = pair.indexOf('=');
        if (cut <= 0 || cut === pair.length - 1) throw new KerasValueError(`--map takes SOURCE_VAR=TARGET_VAR, got '${pair}'`);
        map.set(pair.slice(0, cut), pair.slice(cut + 1));
      }
      const result = await transplantOptimizerState(positionals[0]!, values.into, { map, ...(values.output ? { output: values.output } : {}), ...(values.to ? { to: values.to } : {}) });
      stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : transplantText(result));
      return 0;
    },
  };
}

export const transplant: Command = createTransplantCommand(process.stdout);
