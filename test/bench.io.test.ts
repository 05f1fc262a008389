import { describe, expect, it } from 'vitest';
import { ioRows } from '../scripts/benchIo.js';
import { missingPython } from './helpers/python.js';

/** The I/O rows of `npm run bench` run end to end on a small state (timings are not asserted: a benchmark, not a test). */
describe('npm run bench: I/O rows', () => {
  it('reads and saves a made state and reports both against cat / cp', async () => {
    if (missingPython(['h5py', 'numpy'])) return;
    const result = await ioRows(4e6, 1);
    if ('error' in result) throw new Error(result.error);
    expect(result.fileBytes).toBeGreaterThan(3e6);
    expect(result.rows.map((r) => r.baseline)).toEqual(['cat FILE > /dev/null', 'cp FILE COPY']);
    for (const r of result.rows) expect(r.ms > 0 && r.baselineMs > 0, r.name).toBe(true);
  }, 60_000);
});
