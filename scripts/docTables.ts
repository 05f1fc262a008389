import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchema } from '../src/config/described.js';
import { OPTIMIZERS } from '../src/optimizers/catalog/index.js';
import { catalogDetails, supportTable } from '../src/optimizers/catalog/table.js';

/**
 * `npm run docs:tables`: rewrites what is made from the optimizer catalog (src/optimizers/catalog):
 * the regions of README.md and docs/optimizers.md between `<!-- catalog:NAME -->` and
 * `<!-- /catalog:NAME -->`, and the JSON Schemas in schemas/optimizers/. test/catalog.test.ts fails
 * when any of them differs from what this writes.
 */
export const REGIONS: Record<string, () => string> = { table: supportTable, details: catalogDetails };

/** `text` with every catalog region replaced by its current content. */
export function withRegions(text: string): string {
  return text.replace(/(<!-- catalog:(\w+) -->\n)[\s\S]*?(<!-- \/catalog:\2 -->)/g, (_all, open: string, name: string, close: string) => {
    const make = REGIONS[name];
    if (!make) throw new Error(`unknown catalog region '${name}'`);
    return `${open}${make()}\n${close}`;
  });
}

/** The folder of the per-row config schemas, and each file's name and text. */
export const SCHEMA_DIR = 'schemas/optimizers';
export function schemaFiles(): Map<string, string> {
  return new Map(OPTIMIZERS.map((d) => [`${d.flavour}.${d.className}.${d.versions[0]}.schema.json`, `${JSON.stringify(configSchema(d), null, 2)}\n`]));
}

if (process.argv[1]?.endsWith('docTables.js')) {
  const files = schemaFiles();
  mkdirSync(SCHEMA_DIR, { recursive: true });
  for (const old of existsSync(SCHEMA_DIR) ? readdirSync(SCHEMA_DIR) : []) if (!files.has(old)) rmSync(join(SCHEMA_DIR, old));
  for (const [name, text] of files) writeFileSync(join(SCHEMA_DIR, name), text);
  console.log(`${SCHEMA_DIR}: ${files.size} schemas`);
  for (const file of ['README.md', 'docs/optimizers.md']) {
    const before = readFileSync(file, 'utf8');
    const after = withRegions(before);
    if (after !== before) writeFileSync(file, after);
    console.log(`${file}: ${after === before ? 'up to date' : 'rewritten'}`);
  }
}
