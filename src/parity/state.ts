import { FormatError } from '../errors.js';
import type { Nadam } from '../optimizers/nadam/index.js';
import type { Variable } from '../tensor/variable.js';

/**
 * Fixture state keys name what an optimizer holds, independently of any implementation:
 * `var:<variable>`, `slot:<slot>:<variable>` and `weight:<iterations|momentum_cache|m_schedule|u_product>`.
 * Gradients fed at a step are `grad:<variable>` (dense) or `grad_indices:<variable>` + `grad_values:<variable>`.
 */
export const STATE_KEY = /^(var|slot:[a-z_]+|weight):[^\s]+$/;
export const GRADIENT_KEY = /^(grad|grad_indices|grad_values):[^\s]+$/;

/** Whether a record key holds a gradient fed to the step rather than state expected after it. */
export function isGradientKey(key: string): boolean {
  return GRADIENT_KEY.test(key);
}

/** The model variable a key belongs to (`slot:m:w` → `w`), or null for optimizer weights. */
export function variableOfKey(key: string): string | null {
  const slot = /^slot:[a-z_]+:(.+)$/.exec(key);
  if (slot) return slot[1]!;
  const plain = /^(?:var|grad|grad_indices|grad_values):(.+)$/.exec(key);
  return plain ? plain[1]! : null;
}

function suffix(key: string, prefix: string): string | null {
  return key.startsWith(prefix) ? key.slice(prefix.length) : null;
}

/** Resolves a state key to the live kerasopt variable it names; a FormatError naming `file` and the key otherwise. */
export function stateVariable(key: string, opt: Nadam, vars: ReadonlyMap<string, Variable>, file: string): Variable {
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

/**
 * Every state key of a built kerasopt Nadam over `vars`, in fixture order: the variables, then each
 * slot of each variable, then iterations and the momentum-schedule weight.
 */
export function nadamStateKeys(opt: Nadam, vars: ReadonlyMap<string, Variable>): string[] {
  const names = [...vars.keys()];
  return [
    ...names.map((n) => `var:${n}`),
    ...opt.recipe.slotNames.flatMap((slot) => names.map((n) => `slot:${slot}:${n}`)),
    'weight:iterations',
    `weight:${opt.recipe.scheduleWeight}`,
  ];
}
