/**
 * The tfjs row of `npm run bench`: one `model.fit` step of a mid-size dense model (784-512-512-10,
 * ~670k float32 weights, batch 128) on tfjs's pure-JS CPU backend, with kerasopt's TfjsNadam
 * (tf.keras flavour) against tfjs's own `tf.train.adam`: the same model (same initial weights), the
 * same backend, timed round-robin in one run, reported as a ratio. The difference is the price of
 * exactness: each TfjsNadam step reads gradients and variables out of tfjs (dataSync), steps
 * kerasopt's typed Nadam, and assigns the results back, where Adam stays in tfjs's kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { TfjsNadam } from '../src/tfjs/index.js';
import { timeInterleaved } from './timing.js';

const LAYERS = [784, 512, 512, 10];
const BATCH = 128;

function model(seed: number): tf.Sequential {
  const m = tf.sequential();
  LAYERS.slice(1).forEach((units, i) => {
    m.add(tf.layers.dense({ units, activation: i === LAYERS.length - 2 ? 'softmax' : 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }), ...(i === 0 ? { inputShape: [LAYERS[0]!] } : {}) }));
  });
  return m;
}

/** Prints the row: both optimizers' median ms per fit step and TfjsNadam's time as a multiple of Adam's. */
export async function printTfjsRow(reps = 15, warmup = 3): Promise<void> {
  await tf.setBackend('cpu');
  const xs = tf.randomNormal([BATCH, LAYERS[0]!], 0, 1, 'float32', 1);
  const ys = tf.oneHot(tf.randomUniform([BATCH], 0, LAYERS[LAYERS.length - 1]!, 'int32', 2), LAYERS[LAYERS.length - 1]!);
  const rows = [
    { name: 'TfjsNadam (kerasopt, tf-keras flavour)', optimizer: new TfjsNadam({ learning_rate: 0.001 }) as tf.Optimizer, times: [] as number[] },
    { name: 'tf.train.adam (tfjs)', optimizer: tf.train.adam(0.001), times: [] as number[] },
  ].map((r) => {
    const m = model(7);
    m.compile({ optimizer: r.optimizer, loss: 'categoricalCrossentropy' });
    return { ...r, step: () => m.fit(xs, ys, { epochs: 1, batchSize: BATCH, verbose: 0 }) };
  });
  const [nadam, adam] = await timeInterleaved(rows, warmup, reps);
  const params = LAYERS.slice(1).reduce((n, u, i) => n + (LAYERS[i]! + 1) * u, 0);
  console.log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}: one model.fit step of a dense ${LAYERS.join('-')} model (${params.toLocaleString('en-US')} weights), batch ${BATCH}; medians of ${reps} rounds after ${warmup} warm-ups, round-robin`);
  for (const [r, ms] of [[rows[0]!, nadam!], [rows[1]!, adam!]] as const) console.log(`  ${r.name.padEnd(40)} ${ms.toFixed(2).padStart(9)} ms/step`);
  console.log(`  TfjsNadam / tf.train.adam: ${(nadam! / adam!).toFixed(2)}x the time per fit step (the cost of exactness; same model, backend and run)`);
}
