import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FormatError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, type FloatDType, allocate } from '../tensor/dtype.js';
import { sizeOf, Tensor } from '../tensor/tensor.js';
import type { Flavour } from '../optimizers/flavour.js';
import { fixturesDir } from '../paths.js';
import { describeErrors, validator } from '../schemas.js';
import { parseJsonSafely } from '../io/json.js';

/** Where a fixture's numbers come from; shown in every report. */
export type ProvenanceKind = 'tensorflow' | 'tf-golden' | 'reference' | 'torch' | 'external';

/** The promise a fixture checks for float records (integers are always compared exactly); see docs/fixture-format.md. */
export type Tolerance =
  | { kind: 'exact' }
  | { kind: 'ulp'; maxUlp: number }
  | { kind: 'allclose'; rtol: number; atol: number }
  | { kind: 'relative'; rtol: number; floor?: number };

/** One record of a manifest: its key, dtype and shape (its bytes are in the payload). */
export interface RecordSpec {
  readonly key: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** The manifest of a fixture (schemas/fixture.schema.json). */
export interface FixtureManifest {
  format: 'kerasopt-fixture';
  version: 1;
  name: string;
  description?: string;
  provenance: { kind: ProvenanceKind; producer: string; source?: string; command?: string; notes?: string };
  flavour: Flavour;
  dtype: FloatDType;
  config: Record<string, unknown>;
  variables: Array<{ name: string; shape: number[]; gradient: 'dense' | 'sparse' }>;
  steps: number;
  tolerance: Tolerance;
  payload: { file: string; byteLength: number; sha256: string };
  initial: RecordSpec[];
  step: RecordSpec[];
}

/** A loaded fixture: the manifest and every tensor, keyed as in the manifest. */
export interface Fixture {
  readonly path: string;
  readonly manifest: FixtureManifest;
  readonly initial: ReadonlyMap<string, Tensor>;
  readonly steps: ReadonlyArray<ReadonlyMap<string, Tensor>>;
}

function recordBytes(r: RecordSpec): number {
  return sizeOf(r.shape) * BYTES_PER_ELEMENT[r.dtype];
}

/** How `loadFixture` treats what it reads. */
export interface LoadOptions {
  /**
   * Accept NaN in float records. Off by default: an expected trajectory must hold comparable numbers.
   * On for the actual trajectory of an implementation under test, whose divergence is what the report shows.
   */
  readonly allowNaN?: boolean;
}

function decode(bytes: Buffer, r: RecordSpec, file: string, where: string, allowNaN: boolean): Tensor {
  const n = sizeOf(r.shape);
  const data = allocate(r.dtype, n);
  // Copy through a fresh aligned buffer: payload records are packed without padding.
  new Uint8Array(data.buffer).set(bytes);
  const t = new Tensor(r.dtype, r.shape, data);
  if (!allowNaN && r.dtype !== 'int32' && r.dtype !== 'int64') {
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(t.get(i))) throw new FormatError(file, `${where} '${r.key}' holds NaN at element ${i}; fixtures must hold comparable numbers`);
    }
  }
  return t;
}

/**
 * The manifest's own promises about its records: float records in the fixture's dtype (the report says
 * it compared that dtype), integer iterations and indices, and each variable's initial value in its shape.
 */
function checkRecordTypes(m: FixtureManifest, path: string): void {
  for (const r of [...m.initial, ...m.step]) {
    const integer = r.key === 'weight:iterations' || r.key.startsWith('grad_indices:');
    if (integer ? r.dtype !== 'int64' && r.dtype !== 'int32' : r.dtype !== m.dtype) {
      throw new FormatError(path, `record '${r.key}' is ${r.dtype}, expected ${integer ? 'int64 or int32' : `the fixture's dtype ${m.dtype}`}`);
    }
  }
  for (const v of m.variables) {
    const r = m.initial.find((x) => x.key === `var:${v.name}`);
    if (r && r.shape.join(',') !== v.shape.join(',')) {
      throw new FormatError(path, `initial record 'var:${v.name}' has shape [${r.shape.join(', ')}], the variable is declared [${v.shape.join(', ')}]`);
    }
  }
}

/** Reads and validates the manifest of a fixture (`.json`). */
export function readManifest(path: string): FixtureManifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
  const manifest = parseJsonSafely(text, path);
  const validate = validator('fixture.schema.json');
  if (!validate(manifest)) throw new FormatError(path, `not a kerasopt fixture manifest: ${describeErrors(validate.errors)}`);
  return manifest as FixtureManifest;
}

/**
 * Loads a fixture: validates its manifest against the schema, checks the payload's size and
 * SHA-256, and decodes every record. Throws a FormatError naming the file and the record at fault.
 */
export function loadFixture(path: string, options: LoadOptions = {}): Fixture {
  const manifest = readManifest(path);
  const payloadPath = join(dirname(path), basename(manifest.payload.file));
  let payload: Buffer;
  try {
    payload = readFileSync(payloadPath);
  } catch (e) {
    throw new FormatError(payloadPath, `cannot read the payload of fixture '${manifest.name}': ${(e as Error).message}`);
  }
  for (const [list, records] of [['initial', manifest.initial], ['step', manifest.step]] as const) {
    const seen = new Set<string>();
    for (const r of records) {
      if (seen.has(r.key)) throw new FormatError(path, `${list} records list '${r.key}' twice; each record is read once, so one of them would never be checked`);
      seen.add(r.key);
    }
  }
  checkRecordTypes(manifest, path);
  const initialBytes = manifest.initial.reduce((s, r) => s + recordBytes(r), 0);
  const stepBytes = manifest.step.reduce((s, r) => s + recordBytes(r), 0);
  const expected = initialBytes + manifest.steps * stepBytes;
  if (manifest.payload.byteLength !== expected) {
    throw new FormatError(path, `payload.byteLength says ${manifest.payload.byteLength} bytes but the records need ${expected}`);
  }
  if (payload.length !== expected) {
    throw new FormatError(payloadPath, `payload is ${payload.length} bytes, the manifest's records need ${expected}${payload.length < expected ? ' (truncated)' : ''}`);
  }
  const digest = createHash('sha256').update(payload).digest('hex');
  if (digest !== manifest.payload.sha256) throw new FormatError(payloadPath, `SHA-256 ${digest} does not match the manifest's ${manifest.payload.sha256}`);

  let offset = 0;
  const take = (r: RecordSpec, where: string): Tensor => {
    const size = recordBytes(r);
    const t = decode(payload.subarray(offset, offset + size), r, payloadPath, where, options.allowNaN ?? false);
    offset += size;
    return t;
  };
  const initial = new Map<string, Tensor>();
  for (const r of manifest.initial) initial.set(r.key, take(r, 'initial record'));
  const steps: Map<string, Tensor>[] = [];
  for (let s = 0; s < manifest.steps; s++) {
    const m = new Map<string, Tensor>();
    for (const r of manifest.step) m.set(r.key, take(r, `step ${s + 1} record`));
    steps.push(m);
  }
  return { path, manifest, initial, steps };
}

/** Paths of every fixture manifest (`*.json`) in `dir` (default: the package's fixtures/ folder), sorted; [] if the folder is missing. */
export function shippedFixtures(dir: string = fixturesDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => join(dir, f));
}
