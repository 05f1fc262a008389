import { FormatError } from '../errors.js';
import { sameShape, shapeToString, type Tensor } from '../tensor/tensor.js';
import type { ModelVariable } from './state.js';

/**
 * How positional slots found their variables: `position` is the optimizer's variable list, i.e. the
 * model's trainable variables in model order; `position-sorted-by-name` is that list sorted by
 * variable name, as Keras 2.0.0-2.0.6 did.
 */
export type PositionRule = 'position' | 'position-sorted-by-name';

/**
 * Ties the i-th slotted variable of a positional layout (given by its first slot's tensor) to a
 * model variable. The model's trainable variables, in the order the saving code used, are the
 * candidates; variables the file marks as not trainable are skipped. When their count equals the
 * slot count, slot i takes candidate i (shapes and dtypes checked); otherwise each slot takes the
 * next candidate of its shape, and a note says so. Notes also say how many slots had another
 * variable of the same shape, i.e. where the order, not the shape, decided.
 */
export function tieInOrder(
  file: string,
  slots: readonly { readonly name: string; readonly value: Tensor }[],
  model: readonly ModelVariable[],
  rule: PositionRule,
  /** Whether candidate `v` can own the i-th slotted variable (default: same shape and dtype as its slot). */
  fitsAt?: (v: ModelVariable, i: number) => boolean,
  /**
   * The model order is a guess (a saving_lib file without a model config: layers sorted by name):
   * when no order-keeping tie fits, the layers may be put in the one order whose variables match
   * the slots' shapes.
   */
  reorderLayers = false,
): { owners: ModelVariable[]; notes: string[] } {
  const skipped = model.filter((v) => v.trainable === false);
  let candidates = model.filter((v) => v.trainable !== false);
  if (rule === 'position-sorted-by-name') candidates = [...candidates].sort((a, b) => (`${a.name}:0` < `${b.name}:0` ? -1 : `${a.name}:0` > `${b.name}:0` ? 1 : 0));
  const sameKind = (v: ModelVariable, t: Tensor): boolean => sameShape(v.value.shape, t.shape) && v.value.dtype === t.dtype;
  const fitsSlot = (v: ModelVariable, i: number): boolean => (fitsAt ? fitsAt(v, i) : sameKind(v, slots[i]!.value));
  const ruleText = rule === 'position' ? "the model's trainable variables in model order" : "the model's trainable variables sorted by name (Keras 2.0.0-2.0.6)";
  const notes: string[] = [];
  let owners: ModelVariable[];
  if (candidates.length === slots.length && slots.every((_, i) => fitsSlot(candidates[i]!, i))) {
    owners = candidates;
    notes.push(`slots tied by position to ${ruleText}${skipped.length ? `; ${skipped.length} non-trainable variables skipped (${names(skipped)})` : ''}, shapes and dtypes checked`);
  } else {
    owners = [];
    let next = 0;
    let misfit: string | null = null;
    for (const [i, s] of slots.entries()) {
      while (next < candidates.length && !fitsSlot(candidates[next]!, i)) next++;
      const owner = candidates[next];
      if (!owner) {
        misfit = `optimizer weight '${s.name}' ${s.value.dtype}${shapeToString(s.value.shape)} matches no remaining model variable in ${ruleText} (${slots.length} slotted variables, ${candidates.length} trainable model variables)`;
        break;
      }
      owners.push(owner);
      next++;
    }
    if (misfit === null) {
      const unused = candidates.filter((v) => !owners.includes(v));
      notes.push(`the model has ${candidates.length} trainable variables for ${slots.length} slotted ones: each slot took the next variable of its shape and dtype in ${ruleText}; not slotted: ${names(unused)}`);
    } else {
      const reordered = reorderLayers ? layerOrder(candidates, slots.length, fitsSlot) : null;
      if (!reordered) throw new FormatError(file, misfit);
      owners = reordered.owners;
      notes.push(`the layers sorted by name do not match the slots; the one order of layers whose variables match the slots' shapes was taken: ${reordered.layers.join(', ')}`);
    }
  }
  const shared = slots.filter((_, i) => candidates.some((c) => c !== owners[i] && fitsSlot(c, i))).length;
  if (shared > 0) notes.push(`${shared} of ${slots.length} slotted variables share their shape with another candidate: their position in ${ruleText} decided the tie`);
  return { owners, notes };
}

/** A variable's layer: its name without the last part ('layers/dense/vars/0' -> 'layers/dense/vars'). */
function layerOf(v: ModelVariable): string {
  return v.name.slice(0, Math.max(0, v.name.lastIndexOf('/')));
}

/**
 * The unique order of whole layers whose trainable variables, one after the other, fit the `count`
 * slotted variables (layers the optimizer never slotted may be left out); null when none or several.
 */
function layerOrder(candidates: readonly ModelVariable[], count: number, fits: (v: ModelVariable, i: number) => boolean): { owners: ModelVariable[]; layers: string[] } | null {
  const layers = [...new Set(candidates.map(layerOf))].map((name) => ({ name, vars: candidates.filter((v) => layerOf(v) === name) }));
  const used = new Array<boolean>(layers.length).fill(false);
  const path: number[] = [];
  let found: number[] | null = null;
  let solutions = 0;
  const search = (at: number): void => {
    if (solutions > 1) return;
    if (at === count) {
      solutions++;
      found = [...path];
      return;
    }
    layers.forEach((layer, k) => {
      if (used[k] || at + layer.vars.length > count || !layer.vars.every((v, j) => fits(v, at + j))) return;
      used[k] = true;
      path.push(k);
      search(at + layer.vars.length);
      path.pop();
      used[k] = false;
    });
  };
  search(0);
  if (solutions !== 1 || found === null) return null;
  const order = found as number[];
  return { owners: order.flatMap((k) => layers[k]!.vars), layers: order.map((k) => layers[k]!.name) };
}

function names(vars: readonly ModelVariable[]): string {
  const shown = vars.slice(0, 4).map((v) => v.name).join(', ');
  return vars.length > 4 ? `${shown}, ... ${vars.length} in all` : shown || 'none';
}
