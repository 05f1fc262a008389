import type { Flavour } from '../flavour.js';

/**
 * A config condition under which an optimizer creates (and saves) a slot: `truthy` for flags such as
 * amsgrad and centered, `nonzero` for numbers such as momentum (Keras creates the momentum slot only
 * when momentum is not 0); `falsy` for a placeholder made only without a flag (Keras 2 Adam's [1] vhats).
 */
export interface SlotCondition {
  readonly key: string;
  readonly is: 'truthy' | 'falsy' | 'nonzero';
  /** The value Keras uses when the config omits the key. */
  readonly default: unknown;
}

/**
 * The shape a slot has, from its variable's shape: `variable` (the same), `one` (a [1] placeholder:
 * Keras 2.1.3+ Adam creates `K.zeros(1)` vhats without amsgrad), or Adafactor's factored second
 * moments: `row` (the shape without the last axis) and `col` (without the one before it), scalar
 * placeholders for a variable of rank < 2 (Keras 3); `row-or-none` / `col-or-none` the same but no
 * slot at all for rank < 2 (TF 2.11-2.15 keep those placeholders out of `variables`).
 */
export type SlotShape = 'variable' | 'one' | 'row' | 'col' | 'row-or-none' | 'col-or-none';

export interface SlotSpec {
  /** Keras's own slot name in this lineage (the `<slot>` of '<optimizer>/<variable>/<slot>:0', or of add_variable_from_reference). */
  readonly name: string;
  /** Saved only when this holds (absent: always). */
  readonly when?: SlotCondition;
  /** Default `variable`. */
  readonly shape?: SlotShape;
  /**
   * The slot never holds a negative value (a running sum or average of squares, a max of magnitudes):
   * used to tell optimizers apart when a file records no class.
   */
  readonly nonNegative?: boolean;
}

/**
 * What one Keras optimizer saves in one lineage (flavour) and release range, as data: the engine in
 * src/formats reads and writes every optimizer from these rows.
 *
 * The saved list is `iterations` (when `savesIterations`), the learning_rate variable (Keras 3, when
 * it is not a schedule), the `extras` (non-slot weights such as Nadam's schedule product), then the
 * slots: the `slotGroups` one after the other, and within a group the slots of each variable in turn
 * (a group of one slot is "blocked": that slot for every variable; Keras 3 Adam's [momentum, velocity]
 * is "interleaved"). Where a release puts the extras after the slots, the layout row says so.
 */
export interface OptimizerDescriptor {
  /** Keras's class name, as get_config's envelope and the saved training_config name it ('Adam'). */
  readonly className: string;
  readonly flavour: Flavour;
  /** The Keras versions (as files record them) of this row: [from, to); to null = open. */
  readonly versions: readonly [from: string, to: string | null];
  /** Whether `iterations` is in the saved list (Keras 2.0-2.2 RMSprop, Adagrad and Adadelta leave it out). */
  readonly savesIterations: boolean;
  /** Non-slot weights saved after iterations/learning_rate, by Keras's name (Nadam: momentum_cache, m_schedule, u_product). */
  readonly extras: readonly string[];
  readonly slotGroups: readonly (readonly SlotSpec[])[];
  /** get_config's keys with Keras's defaults, in Keras's order (null: None). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Older names Keras still accepts for a key (Keras 2.3's `lr` for `learning_rate`). */
  readonly aliases?: Readonly<Record<string, string>>;
  /** What this optimizer has at run time but does not save, in words. */
  readonly notSaved?: readonly string[];
  /** The source file and version that establish the row. */
  readonly source: string;
}

/** The names a descriptor's slots take, in creation order, with the config deciding conditional ones. */
export function slotNames(d: OptimizerDescriptor, config: Readonly<Record<string, unknown>>): string[] {
  return d.slotGroups.flat().filter((s) => holds(s, config)).map((s) => s.name);
}

/** Whether a slot is created under `config` (a missing key takes Keras's default). */
export function holds(s: SlotSpec, config: Readonly<Record<string, unknown>>): boolean {
  if (!s.when) return true;
  const raw = Object.prototype.hasOwnProperty.call(config, s.when.key) ? config[s.when.key] : s.when.default;
  const v = raw === undefined ? s.when.default : raw;
  // a learning-rate-like hyperparameter saved as a schedule or variable config still counts as set
  const set = s.when.is === 'nonzero' ? (typeof v === 'number' ? v !== 0 : v !== null && v !== false && v !== undefined) : Boolean(v);
  return s.when.is === 'falsy' ? !set : set;
}

/** The shape of a slot of `s`'s kind for a variable of shape `shape`; null when there is no such slot for it. */
export function slotShape(s: SlotSpec, shape: readonly number[]): number[] | null {
  const kind = s.shape ?? 'variable';
  if (kind === 'variable') return [...shape];
  if (kind === 'one') return [1];
  if (shape.length < 2) return kind === 'row' || kind === 'col' ? [] : null;
  return kind.startsWith('row') ? shape.slice(0, -1) : [...shape.slice(0, -2), shape[shape.length - 1]!];
}

/** Whether a slot kind can be missing for some variables (then the count of slots per variable varies). */
export function mayBeAbsent(s: SlotSpec): boolean {
  return s.shape === 'row-or-none' || s.shape === 'col-or-none';
}

/** Every combination of a descriptor's conditions: the slot lists a file without a config may hold. */
export function slotVariants(d: OptimizerDescriptor): { config: Record<string, unknown>; groups: SlotSpec[][] }[] {
  const keys = [...new Map(d.slotGroups.flat().filter((s) => s.when).map((s) => [s.when!.key, s.when!])).values()];
  const out: { config: Record<string, unknown>; groups: SlotSpec[][] }[] = [];
  for (let mask = 0; mask < 1 << keys.length; mask++) {
    const config: Record<string, unknown> = {};
    keys.forEach((k, i) => (config[k.key] = mask & (1 << i) ? (k.is === 'nonzero' ? 0.9 : true) : k.is === 'nonzero' ? 0 : false));
    out.push({ config, groups: d.slotGroups.map((g) => g.filter((s) => holds(s, config))).filter((g) => g.length > 0) });
  }
  return out;
}
