import { describe, expect, it } from 'vitest';
import { createInspectCommand, stats } from '../src/cli/commands/inspect.js';
import { readOptimizerConfigFile } from '../src/config/sources.js';
import '../src/formats/index.js';
import { FormatError, Tensor } from '../src/index.js';
import { h5pyDump, useMadeKerasFiles, tensorOfDump } from './helpers/kerasFiles.js';

const { missing, made } = useMadeKerasFiles('inspect');

function run(argv: string[], isTTY = false): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const cmd = createInspectCommand({ stdout: { write: (t: string) => (out += t) }, stderr: { isTTY, columns: 120, write: (t: string) => (err += t) } });
  return cmd.run(argv).then((code) => ({ code, out, err }));
}

describe.skipIf(missing !== null)('kerasopt inspect', () => {
  it('prints optimizer, config, iterations and a slot table with min/max/mean', async () => {
    const { code, out } = await run([made.files['tf_keras_h5py3.h5']!.file]);
    expect(code).toBe(0);
    expect(out).toMatch(/format: +tf-keras-h5 \(keras_version 2\.4\.0\)/);
    expect(out).toMatch(/optimizer: +Nadam \(flavour tf-keras\)/);
    expect(out).toMatch(/iterations: +7/);
    expect(out).toMatch(/schedule: +momentum_cache = 0\.00375380/);
    expect(out).toMatch(/^variable +slot +shape +dtype +min +max +mean +in model$/m);
    expect(out).toMatch(/^dense\/kernel +m +\[3, 4\] +float32 +-?\d/m);
    expect(out.trim().split('\n').filter((l) => /^dense/.test(l))).toHaveLength(8);
  });

  it('--json gives the same facts, with stats that match the slot values', async () => {
    const { out } = await run([made.files['keras2_2.2.4.h5']!.file, '--json']);
    const j = JSON.parse(out) as { flavour: string; iterations: number; schedule: { reconstructed: boolean }; slots: Array<{ variable: string; weight: string; min: number; max: number; mean: number; shape: number[] }> };
    expect(j.flavour).toBe('keras2');
    expect(j.iterations).toBe(5);
    expect(j.schedule.reconstructed).toBe(true);
    expect(j.slots[0]).toMatchObject({ variable: 'dense_1/kernel', shape: [3, 4] });
    expect(j.slots).toHaveLength(8);
    // each slot's stats, recomputed from h5py's reading of its dataset
    const dump = h5pyDump(made.files['keras2_2.2.4.h5']!.file);
    for (const slot of j.slots) {
      const values = Array.from(tensorOfDump(dump.datasets[`optimizer_weights/${slot.weight}`]!).data as Float32Array);
      expect(values.length, slot.weight).toBe(slot.shape.reduce((a, b) => a * b, 1));
      expect([slot.min, slot.max, slot.mean], slot.weight).toEqual([Math.min(...values), Math.max(...values), values.reduce((a, b) => a + b, 0) / values.length]);
    }
  });

  it('shows progress for a large file on a TTY only', async () => {
    const tty = await run([made.files['tf_keras_chunked.h5']!.file], true);
    expect(tty.err).toMatch(/reading \[#+\.*\] \d+\/842/);
    const pipe = await run([made.files['tf_keras_chunked.h5']!.file], false);
    expect(pipe.err).toBe('');
  });

  it('a bad file is a FormatError naming it (the CLI maps it to exit 2)', async () => {
    await expect(run([made.files['no_optimizer.h5']!.file])).rejects.toBeInstanceOf(FormatError);
    await expect(run([])).rejects.toThrow(/inspect takes one FILE/);
  });

  it('registers .h5 and .keras loaders for `kerasopt config show`', async () => {
    const h5 = await readOptimizerConfigFile(made.files['tf_keras_h5py2.h5']!.file);
    expect(h5.origin).toBe('attribute training_config of /');
    const keras = await readOptimizerConfigFile(made.files['keras3.keras']!.file);
    expect(keras.origin).toBe('config.json in the archive');
  });

  it('stats of float16 use the half values', () => {
    expect(stats(Tensor.from([1, 2, 3.5], 'float16'))).toEqual({ min: 1, max: 3.5, mean: 6.5 / 3 });
  });
});
