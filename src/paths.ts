import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The package's root folder (where package.json, schemas/ and fixtures/ live), from src/ or dist/src/. */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'schemas'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('kerasopt: cannot find the package root (package.json + schemas/)');
    dir = up;
  }
  return (root = dir);
}

export const schemaPath = (name: string): string => join(packageRoot(), 'schemas', name);
export const fixturesDir = (): string => join(packageRoot(), 'fixtures');
