import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFixture, shippedFixtures } from '../../parity/fixture.js';
import { runParity, type ParityResult } from '../../parity/run.js';
import { formatSummary } from '../../parity/summary.js';
import type { Command } from '../command.js';

export const parity: Command = {
  name: 'parity',
  usage: `parity [FIXTURE.json ...] [--backend NAME] [--json OUT.json]
    Replays parity fixtures (default: every shipped fixture) and prints, per fixture, the
    largest ULP / absolute / relative distance and the verdict. Exits 1 if any fixture fails.`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { backend: { type: 'string', default: 'typed' }, json: { type: 'string' } },
    });
    const files = positionals.length > 0 ? positionals.map((p) => resolve(p)) : shippedFixtures();
    const results: ParityResult[] = [];
    for (const file of files) results.push(await runParity(loadFixture(file), { backend: values.backend }));
    process.stdout.write(`${formatSummary(results)}\n`);
    if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
    return results.length > 0 && results.every((r) => r.pass) ? 0 : 1;
  },
};
