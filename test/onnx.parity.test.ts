import { basename } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxBackend } from '../src/index.js';
import { loadFixture, shippedFixtures } from '../src/parity/fixture.js';
import { runParity } from '../src/parity/run.js';

/*
 * The onnx backend replays every shipped parity fixture with the same outcome as the typed
 * backend, record for record (its promise is bit-identity with the typed backend, so every
 * distance to the expected values must be identical, not merely within tolerance).
 */

const onnx = new OnnxBackend({ intraOpNumThreads: 1 });
afterAll(() => onnx.dispose());
const files = shippedFixtures();

describe('onnx backend on the shipped parity fixtures', () => {
  it('there are shipped fixtures to replay', () => {
    if (files.length === 0) console.warn('\n*** 0 shipped parity fixtures found: the onnx backend was checked against none ***\n');
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(`${basename(file, '.json')}: same verdict and same distances as the typed backend`, async () => {
      const fixture = loadFixture(file);
      const typed = await runParity(fixture, { backend: 'typed' });
      const ours = await runParity(fixture, { backend: onnx });
      expect(ours.backend).toBe('onnx');
      expect(ours.compared).toBeGreaterThan(0);
      expect(ours.records).toEqual(typed.records);
      expect(ours.pass).toBe(typed.pass);
    });
  }
});
