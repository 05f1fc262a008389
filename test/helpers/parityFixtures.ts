import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { IndexedSlices, Tensor, type Flavour, type FloatDType } from '../../src/index.js';
import type { Tolerance } from '../../src/parity/fixture.js';
import { nadamImplementation, recordTrajectory, type StepGradients } from '../../src/parity/record.js';
import { writeFixture, type FixtureSpec } from '../../src/parity/write.js';

const made: string[] = [];
// Registered at import time, so it runs after all tests of the importing file.
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed after the tests of the file that made it. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kerasopt-parity-'));
  made.push(dir);
  return dir;
}

/** Deterministic pseudo-random numbers in [-1, 1) (a 32-bit LCG), so fixtures are reproducible. */
export function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 31 - 1;
  };
}

export interface NadamFixtureOptions {
  readonly name: string;
  readonly flavour?: Flavour;
  readonly dtype?: FloatDType;
  readonly steps?: number;
  readonly sparse?: boolean;
  readonly tolerance?: Tolerance;
  readonly config?: Record<string, unknown>;
  /** Variable names (default w and b). */
  readonly names?: readonly [string, string];
}

/**
 * Records kerasopt's own Nadam (typed backend) into a fixture. Labelled honestly: provenance
 * `external`, producer naming kerasopt. Variable 1 has shape [3, 2] (sparse gradients of 2 rows
 * when `sparse`), variable 2 has shape [4].
 */
export async function nadamFixture(dir: string, o: NadamFixtureOptions): Promise<string> {
  const dtype = o.dtype ?? 'float32';
  const flavour = o.flavour ?? 'tf-keras';
  const config = o.config ?? { learning_rate: 0.01 };
  const [w, b] = o.names ?? ['w', 'b'];
  const rnd = lcg(7);
  const values = (n: number) => Array.from({ length: n }, rnd);
  const initial = new Map([
    [`var:${w}`, Tensor.from(values(6), dtype, [3, 2])],
    [`var:${b}`, Tensor.from(values(4), dtype, [4])],
  ]);
  const gradients: StepGradients[] = Array.from({ length: o.steps ?? 5 }, (_, s) => {
    const gw = o.sparse
      ? new IndexedSlices(Tensor.from([s % 3, (s + 2) % 3], 'int64'), Tensor.from(values(4), dtype, [2, 2]), [3, 2])
      : Tensor.from(values(6), dtype, [3, 2]);
    return new Map<string, Tensor | IndexedSlices>([[w, gw], [b, Tensor.from(values(4), dtype, [4])]]);
  });
  const trajectory = await recordTrajectory(nadamImplementation(config, flavour), { initial, gradients });
  const spec: FixtureSpec = {
    name: o.name,
    provenance: { kind: 'external', producer: 'kerasopt Nadam, typed backend (recorded by the test suite, not TensorFlow)' },
    flavour,
    dtype,
    config,
    variables: [
      { name: w, shape: [3, 2], gradient: o.sparse ? 'sparse' : 'dense' },
      { name: b, shape: [4], gradient: 'dense' },
    ],
    tolerance: o.tolerance ?? { kind: 'exact' },
  };
  return writeFixture(dir, spec, trajectory);
}
