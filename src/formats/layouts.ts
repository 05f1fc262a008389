import type { Flavour } from '../optimizers/flavour.js';
import type { KerasFileFormat } from './state.js';

/**
 * How each Keras release saves a Nadam's state, as data: one row per release range. The readers and
 * writers are one engine over these rows, so a new Keras release is a new row, not a new branch.
 * Sources are in docs/keras-releases.md (one citation per row).
 */
export interface LayoutRow {
  /** Stable id, shown by `inspect` (`release.layout`). */
  readonly id: string;
  /** The releases that write this layout, in words. */
  readonly releases: string;
  /** Keras versions (as the file records them) this row covers: [from, to) on dotted numbers; null = no version recorded. */
  readonly versions: readonly [from: string, to: string | null];
  readonly flavour: Flavour;
  readonly formats: readonly KerasFileFormat[];
  /**
   * The saved list, in order: `iterations`, `learning_rate` (Keras 3: absent with a schedule),
   * `schedule` (momentum_cache / m_schedule / u_product) and `slots` (every slot of every variable).
   */
  readonly order: readonly ('iterations' | 'learning_rate' | 'schedule' | 'slots')[];
  /** `blocked`: all first slots then all second slots (per creation batch); `interleaved`: m, v of each variable in turn. */
  readonly slotOrder: 'blocked' | 'interleaved';
  /** How slots find their variable: by the name in the weight's path, or by position in the optimizer's variable list. */
  readonly tie: 'name' | 'position' | 'position-sorted-by-name' | 'object-graph';
  /** The dtype iterations is saved in. */
  readonly iterationsDtype: 'int64' | 'float32';
  /** The source file and version that establish the row (see docs/keras-releases.md). */
  readonly source: string;
}

export const LAYOUTS: readonly LayoutRow[] = [
  {
    id: 'keras-2.0-sorted', releases: 'standalone Keras 2.0.0-2.0.6 (and tf.contrib.keras)', versions: ['2.0.0', '2.0.7'], flavour: 'keras2', formats: ['keras2-h5'],
    order: ['iterations', 'slots'], slotOrder: 'blocked', tie: 'position-sorted-by-name', iterationsDtype: 'float32',
    source: 'keras-team/keras 2.0.x keras/engine/training.py _collect_trainable_weights (sorted by name since PR #4338; the sort is gone in PR #7564, Keras 2.0.7), keras/optimizers.py Nadam',
  },
  {
    id: 'keras-2.0', releases: 'standalone Keras 2.0.7-2.0.9', versions: ['2.0.7', '2.1.0'], flavour: 'keras2', formats: ['keras2-h5'],
    order: ['iterations', 'slots'], slotOrder: 'blocked', tie: 'position', iterationsDtype: 'float32',
    source: 'keras-team/keras 2.0.8 keras/optimizers.py Nadam (float iterations), keras/engine/training.py',
  },
  {
    id: 'keras-2.1-2.2', releases: 'standalone Keras 2.1.0-2.2.5; tf.keras v1 optimizers of TF 1.x (2.1.x-tf, 2.2.4-tf)', versions: ['2.1.0', '2.3.0'], flavour: 'keras2', formats: ['keras2-h5'],
    order: ['iterations', 'slots'], slotOrder: 'blocked', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras 2.2.4 keras/optimizers.py Nadam (weights = [iterations] + ms + vs); tensorflow/tensorflow r1.13 tensorflow/python/keras/optimizers.py',
  },
  {
    id: 'keras-2.3', releases: 'standalone Keras 2.3.0-2.3.1', versions: ['2.3.0', '2.4.0'], flavour: 'keras2', formats: ['keras2-h5'],
    order: ['iterations', 'schedule', 'slots'], slotOrder: 'blocked', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras 2.3.1 keras/optimizers.py Nadam (weights = [iterations, m_schedule] + ms + vs)',
  },
  {
    id: 'tf-keras-v2', releases: 'tf.keras optimizer_v2, TF 1.14-2.10 (keras_version 2.2.4-tf to 2.10.0)', versions: ['2.2.4', '2.11.0'], flavour: 'tf-keras', formats: ['tf-keras-h5'],
    order: ['iterations', 'schedule', 'slots'], slotOrder: 'blocked', tie: 'name', iterationsDtype: 'int64',
    source: 'tensorflow/tensorflow r2.4 tensorflow/python/keras/optimizer_v2/nadam.py _create_slots, optimizer_v2.py weights; keras-team/keras 2.9 keras/saving/hdf5_format.py',
  },
  {
    id: 'tf-keras-v2-checkpoint', releases: 'tf.keras optimizer_v2 in TF2 checkpoints and SavedModels, TF 2.0-2.10', versions: ['2.0.0', '2.11.0'], flavour: 'tf-keras', formats: ['tf-checkpoint'],
    order: ['iterations', 'schedule', 'slots'], slotOrder: 'blocked', tie: 'object-graph', iterationsDtype: 'int64',
    source: 'tensorflow/tensorflow r2.4 tensorflow/python/training/tracking (TrackableObjectGraph slot_variables), optimizer_v2.py',
  },
  {
    id: 'tf-keras-new-checkpoint', releases: 'tf.keras new optimizers in TF2 checkpoints and SavedModels, TF 2.11-2.15', versions: ['2.11.0', '2.16.0'], flavour: 'tf-keras-new', formats: ['tf-checkpoint'],
    order: ['iterations', 'slots'], slotOrder: 'interleaved', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras 2.13-2.15 keras/optimizers/optimizer.py (_BaseOptimizer an AutoTrackable; _variables = [iteration] + add_variable_from_reference), nadam.py build (_u_product a tracked tf.Variable); keras-team/tf-keras tf_keras/optimizers/optimizer.py, nadam.py',
  },
  {
    id: 'tf-keras-new-h5', releases: 'tf.keras new optimizers, TF 2.11-2.15 (.h5)', versions: ['2.11.0', '2.16.0'], flavour: 'tf-keras-new', formats: ['tf-keras-new-h5'],
    order: ['iterations', 'slots'], slotOrder: 'interleaved', tie: 'name', iterationsDtype: 'int64',
    source: 'keras-team/keras 2.11-2.15 keras/optimizers/nadam.py build, optimizer.py variables; keras/saving/legacy/hdf5_format.py',
  },
  {
    id: 'tf-keras-new-archive', releases: 'tf.keras new optimizers, TF 2.12-2.15 (.keras, .weights.h5)', versions: ['2.12.0', '2.16.0'], flavour: 'tf-keras-new', formats: ['keras3-archive', 'keras3-weights-h5'],
    order: ['iterations', 'slots'], slotOrder: 'interleaved', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras 2.13-2.15 keras/saving/saving_lib.py, keras/optimizers/optimizer.py save_own_variables',
  },
  {
    id: 'keras-3.0-u-first', releases: 'Keras 3.0.0-3.9.x', versions: ['3.0.0', '3.10.0'], flavour: 'keras3', formats: ['keras3-archive', 'keras3-weights-h5'],
    order: ['iterations', 'learning_rate', 'schedule', 'slots'], slotOrder: 'interleaved', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras 3.0-3.9 keras/src/optimizers/nadam.py build (u_product assigned before the slots), base_optimizer.py save_own_variables',
  },
  {
    id: 'keras-3.10-u-last', releases: 'Keras 3.10.0 and later', versions: ['3.10.0', null], flavour: 'keras3', formats: ['keras3-archive', 'keras3-weights-h5'],
    order: ['iterations', 'learning_rate', 'slots', 'schedule'], slotOrder: 'interleaved', tie: 'position', iterationsDtype: 'int64',
    source: 'keras-team/keras PR #21232 and #21247 (May 2025, first released in 3.10.0) keras/src/optimizers/nadam.py build (add_optimizer_variables, then u_product)',
  },
];

