import { constants, copyFileSync } from 'node:fs';
import type { Backend, NadamCoefficients, NadamState, TfKerasNadamCoefficients, UniqueRows } from '../backends/backend.js';
import { getBackend } from '../backends/registry.js';
import { FormatError, KerasValueError } from '../errors.js';
import { replaceFileAtomically } from '../io/atomic.js';
import { RECIPES } from '../optimizers/nadam/recipes.js';
import { allocate, type FloatDType, type TypedData } from '../tensor/dtype.js';
import { LazyTensor } from '../tensor/lazy.js';
import { Tensor, type FloatTensor } from '../tensor/tensor.js';
import { checkSame, chunkElementsOf, slabs, type ChunkOptions } from './chunked.js';
import { H5File } from './hdf5.js';
import { readOptimizerState, type ReadStateOptions } from './read.js';
import { optimizerFromState, type RestoreOptions } from './restore.js';
import type { KerasFileFormat, KerasOptimizerState, StoredWeight } from './state.js';

/**
 * A streaming resume (issue 11): Nadam steps applied to a state of any size chunk by chunk, in the
 * file. The per-step scalars come from kerasopt's own Nadam of the file's flavour, run on one-element
 * stand-ins of the variables through a backend that records the coefficients each variable's update
 * receives instead of computing; each chunk of each variable (its value, m and v, read as HDF5
 * hyperslabs) then goes through the real backend's `nadamDense` with those coefficients. Nadam's
 * update is elementwise, so the result is the in-memory step's, bit for bit, whatever the chunk size.
 */

/** The formats stepInPlace updates: HDF5 files read in place. */
const IN_PLACE: readonly KerasFileFormat[] = ['tf-keras-h5', 'keras2-h5', 'tf-keras-new-h5', 'keras3-weights-h5'];

/** Where a chunk of gradient goes: what {@link StreamGradient} is asked for. */
export interface GradientRequest {
  /** The model variable's name, as the read state names it ('dense/kernel', 'layers/dense/vars/0'). */
  readonly variable: string;
  readonly dtype: FloatDType;
  /** The variable's shape. */
  readonly shape: readonly number[];
  /** Flat (row-major) index of the chunk's first element. */
  readonly offset: number;
  /** Which of the `steps` steps (0 first). */
  readonly step: number;
}

/**
 * Fills `out` with the gradient of elements [offset, offset + out.length) of a variable, in the
 * variable's dtype (float16 as half bits), row-major. `out` is a view of a buffer stepInPlace reuses.
 */
export type StreamGradient = (request: GradientRequest, out: TypedData<FloatDType>) => void | Promise<void>;

/** Options of {@link stepInPlace}. */
export interface StepInPlaceOptions extends ChunkOptions, RestoreOptions {
  /** How many steps (default 1); the gradient of each is asked for with its `step` index. */
  steps?: number;
  /** Where to write the result (default: `file` itself, replaced atomically). */
  output?: string;
  /** Options of the read of the state (deadline, label, ...); `lazyAbove` is always 0. */
  read?: Omit<ReadStateOptions, 'lazyAbove' | 'lazyStats'>;
  /** Called after each chunk: elements done and the total (every variable, every step counted once per element). */
  onProgress?: (done: number, total: number) => void;
}

/** What {@link stepInPlace} did. */
export interface StepInPlaceResult {
  /** The iteration count written. */
  readonly iterations: number;
  /** The momentum-schedule scalar after the steps (written when the layout saves it). */
  readonly schedule: { readonly name: string; readonly value: number; readonly saved: boolean };
  /** Names of the variables stepped, in the optimizer's order. */
  readonly variables: readonly string[];
  /** Elements of each of value, m and v updated per step. */
  readonly elements: number;
}

/**
 * Applies `steps` Nadam steps (default 1) to the optimizer state and model variables of an .h5 or
 * .weights.h5 file without loading its tensors: each variable is read, stepped and written back in
 * chunks of at most `chunkElements` elements (its value, m and v, and a gradient chunk that
 * `gradient` fills), and the iteration count and schedule scalar are updated. The result equals
 * `optimizerFromState` + `applyGradients` + `saveOptimizerState` (with the variables) bit for bit.
 *
 * The write is atomic: the file is copied beside the output, the copy updated in place with hyperslab
 * writes, read back, synced and renamed over the output; a failure leaves the output as it was.
 * Memory: one chunk of each of value, m, v and gradient, plus libhdf5's buffer of one chunk (see the
 * README's "Reliability"), whatever the file's size. Disk: a copy of the file beside the output.
 *
 * Not streamed: gradient clipping (clipnorm, clipvalue, global_clipnorm need whole gradients; such a
 * config is refused), sparse gradients, scalar (rank-0) model variables, .keras archives and TF
 * checkpoints (read those with readOptimizerState, step with optimizerFromState, save with
 * saveOptimizerState).
 */
