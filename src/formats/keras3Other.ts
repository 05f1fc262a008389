import { FormatError } from '../errors.js';
import { coversVersion, OPTIMIZERS, slotVariants, type OptimizerDescriptor } from '../optimizers/catalog/index.js';
import { allocate } from '../tensor/dtype.js';
import { isLazy } from '../tensor/lazy.js';
import type { Tensor } from '../tensor/tensor.js';
import { DEFAULT_CHUNK_ELEMENTS, slabs } from './chunked.js';
import type { H5File } from './hdf5.js';
import { readPositional, type TiedState } from './engine.js';
import type { Keras3Context } from './keras3.js';
import { LAYOUTS, rowsFor, type LayoutRow } from './layouts.js';
import type { KerasOptimizerState, ModelVariable, SlotState, StoredWeight } from './state.js';

/** What the Keras 3 reader knows when the optimizer is not Nadam. */
export interface Keras3Known {
  readonly className: string;
  readonly canonical: string;
  readonly config: Record<string, unknown>;
  /** Whether the file holds the optimizer's config (else its defaults and variants are tried). */
  readonly configRecorded: boolean;
  readonly evidence: string[];
  readonly notes: string[];
  /** Reads a slot's values for the sign test (config-less files only). */
  readonly scan: NegativeScan;
}

/** One reading of optimizer/vars: a descriptor under a config, in a release row. */
interface Fit {
  readonly d: OptimizerDescriptor;
  readonly row: LayoutRow;
  readonly config: Record<string, unknown>;
  /** 'Adam', 'RMSprop (momentum)': the class and the conditional slots that are on. */
  readonly label: string;
  readonly tied: TiedState;
}

/** Conditions the base optimizer owns (EMA, gradient accumulation): tried only when a config turns them on. */
const BASE_KEYS = new Set(['use_ema', 'gradient_accumulation_steps']);

/** The release rows for the file, latest first, so that an unversioned file reports the newest that fits. */
function rowsOf(ctx: Keras3Context): LayoutRow[] {
  const rows = ctx.kerasVersion ? rowsFor(ctx.format, ctx.kerasVersion) : LAYOUTS.filter((r) => r.formats.includes(ctx.format));
  return [...rows].reverse();
}

/** Every reading of `weights` by the descriptors of `classes` (all but Nadam when null) that fits; misfits collected. */
function fitsOf(ctx: Keras3Context, weights: readonly StoredWeight[], model: readonly ModelVariable[], classes: readonly string[] | null, config: Record<string, unknown> | null, misfits: string[], scan: NegativeScan): Fit[] {
  const out: Fit[] = [];
  const seen = new Set<string>();
  for (const row of rowsOf(ctx)) {
    const descriptors = OPTIMIZERS.filter(
      (d) => d.flavour === row.flavour && (classes ? classes.includes(d.className) : d.className !== 'Nadam') && (!ctx.kerasVersion || coversVersion(d, ctx.kerasVersion)),
    );
    for (const d of descriptors) {
      const variants = config ? [{ config }] : slotVariants(d).filter((v) => Object.entries(v.config).every(([k, x]) => !BASE_KEYS.has(k) || !x));
      const lrChoices = !row.order.includes('learning_rate') ? [false] : config ? [typeof config.learning_rate === 'number' || config.learning_rate === undefined] : [true, false];
      for (const v of variants) {
        const on = Object.entries(v.config).filter(([k, x]) => x && !(config && k in d.config && d.config[k] === x) && !BASE_KEYS.has(k)).map(([k]) => k);
        const label = config || on.length === 0 ? d.className : `${d.className} (${on.join(', ')})`;
        for (const learningRate of lrChoices) {
          const key = `${row.flavour}|${label}`;
          if (seen.has(key)) continue;
          try {
            const tied = readPositional(ctx.label, d, v.config, weights, model, { learningRate, rule: 'position', int64Iterations: true, reorderLayers: !ctx.modelConfig });
            if (!config) signsFit(ctx.label, d, tied, scan);
            seen.add(key);
            out.push({ d, row, config: v.config, label, tied });
          } catch (e) {
            if (!(e instanceof FormatError)) throw e;
            misfits.push(`${label} (${row.id}${row.order.includes('learning_rate') ? (learningRate ? ', with learning_rate' : ', without learning_rate') : ''}): ${e.message.slice(ctx.label.length + 2)}`);
          }
        }
      }
    }
  }
  return out;
}

