import { FormatError } from '../errors.js';
import { holds, mayBeAbsent, slotShape, type OptimizerDescriptor, type SlotSpec } from '../optimizers/catalog/index.js';
import { sameShape, shapeToString, type Tensor } from '../tensor/tensor.js';
import type { ModelVariable, SlotState, StoredWeight, WeightRole } from './state.js';
import { tieInOrder, type PositionRule } from './tie.js';

/**
 * The engine that reads any described optimizer's saved list (src/optimizers/catalog): the
 * descriptor says which slots each variable has and in which order, the caller says how the
 * release lays out the list (what comes before the slots, whether slots tie by position or name).
 */

/** What a read of a saved list produced: the weights with their roles, the slots tied to variables. */
export interface TiedState {
  readonly weights: StoredWeight[];
  readonly slots: SlotState[];
  /** The model variables that own slots, in the optimizer's order. */
  readonly variables: ModelVariable[];
  /** The iteration count (null when the release does not save it). */
  readonly iterations: number | null;
  /** The learning_rate variable's value when the list holds it. */
  readonly learningRate: number | null;
  readonly notes: string[];
}

/** How a positional release lays out the list around the slots. */
export interface PositionalLayout {
  /** Whether a learning_rate scalar follows iterations (Keras 3 without a schedule). */
  readonly learningRate: boolean;
  /** Whether the descriptor's extras follow the slots instead of preceding them (Keras 3.10+ Nadam). */
  readonly extrasAfterSlots?: boolean;
  readonly rule: PositionRule;
  /** Whether iterations must be int64 (Keras 3, TF 2.11+); else float32 is accepted (Keras 2.0.x). */
  readonly int64Iterations?: boolean;
  /** The model's layer order is a guess: the tie may reorder whole layers (see tieInOrder). */
  readonly reorderLayers?: boolean;
}

/** The slots each variable has under `config`, as the groups order them (empty groups dropped). */
export function groupsUnder(d: OptimizerDescriptor, config: Readonly<Record<string, unknown>>): SlotSpec[][] {
  return d.slotGroups.map((g) => g.filter((s) => holds(s, config))).filter((g) => g.length > 0);
}

/** One entry of a positional list. */
type Entry = { kind: 'iterations' } | { kind: 'learning_rate' } | { kind: 'extra'; name: string } | { kind: 'slot'; spec: SlotSpec; variable: number };

/** The list a positional release saves for `n` slotted variables. */
export function entriesFor(d: OptimizerDescriptor, groups: readonly SlotSpec[][], n: number, layout: PositionalLayout): Entry[] {
  const out: Entry[] = [];
  if (d.savesIterations) out.push({ kind: 'iterations' });
  if (layout.learningRate) out.push({ kind: 'learning_rate' });
  const extras: Entry[] = d.extras.map((name) => ({ kind: 'extra', name }));
  if (!layout.extrasAfterSlots) out.push(...extras);
  for (const g of groups) for (let v = 0; v < n; v++) for (const spec of g) out.push({ kind: 'slot', spec, variable: v });
  if (layout.extrasAfterSlots) out.push(...extras);
  return out;
}

function checkIterations(label: string, w: StoredWeight, int64: boolean): number {
  const ok = w.value.dtype === 'int64' || (!int64 && (w.value.dtype === 'int32' || w.value.dtype === 'float32' || w.value.dtype === 'float64'));
  if (!ok || w.value.size !== 1) throw new FormatError(label, `optimizer weight '${w.name}' (iterations) is ${w.value.dtype}${shapeToString(w.value.shape)}, expected an ${int64 ? 'int64' : 'int64 (or Keras 2.0.x float32)'} scalar`);
  const n = Number(w.value.data[0]);
  if (!Number.isSafeInteger(n) || n < 0) throw new FormatError(label, `optimizer weight '${w.name}' holds ${n} iterations, expected a whole number >= 0`);
  return n;
}

function checkScalar(label: string, w: StoredWeight, what: string): void {
  if (!w.value.dtype.startsWith('float') || w.value.size !== 1) throw new FormatError(label, `optimizer weight '${w.name}' (${what}) is ${w.value.dtype}${shapeToString(w.value.shape)}, expected a float scalar`);
}

/** Whether `t` is a slot of kind `spec` for variable `v`: its shape from v's, and v's dtype (a [1] placeholder is float32). */
function slotFits(spec: SlotSpec, v: { readonly value: Tensor }, t: Tensor): boolean {
  const shape = slotShape(spec, v.value.shape);
  if (shape === null || !sameShape(t.shape, shape)) return false;
  // placeholders ([1] vhats, Adafactor's rank < 2 r and c) have their own dtype
  return (spec.shape ?? 'variable') === 'variable' ? t.dtype === v.value.dtype : true;
}