export function layoutById(id: string): LayoutRow {
  const row = LAYOUTS.find((r) => r.id === id);
  if (!row) throw new Error(`no layout row '${id}'`);
  return row;
}

/** A dotted version's numbers ('2.2.4-tf' -> [2, 2, 4]); null when it does not start with one. */
export function versionNumbers(version: string): number[] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** Whether `version` falls in the row's [from, to) range. */
export function rowCovers(row: LayoutRow, version: string): boolean {
  const v = versionNumbers(version);
  if (!v) return false;
  const [from, to] = row.versions;
  return compare(v, versionNumbers(from)!) >= 0 && (to === null || compare(v, versionNumbers(to)!) < 0);
}

/** The rows for `format` whose release range covers `version` (all rows of the format when the version is unknown). */
export function rowsFor(format: KerasFileFormat, version: string | null): LayoutRow[] {
  const rows = LAYOUTS.filter((r) => r.formats.includes(format));
  if (version === null) return rows;
  const covering = rows.filter((r) => rowCovers(r, version));
  return covering.length > 0 ? covering : rows;
}

/** One entry of a positional layout: what the i-th saved weight is. */
export type Role =
  | { readonly kind: 'iterations' }
  | { readonly kind: 'learning_rate' }
  | { readonly kind: 'schedule' }
  | { readonly kind: 'slot'; readonly slot: 0 | 1; readonly variable: number };

/**
 * The saved list of a positional row for `variables` variables: what each index holds. `learningRate`
 * false drops the learning_rate entry (Keras 3 with a schedule); `scheduleBuilt` false drops the
 * schedule entry and the slots (a Keras 3 optimizer saved before its first build holds neither).
 */
export function rolesOf(row: LayoutRow, variables: number, opts: { learningRate: boolean; built: boolean }): Role[] {
  const out: Role[] = [];
  for (const part of row.order) {
    if (part === 'iterations') out.push({ kind: 'iterations' });
    else if (part === 'learning_rate') {
      if (opts.learningRate) out.push({ kind: 'learning_rate' });
    } else if (part === 'schedule') {
      if (opts.built) out.push({ kind: 'schedule' });
    } else if (opts.built) {
      if (row.slotOrder === 'interleaved') {
        for (let v = 0; v < variables; v++) out.push({ kind: 'slot', slot: 0, variable: v }, { kind: 'slot', slot: 1, variable: v });
      } else {
        for (const slot of [0, 1] as const) for (let v = 0; v < variables; v++) out.push({ kind: 'slot', slot, variable: v });
      }
    }
  }
  return out;
}
