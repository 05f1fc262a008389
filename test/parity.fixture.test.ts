import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FormatError, KerasValueError, Tensor } from '../src/index.js';
import { loadFixture, shippedFixtures } from '../src/parity/fixture.js';
import { writeFixture, type FixtureSpec, type Trajectory } from '../src/parity/write.js';
import { bits } from './helpers/build.js';
import { tempDir } from './helpers/parityFixtures.js';

const spec = (over: Partial<FixtureSpec> = {}): FixtureSpec => ({
  name: 'roundtrip',
  provenance: { kind: 'external', producer: 'hand-made by test/parity.fixture.test.ts' },
  flavour: 'tf-keras',
  dtype: 'float16',
  config: { learning_rate: 0.001 },
  variables: [{ name: 'dense/kernel:0', shape: [2, 2], gradient: 'dense' }, { name: 'emb', shape: [3, 1], gradient: 'sparse' }],
  tolerance: { kind: 'ulp', maxUlp: 2 },
  ...over,
});

const BIG = 2n ** 62n + 3n; // not representable as a double: survives only as int64 bits

function trajectory(nan = false): Trajectory {
  const half = (xs: number[], shape: number[]) => Tensor.from(xs, 'float16', shape);
  return {
    initial: new Map<string, Tensor>([
      ['var:dense/kernel:0', half([1, -0, 6.0e-8, 65504], [2, 2])], // -0, the smallest half subnormal, the largest half
      ['var:emb', half([0.1, 0.2, 0.3], [3, 1])],
      ['weight:iterations', Tensor.from([BIG], 'int64', [])],
      ['weight:momentum_cache', half([1], [])],
    ]),
    steps: [1, 2].map((s) => new Map<string, Tensor>([
      ['grad:dense/kernel:0', half([s, -s, Infinity, 1e-4], [2, 2])],
      ['grad_indices:emb', Tensor.from([2n, 0n], 'int64')],
      ['grad_values:emb', half([0.5, nan ? NaN : 0.25], [2, 1])],
      ['var:dense/kernel:0', half([1 - s / 1000, -s, 0.5, 3], [2, 2])],
      ['weight:iterations', Tensor.from([BIG + BigInt(s)], 'int64', [])],
      ['weight:momentum_cache', Tensor.from([0.9 ** s], 'float16', [])],
    ])),
  };
}

