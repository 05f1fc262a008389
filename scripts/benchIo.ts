/**
 * The I/O rows of `npm run bench`: reading and writing a Keras optimizer state of about `bytes` bytes,
 * each as a ratio to what the operating system itself takes to move the same file in the same run:
 * `cat FILE > /dev/null` for a read, `cp FILE COPY` for a write (the save copies the file, edits
 * the copy and renames it, so `cp` is its floor). Timed round-robin, medians of `reps` rounds,
 * warm page cache for all of them (the file is read once before timing).
 *
 * The file is a tf.keras 2.x `.h5` model made with Debian's h5py (made by this script, not by Keras):
 * four float32 dense kernels and their m and v slots, so that the model and optimizer weights add up to
 * `bytes`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { optimizerFromState, readOptimizerState, saveOptimizerState } from '../src/formats/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { median } from './timing.js';

const PYTHON = '/usr/bin/python3';

/** Writes the benchmark model: 4 kernels [rows, 1024] with iter, momentum_cache, m and v, ~`bytes` in all. */
function makeState(file: string, bytes: number): void {
  const rows = Math.max(1, Math.round(bytes / (3 * 4 * 4 * 1024)));
  execFileSync(PYTHON, ['-c', String.raw`
import json, sys
import h5py, numpy as np
path, rows = sys.argv[1], int(sys.argv[2])
names = ['dense_%d/kernel:0' % i for i in range(4)]
rng = np.random.default_rng(1)
with h5py.File(path, 'w') as f:
    f.attrs['keras_version'] = '2.9.0'
    f.attrs['backend'] = 'tensorflow'
    f.attrs['training_config'] = json.dumps({'optimizer_config': {'class_name': 'Nadam', 'config': {
        'name': 'Nadam', 'learning_rate': 0.001, 'decay': 0.004, 'beta_1': 0.9, 'beta_2': 0.999, 'epsilon': 1e-07}}}).encode()
    mw = f.create_group('model_weights')
    mw.attrs['layer_names'] = [n.split('/')[0].encode() for n in names]
    for n in names:
        g = mw.create_group(n.split('/')[0])
        g.attrs['weight_names'] = [n.encode()]
        g.create_dataset(n, data=rng.standard_normal((rows, 1024), dtype=np.float32))
    ow = f.create_group('optimizer_weights')
    slots = ['Nadam/%s/%s:0' % (n[:-2], s) for s in ('m', 'v') for n in names]
    ow.attrs['weight_names'] = [b'Nadam/iter:0', b'Nadam/momentum_cache:0'] + [s.encode() for s in slots]
    ow.create_dataset('Nadam/iter:0', data=np.int64(10))
    ow.create_dataset('Nadam/momentum_cache:0', data=np.float32(0.5))
    for s in slots:
        ow.create_dataset(s, data=np.abs(rng.standard_normal((rows, 1024), dtype=np.float32)) * 1e-3)
`, file, String(rows)]);
}

function timed(run: () => void): number {
  const t = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function timedAsync(run: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** One I/O row: kerasopt's time, the system's time for the same bytes, and their ratio. */
export interface IoRow {
  readonly name: string;
  readonly ms: number;
  readonly baseline: string;
  readonly baselineMs: number;
}

/** Measures reading and saving a state of about `bytes` bytes; null (with the reason) when h5py is missing. */
export async function ioRows(bytes: number, reps = 3): Promise<{ rows: IoRow[]; fileBytes: number } | { error: string }> {
  const probe = spawnSync(PYTHON, ['-c', 'import h5py, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return { error: `${PYTHON} with h5py and numpy is needed to make the file: ${(probe.stderr || String(probe.error)).trim().split('\n').pop()}` };
  const dir = mkdtempSync(join(tmpdir(), 'kerasopt-bench-io-'));
  try {
    const file = join(dir, 'state.h5');
    makeState(file, bytes);
    const copy = join(dir, 'copy.h5');
    const target = join(dir, 'target.h5');
    execFileSync('cat', [file], { maxBuffer: 1 << 20, stdio: ['ignore', 'ignore', 'inherit'] }); // warm the page cache
    const state = await readOptimizerState(file);
    const { optimizer, variables } = optimizerFromState(state, { backend: 'typed' });
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill('float32', v.shape, 1e-3), v] as const));
    const times = { cat: [] as number[], cp: [] as number[], read: [] as number[], save: [] as number[] };
    for (let r = 0; r < reps; r++) {
      times.cat.push(timed(() => execFileSync('sh', ['-c', `cat "${file}" > /dev/null`])));
      times.read.push(await timedAsync(() => readOptimizerState(file)));
      times.cp.push(timed(() => execFileSync('cp', [file, copy])));
      execFileSync('cp', [file, target]);
      times.save.push(await timedAsync(() => saveOptimizerState(target, optimizer, { like: state })));
    }
    return {
      fileBytes: statSync(file).size,
      rows: [
        { name: 'readOptimizerState (tf.keras .h5)', ms: median(times.read), baseline: 'cat FILE > /dev/null', baselineMs: median(times.cat) },
        { name: 'saveOptimizerState after a step (copy, edit, rename)', ms: median(times.save), baseline: 'cp FILE COPY', baselineMs: median(times.cp) },
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints the I/O rows (called by scripts/bench.ts). */
export async function printIoRows(bytes: number, reps = 3): Promise<void> {
  const result = await ioRows(bytes, reps);
  if ('error' in result) {
    console.log(`*** I/O ROWS NOT MEASURED: ${result.error}`);
    return;
  }
  console.log(`I/O: a tf.keras .h5 optimizer state of ${(result.fileBytes / 1e6).toFixed(0)} MB (made by this script with h5py), warm page cache, medians of ${reps}`);
  console.log(`  ${'operation'.padEnd(56)} ${'ms'.padStart(9)} ${'system'.padStart(22)} ${'ms'.padStart(9)} ${'ratio'.padStart(7)}`);
  for (const r of result.rows) {
    console.log(`  ${r.name.padEnd(56)} ${r.ms.toFixed(1).padStart(9)} ${r.baseline.padStart(22)} ${r.baselineMs.toFixed(1).padStart(9)} ${(r.ms / r.baselineMs).toFixed(2).padStart(7)}`);
  }
  console.log('');
}