/** The conditions a variant turns on (amsgrad: true), without the ones it leaves at their off value. */
function onlyOn(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v !== false && v !== 0 && v !== null));
}

/** The first negative element of a tensor (undefined when none), in memory or, for a lazy one, read from the open file in chunks. */
export type NegativeScan = (t: Tensor) => number | undefined;

/** A NegativeScan over the open file `h`: lazy tensors are read slab by slab into one bounded buffer. */
export function negativeScan(h: H5File): NegativeScan {
  const first = (data: ArrayLike<number | bigint>): number | undefined => {
    for (let i = 0; i < data.length; i++) if ((data[i] as number) < 0) return Number(data[i]);
    return undefined;
  };
  return (t) => {
    if (!isLazy(t)) return first(t.data);
    const buffer = allocate(t.dtype, Math.min(t.size, DEFAULT_CHUNK_ELEMENTS));
    for (const slab of slabs(t.shape)) {
      const view = buffer.subarray(0, slab.size);
      h.readSlab(t.source.dataset, slab.start, slab.count, view);
      const hit = first(view);
      if (hit !== undefined) return hit;
    }
    return undefined;
  };
}

/** Without a recorded class, a slot that can only be >= 0 (a sum of squares) but holds a negative value rules the optimizer out. */
function signsFit(label: string, d: OptimizerDescriptor, tied: TiedState, scan: NegativeScan): void {
  const nonNegative = new Set(d.slotGroups.flat().filter((s) => s.nonNegative).map((s) => s.name));
  for (const s of tied.slots) {
    if (!nonNegative.has(s.slot) || s.value.dtype.startsWith('float16')) continue;
    const hit = scan(s.value);
    if (hit !== undefined) throw new FormatError(label, `${s.weightName} would be ${d.className}'s ${s.slot} of ${s.variable}, which is never negative, but holds ${hit}`);
  }
}

function toState(ctx: Keras3Context, fit: Fit, className: string | null, config: Record<string, unknown>, evidence: string[], notes: string[], extra: Partial<KerasOptimizerState> = {}): KerasOptimizerState {
  const { tied, row } = fit;
  return {
    file: ctx.label, format: ctx.format, flavour: row.flavour, kerasVersion: ctx.kerasVersion, className, config,
    iterations: tied.iterations, weights: tied.weights, slots: tied.slots, variables: tied.variables, schedule: null,
    stringStyle: null, notes: [...notes, ...tied.notes], release: { layout: row.id, range: row.releases, evidence }, ...extra,
  };
}

/** Reads a saving_lib file whose optimizer (not Nadam) is named by its config, a trial, or the caller. */
export function describedKeras3(ctx: Keras3Context, weights: readonly StoredWeight[], model: readonly ModelVariable[], known: Keras3Known): KerasOptimizerState {
  const misfits: string[] = [];
  const fits = fitsOf(ctx, weights, model, [known.canonical], known.configRecorded ? known.config : null, misfits, known.scan);
  if (fits.length === 0) throw new FormatError(ctx.label, `optimizer/vars (${weights.length} variables) fits no ${known.canonical} layout: ${misfits.join('; ')}`);
  const distinct = [...new Set(fits.map((f) => f.label))];
  if (distinct.length > 1) {
    throw new FormatError(ctx.label, `optimizer/vars fits several ${known.canonical} configurations (${distinct.join('; ')}) and the file records no config to choose: pass the optimizer's config`);
  }
  const fit = fits[0]!;
  const evidence = [...known.evidence, ...(ctx.kerasVersion ? [] : [`no keras_version recorded: read in the layout of ${fit.row.releases}, the latest that fits (the releases that fit save a ${known.canonical} the same way)`]), `${fit.d.source}`];
  const config = known.configRecorded ? known.config : { ...onlyOn(fit.config), ...known.config };
  const notes = [...known.notes];
  if (!known.configRecorded) notes.push(`no optimizer config in the file: the slots say ${fit.label}`);
  if (fit.tied.learningRate !== null && config.learning_rate === undefined) config.learning_rate = fit.tied.learningRate;
  return toState(ctx, fit, known.className, config, evidence, notes);
}

