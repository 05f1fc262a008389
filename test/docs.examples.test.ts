import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, REPO } from './helpers/corpus.js';

/**
 * Every example of README.md and docs/*.md runs as written: each ```ts block (transpiled, run by
 * node as an ES module importing the built package as 'kerasopt') and each ```sh block (bash, with
 * `kerasopt` / `npx kerasopt` the built CLI). Other fences (```text, ```json, plain ```) are output
 * or formats, not examples. Each example runs in a fresh folder `work/` beside a `shared` link to
 * ../shared, so `../shared/corpus/...` names the real files (as from a checkout) and anything an
 * example writes stays in its folder.
 */
interface Example {
  readonly file: string;
  readonly line: number;
  readonly lang: 'ts' | 'sh';
  readonly code: string;
}

function examples(): Example[] {
  const files = ['README.md', ...readdirSync(join(REPO, 'docs')).filter((n) => n.endsWith('.md')).sort().map((n) => `docs/${n}`)];
  const out: Example[] = [];
  for (const file of files) {
    const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(\S*)\s*$/.exec(lines[i]!);
      if (!open) continue;
      const end = lines.findIndex((l, k) => k > i && /^```\s*$/.test(l));
      if (end < 0) throw new Error(`${file}:${i + 1}: unclosed code fence`);
      const lang = open[1];
      if (lang === 'ts' || lang === 'sh') out.push({ file, line: i + 1, lang, code: lines.slice(i + 1, end).join('\n') });
      i = end;
    }
  }
  return out;
}

const all = examples();
const base = mkdtempSync(join(tmpdir(), 'kerasopt-docs-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
beforeAll(() => {
  const note = ensureBuilt();
  if (note) console.warn(note);
}, 300_000);

/** A fresh folder for one example: work/ with kerasopt installed (links to this checkout), beside shared/. */
function workspace(name: string): string {
  const root = join(base, name);
  const work = join(root, 'work');
  mkdirSync(join(work, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(resolve(REPO, '../shared'), join(root, 'shared'));
  symlinkSync(REPO, join(work, 'node_modules', 'kerasopt'));
  symlinkSync(join(REPO, 'node_modules', '@tensorflow'), join(work, 'node_modules', '@tensorflow')); // kerasopt/tfjs's peer, as a user installs it
  const cli = join(REPO, 'dist/src/cli/main.js');
  chmodSync(cli, 0o755);
  symlinkSync(cli, join(work, 'node_modules', '.bin', 'kerasopt'));
  return work;
}

describe('every example of README.md and docs/ runs as written', () => {
  it('there are examples to run (README and docs)', () => {
    expect(all.filter((e) => e.file === 'README.md').length).toBeGreaterThan(2);
    expect(all.filter((e) => e.file.startsWith('docs/')).length).toBeGreaterThan(2);
  });

  for (const [k, ex] of all.entries()) {
    it(`${ex.file}:${ex.line} (${ex.lang})`, () => {
      const work = workspace(`ex${k}`);
      const env = { ...process.env, PATH: `${join(work, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`, NO_COLOR: '1' };
      let run;
      if (ex.lang === 'ts') {
        const js = ts.transpileModule(ex.code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
        writeFileSync(join(work, 'example.mjs'), js);
        run = spawnSync(process.execPath, ['example.mjs'], { cwd: work, env, encoding: 'utf8', timeout: 240_000 });
      } else {
        writeFileSync(join(work, 'example.sh'), `set -euo pipefail\n${ex.code}\n`);
        run = spawnSync('bash', ['example.sh'], { cwd: work, env, encoding: 'utf8', timeout: 240_000 });
      }
      const shown = `${ex.file}:${ex.line} exited ${run.status}${run.signal ? ` (${run.signal})` : ''}\n--- code\n${ex.code}\n--- stdout\n${run.stdout.slice(-2000)}\n--- stderr\n${run.stderr.slice(-3000)}`;
      expect(run.status, shown).toBe(0);
    }, 300_000);
  }
});
