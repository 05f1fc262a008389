import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { loadFixture, shippedFixtures } from '../src/parity/fixture.js';
import { runParity } from '../src/parity/run.js';
import { FLAVOURS } from '../src/optimizers/flavour.js';
import { missingPython, python } from './helpers/python.js';

const fixtures = shippedFixtures();

function worst(r: Awaited<ReturnType<typeof runParity>>): string {
  const bad = r.records.filter((x) => !x.pass);
  const first = bad[0];
  return first ? `${bad.length} failing records; first at step ${first.step} '${first.key}' (maxUlp ${first.maxUlp}, maxRel ${first.maxRel})` : 'pass';
}

describe('shipped fixtures', () => {
  test('the folder holds reference, torch and tf-golden fixtures for every flavour', () => {
    const manifests = fixtures.map((f) => loadFixture(f).manifest);
    const kinds = new Set(manifests.map((m) => m.provenance.kind));
    for (const kind of ['reference', 'tf-golden', 'torch']) expect(kinds.has(kind as never), kind).toBe(true);
    for (const flavour of FLAVOURS) {
      for (const dtype of ['float32', 'float64']) {
        expect(manifests.some((m) => m.flavour === flavour && m.dtype === dtype && m.provenance.kind === 'reference')).toBe(true);
      }
    }
    expect(manifests.some((m) => m.steps >= 1000 && m.provenance.kind === 'reference')).toBe(true);
    expect(manifests.some((m) => m.variables.some((v) => v.gradient === 'sparse'))).toBe(true);
    expect(manifests.some((m) => 'clipnorm' in m.config && m.config.clipnorm !== null)).toBe(true);
    expect(manifests.some((m) => 'clipvalue' in m.config && m.config.clipvalue !== null)).toBe(true);
    for (const m of manifests.filter((x) => x.provenance.kind === 'tf-golden')) expect(m.provenance.source).toMatch(/\//);
  });

  test('every flavour has dense and sparse gradients and an awkward-values run; no fixture our engines made says TensorFlow', () => {
    const manifests = fixtures.map((f) => loadFixture(f).manifest);
    for (const flavour of FLAVOURS) {
      const mine = manifests.filter((m) => m.flavour === flavour && m.provenance.kind === 'reference');
      for (const gradient of ['dense', 'sparse']) expect(mine.some((m) => m.variables.some((v) => v.gradient === gradient)), `${flavour} ${gradient}`).toBe(true);
      expect(mine.some((m) => m.name.includes('awkward')), `${flavour} awkward`).toBe(true);
    }
    // TF 2.11+ sums duplicate indices before its sparse path: its fixtures must have some.
    expect(manifests.some((m) => m.flavour === 'tf-keras-new' && m.dtype === 'float64' && m.variables.some((v) => v.gradient === 'sparse'))).toBe(true);
    for (const m of manifests) {
      const engine = /--engine (\w+)/.exec(m.provenance.producer)?.[1];
      if (engine === 'reference' || engine === 'torch') expect(m.provenance.kind, m.name).toBe(engine);
      if (m.provenance.kind === 'tensorflow') expect(engine, m.name).toBe('tensorflow');
      if (m.provenance.kind === 'tf-golden') expect(m.provenance.producer, m.name).toMatch(/^transcribed/);
    }
  });

  for (const path of fixtures) {
    const name = path.split('/').pop()!;
    test(`${name} replays within its tolerance on the typed backend`, async () => {
      const fixture = loadFixture(path);
      const result = await runParity(fixture, { backend: 'typed' });
      expect(result.compared).toBeGreaterThan(0);
      expect(worst(result)).toBe('pass');
    });
  }
});

describe('shipped reference fixtures come from scripts/generate_fixtures.py as committed', () => {
  test.skipIf(missingPython(['numpy']) !== null)('regenerating every reference fixture gives the same payload sha256', () => {
    const out = JSON.parse(python('import runpy,sys; sys.argv=["g","--engine","reference","--verify"]; runpy.run_path("scripts/generate_fixtures.py", run_name="__main__")')) as Record<string, [string | null, string]>;
    const names = Object.keys(out);
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      expect(existsSync(`fixtures/${name}.json`), name).toBe(true);
      expect(out[name]![1], name).toBe(out[name]![0]);
    }
  });
});