export async function stepInPlace(file: string, gradient: StreamGradient, options: StepInPlaceOptions = {}): Promise<StepInPlaceResult> {
  const steps = options.steps ?? 1;
  if (!Number.isSafeInteger(steps) || steps < 1) throw new KerasValueError(`steps must be a whole number >= 1, got ${String(options.steps)}`);
  if (typeof gradient !== 'function') throw new KerasValueError('stepInPlace needs a gradient function (request, out) => void that fills each chunk');
  const max = chunkElementsOf(options);
  const label = options.read?.label ?? file;
  const state = await readOptimizerState(file, { ...options.read, lazyAbove: 0 });
  if (!IN_PLACE.includes(state.format)) {
    throw new FormatError(label, `stepInPlace updates .h5 and .weights.h5 files in place; this is ${state.format}: read it with readOptimizerState, step it with optimizerFromState and save it with saveOptimizerState`);
  }
  const plan = planOf(state, label);
  const coefficients = recordSteps(state, steps, options);
  const target = options.output ?? file;
  const total = plan.reduce((n, p) => n + p.value.size, 0) * steps;
  let done = 0;
  await replaceFileAtomically(target, async (tmp) => {
    copyFileSync(file, tmp, constants.COPYFILE_FICLONE); // a reflink where the file system has them, else a kernel copy
    const h = await H5File.open(tmp, 'a', label);
    try {
      const backend = typeof options.backend === 'object' ? options.backend : getBackend(options.backend);
      for (const [i, p] of plan.entries()) {
        for (const t of [p.value, p.m, p.v]) checkSame(h, t);
        const dtype = p.value.dtype as FloatDType;
        const n = Math.min(max, p.value.size);
        const [w, m, v, g] = [allocate(dtype, n), allocate(dtype, n), allocate(dtype, n), allocate(dtype, n)];
        for (const slab of slabs(p.value.shape, max)) {
          const view = (a: TypedData<FloatDType>) => a.subarray(0, slab.size) as TypedData<FloatDType>;
          const chunk: NadamState = { variable: flat(dtype, view(w)), m: flat(dtype, view(m)), v: flat(dtype, view(v)) };
          h.readSlab(p.value.source.dataset, slab.start, slab.count, chunk.variable.data);
          h.readSlab(p.m.source.dataset, slab.start, slab.count, chunk.m.data);
          h.readSlab(p.v.source.dataset, slab.start, slab.count, chunk.v.data);
          const grad = flat(dtype, view(g));
          for (let k = 0; k < steps; k++) {
            await gradient({ variable: p.name, dtype, shape: p.value.shape, offset: slab.offset, step: k }, grad.data);
            await backend.nadamDense(chunk, grad, coefficients[k]![i]!);
          }
          h.writeSlab(p.value.source.dataset, slab.start, slab.count, chunk.variable.data);
          h.writeSlab(p.m.source.dataset, slab.start, slab.count, chunk.m.data);
          h.writeSlab(p.v.source.dataset, slab.start, slab.count, chunk.v.data);
          done += slab.size * steps;
          options.onProgress?.(done, total);
        }
      }
      writeScalar(h, state, weightOf(state, 'iterations', label), coefficients.iterations);
      const scheduleWeight = state.weights.find((w) => w.role?.kind === 'schedule');
      if (scheduleWeight) writeScalar(h, state, scheduleWeight, coefficients.schedule);
      h.close();
    } catch (e) {
      h.closeQuietly();
      throw h.asFormatError(e, 'updating');
    }
    // read back what was written (structure and the scalars) before it replaces the output
    const back = await readOptimizerState(tmp, { ...options.read, label, lazyAbove: 0 });
    if (back.iterations !== coefficients.iterations) throw new FormatError(label, `the updated copy reads back ${back.iterations} iterations, expected ${coefficients.iterations}`);
  });
  const schedule = state.schedule!;
  return {
    iterations: coefficients.iterations,
    schedule: { name: schedule.name, value: coefficients.schedule.get(0), saved: state.weights.some((w) => w.role?.kind === 'schedule') },
    variables: plan.map((p) => p.name),
    elements: total / steps,
  };
}

/** One variable to step: its value, m and v as lazy tensors of the file. */
interface Planned {
  readonly name: string;
  readonly value: LazyTensor;
  readonly m: LazyTensor;
  readonly v: LazyTensor;
}

function planOf(state: KerasOptimizerState, label: string): Planned[] {
  if (state.slots.every((s) => !s.inModel)) throw new FormatError(label, 'the optimizer holds no slots of the model\'s variables (never stepped, or saved before it was built): step it in memory (optimizerFromState)');
  const [a, b] = RECIPES[state.flavour].slotNames;
  return state.variables.map((variable) => {
    const slot = (name: string) => state.slots.find((s) => s.inModel && s.variable === variable.name && s.slot === name)?.value;
    const [value, m, v] = [variable.value, slot(a), slot(b)];
    for (const [what, t] of [['value', value], [a, m], [b, v]] as const) {
      if (!(t instanceof LazyTensor)) {
        const why = t === undefined ? 'is missing' : 'is a scalar (rank 0): stepInPlace steps tensors of rank >= 1';
        throw new FormatError(label, `the ${what} of variable '${variable.name}' ${why}; step this state in memory (optimizerFromState)`);
      }
    }
    return { name: variable.name, value: value as LazyTensor, m: m as LazyTensor, v: v as LazyTensor };
  });
}

