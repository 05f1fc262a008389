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
): { owners: ModelVariable[]; notes: string[] } {
  const skipped = model.filter((v) => v.trainable === false);
  let candidates = model.filter((v) => v.trainable !== false);
  if (rule === 'position-sorted-by-name') candidates = [...candidates].sort((a, b) => (`${a.name}:0` < `${b.name}:0` ? -1 : `${a.name}:0` > `${b.name}:0` ? 1 : 0));
  const fits = (v: ModelVariable, t: Tensor): boolean => sameShape(v.value.shape, t.shape) && v.value.dtype === t.dtype;
  const ruleText = rule === 'position' ? "the model's trainable variables in model order" : "the model's trainable variables sorted by name (Keras 2.0.0-2.0.6)";
  const notes: string[] = [];
  let owners: ModelVariable[];
  if (candidates.length === slots.length && slots.every((s, i) => fits(candidates[i]!, s.value))) {
    owners = candidates;
    notes.push(`slots tied by position to ${ruleText}${skipped.length ? `; ${skipped.length} non-trainable variables skipped (${names(skipped)})` : ''}, shapes and dtypes checked`);
  } else {
    owners = [];
    let next = 0;
    for (const s of slots) {
      while (next < candidates.length && !fits(candidates[next]!, s.value)) next++;
      const owner = candidates[next];
      if (!owner) {
        throw new FormatError(file, `optimizer weight '${s.name}' ${s.value.dtype}${shapeToString(s.value.shape)} matches no remaining model variable in ${ruleText} (${slots.length} slotted variables, ${candidates.length} trainable model variables)`);
      }
      owners.push(owner);
      next++;
    }
    const unused = candidates.filter((v) => !owners.includes(v));
    notes.push(
      `the model has ${candidates.length} trainable variables for ${slots.length} slotted ones: each slot took the next variable of its shape and dtype in ${ruleText}; not slotted: ${names(unused)}`,
    );
  }
  const shared = slots.filter((s, i) => candidates.some((c) => c !== owners[i] && fits(c, s.value))).length;
  if (shared > 0) notes.push(`${shared} of ${slots.length} slotted variables share their shape with another candidate: their position in ${ruleText} decided the tie`);
  return { owners, notes };
}

function names(vars: readonly ModelVariable[]): string {
  const shown = vars.slice(0, 4).map((v) => v.name).join(', ');
  return vars.length > 4 ? `${shown}, ... ${vars.length} in all` : shown || 'none';
}
