import { execFileSync, spawnSync } from 'node:child_process';

/** Debian's interpreter: the one python3-numpy, python3-h5py and python3-torch install into. */
export const PYTHON = process.env.KERASOPT_PYTHON ?? '/usr/bin/python3';

const cache = new Map<string, string | null>();

/**
 * Why the cross-check tool is unavailable (null when it is there). In CI a missing tool is a
 * failure, never a skip: .ci/run installs it.
 */
export function missingPython(modules: readonly string[]): string | null {
  const key = modules.join(',');
  if (!cache.has(key)) {
    const r = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
    cache.set(key, r.status === 0 ? null : `${PYTHON} cannot import ${modules.join(', ')}: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
  }
  const why = cache.get(key) ?? null;
  if (why && process.env.CI) throw new Error(`cross-check tool missing in CI (.ci/run must install it): ${why}`);
  if (why) console.warn(`\n*** CROSS-CHECK NOT RUN: ${why}. Install Debian's python3-numpy/python3-h5py/python3-torch (see .ci/run). ***\n`);
  return why;
}

/** Runs a Python snippet with Debian's interpreter and returns its stdout. */
export function python(code: string, args: readonly string[] = [], input?: string): string {
  return execFileSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, input });
}