/** A chunk as the backend takes it: a flat tensor over a view of stepInPlace's buffers. */
function flat(dtype: FloatDType, data: TypedData<FloatDType>): FloatTensor {
  return new Tensor(dtype, [data.length], data);
}

/** The coefficients of each step for each variable (by plan index), and the scalars after the last step. */
interface Recorded extends Array<NadamCoefficients[]> {
  iterations: number;
  schedule: Tensor;
}

/**
 * Runs the file's Nadam (optimizerFromState: same flavour, config, iterations, schedule and learning
 * rate) on stand-ins of one element per variable and slot, through a backend that records what each
 * variable's dense update receives. The stand-ins' values do not matter: a step's coefficients depend
 * on the iteration count, the schedule scalar, the hyperparameters and the dtype, never on the
 * elements (clipping would, so it is refused).
 */
function recordSteps(state: KerasOptimizerState, steps: number, options: RestoreOptions): Recorded {
  const standIn: KerasOptimizerState = {
    ...state,
    variables: state.variables.map((v) => ({ ...v, value: Tensor.zeros(v.value.dtype, []) })),
    slots: state.slots.map((s) => ({ ...s, value: Tensor.zeros(s.value.dtype, []) })),
  };
  const recorder = new RecordingBackend();
  const { optimizer, variables } = optimizerFromState(standIn, { unsavedSchedule: options.unsavedSchedule, onWarning: options.onWarning, backend: recorder });
  const index = new Map(variables.map((v, i) => [v.value, i]));
  const out = [] as unknown as Recorded;
  for (let k = 0; k < steps; k++) {
    recorder.calls = [];
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.zeros(v.dtype, []), v] as const));
    const row = new Array<NadamCoefficients>(variables.length);
    for (const call of recorder.calls) row[index.get(call.variable)!] = call.c;
    if (row.some((c) => c === undefined) || recorder.calls.length !== variables.length) throw new Error('kerasopt: the recorded Nadam step did not update every variable once');
    out.push(row);
  }
  out.iterations = optimizer.iterations;
  out.schedule = optimizer.getWeight(state.schedule!.name).value.clone();
  return out;
}

/** A backend that records each dense update's coefficients and computes nothing (see recordSteps). */
class RecordingBackend implements Backend {
  readonly name = 'kerasopt-stream-recorder';
  readonly synchronous = true;
  calls: { variable: Tensor; c: NadamCoefficients }[] = [];

  supportsDType(): boolean {
    return true;
  }

  nadamDense(state: NadamState, _grad: FloatTensor, c: NadamCoefficients): void {
    this.calls.push({ variable: state.variable, c });
  }

  nadamSparse(_state: NadamState, _rows: UniqueRows, _c: TfKerasNadamCoefficients): void {
    throw new KerasValueError('stepInPlace steps dense gradients only');
  }

  sumOfSquares(): number {
    return RecordingBackend.noClipping();
  }

  clipByValue(): FloatTensor {
    return RecordingBackend.noClipping();
  }

  scaleDiv(): FloatTensor {
    return RecordingBackend.noClipping();
  }

  segmentSumRows(): UniqueRows {
    throw new KerasValueError('stepInPlace steps dense gradients only');
  }

  scatterRows(): FloatTensor {
    throw new KerasValueError('stepInPlace steps dense gradients only');
  }

  private static noClipping(): never {
    throw new KerasValueError('stepInPlace cannot clip gradients: the optimizer config sets clipnorm, clipvalue or global_clipnorm, which need each whole gradient before any chunk moves; step this state in memory (optimizerFromState)', 'UNSUPPORTED_FEATURE');
  }
}

function weightOf(state: KerasOptimizerState, kind: 'iterations', label: string): StoredWeight {
  const w = state.weights.find((x) => x.role?.kind === kind);
  if (!w) throw new FormatError(label, `no ${kind} weight in the file`);
  return w;
}

/** The dataset of a scalar optimizer weight: `optimizer_weights/<name>` in the .h5 layouts, the name itself (its path) in Keras 3's. */
function datasetOf(state: KerasOptimizerState, w: StoredWeight): string {
  if (w.value instanceof LazyTensor) return w.value.source.dataset;
  return state.format === 'keras3-weights-h5' ? w.name : `optimizer_weights/${w.name}`;
}

/** Overwrites a scalar weight with `value` in the dataset's dtype (iterations are int64, or float32 in Keras 2.0; the schedule keeps its bits). */
function writeScalar(h: H5File, state: KerasOptimizerState, w: StoredWeight, value: number | Tensor): void {
  const path = datasetOf(state, w);
  const { dtype, shape } = h.datasetInfo(path);
  if (value instanceof Tensor && value.dtype === dtype) return h.overwriteTensor(path, new Tensor(dtype, shape, value.data));
  const x = value instanceof Tensor ? value.get(0) : value;
  h.overwriteTensor(path, Tensor.from([dtype === 'int64' ? BigInt(x) : x], dtype, shape));
}
