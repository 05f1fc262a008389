import { KerasValueError } from '../../errors.js';
import { shapeToString, type Tensor } from '../../tensor/tensor.js';

/** A model variable as the matcher sees it: its name in its file, and its value (dtype, shape). */
export interface NamedVariable {
  readonly name: string;
  readonly value: Tensor;
}

/** How one target variable found its source variable. */
export type MatchRule = 'map' | 'name' | 'layer name and position' | 'order and shape';

/** One row of the match table: a target variable and the source variable whose slots it receives. */
export interface VariableMatch {
  readonly source: string;
  readonly target: string;
  readonly rule: MatchRule;
  readonly shape: readonly number[];
  readonly dtype: string;
}

/** The whole match: one row per target variable, and the source variables no target variable takes. */
export interface MatchTable {
  readonly rows: readonly VariableMatch[];
  /** Source variables (with slots) the target lacks: their slots are reported, not written. */
  readonly unmatchedSources: readonly string[];
  /** How the table was made, in words. */
  readonly how: string;
}

/**
 * A variable name split into the layer that owns it and the variable within the layer, when the
 * name carries a layer name:
 * - tf.keras / Keras 2 / TF 2.11+ .h5: 'dense/kernel' -> layer 'dense', variable 'kernel';
 * - Keras 3 (and TF 2.12-2.15 saving_lib) paths: 'layers/dense/vars/0' -> layer 'dense', variable #0.
 * TF checkpoint paths ('layer_with_weights-0/kernel', 'model/layer-1/bias') name no layer: null.
 */
export function layerOf(name: string): { layer: string; variable: string; scheme: 'h5' | 'keras3' } | null {
  const k3 = /^layers\/(.+)\/vars\/(\d+)$/.exec(name);
  if (k3) return { layer: k3[1]!, variable: k3[2]!, scheme: 'keras3' };
  if (/(^|\/)(layer_with_weights|layer)-\d+(\/|$)/.test(name) || name.includes('.OPTIMIZER_SLOT')) return null;
  const cut = name.lastIndexOf('/');
  if (cut <= 0) return null;
  return { layer: name.slice(0, cut), variable: name.slice(cut + 1), scheme: 'h5' };
}

const describe = (t: Tensor): string => `${t.dtype}${shapeToString(t.shape)}`;
const fits = (a: Tensor, b: Tensor): boolean => a.dtype === b.dtype && shapeToString(a.shape) === shapeToString(b.shape);

/**
 * Matches every target variable to one source variable, so that the target's slots take the
 * source's values:
 * 1. `map` pairs (SOURCE_VAR=TARGET_VAR) first;
 * 2. by name when both sides carry layer names: the same name, or (between an .h5 name and a Keras 3
 *    path) the same layer name and the same position among the layer's variables;
 * 3. else by the target's saving order: the i-th target variable takes the i-th source variable.
 * Every pair must agree in dtype and shape; any target variable left without a source, a source
 * taken twice, or a disagreement is a KerasValueError naming the variables (use `map` to decide).
 * Source variables no target variable takes are listed in `unmatchedSources`.
 */
