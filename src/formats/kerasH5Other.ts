import { FormatError } from '../errors.js';
import { descriptorsFor, type OptimizerDescriptor } from '../optimizers/catalog/index.js';
import type { Flavour } from '../optimizers/flavour.js';
import { readNamed, readPositional, type TiedState } from './engine.js';
import { layoutById, rowsFor, type LayoutRow } from './layouts.js';
import type { KerasFileFormat, KerasOptimizerState, ModelVariable, StoredWeight } from './state.js';

/** What readLegacyH5 has read of a file before it knows the optimizer's layout. */
export interface LegacyRead {
  readonly label: string;
  readonly config: Record<string, unknown>;
  readonly className: string;
  /** Keras's class name ('Adam' for 'Custom>Adam'). */
  readonly canonical: string;
  readonly kerasVersion: string | null;
  readonly weights: StoredWeight[];
  readonly model: ModelVariable[];
  readonly stringStyle: 'fixed' | 'vlen';
}

/** The legacy families and how each ties its slots. */
const FAMILY: Record<'keras2' | 'tf-keras-v2' | 'tf-keras-new', { flavour: Flavour; format: KerasFileFormat }> = {
  keras2: { flavour: 'keras2', format: 'keras2-h5' },
  'tf-keras-v2': { flavour: 'tf-keras', format: 'tf-keras-h5' },
  'tf-keras-new': { flavour: 'tf-keras-new', format: 'tf-keras-new-h5' },
};

/**
 * Reads the optimizer_weights of any described optimizer but Nadam (which has its own reader, as it
 * is also stepped) from a legacy .h5: the family from the first weight's name (given), the row of
 * src/optimizers/catalog from the class and keras_version, then the engine ties the slots.
 */
export function describedLegacyState(read: LegacyRead, family: keyof typeof FAMILY, familyEvidence: string): KerasOptimizerState {
  const { label, config, weights, model, kerasVersion } = read;
  const { flavour, format } = FAMILY[family];
  const rows = descriptorsFor(read.canonical, flavour, kerasVersion);
  if (rows.length === 0) throw new FormatError(label, `a ${read.canonical} in the ${flavour} layout is not described by kerasopt (see docs/optimizers.md for what is)`);
  const tries: string[] = [];
  const layout = releaseRow(format, kerasVersion);
  for (const d of rows) {
    try {
      const tied = family === 'keras2' ? keras2Tie(label, d, config, weights, model, layout) : readNamed(label, d, config, weights, model, family === 'tf-keras-v2' ? 'variable-then-slot' : 'slot-then-variable');
      const versionEvidence = kerasVersion ? `root attribute keras_version '${kerasVersion}'` : 'no keras_version attribute';
      return state(read, d, tied, format, flavour, layout, [familyEvidence, versionEvidence, `${d.className} of ${d.versions[0]}${d.versions[1] ? `-${d.versions[1]} (exclusive)` : '+'}: ${d.source}`]);
    } catch (e) {
      if (!(e instanceof FormatError) || rows.length === 1) throw e;
      tries.push(`${d.versions.join('-')}: ${e.message.slice(label.length + 2)}`);
    }
  }
  throw new FormatError(label, `optimizer_weights fit no ${read.canonical} layout of ${flavour}: ${tries.join('; ')}`);
}

/** Keras 2 lists carry no variable names: they tie by position to the trainable variables. */
function keras2Tie(label: string, d: OptimizerDescriptor, config: Record<string, unknown>, weights: readonly StoredWeight[], model: readonly ModelVariable[], row: LayoutRow): TiedState {
  const first = weights[0]!.name.replace(/:\d+$/, '');
  const iterationsFirst = /(^|\/)iterations(_\d+)?$/.test(first);
  if (iterationsFirst !== d.savesIterations) {
    throw new FormatError(label, `first optimizer weight '${weights[0]!.name}' ${iterationsFirst ? 'is' : 'is not'} iterations, but a ${d.className} of Keras ${d.versions[0]}+ ${d.savesIterations ? 'saves it first' : 'does not save it'}`);
  }
  // Keras 2.0.0-2.0.6 collected the trainable weights sorted by name, for every optimizer (the row says)
  return readPositional(label, d, config, weights, model, { learningRate: false, rule: row.tie === 'position-sorted-by-name' ? 'position-sorted-by-name' : 'position' });
}

/**
 * The release row of the layout table for the file's format and version: what the release does to
 * every optimizer's list (the tie rule, iterations' dtype). Without a version, the latest row of the format.
 */
function releaseRow(format: KerasFileFormat, version: string | null): LayoutRow {
  const rows = rowsFor(format, version);
  return rows[rows.length - 1] ?? layoutById('tf-keras-v2');
}

function state(read: LegacyRead, d: OptimizerDescriptor, tied: TiedState, format: KerasFileFormat, flavour: Flavour, row: LayoutRow, evidence: string[]): KerasOptimizerState {
  const notes = [...tied.notes];
  if (format === 'keras2-h5') notes.push('(Keras 2 slot names carry no variable name)');
  if (!d.savesIterations) notes.push(`iterations is not saved by a ${d.className} of Keras ${d.versions[0]}-${d.versions[1]} (it is not in its self.weights)`);
  return {
    file: read.label, format, flavour, kerasVersion: read.kerasVersion, className: read.className, config: read.config,
    iterations: tied.iterations, weights: tied.weights, slots: tied.slots, variables: tied.variables, schedule: null,
    stringStyle: read.stringStyle, notes, release: { layout: row.id, range: row.releases, evidence },
  };
}
