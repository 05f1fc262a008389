import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, KerasValueError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { describeErrors, validator } from '../schemas.js';
import { sameShape, shapeToString, type Tensor } from '../tensor/tensor.js';
import type { FixtureManifest, RecordSpec } from './fixture.js';
import { GRADIENT_KEY, STATE_KEY } from './state.js';

/** Everything of a manifest except what the writer derives from the tensors (records and payload). */
export type FixtureSpec = Omit<FixtureManifest, 'format' | 'version' | 'steps' | 'payload' | 'initial' | 'step'>;

/** A trajectory in memory: the state before step 1, then per step the gradients fed and the state after. */
export interface Trajectory {
  readonly initial: ReadonlyMap<string, Tensor>;
  readonly steps: ReadonlyArray<ReadonlyMap<string, Tensor>>;
}

/** Options of {@link writeFixture}. */
export interface WriteFixtureOptions {
  /**
   * Accept NaN in the tensors. Off by default: an expected trajectory must hold comparable numbers.
   * Turn it on only to record an implementation under test that may diverge (load it with `allowNaN`).
   */
  readonly allowNaN?: boolean;
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function checkNaN(t: Tensor, where: string): void {
  if (t.dtype === 'int32' || t.dtype === 'int64') return;
  for (let i = 0; i < t.size; i++) {
    if (Number.isNaN(t.get(i))) throw new KerasValueError(`${where} holds NaN at element ${i}; pass allowNaN only when recording an implementation under test`);
  }
}

function checkKey(key: string, where: string): void {
  if (!STATE_KEY.test(key) && !GRADIENT_KEY.test(key)) {
    throw new KerasValueError(`${where}: '${key}' is not a fixture key (var:<v>, slot:<slot>:<v>, weight:<w>, grad:<v>, grad_indices:<v>, grad_values:<v>)`);
  }
}

/**
 * Builds the manifest of a trajectory: the record layout is the initial map's keys in order, then the
 * first step's keys in order; every later step must hold the same keys with the same dtypes and shapes.
 */
export function buildManifest(spec: FixtureSpec, trajectory: Trajectory, options: WriteFixtureOptions = {}): { manifest: FixtureManifest; payload: Buffer } {
  const { initial, steps } = trajectory;
  if (steps.length === 0) throw new KerasValueError(`fixture '${spec.name}': a trajectory needs at least one step`);
  for (const v of spec.variables) {
    const t = initial.get(`var:${v.name}`);
    if (!t) throw new KerasValueError(`fixture '${spec.name}': the initial state lacks 'var:${v.name}'`);
    if (!sameShape(t.shape, v.shape)) throw new KerasValueError(`fixture '${spec.name}': 'var:${v.name}' is ${shapeToString(t.shape)} but the variable is declared ${shapeToString(v.shape)}`);
  }
  const spec0 = (key: string, t: Tensor): RecordSpec => ({ key, dtype: t.dtype, shape: [...t.shape] });
  const initialSpecs = [...initial].map(([k, t]) => (checkKey(k, 'initial state'), spec0(k, t)));
  const stepSpecs = [...steps[0]!].map(([k, t]) => (checkKey(k, 'step 1'), spec0(k, t)));
  if (!stepSpecs.some((r) => STATE_KEY.test(r.key))) {
    throw new KerasValueError(`fixture '${spec.name}': step 1 records no state (var:, slot:, weight:); a fixture that compares nothing is useless`);
  }
  const chunks: Uint8Array[] = [];
  const add = (t: Tensor, where: string): void => {
    if (!options.allowNaN) checkNaN(t, where);
    chunks.push(bytesOf(t));
  };
  for (const r of initialSpecs) add(initial.get(r.key)!, `initial '${r.key}'`);
  steps.forEach((step, s) => {
    if (step.size !== stepSpecs.length) {
      const extra = [...step.keys()].filter((k) => !stepSpecs.some((r) => r.key === k));
      throw new KerasValueError(`step ${s + 1} holds ${step.size} records, step 1 holds ${stepSpecs.length}${extra.length ? ` (extra: ${extra.join(', ')})` : ''}; every step must record the same keys`);
    }
    for (const r of stepSpecs) {
      const t = step.get(r.key);
      if (!t) throw new KerasValueError(`step ${s + 1} lacks '${r.key}' (step 1 has it); every step must record the same keys`);
      if (t.dtype !== r.dtype || !sameShape(t.shape, r.shape)) {
        throw new KerasValueError(`step ${s + 1} '${r.key}' is ${t.dtype}${shapeToString(t.shape)} but step 1's is ${r.dtype}${shapeToString(r.shape)}; sparse gradients need the same number of rows at every step`);
      }
      add(t, `step ${s + 1} '${r.key}'`);
    }
  });
  const payload = Buffer.concat(chunks);
  const manifest: FixtureManifest = {
    format: 'kerasopt-fixture',
    version: 1,
    ...spec,
    steps: steps.length,
    payload: { file: `${spec.name}.bin`, byteLength: payload.length, sha256: createHash('sha256').update(payload).digest('hex') },
    initial: initialSpecs,
    step: stepSpecs,
  };
  const validate = validator('fixture.schema.json');
  if (!validate(manifest)) throw new KerasValueError(`fixture '${spec.name}' would not match schemas/fixture.schema.json: ${describeErrors(validate.errors)}`);
  return { manifest, payload };
}

/**
 * Writes a fixture into `dir` (created if missing) as `<name>.json` (manifest) and `<name>.bin` (payload),
 * each atomically, payload first, so a reader never sees a manifest whose payload is missing. Returns the
 * manifest's path. What it writes is exactly what `loadFixture` reads back, bit for bit.
 */
export function writeFixture(dir: string, spec: FixtureSpec, trajectory: Trajectory, options: WriteFixtureOptions = {}): string {
  const { manifest, payload } = buildManifest(spec, trajectory, options);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new FormatError(dir, `cannot create the fixture folder: ${(e as Error).message}`);
  }
  writeFileAtomic(join(dir, manifest.payload.file), payload);
  const path = join(dir, `${manifest.name}.json`);
  writeFileAtomic(path, `${JSON.stringify(manifest, null, 2)}\n`);
  return path;
}
