import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Compiles the project (tsconfig.json: src/ and scripts/, whole, since modules such as worker entries
 * are loaded by path, not imported) into a private folder under
 * the checkout's tmp/ (git-ignored; inside the checkout so that node_modules resolves), for tests that
 * run the code in CHILD processes. A private build, not dist/: other test files and `npm run build`
 * rewrite dist/ while tests run, and a child importing a half-written dist/ file fails for no reason of
 * its own. Type errors do not stop the build (tsc emits anyway); they are returned as `note`.
 * `entries` are the files the caller will run: the build fails loudly if one was not emitted.
 */
export function privateBuild(entries: readonly string[]): { dir: string; file: (rel: string) => string; url: (rel: string) => string; note: string | null; cleanup: () => void } {
  const base = join(REPO, 'tmp');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'build-'));
  const back = relative(dir, REPO);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: join(back, 'tsconfig.json'),
      compilerOptions: { rootDir: back, outDir: '.', declaration: false, sourceMap: false, incremental: false },
      include: [join(back, 'src/**/*.ts'), join(back, 'scripts/**/*.ts')],
    }),
  );
  let note: string | null = null;
  try {
    execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', maxBuffer: 1 << 26 });
  } catch (e) {
    note = `tsc reported errors (emitted anyway):\n${(e as { stdout?: string }).stdout ?? e}`;
  }
  const file = (rel: string): string => join(dir, rel);
  for (const e of entries) {
    const js = e.replace(/\.ts$/, '.js');
    if (!existsSync(file(js))) throw new Error(`private build in ${dir} did not emit ${js}${note ? `\n${note}` : ''}`);
  }
  return { dir, file, url: (rel) => pathToFileURL(resolve(dir, rel)).href, note, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
