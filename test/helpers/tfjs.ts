import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import type { Nadam, Variable } from '../../src/index.js';
import { Tensor } from '../../src/index.js';
import type { TfjsNadam } from '../../src/tfjs/index.js';
import { PYTHON } from './python.js';

/** tfjs's pure-JS CPU backend, set once (the issue: no tfjs-node, no WebGL). */
export async function cpuBackend(): Promise<void> {
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
}

/** One recorded step: each gradient tfjs handed to the optimizer (name, copy of its values, shape; null when missing). */
export type RecordedStep = Array<{ name: string; shape: number[]; values: Float32Array | null }>;

/** Records, before each step, the gradients `model.fit` / `minimize` pass to `optimizer.applyGradients`. */
export function recordGradients(optimizer: TfjsNadam): RecordedStep[] {
  const steps: RecordedStep[] = [];
  const apply = optimizer.applyGradients.bind(optimizer);
  optimizer.applyGradients = (grads) => {
    const list = Array.isArray(grads) ? grads : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
    steps.push(list.map((g) => ({ name: g.name, shape: g.tensor ? [...g.tensor.shape] : [], values: g.tensor ? (g.tensor.dataSync() as Float32Array).slice() : null })));
    apply(grads);
  };
  return steps;
}

/**
 * Replays recorded gradients on a kerasopt Nadam (typed backend) over kerasopt variables, in the
 * given variable order (Keras's: the file's optimizer order, or the model's trainable order).
 * `variableOf` maps a tfjs variable name to the kerasopt variable standing for it.
 */
export function replay(nadam: Nadam, steps: RecordedStep[], variableOf: (tfjsName: string) => Variable, order: readonly Variable[]): void {
  for (const step of steps) {
    const pairs = step.map((g) => [g.values ? new Tensor('float32', g.shape, g.values) : null, variableOf(g.name)] as const);
    pairs.sort((a, b) => rank(order, a[1]) - rank(order, b[1]));
    nadam.applyGradientsSync(pairs);
  }
}

function rank(order: readonly Variable[], v: Variable): number {
  const i = order.indexOf(v);
  return i < 0 ? order.length : i;
}

/** Little-endian hex of a kerasopt tensor's bytes (bit-for-bit comparisons that show where they differ). */
export const hex = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');
/** The same for a tfjs tensor (float32). */
export const tfHex = (t: tf.Tensor): string => {
  const d = t.dataSync() as Float32Array;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
};

/** Synthetic inputs and targets for `model`: `n` samples, seeded, of each input's and output's shape. */
export function syntheticData(model: tf.LayersModel, n: number, seed = 1): { xs: tf.Tensor[]; ys: tf.Tensor[] } {
  const shape = (s: Array<number | null>) => s.map((d) => d ?? n);
  const xs = model.inputs.map((i, k) => tf.randomNormal(shape(i.shape), 0, 1, 'float32', seed + k));
  // targets in [0, 1) rows summing to 1: valid for every loss the corpus uses (crossentropies, mse)
  const ys = model.outputs.map((o, k) => tf.softmax(tf.randomNormal(shape(o.shape), 0, 1, 'float32', seed + 100 + k)));
  return { xs, ys };
}

/** h5py's reading of every dataset of an .h5 file or a .keras archive's model.weights.h5: path → little-endian hex. */
export function h5pyDatasetHex(path: string): Record<string, string> {
  const script = String.raw`
import io, json, sys, zipfile
import h5py, numpy as np
path = sys.argv[1]
src = io.BytesIO(zipfile.ZipFile(path).read('model.weights.h5')) if zipfile.is_zipfile(path) else path
out = {}
with h5py.File(src, 'r') as f:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in 'fiu':
            a = np.ascontiguousarray(obj[()])
            out[name] = a.astype(a.dtype.newbyteorder('<')).tobytes().hex()
    f.visititems(visit)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script, path], { encoding: 'utf8', maxBuffer: 1 << 28 })) as Record<string, string>;
}
