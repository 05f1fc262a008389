import type { Backend } from '../backends/backend.js';
import { FormatError } from '../errors.js';
import { Nadam } from '../optimizers/nadam/index.js';
import type { GradientAndVariable } from '../optimizers/optimizer.js';
import { IndexedSlices, Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import { compareTensors, type Difference } from './compare.js';
import type { Fixture, ProvenanceKind, Tolerance } from './fixture.js';

/** One compared tensor at one step. */
export interface RecordResult extends Difference {
  readonly step: number;
  readonly key: string;
  readonly pass: boolean;
}

/** The outcome of replaying one fixture. */
export interface ParityResult {
  readonly fixture: string;
  readonly provenance: ProvenanceKind;
  readonly producer: string;
  readonly flavour: string;
  readonly dtype: string;
  readonly backend: string;
  readonly tolerance: Tolerance;
  readonly steps: number;
  /** Every compared tensor, step by step. */
  readonly records: readonly RecordResult[];
  /** Number of tensors compared; a fixture that compares nothing never passes. */
  readonly compared: number;
  readonly pass: boolean;
}

export interface ParityOptions {
  /** A backend or its registered name (default: 'typed'). */
  readonly backend?: string | Backend;
  /** Called after each step (for progress bars). */
  readonly onStep?: (step: number, total: number) => void;
}

function suffix(key: string, prefix: string): string | null {
  return key.startsWith(prefix) ? key.slice(prefix.length) : null;
}

/** Resolves a state key (var:, slot:<name>:, weight:) to the live variable it names. */
function stateVariable(key: string, opt: Nadam, vars: ReadonlyMap<string, Variable>, file: string): Variable {
  const fail = (why: string): never => {
    throw new FormatError(file, `record '${key}': ${why}`);
  };
  const v = suffix(key, 'var:');
  if (v !== null) return vars.get(v) ?? fail(`no variable named '${v}' in the manifest`);
  const w = suffix(key, 'weight:');
  if (w !== null) {
    if (w === 'iterations') return opt.iterationsVariable;
    try {
      return opt.getWeight(w);
    } catch (e) {
      return fail((e as Error).message);
    }
  }
  const slot = /^slot:([a-z_]+):(.+)$/.exec(key);
  if (slot) {
    const variable = vars.get(slot[2]!) ?? fail(`no variable named '${slot[2]}'`);
    try {
      return opt.getSlot(variable, slot[1]!);
    } catch (e) {
      return fail((e as Error).message);
    }
  }
  return fail('not a state key');
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
  const opt = Nadam.fromConfig(m.config, { flavour: m.flavour, backend: options.backend, onWarning: () => {} });
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
      if (key.startsWith('grad')) continue;
      const actual = stateVariable(key, opt, vars, fixture.path).value;
      const actualTensor = actual.dtype === 'int64' ? Tensor.from(actual.toArray(), 'float64', actual.shape) : actual;
      const expectedTensor = expected.dtype === 'int64' ? Tensor.from(expected.toArray(), 'float64', expected.shape) : expected;
      const diff = compareTensors(actualTensor, expectedTensor, expected.dtype === 'int64' ? { kind: 'exact' } : m.tolerance);
      records.push({ step: s + 1, key, ...diff, pass: diff.failing === 0 });
    }
    options.onStep?.(s + 1, m.steps);
  }
  return {
    fixture: m.name,
    provenance: m.provenance.kind,
    producer: m.provenance.producer,
    flavour: m.flavour,
    dtype: m.dtype,
    backend: opt.backend.name,
    tolerance: m.tolerance,
    steps: m.steps,
    records,
    compared: records.length,
    pass: records.length > 0 && records.every((r) => r.pass),
  };
}