export function matchVariables(sources: readonly NamedVariable[], targets: readonly NamedVariable[], map: ReadonlyMap<string, string> = new Map()): MatchTable {
  const bySource = new Map(sources.map((s) => [s.name, s]));
  const targetNames = new Set(targets.map((t) => t.name));
  for (const [s, t] of map) {
    if (!bySource.has(s)) throw new KerasValueError(`--map ${s}=${t}: the source has no variable '${s}' with slots (it has ${sources.map((v) => v.name).join(', ')})`);
    if (!targetNames.has(t)) throw new KerasValueError(`--map ${s}=${t}: the target has no trainable variable '${t}' (it has ${targets.map((v) => v.name).join(', ')})`);
  }
  const mappedTo = new Map([...map].map(([s, t]) => [t, s]));
  const rest = targets.filter((t) => !mappedTo.has(t.name));
  const free = sources.filter((s) => ![...map.keys()].includes(s.name));
  const split = (vs: readonly NamedVariable[]) => vs.map((v) => layerOf(v.name));
  const named = split(rest).every((x) => x !== null) && split(free).every((x) => x !== null) && rest.length > 0;
  const pairs = new Map<string, { source: string; rule: MatchRule }>();
  for (const [t, s] of mappedTo) pairs.set(t, { source: s, rule: 'map' });
  let how: string;
  if (named) {
    how = 'by name (both files name each variable by its layer)';
    const position = (vs: readonly NamedVariable[], v: NamedVariable): number => vs.filter((x) => layerOf(x.name)!.layer === layerOf(v.name)!.layer).indexOf(v);
    for (const t of rest) {
      const lt = layerOf(t.name)!;
      const same = free.find((s) => s.name === t.name);
      if (same) {
        pairs.set(t.name, { source: same.name, rule: 'name' });
        continue;
      }
      const candidates = free.filter((s) => layerOf(s.name)!.layer === lt.layer);
      const mixed = candidates.length > 0 && layerOf(candidates[0]!.name)!.scheme !== lt.scheme;
      const s = mixed ? candidates[position(rest, t)] : undefined;
      if (!s) {
        throw new KerasValueError(
          `no source variable for the target's '${t.name}' ${describe(t.value)}: both files name their variables and none matches ` +
            `(source: ${free.map((v) => v.name).join(', ')}). Say which with --map SOURCE_VAR=${t.name}`,
        );
      }
      pairs.set(t.name, { source: s.name, rule: 'layer name and position' });
    }
  } else {
    how = "by the target's saving order and shape (the names do not both carry layer names)";
    if (free.length !== rest.length) {
      throw new KerasValueError(
        `cannot match by order: the source has ${free.length} variables with slots (${free.map((v) => `${v.name} ${describe(v.value)}`).join(', ')}), ` +
          `the target ${rest.length} trainable variables (${rest.map((v) => `${v.name} ${describe(v.value)}`).join(', ')}). Say which goes where with --map SOURCE_VAR=TARGET_VAR`,
      );
    }
    rest.forEach((t, i) => pairs.set(t.name, { source: free[i]!.name, rule: 'order and shape' }));
  }
  const taken = new Map<string, string>();
  // the --map pairs are checked first, so that a wrong pair is named before what the rest of the matching makes of it
  const ordered = [...targets].sort((a, b) => Number(pairs.get(b.name)!.rule === 'map') - Number(pairs.get(a.name)!.rule === 'map'));
  const checked = new Map(ordered.map((t): [string, VariableMatch] => {
    const p = pairs.get(t.name)!;
    const s = bySource.get(p.source)!;
    if (taken.has(s.name)) throw new KerasValueError(`the source's '${s.name}' would go to both '${taken.get(s.name)}' and '${t.name}' in the target; say which with --map`);
    taken.set(s.name, t.name);
    if (!fits(s.value, t.value)) {
      throw new KerasValueError(
        `the source's '${s.name}' is ${describe(s.value)} but the target's '${t.name}' (matched ${p.rule}) is ${describe(t.value)}: ` +
          'not the same model, or not in the same order (say which goes where with --map SOURCE_VAR=TARGET_VAR)',
      );
    }
    return [t.name, { source: s.name, target: t.name, rule: p.rule, shape: [...t.value.shape], dtype: t.value.dtype }];
  }));
  const rows = targets.map((t) => checked.get(t.name)!);
  return { rows, unmatchedSources: sources.filter((s) => !taken.has(s.name)).map((s) => s.name), how };
}

/** The match table as text, one row per target variable (for the CLI and the result's report). */
export function matchTableText(table: MatchTable): string {
  const rows = [['source variable', 'target variable', 'shape', 'dtype', 'matched by'], ...table.rows.map((r) => [r.source, r.target, `[${r.shape.join(', ')}]`, r.dtype, r.rule])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}