/**
 * Reads a positional list (Keras 2 .h5, Keras 3 / TF 2.12+ saving_lib files): the count of slotted
 * variables follows from the list's length, the slots tie to the model's trainable variables in the
 * order `layout.rule` names, and every slot's shape and dtype is checked against its variable.
 */
export function readPositional(label: string, d: OptimizerDescriptor, config: Readonly<Record<string, unknown>>, weights: readonly StoredWeight[], model: readonly ModelVariable[], layout: PositionalLayout): TiedState {
  const groups = groupsUnder(d, config);
  if (groups.flat().some(mayBeAbsent)) throw new FormatError(label, `a ${d.className} of ${d.flavour} keeps some slots only for variables of rank >= 2: kerasopt ties such lists by name (.h5) but not by position`);
  const perVariable = groups.reduce((k, g) => k + g.length, 0);
  const fixed = (d.savesIterations ? 1 : 0) + (layout.learningRate ? 1 : 0);
  const built = weights.length > fixed;
  const rest = weights.length - fixed - (built ? d.extras.length : 0);
  if (!built && weights.length !== fixed) throw new FormatError(label, `${weights.length} optimizer weights, expected ${fixed} before the first build`);
  if (built && (perVariable === 0 ? rest !== 0 : rest <= 0 || rest % perVariable !== 0)) {
    throw new FormatError(label, `${weights.length} optimizer weights leave ${rest} for the slots; a ${d.className} keeps ${perVariable} per variable (${groups.flat().map((s) => s.name).join(', ') || 'none'})`);
  }
  const n = built && perVariable > 0 ? rest / perVariable : 0;
  const entries = built ? entriesFor(d, groups, n, layout) : entriesFor(d, [], 0, { ...layout, extrasAfterSlots: false }).filter((e) => e.kind !== 'extra');
  let iterations: number | null = null;
  let learningRate: number | null = null;
  entries.forEach((e, i) => {
    const w = weights[i]!;
    if (e.kind === 'iterations') iterations = checkIterations(label, w, layout.int64Iterations ?? false);
    else if (e.kind === 'learning_rate') {
      if (w.value.dtype !== 'float32' || w.value.rank !== 0) throw new FormatError(label, `${w.name} (learning_rate) is ${w.value.dtype}${shapeToString(w.value.shape)}, expected a float32 scalar`);
      learningRate = w.value.get(0);
    } else if (e.kind === 'extra') checkScalar(label, w, e.name);
  });
  // each variable's slots, in the order the groups list them
  const perVar: { spec: SlotSpec; weight: StoredWeight }[][] = Array.from({ length: n }, () => []);
  entries.forEach((e, i) => {
    if (e.kind === 'slot') perVar[e.variable]!.push({ spec: e.spec, weight: weights[i]! });
  });
  const probes = perVar.map((slots) => slots.find((s) => (s.spec.shape ?? 'variable') === 'variable') ?? slots[0]!);
  const tied = n === 0 ? { owners: [] as ModelVariable[], notes: [] as string[] } : tieInOrder(label, probes.map((p) => p.weight), model, layout.rule, (v, i) => perVar[i]!.every((s) => slotFits(s.spec, v, s.weight.value)), layout.reorderLayers ?? false);
  const slots: SlotState[] = [];
  const roles = new Map<number, WeightRole>();
  entries.forEach((e, i) => {
    if (e.kind === 'slot') {
      const owner = tied.owners[e.variable]!;
      slots.push({ variable: owner.name, slot: e.spec.name, weightName: weights[i]!.name, value: weights[i]!.value, inModel: true });
      roles.set(i, { kind: 'slot', variable: owner.name, slot: e.spec.name });
    } else roles.set(i, { kind: e.kind === 'extra' ? 'schedule' : e.kind });
  });
  const variables = built ? tied.owners : model.filter((v) => v.trainable !== false);
  return { weights: weights.map((w, i) => ({ ...w, role: roles.get(i)! })), slots, variables, iterations, learningRate, notes: tied.notes };
}

/** How a named release spells a slot: '<optimizer>/<variable>/<slot>' (optimizer_v2) or '<optimizer>/<slot>/<variable>' (TF 2.11+). */
export type SlotNaming = 'variable-then-slot' | 'slot-then-variable';

/**
 * Reads a list whose slots carry their variable's name (tf.keras optimizer_v2 and TF 2.11-2.15 .h5):
 * iterations, then the descriptor's extras by position, then slots tied by name. A slot of a variable
 * the saved model lacks is kept (inModel false; an optimizer reused across models saves those).
 * Every variable must hold exactly the slots the descriptor and config name, shapes checked.
 */
