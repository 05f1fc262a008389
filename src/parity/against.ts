import { FormatError } from '../errors.js';
import { sameShape, shapeToString, type Tensor } from '../tensor/tensor.js';
import type { Fixture, Tolerance } from './fixture.js';
import { compareRecord, verdict, type ParityResult, type RecordResult } from './run.js';
import { isGradientKey } from './state.js';

/** Which state records a comparison of trajectories looks at. */
export type CompareScope = 'all' | 'variables';

/** Options of {@link compareTrajectories}. */
export interface CompareOptions {
  /** The tolerance to hold the actual trajectory to (default: the expected fixture's). */
  readonly tolerance?: Tolerance;
  /**
   * 'all' (default): every state record of the expected fixture must be in the actual trajectory.
   * 'variables': only `var:` records, for implementations whose slots differ (torch's exp_avg ...).
   */
  readonly scope?: CompareScope;
}

function firstDifference(a: Tensor, b: Tensor): number {
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  if (a.dtype !== b.dtype || x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return Math.floor(i / (x.length / a.size));
  return -1;
}

/** Throws unless `actual` holds `key` bit-identical to `expected` (an input of the experiment). */
function sameInput(key: string, expected: Tensor, actual: Tensor | undefined, where: string, file: string): void {
  if (!actual) throw new FormatError(file, `${where} lacks the input '${key}'; a comparison needs the same inputs as the expected fixture`);
  if (actual.dtype !== expected.dtype || !sameShape(actual.shape, expected.shape)) {
    throw new FormatError(file, `${where} '${key}' is ${actual.dtype}${shapeToString(actual.shape)}, the expected fixture's is ${expected.dtype}${shapeToString(expected.shape)}`);
  }
  const i = firstDifference(expected, actual);
  if (i >= 0) {
    throw new FormatError(file, `${where} '${key}' differs from the expected fixture's at element ${i} (${actual.get(i)} vs ${expected.get(i)}); the implementation was not fed the same inputs`);
  }
}

/**
 * Compares a recorded trajectory (any implementation, written in the fixture format, e.g. with
 * `recordTrajectory` + `writeFixture`, or by a Python script) with an expected fixture, step by step
 * and record by record, exactly as `runParity` compares a replay. Both must share the experiment:
 * same variables, same initial variables, bit-identical gradients at every step, same step count.
 * Load the actual trajectory with `{ allowNaN: true }` so that a diverging implementation is reported, not refused.
 */
export function compareTrajectories(expected: Fixture, actual: Fixture, options: CompareOptions = {}): ParityResult {
  const e = expected.manifest;
  const a = actual.manifest;
  const scope = options.scope ?? 'all';
  const file = actual.path;
  if (a.steps !== e.steps) throw new FormatError(file, `records ${a.steps} steps, the expected fixture '${e.name}' ${e.steps}`);
  const names = (f: Fixture) => f.manifest.variables.map((v) => `${v.name}${shapeToString(v.shape)}`).join(', ');
  if (names(actual) !== names(expected)) throw new FormatError(file, `variables ${names(actual)} differ from the expected fixture's ${names(expected)}`);
  for (const v of e.variables) sameInput(`var:${v.name}`, expected.initial.get(`var:${v.name}`)!, actual.initial.get(`var:${v.name}`), 'initial state', file);
  // Other initial state (slots of a resumed run ...) must agree wherever both record it.
  for (const [key, t] of expected.initial) if (!key.startsWith('var:') && actual.initial.has(key)) sameInput(key, t, actual.initial.get(key), 'initial state', file);

  const compared = e.step.map((r) => r.key).filter((k) => !isGradientKey(k) && (scope === 'all' || k.startsWith('var:')));
  const have = new Set(a.step.map((r) => r.key));
  const missing = compared.filter((k) => !have.has(k));
  if (missing.length > 0) {
    throw new FormatError(file, `does not record ${missing.join(', ')}${scope === 'all' ? " (compare only the variables with scope 'variables' / --compare variables)" : ''}`);
  }
  for (const key of compared) {
    const x = e.step.find((r) => r.key === key)!;
    const y = a.step.find((r) => r.key === key)!;
    if (x.dtype !== y.dtype || !sameShape(x.shape, y.shape)) {
      throw new FormatError(file, `records '${key}' as ${y.dtype}${shapeToString(y.shape)}, the expected fixture as ${x.dtype}${shapeToString(x.shape)}; round to the expected dtype before recording`);
    }
  }
  const tolerance = options.tolerance ?? e.tolerance;
  const records: RecordResult[] = [];
  for (let s = 0; s < e.steps; s++) {
    const exp = expected.steps[s]!;
    const act = actual.steps[s]!;
    for (const [key, t] of exp) if (isGradientKey(key)) sameInput(key, t, act.get(key), `step ${s + 1}`, file);
    for (const key of compared) records.push(compareRecord(s + 1, key, act.get(key)!, exp.get(key)!, tolerance, file));
  }
  return {
    fixture: e.name,
    path: expected.path,
    provenance: e.provenance.kind,
    producer: e.provenance.producer,
    ...(e.provenance.source === undefined ? {} : { source: e.provenance.source }),
    flavour: e.flavour,
    dtype: e.dtype,
    backend: 'recorded',
    actual: { name: a.name, path: actual.path, provenance: a.provenance.kind, producer: a.provenance.producer, scope },
    tolerance,
    steps: e.steps,
    records,
    compared: records.length,
    pass: verdict(records),
  };
}
