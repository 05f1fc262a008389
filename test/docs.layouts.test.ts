import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LAYOUTS, rolesOf, rowCovers, rowsFor } from '../src/formats/layouts.js';

/** The release table is data: every row is documented, and the row lookups behave as the docs say. */
describe('the Keras release layout table', () => {
  const doc = readFileSync('docs/keras-releases.md', 'utf8');
  const files = readFileSync('docs/keras-files.md', 'utf8');

  it.each(LAYOUTS.map((r) => [r.id]))('row %s is in docs/keras-releases.md and docs/keras-files.md', (id) => {
    expect(doc).toContain(`\`${id}\``);
    expect(files).toContain(`\`${id}\``);
  });

  it('ids are unique and every version range is well formed', () => {
    expect(new Set(LAYOUTS.map((r) => r.id)).size).toBe(LAYOUTS.length);
    for (const r of LAYOUTS) expect(rowCovers(r, r.versions[0]), r.id).toBe(true);
  });

  it('keras_version picks the row of its release', () => {
    expect(rowsFor('keras2-h5', '2.0.4').map((r) => r.id)).toEqual(['keras-2.0-sorted']);
    expect(rowsFor('keras2-h5', '2.0.8').map((r) => r.id)).toEqual(['keras-2.0']);
    expect(rowsFor('keras2-h5', '2.2.4-tf').map((r) => r.id)).toEqual(['keras-2.1-2.2']);
    expect(rowsFor('keras3-archive', '2.15.0').map((r) => r.id)).toEqual(['tf-keras-new-archive']);
    expect(rowsFor('keras3-archive', '3.9.2').map((r) => r.id)).toEqual(['keras-3.0-u-first']);
    expect(rowsFor('keras3-archive', '3.10.0').map((r) => r.id)).toEqual(['keras-3.10-u-last']);
    // no version: every row of the format is a candidate
    expect(rowsFor('keras3-weights-h5', null).length).toBe(3);
  });

  it('rolesOf lays out each positional row', () => {
    const kinds = (id: string, n: number, learningRate = true) =>
      rolesOf(LAYOUTS.find((r) => r.id === id)!, n, { learningRate, built: true }).map((r) => (r.kind === 'slot' ? `${'mv'[r.slot]}${r.variable}` : r.kind));
    expect(kinds('keras-3.0-u-first', 2)).toEqual(['iterations', 'learning_rate', 'schedule', 'm0', 'v0', 'm1', 'v1']);
    expect(kinds('keras-3.10-u-last', 2, false)).toEqual(['iterations', 'm0', 'v0', 'm1', 'v1', 'schedule']);
    expect(kinds('tf-keras-new-archive', 1)).toEqual(['iterations', 'm0', 'v0']);
    expect(kinds('keras-2.3', 2)).toEqual(['iterations', 'schedule', 'm0', 'm1', 'v0', 'v1']);
    expect(rolesOf(LAYOUTS.find((r) => r.id === 'keras-3.0-u-first')!, 0, { learningRate: true, built: false }).map((r) => r.kind)).toEqual(['iterations', 'learning_rate']);
  });
});
