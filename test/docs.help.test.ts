import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/commands/index.js';
import { cli, ensureBuilt, REPO } from './helpers/corpus.js';

/** `kerasopt --help` and each command's `--help` point to the docs page that explains it, and the page exists. */
describe('--help points to the docs', () => {
  beforeAll(() => {
    const note = ensureBuilt();
    if (note) console.warn(note);
  }, 300_000);

  it('kerasopt --help lists every command with its docs page', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) {
      expect(c.docs, `command ${c.name} names no docs page`).toMatch(/^docs\/[\w.-]+\.md$/);
      expect(existsSync(join(REPO, c.docs!)), c.docs).toBe(true);
      expect(r.out).toContain(`docs: ${c.docs}`);
    }
  });

  for (const c of COMMANDS) {
    it(`kerasopt ${c.name} --help prints its usage and docs page, exit 0`, async () => {
      const r = await cli([c.name, '--help']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`usage: kerasopt ${c.name}`);
      expect(r.out).toContain(`docs: ${c.docs}`);
    });
  }
});