/**
 * A saving_lib file that records no optimizer (a Keras 3 .weights.h5): every described optimizer is
 * tried. One fit is the answer; several leave the class unknown (`className` null, `fits` lists them),
 * the slots tied by position under generic names (slot0, slot1, ...) as all fits agree on the tie.
 */
export function unrecordedKeras3(ctx: Keras3Context, weights: readonly StoredWeight[], model: readonly ModelVariable[], nadam: KerasOptimizerState | null, nadamMisfit: FormatError | null, evidence: string[], notes: string[], scan: NegativeScan): KerasOptimizerState {
  const misfits: string[] = nadam || !nadamMisfit ? [] : [`Nadam: ${nadamMisfit.message.slice(ctx.label.length + 2)}`];
  const fits = fitsOf(ctx, weights, model, null, null, misfits, scan);
  // a Nadam that fits two releases' layouts (no keras_version to choose) still fits: alone, its own error says so
  const nadamAmbiguous = nadamMisfit !== null && /fits more than one Nadam layout/.test(nadamMisfit.message);
  if (nadamAmbiguous && fits.length === 0) throw nadamMisfit;
  const labels = [...(nadam ? ['Nadam'] : nadamAmbiguous ? ['Nadam (two releases\' layouts fit)'] : []), ...new Set(fits.map((f) => f.label))];
  if (labels.length === 0) throw new FormatError(ctx.label, `optimizer/vars (${weights.length} variables) fits no described optimizer's layout: ${misfits.slice(0, 12).join('; ')}${misfits.length > 12 ? '; ...' : ''}`);
  if (nadam && fits.length === 0) return nadam;
  const why = 'no optimizer config in the file (a .weights.h5 holds none)';
  if (!nadam && labels.length === 1) {
    const fit = fits[0]!;
    return toState(ctx, fit, fit.d.className, { ...onlyOn(fit.config), ...(fit.tied.learningRate !== null ? { learning_rate: fit.tied.learningRate } : {}) }, [...evidence, why, `of the described optimizers only ${fit.label} fits the variables`], [...notes, `no optimizer config in the file: the slots say ${fit.label}`]);
  }
  // several fit: keep the tie (every fit with the same slot count per variable ties alike) under generic slot names
  const fit = fits.find((f) => f.row.flavour === 'keras3') ?? fits[0]!;
  const rename = new Map<string, string>();
  const perVariable = new Map<string, number>();
  const slots: SlotState[] = fit.tied.slots.map((s) => {
    const k = perVariable.get(s.variable) ?? 0;
    perVariable.set(s.variable, k + 1);
    rename.set(s.weightName, `slot${k}`);
    return { ...s, slot: `slot${k}` };
  });
  const weightsOut = fit.tied.weights.map((w) => (w.role?.kind === 'slot' ? { ...w, role: { ...w.role, slot: rename.get(w.name)! } } : w));
  const config: Record<string, unknown> = fit.tied.learningRate !== null ? { learning_rate: fit.tied.learningRate } : {};
  return toState(ctx, { ...fit, tied: { ...fit.tied, slots, weights: weightsOut } }, null, config, [...evidence, why, `${labels.length} optimizers' layouts fit the variables: ${labels.join(', ')}`], [
    ...notes,
    `the optimizer's class is not recorded in the file and ${labels.length} layouts fit (${labels.join(', ')}): slots are tied by position and named slot0, slot1, ...; pass the class (--optimizer NAME) to read them under its names`,
    'variants with use_ema or gradient accumulation were not tried without a config',
  ], { fits: labels });
}
