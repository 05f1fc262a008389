import type { Backend } from '../backends/backend.js';
import { KerasValueError } from '../errors.js';
import type { Flavour } from '../optimizers/flavour.js';
import { Nadam } from '../optimizers/nadam/index.js';
import { IndexedSlices, Tensor } from '../tensor/tensor.js';
import { Variable } from '../tensor/variable.js';
import type { Fixture } from './fixture.js';
import { nadamStateKeys, stateVariable, STATE_KEY } from './state.js';
import type { Trajectory } from './write.js';

/** The gradients of one step, keyed by variable name: dense tensors or IndexedSlices. */
export type StepGradients = ReadonlyMap<string, Tensor | IndexedSlices>;

/**
 * Any optimizer implementation, seen from the harness: given the state before a step (keyed like a
 * fixture: `var:w`, `slot:m:w`, `weight:iterations`, ...) and the step's gradients, it returns the
 * state after the step. The maps it receives are copies; what it returns is recorded as is, so it
 * records exactly the keys it can produce (an implementation without a momentum cache omits it).
 */
export type Implementation = (
  state: ReadonlyMap<string, Tensor>,
  gradients: StepGradients,
  step: number,
) => ReadonlyMap<string, Tensor> | Promise<ReadonlyMap<string, Tensor>>;

/** What an implementation is fed to record a trajectory: initial state and per-step gradients. */
export interface RecordInputs {
  /** The state before step 1; must hold `var:<name>` for every variable. */
  readonly initial: ReadonlyMap<string, Tensor>;
  /** The gradients fed at each step (their count is the number of steps), or a function of the step and the current state. */
  readonly gradients: readonly StepGradients[] | ((step: number, state: ReadonlyMap<string, Tensor>) => StepGradients);
  /** Number of steps when `gradients` is a function. */
  readonly steps?: number;
  /** Called after each step (progress). */
  readonly onStep?: (step: number, total: number) => void;
}

const copy = (m: ReadonlyMap<string, Tensor>): Map<string, Tensor> => new Map([...m].map(([k, t]) => [k, t.clone()]));

/** Gradient records of one step, in fixture keys. */
export function gradientRecords(gradients: StepGradients): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, g] of gradients) {
    if (g instanceof IndexedSlices) {
      out.set(`grad_indices:${name}`, g.indices.clone());
      out.set(`grad_values:${name}`, g.values.clone());
    } else out.set(`grad:${name}`, g.clone());
  }
  return out;
}

/**
 * Runs `implementation` step by step and records its trajectory: per step the gradients it was fed
 * and the state it returned. Write the result with `writeFixture` to compare it with any fixture.
 */
export async function recordTrajectory(implementation: Implementation, inputs: RecordInputs): Promise<Trajectory> {
  const total = typeof inputs.gradients === 'function' ? inputs.steps ?? 0 : inputs.gradients.length;
  if (!(total >= 1)) throw new KerasValueError('recordTrajectory needs at least one step (give gradients per step, or steps with a gradient function)');
  let state: ReadonlyMap<string, Tensor> = copy(inputs.initial);
  const steps: Map<string, Tensor>[] = [];
  for (let s = 1; s <= total; s++) {
    const grads = typeof inputs.gradients === 'function' ? inputs.gradients(s, state) : inputs.gradients[s - 1]!;
    const next = await implementation(copy(state), grads, s);
    for (const key of next.keys()) {
      if (!STATE_KEY.test(key)) throw new KerasValueError(`the implementation returned '${key}' at step ${s}; state keys are var:<v>, slot:<slot>:<v>, weight:<w>`);
    }
    const record = gradientRecords(grads);
    for (const [k, t] of next) record.set(k, t.clone());
    steps.push(record);
    state = next;
    inputs.onStep?.(s, total);
  }
  return { initial: copy(inputs.initial), steps };
}

/** The inputs of a fixture (its initial state and the gradients of every step), to feed another implementation. */
export function fixtureInputs(fixture: Fixture): RecordInputs {
  const sparse = new Set(fixture.manifest.variables.filter((v) => v.gradient === 'sparse').map((v) => v.name));
  const gradients = fixture.steps.map((step) => {
    const g = new Map<string, Tensor | IndexedSlices>();
    for (const v of fixture.manifest.variables) {
      if (!sparse.has(v.name)) {
        const t = step.get(`grad:${v.name}`);
        if (t) g.set(v.name, t);
        continue;
      }
      const indices = step.get(`grad_indices:${v.name}`);
      const values = step.get(`grad_values:${v.name}`);
      if (indices && values) g.set(v.name, new IndexedSlices(indices as Tensor<'int64'>, values as Tensor<'float32'>, v.shape));
    }
    return g;
  });
  return { initial: fixture.initial, gradients };
}

/**
 * kerasopt's own Nadam as an `Implementation`. Each call loads the state it is given, applies the
 * gradients, and returns every state key (variables, both slots, iterations, the schedule weight).
 * A trajectory recorded from it is kerasopt's output: label it `external` with a producer that says
 * so, never `tensorflow` or `reference`.
 */
export function nadamImplementation(config: Readonly<Record<string, unknown>>, flavour: Flavour, backend?: string | Backend): Implementation {
  let opt: Nadam | null = null;
  const vars = new Map<string, Variable>();
  return async (state, gradients) => {
    if (!opt) {
      opt = Nadam.fromConfig(config, { flavour, backend, onWarning: () => {} });
      for (const [key, t] of state) if (key.startsWith('var:')) vars.set(key.slice(4), new Variable(t.clone(), { name: key.slice(4) }));
      opt.build([...vars.values()]);
    }
    const o = opt;
    for (const [key, t] of state) stateVariable(key, o, vars, '<nadamImplementation>').assign(t);
    await o.applyGradients([...gradients].map(([name, g]) => {
      const v = vars.get(name);
      if (!v) throw new KerasValueError(`gradient for unknown variable '${name}'; the state holds ${[...vars.keys()].join(', ')}`);
      return [g, v] as const;
    }));
    return new Map(nadamStateKeys(o, vars).map((key) => [key, stateVariable(key, o, vars, '<nadamImplementation>').read()]));
  };
}
