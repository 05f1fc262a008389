import { parseArgs } from 'node:util';
import { dumpsPython } from '../../config/pyjson.js';
import { KerasValueError } from '../../errors.js';
import { lazyStats } from '../../formats/chunked.js';
import { readOptimizerState, type KerasOptimizerState } from '../../formats/index.js';
import { LazyTensor } from '../../tensor/lazy.js';
import { progressBar, type ProgressStream } from '../../parity/progress.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Command } from '../command.js';

/** Where `kerasopt inspect` writes; tests pass their own streams. */
export interface InspectIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: ProgressStream;
}

const USAGE = `inspect FILE [--json] [--deadline SECONDS] [--optimizer NAME]
    Prints the optimizer state of a Keras file (.h5 from tf.keras or Keras 2, .weights.h5 or .keras
    from Keras 3; any built-in Keras optimizer, see docs/optimizers.md) or of a TF2 checkpoint holding
    a tf.keras Nadam (its prefix or .index, or a SavedModel directory): format, optimizer, config,
    iterations, Nadam's momentum schedule, and a table of slots
    (variable, slot, shape, dtype, min/max/mean, whether the saved model has the variable), the Keras
    release range and layout that wrote it with the evidence (docs/keras-releases.md). Progress on
    stderr for large files (TTY only). The read runs in a worker thread and is stopped after
    --deadline seconds (default 10 s plus 1 s per 50 MB of file): a corrupt file that makes libhdf5
    loop fails instead of hanging. A file that records no optimizer (a Keras 3 .weights.h5) lists the
    optimizers whose layout fits; --optimizer NAME reads it as that one.
    Exit: 0 read, 2 bad input (the error names the file and the object).`;

/** The class as Keras names it, without the 'Custom>' TF 2.11-2.15 put before their registered optimizers. */
export function bareClassName(name: string): string {
  return name.replace(/^custom>/i, '');
}

/** Files with more datasets than this show a progress bar while they are read. */
const PROGRESS_FROM = 50;

/** min / max / mean of a tensor's values (NaN-free values only; null for an empty tensor). */
export function stats(t: Tensor): { min: number; max: number; mean: number } | null {
  if (t instanceof LazyTensor) return lazyStats(t); // streamed by the read (lazyStats), in the same element order
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < t.size; i++) {
    const x = t.get(i);
    if (Number.isNaN(x)) continue;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    count++;
  }
  return count === 0 ? null : { min, max, mean: sum / count };
}

function summary(state: KerasOptimizerState): Record<string, unknown> {
  return {
    file: state.file,
    format: state.format,
    flavour: state.flavour,
    keras_version: state.kerasVersion,
    release: state.release.range,
    layout: state.release.layout,
    evidence: state.release.evidence,
    optimizer: state.className === null ? null : bareClassName(state.className),
    ...(state.className === null ? { class_recorded: false, fits: state.fits ?? [] } : {}),
    config: state.config,
    iterations: state.iterations,
    ...(state.schedule ? { schedule: { name: state.schedule.name, value: state.schedule.value.get(0), dtype: state.schedule.value.dtype, reconstructed: state.schedule.reconstructed } } : {}),
    slots: state.slots.map((s) => ({ variable: s.variable, slot: s.slot, weight: s.weightName, shape: [...s.value.shape], dtype: s.value.dtype, in_model: s.inModel, ...stats(s.value) })),
    notes: state.notes,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

const num = (x: number | undefined): string => (x === undefined ? '-' : Number(x.toPrecision(6)).toString());

function text(state: KerasOptimizerState): string {
  const s = state.schedule;
  const lines = [
    `file:        ${state.file}`,
    `format:      ${state.format}${state.kerasVersion ? ` (keras_version ${state.kerasVersion})` : ''}`,
    `optimizer:   ${state.className === null ? `not recorded in the file; its variables fit ${state.fits?.join(', ') || 'none'} (say which with --optimizer NAME)` : bareClassName(state.className)} (flavour ${state.flavour})`,
    `release:     ${state.release.range} (layout ${state.release.layout})`,
    ...state.release.evidence.map((e, i) => `${i === 0 ? 'evidence:   ' : '            '} ${e}`),
    `config:      ${dumpsPython(state.config)}`,
    `iterations:  ${state.iterations ?? 'not saved by this release'}`,
    ...(s ? [`schedule:    ${s.name} = ${s.value.get(0)} (${s.value.dtype})${s.reconstructed ? ' [reconstructed, not saved in the file]' : ''}`] : []),
    ...state.notes.map((n, i) => `${i === 0 ? 'notes:      ' : '            '} ${n}`),
    '',
  ];
  const rows = [['variable', 'slot', 'shape', 'dtype', 'min', 'max', 'mean', 'in model']];
  for (const slot of state.slots) {
    const st = stats(slot.value);
    rows.push([slot.variable, slot.slot, `[${slot.value.shape.join(', ')}]`, slot.value.dtype, num(st?.min), num(st?.max), num(st?.mean), slot.inModel ? 'yes' : 'no (kept as read)']);
  }
  return `${lines.join('\n')}${table(rows)}\n`;
}

/** Builds the `inspect` command over the given streams. */
export function createInspectCommand(io: InspectIo): Command {
  return {
    name: 'inspect',
    docs: 'docs/keras-files.md',
    usage: USAGE,
    async run(argv) {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean', default: false }, deadline: { type: 'string' }, optimizer: { type: 'string' } } });
      if (positionals.length !== 1) throw new KerasValueError(`inspect takes one FILE, got ${positionals.length}\nusage: kerasopt ${USAGE}`);
      const seconds = values.deadline === undefined ? undefined : Number(values.deadline);
      if (seconds !== undefined && !(seconds > 0)) throw new KerasValueError(`--deadline takes a positive number of seconds, got '${values.deadline}'`);
      const bar = progressBar(io.stderr, 'reading');
      const state = await readOptimizerState(positionals[0]!, {
        // every tensor of an .h5 / .weights.h5 stays in the file and its statistics are streamed in chunks: memory does not grow with the file
        lazyAbove: 0,
        lazyStats: true,
        ...(seconds === undefined ? {} : { deadlineMs: seconds * 1000 }),
        ...(values.optimizer === undefined ? {} : { optimizer: values.optimizer }),
        onProgress: (done, total) => {
          if (total >= PROGRESS_FROM) bar?.update(done, total);
        },
      });
      bar?.done();
      io.stdout.write(values.json ? `${JSON.stringify(summary(state), null, 2)}\n` : text(state));
      return 0;
    },
  };
}

export const inspect: Command = createInspectCommand({ stdout: process.stdout, stderr: process.stderr });