export function readNamed(label: string, d: OptimizerDescriptor, config: Readonly<Record<string, unknown>>, weights: readonly StoredWeight[], model: readonly ModelVariable[], naming: SlotNaming): TiedState {
  const specs = groupsUnder(d, config).flat();
  const names = new Set(specs.map((s) => s.name));
  const head = 1 + d.extras.length;
  const iterations = checkIterations(label, weights[0]!, true);
  d.extras.forEach((name, i) => {
    const w = weights[1 + i];
    if (!w || !w.name.replace(/:\d+$/, '').endsWith(name)) throw new FormatError(label, `optimizer weight ${1 + i} should be ${d.className}'s ${name}, found '${w?.name ?? 'nothing'}'`);
    checkScalar(label, w, name);
  });
  const modelNames = model.map((v) => v.name);
  const byName = new Map(model.map((v) => [v.name, v]));
  const optName = typeof config.name === 'string' ? config.name : d.className;
  const parse = (path: string): { variable: string; slot: string } | null => {
    for (const slot of names) {
      // the longest model variable the path names wins (scopes such as 'training/' may precede it)
      const owner = modelNames
        .filter((n) => (naming === 'variable-then-slot' ? path.endsWith(`/${n}/${slot}`) : path === `${slot}/${n}` || path.endsWith(`/${slot}/${n}`)))
        .sort((a, b) => b.length - a.length)[0];
      if (owner) return { variable: owner, slot };
    }
    // a variable the saved model lacks: the part after the optimizer's scope
    if (naming === 'variable-then-slot') {
      const cut = path.lastIndexOf('/');
      const slot = path.slice(cut + 1);
      const rest = path.slice(0, cut);
      const at = rest.indexOf(`${optName}/`);
      const variable = at >= 0 ? rest.slice(at + optName.length + 1) : rest.slice(rest.indexOf('/') + 1);
      return cut > 0 && rest.includes('/') && variable ? { variable, slot } : null;
    }
    const m = new RegExp(`(?:^|/)(${[...names].map((n) => n.replace(/\W/g, '\\$&')).join('|')})/(.+)$`).exec(path);
    return m ? { variable: m[2]!, slot: m[1]! } : null;
  };
  const pattern = naming === 'variable-then-slot' ? `'${optName}/<variable>/<slot>:0'` : `'${optName}/<slot>/<variable>:0'`;
  const slots: SlotState[] = weights.slice(head).map((w) => {
    const parsed = parse(w.name.replace(/:\d+$/, ''));
    if (!parsed || !names.has(parsed.slot)) {
      throw new FormatError(label, `optimizer weight '${w.name}' is not named ${pattern} with a slot of ${d.className} (${[...names].join(', ') || 'none'} under this config)`);
    }
    const owner = byName.get(parsed.variable);
    const spec = specs.find((s) => s.name === parsed.slot)!;
    if (owner && !slotFits(spec, owner, w.value)) {
      throw new FormatError(label, `optimizer weight '${w.name}' is ${w.value.dtype}${shapeToString(w.value.shape)} but model variable '${parsed.variable}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
    }
    return { variable: parsed.variable, slot: parsed.slot, weightName: w.name, value: w.value, inModel: owner !== undefined };
  });
  const held = new Map<string, Set<string>>();
  for (const s of slots) {
    const set = held.get(s.variable) ?? new Set<string>();
    if (set.has(s.slot)) throw new FormatError(label, `optimizer weight '${s.weightName}' is a second ${s.slot} slot of '${s.variable}'`);
    set.add(s.slot);
    held.set(s.variable, set);
  }
  for (const [variable, set] of held) {
    const owner = byName.get(variable);
    const missing = specs.filter((sp) => !set.has(sp.name) && !(mayBeAbsent(sp) && owner && slotShape(sp, owner.value.shape) === null)).map((sp) => sp.name);
    if (missing.length > 0) throw new FormatError(label, `variable '${variable}' has slots ${[...set].join(', ')} but a ${d.className} under this config keeps ${[...names].join(', ')} (missing ${missing.join(', ')})`);
  }
  const roles = weights.map((w, i): StoredWeight => {
    if (i === 0) return { ...w, role: { kind: 'iterations' } };
    if (i < head) return { ...w, role: { kind: 'schedule' } };
    const s = slots[i - head]!;
    return { ...w, role: { kind: 'slot', variable: s.variable, slot: s.slot } };
  });
  const variables = [...held.keys()].filter((n) => byName.has(n)).map((n) => byName.get(n)!);
  const orphans = [...held.keys()].filter((n) => !byName.has(n));
  const notes = ['slots tied to model variables by name, shapes checked'];
  if (orphans.length > 0) notes.push(`${orphans.length} variables have slots but are not in the saved model (the optimizer was reused across models): ${orphans.slice(0, 4).join(', ')}${orphans.length > 4 ? ', ...' : ''}; kept as read`);
  return { weights: roles, slots, variables, iterations, learningRate: null, notes };
}
