import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FormatError, KerasValueError } from '../../errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { exportNadamStep, nadamStepInputs, nadamStepOutputs } from '../../onnx/export.js';
import { FLAVOUR_LIST, isFlavour } from '../../optimizers/flavour.js';
import { isFloatDType } from '../../tensor/dtype.js';
import type { Command } from '../command.js';

export const exportOnnx: Command = {
  name: 'export-onnx',
  docs: 'docs/onnx.md',
  usage: `export-onnx -o OUT.onnx [--flavour tf-keras|keras2|keras3|tf-keras-new] [--dtype float16|float32|float64]
    Writes one Nadam step as a standalone ONNX model (IR 8, opset 17): inputs variable, gradient,
    m, v (rank 1), iterations, the schedule scalar and the hyperparameters; outputs the new state.
    Defaults: --flavour tf-keras --dtype float32. The file is replaced atomically.`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        flavour: { type: 'string', default: 'tf-keras' },
        dtype: { type: 'string', default: 'float32' },
      },
    });
    if (positionals.length > 0) throw new KerasValueError(`unexpected argument(s): ${positionals.join(' ')}`);
    if (!values.output) throw new KerasValueError('missing -o OUT.onnx (where to write the model)');
    const { flavour, dtype } = values;
    if (!isFlavour(flavour)) throw new KerasValueError(`--flavour: unknown flavour '${flavour}'; expected ${FLAVOUR_LIST}`);
    if (!isFloatDType(dtype)) throw new KerasValueError(`--dtype: unknown dtype '${dtype}'; expected float16, float32 or float64`);
    const out = resolve(values.output);
    const bytes = exportNadamStep({ flavour, dtype });
    try {
      writeFileAtomic(out, bytes);
    } catch (e) {
      throw new FormatError(out, `cannot write the model: ${(e as Error).message}`);
    }
    process.stdout.write(
      `wrote ${out} (${bytes.length} bytes): one ${flavour} Nadam step in ${dtype}\n` +
        `  inputs:  ${nadamStepInputs(flavour).join(', ')}\n  outputs: ${nadamStepOutputs(flavour).join(', ')}\n`,
    );
    return 0;
  },
};
