import type { Backend } from '../backends/backend.js';
import { BackendError, FormatError, KerasoptError } from '../errors.js';
import { Nadam } from '../optimizers/nadam/index.js';
import type { GradientAndVariable } from '../optimizers/optimizer.js';
import { IndexedSlices, Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import { compareTensors, type Difference } from './compare.js';
import { isGradientKey, stateVariable, variableOfKey } from './state.js';
import type { Fixture, ProvenanceKind, Tolerance } from './fixture.js';

/** One compared tensor at one step. */
export interface RecordResult extends Difference {
  readonly step: number;
  readonly key: string;
  /** The model variable the record belongs to (`slot:m:w` → `w`), or null for optimizer weights. */
  readonly variable: string | null;
  /** The tolerance this record was held to (integers are always compared exactly). */
  readonly tolerance: Tolerance;
  readonly pass: boolean;
}

/** The outcome of replaying one fixture. */
export interface ParityResult {
  readonly fixture: string;
  /** The manifest's path. */
  readonly path: string;
  readonly provenance: ProvenanceKind;
  readonly producer: string;
  /** For tf-golden fixtures: where TF printed the numbers. */
  readonly source?: string;
  readonly flavour: string;
  readonly dtype: string;
  /** The backend that replayed the steps, or `recorded` when an actual trajectory was compared. */
  readonly backend: string;
  /** For a comparison of recorded trajectories: the trajectory under test. */
  readonly actual?: {
    readonly name: string;
    readonly path: string;
    readonly provenance: ProvenanceKind;
    readonly producer: string;
    /** 'variables' when only the `var:` records were compared (slots and optimizer weights were not). */
    readonly scope?: 'all' | 'variables';
  };
  readonly tolerance: Tolerance;
  readonly steps: number;
  /** Every compared tensor, step by step. */
  readonly records: readonly RecordResult[];
  /** Number of tensors compared; a fixture that compares nothing never passes. */
  readonly compared: number;
  readonly pass: boolean;
}

/**
 * Compares one actual tensor with the expected one. int64 / int32 records (iterations) are always
 * held to bit-exactness; float records to `tolerance`. A record that cannot be compared (other
 * dtype, other size) is a FormatError naming `file`, the step and the key.
 */
export function compareRecord(step: number, key: string, actual: Tensor, expected: Tensor, tolerance: Tolerance, file: string): RecordResult {
  const integer = expected.dtype === 'int64' || expected.dtype === 'int32';
  if (actual.size !== expected.size || (integer !== (actual.dtype === 'int64' || actual.dtype === 'int32'))) {
    throw new FormatError(file, `step ${step} '${key}': cannot compare actual ${actual.toString()} with expected ${expected.toString()}`);
  }
  const used: Tolerance = integer ? { kind: 'exact' } : tolerance;
  const diff = integer ? compareIntegers(actual, expected) : compareTensors(actual, expected, used);
  return { step, key, variable: variableOfKey(key), ...diff, tolerance: used, pass: diff.failing === 0 };
}

/** Integer tensors (iterations) compared as integers, exactly, beyond 2^53 too. */
function compareIntegers(actual: Tensor, expected: Tensor): Difference {
  let maxAbs = 0, maxRel = 0, differing = 0, worst = -1;
  for (let i = 0; i < actual.size; i++) {
    const a = BigInt(actual.data[i]!), e = BigInt(expected.data[i]!);
    if (a === e) continue;
    differing++;
    const abs = Number(a > e ? a - e : e - a);
    if (abs > maxAbs || worst < 0) (maxAbs = abs), (worst = i);
    maxRel = Math.max(maxRel, e === 0n ? Infinity : abs / Math.abs(Number(e)));
  }
  // For integers one unit is one ulp.
  return { maxAbs, maxRel, maxUlp: maxAbs, differing, failing: differing, worst, elements: actual.size };
}

/** The verdict rule, in one place: something was compared and every comparison passed. */
export function verdict(records: readonly RecordResult[]): boolean {
  return records.length > 0 && records.every((r) => r.pass);
}

/** Options of {@link runParity}. */
export interface ParityOptions {
  /** A backend or its registered name (default: 'typed'). */
  readonly backend?: string | Backend;
  /** Called after each step (for progress bars). */
  readonly onStep?: (step: number, total: number) => void;
}

function gradientsOf(step: ReadonlyMap<string, Tensor>, fixture: Fixture, vars: ReadonlyMap<string, Variable>): GradientAndVariable[] {
  return fixture.manifest.variables.map((spec) => {
    const variable = vars.get(spec.name)!;
    if (spec.gradient === 'dense') {
      const g = step.get(`grad:${spec.name}`);
      if (!g) throw new FormatError(fixture.path, `step records lack 'grad:${spec.name}'`);
      return [g, variable] as const;
    }
    const indices = step.get(`grad_indices:${spec.name}`);
    const values = step.get(`grad_values:${spec.name}`);
    if (!indices || !values) throw new FormatError(fixture.path, `step records lack grad_indices/grad_values for '${spec.name}'`);
    return [new IndexedSlices(indices as Tensor<'int64'>, values as Tensor<'float32'>, spec.shape), variable] as const;
  });
}

/**
 * Replays a fixture: builds the optimizer from its config and flavour, loads the initial state,
 * applies every step's gradients and compares every expected tensor after each step.
 */
export async function runParity(fixture: Fixture, options: ParityOptions = {}): Promise<ParityResult> {
  const m = fixture.manifest;
  let opt: Nadam;
  try {
    opt = Nadam.fromConfig(m.config, { flavour: m.flavour, backend: options.backend, onWarning: () => {}, path: 'config' });
  } catch (e) {
    // A bad backend name is the caller's error; a config Nadam refuses is the fixture's.
    if (e instanceof KerasoptError && !(e instanceof BackendError)) throw new FormatError(fixture.path, `config: ${e.message}`);
    throw e;
  }
  const vars = new Map<string, Variable>();
  for (const spec of m.variables) {
    const init = fixture.initial.get(`var:${spec.name}`);
    if (!init) throw new FormatError(fixture.path, `initial records lack 'var:${spec.name}'`);
    vars.set(spec.name, new Variable(init.clone(), { name: spec.name }));
  }
  opt.build([...vars.values()]);
  for (const [key, value] of fixture.initial) {
    if (!key.startsWith('var:')) stateVariable(key, opt, vars, fixture.path).assign(value.clone());
  }
  const records: RecordResult[] = [];
  for (let s = 0; s < m.steps; s++) {
    const step = fixture.steps[s]!;
    await opt.applyGradients(gradientsOf(step, fixture, vars));
    for (const [key, expected] of step) {
      if (isGradientKey(key)) continue;
      const actual = stateVariable(key, opt, vars, fixture.path).value;
      records.push(compareRecord(s + 1, key, actual, expected, m.tolerance, fixture.path));
    }
    options.onStep?.(s + 1, m.steps);
  }
  return {
    fixture: m.name,
    path: fixture.path,
    provenance: m.provenance.kind,
    producer: m.provenance.producer,
    ...(m.provenance.source === undefined ? {} : { source: m.provenance.source }),
    flavour: m.flavour,
    dtype: m.dtype,
    backend: opt.backend.name,
    tolerance: m.tolerance,
    steps: m.steps,
    records,
    compared: records.length,
    pass: verdict(records),
  };
}