describe('writeFixture / loadFixture round trip', () => {
  test('every record comes back bit for bit: float16 (incl. -0, subnormal, max, inf) and int64 beyond 2^53', () => {
    const dir = tempDir();
    const t = trajectory();
    const path = writeFixture(dir, spec(), t);
    expect(path).toBe(join(dir, 'roundtrip.json'));
    const f = loadFixture(path);
    expect(f.manifest.steps).toBe(2);
    expect(f.manifest.payload.file).toBe('roundtrip.bin');
    expect([...f.initial.keys()]).toEqual([...t.initial.keys()]);
    for (const [k, v] of t.initial) {
      expect(f.initial.get(k)!.dtype).toBe(v.dtype);
      expect(bits(f.initial.get(k)!)).toEqual(bits(v));
    }
    t.steps.forEach((step, s) => {
      expect([...f.steps[s]!.keys()]).toEqual([...step.keys()]);
      for (const [k, v] of step) {
        expect(f.steps[s]!.get(k)!.shape).toEqual(v.shape);
        expect(bits(f.steps[s]!.get(k)!)).toEqual(bits(v));
      }
    });
    expect((f.initial.get('weight:iterations')!.data as BigInt64Array)[0]).toBe(BIG);
    expect((f.steps[1]!.get('weight:iterations')!.data as BigInt64Array)[0]).toBe(BIG + 2n);
    expect(Object.is(f.initial.get('var:dense/kernel:0')!.get(1), -0)).toBe(true);
  });

  test('the payload is the records packed in manifest order, little-endian, nothing else', () => {
    const dir = tempDir();
    const path = writeFixture(dir, spec(), trajectory());
    const m = JSON.parse(readFileSync(path, 'utf8'));
    const payload = readFileSync(join(dir, 'roundtrip.bin'));
    expect(payload.length).toBe(m.payload.byteLength);
    // initial: kernel (4 halves), emb (3 halves), iterations (int64), momentum_cache (1 half)
    expect(payload.readBigInt64LE(14)).toBe(BIG);
    expect(payload.readUInt16LE(0)).toBe(0x3c00); // half 1.0
    expect(m.initial.map((r: { key: string }) => r.key)).toEqual(['var:dense/kernel:0', 'var:emb', 'weight:iterations', 'weight:momentum_cache']);
  });

  test('the writer refuses what a fixture cannot hold, naming it', () => {
    const dir = tempDir();
    expect(() => writeFixture(dir, spec(), trajectory(true))).toThrow(/step 1 'grad_values:emb' holds NaN at element 1/);
    const ragged = trajectory();
    (ragged.steps[1] as Map<string, Tensor>).set('grad_indices:emb', Tensor.from([1n], 'int64'));
    expect(() => writeFixture(dir, spec(), ragged)).toThrow(/step 2 'grad_indices:emb' is int64\[1\] but step 1's is int64\[2\]/);
    const noState = { initial: trajectory().initial, steps: [new Map([['grad:dense/kernel:0', Tensor.zeros('float16', [2, 2])]])] };
    expect(() => writeFixture(dir, spec(), noState)).toThrow(/compares nothing/);
    expect(() => writeFixture(dir, spec({ name: '../escape' }), trajectory())).toThrow(KerasValueError);
    expect(() => writeFixture(dir, spec({ name: '../escape' }), trajectory())).toThrow(/at name: must match pattern/);
    const tfGolden = spec({ provenance: { kind: 'tf-golden', producer: 'transcribed' } });
    expect(() => writeFixture(dir, tfGolden, trajectory())).toThrow(/provenance: must have required property 'source'/);
    expect(shippedFixtures(dir)).toEqual([]); // nothing half-written was left behind
  });

  test('the writer creates a missing folder (as the README example assumes), and names one it cannot create', () => {
    const dir = join(tempDir(), 'out', 'nested');
    const path = writeFixture(dir, spec(), trajectory());
    expect(path).toBe(join(dir, 'roundtrip.json'));
    expect(loadFixture(path).steps).toHaveLength(2);
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a folder');
    expect(() => writeFixture(join(file, 'sub'), spec(), trajectory())).toThrow(FormatError);
    expect(() => writeFixture(join(file, 'sub'), spec(), trajectory())).toThrow(/a-file.sub: cannot create the fixture folder/);
  });

  test('NaN is accepted only on request, for an actual trajectory under test', () => {
    const dir = tempDir();
    const path = writeFixture(dir, spec(), trajectory(true), { allowNaN: true });
    expect(() => loadFixture(path)).toThrow(/step 1 record 'grad_values:emb' holds NaN at element 1; fixtures must hold comparable numbers/);
    expect(Number.isNaN(loadFixture(path, { allowNaN: true }).steps[0]!.get('grad_values:emb')!.get(1))).toBe(true);
  });
});

describe('loadFixture refuses bad input with an error naming the file and what is wrong', () => {
  const good = (): { dir: string; path: string; bin: string } => {
    const dir = tempDir();
    return { dir, path: writeFixture(dir, spec(), trajectory()), bin: join(dir, 'roundtrip.bin') };
  };
  const edit = (path: string, change: (m: Record<string, any>) => void): void => {
    const m = JSON.parse(readFileSync(path, 'utf8'));
    change(m);
    writeFileSync(path, JSON.stringify(m));
  };

  test('a schema failure names the JSON path', () => {
    const { path } = good();
    edit(path, (m) => (m.variables[1].gradient = 'ragged'));
    expect(() => loadFixture(path)).toThrow(FormatError);
    expect(() => loadFixture(path)).toThrow(/at variables\.1\.gradient: must be equal to one of the allowed values: \["dense","sparse"\]/);
    edit(path, (m) => {
      m.variables[1].gradient = 'sparse';
      m.provenance.kind = 'numpy';
    });
    expect(() => loadFixture(path)).toThrow(/at provenance\.kind/);
    edit(path, (m) => {
      m.provenance.kind = 'external';
      m.step[0].key = 'momentum';
    });
    expect(() => loadFixture(path)).toThrow(/at step\.0\.key: must match pattern/);
    // tf-golden must name where TF printed the numbers: a missing or blank source is refused.
    for (const source of [undefined, '', '  ']) {
      edit(path, (m) => {
        m.step[0].key = 'var:w';
        m.provenance.kind = 'tf-golden';
        if (source === undefined) delete m.provenance.source;
        else m.provenance.source = source;
      });
      expect(() => loadFixture(path)).toThrow(source === undefined ? /at provenance: must have required property 'source'/ : /at provenance\.source: must match pattern/);
    }
  });

  test('a truncated payload', () => {
    const { path, bin } = good();
    truncateSync(bin, readFileSync(bin).length - 3);
    expect(() => loadFixture(path)).toThrow(/roundtrip\.bin: payload is \d+ bytes, the manifest's records need \d+ \(truncated\)/);
  });

  test('a payload longer than its records', () => {
    const { path, bin } = good();
    writeFileSync(bin, Buffer.concat([readFileSync(bin), Buffer.alloc(4)]));
    expect(() => loadFixture(path)).toThrow(/roundtrip\.bin: payload is \d+ bytes, the manifest's records need \d+$/);
  });

  test('a manifest whose byteLength disagrees with its records', () => {
    const { path } = good();
    edit(path, (m) => (m.payload.byteLength += 2));
    expect(() => loadFixture(path)).toThrow(/payload\.byteLength says \d+ bytes but the records need \d+/);
  });

  test('a payload whose SHA-256 does not match', () => {
    const { path, bin } = good();
    const bytes = readFileSync(bin);
    bytes[5]! ^= 1;
    writeFileSync(bin, bytes);
    expect(() => loadFixture(path)).toThrow(/roundtrip\.bin: SHA-256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}/);
  });

  test('a missing payload, and a manifest that is not JSON', () => {
    const { path, dir } = good();
    edit(path, (m) => (m.payload.file = 'other.bin'));
    expect(() => loadFixture(path)).toThrow(/other\.bin: cannot read the payload of fixture 'roundtrip'/);
    writeFileSync(join(dir, 'broken.json'), '{"format": ');
    expect(() => loadFixture(join(dir, 'broken.json'))).toThrow(/broken\.json: not valid JSON/);
    edit(path, (m) => {
      m.payload.file = 'roundtrip.bin';
      m.step.push(m.step[m.step.length - 1]);
    });
    expect(() => loadFixture(path)).toThrow(/roundtrip\.json: step records list '.+' twice/);
    edit(path, (m) => {
      m.step.pop();
      m.dtype = 'float32'; // the records are float16
    });
    expect(() => loadFixture(path)).toThrow(/roundtrip\.json: record '.+' is float\d+, expected the fixture's dtype float\d+/);
    edit(path, (m) => {
      m.dtype = 'float16';
      m.variables[0].shape = [7];
    });
    expect(() => loadFixture(path)).toThrow(/initial record 'var:.+' has shape \[.+\], the variable is declared \[7\]/);
    writeFileSync(join(dir, 'deep.json'), `{"format": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    expect(() => loadFixture(join(dir, 'deep.json'))).toThrow(/deep\.json: JSON nested deeper than 1000 levels/);
    expect(() => loadFixture(join(dir, 'deep.json'))).toThrow(FormatError);
  });
});

describe('the TypeScript writer and the Python writer (scripts/) write the same format', () => {
  test('every shipped fixture, re-written by writeFixture, gives the same manifest and the same payload bytes', () => {
    const shipped = shippedFixtures();
    if (shipped.length === 0) console.warn('\n*** 0 shipped fixtures: the TS/Python writer agreement was NOT checked ***\n');
    for (const path of shipped) {
      const f = loadFixture(path);
      const { format: _f, version: _v, steps: _s, payload: _p, initial: _i, step: _st, ...spec } = f.manifest;
      const copy = writeFixture(tempDir(), spec, { initial: f.initial, steps: f.steps });
      expect(JSON.parse(readFileSync(copy, 'utf8')), path).toEqual(JSON.parse(readFileSync(path, 'utf8')));
      expect(readFileSync(copy.replace(/\.json$/, '.bin')).equals(readFileSync(join(path, '..', f.manifest.payload.file))), path).toBe(true);
    }
    console.log(`TS writer re-wrote ${shipped.length} shipped fixture(s) byte for byte`);
  });
});
