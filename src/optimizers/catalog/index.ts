import type { Flavour } from '../flavour.js';
import { KERAS2 } from './keras2.js';
import { KERAS3 } from './keras3.js';
import { TF_KERAS } from './tfKeras.js';
import { TF_KERAS_NEW } from './tfKerasNew.js';
import type { OptimizerDescriptor } from './types.js';

export type { OptimizerDescriptor, SlotCondition, SlotShape, SlotSpec } from './types.js';
export { holds, mayBeAbsent, slotNames, slotShape, slotVariants } from './types.js';
export { KERAS3_NOT_DESCRIBED } from './keras3.js';

/**
 * Every built-in Keras optimizer kerasopt reads and writes, one row per lineage and release range
 * (docs/optimizers.md). Nadam is also stepped (src/optimizers/nadam); the others are described only.
 */
export const OPTIMIZERS: readonly OptimizerDescriptor[] = [...KERAS2, ...TF_KERAS, ...TF_KERAS_NEW, ...KERAS3];

/**
 * Keras's class name for a saved name: 'Custom>Adam' (TF 2.11-2.15 register their optimizers so),
 * the string aliases compile() accepts ('adam', 'rmsprop'), any case. Null for a name no row has.
 */
export function canonicalClassName(name: string): string | null {
  const bare = name.replace(/^custom>/i, '').replace(/^keras\.optimizers\./, '').toLowerCase();
  return OPTIMIZERS.find((d) => d.className.toLowerCase() === bare)?.className ?? null;
}

function numbers(v: string): number[] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function before(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/** Whether `version` falls in the row's [from, to) range. */
export function coversVersion(d: OptimizerDescriptor, version: string): boolean {
  const v = numbers(version);
  if (!v) return false;
  return !before(v, numbers(d.versions[0])!) && (d.versions[1] === null || before(v, numbers(d.versions[1])!));
}

/**
 * The rows of `flavour` for a class: the one covering `version` when it is known and covered, else
 * every row of the flavour for that class (oldest first), so the caller can try each.
 */
export function descriptorsFor(className: string, flavour: Flavour, version: string | null): OptimizerDescriptor[] {
  const canonical = canonicalClassName(className);
  const rows = OPTIMIZERS.filter((d) => d.flavour === flavour && d.className === canonical);
  if (version === null) return rows;
  const covering = rows.filter((d) => coversVersion(d, version));
  return covering.length > 0 ? covering : rows;
}

/** The optimizers a flavour knows, by class name, in catalog order. */
export function classNamesOf(flavour: Flavour): string[] {
  return [...new Set(OPTIMIZERS.filter((d) => d.flavour === flavour).map((d) => d.className))];
}
