import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExponentialDecay, FLAVOURS, Nadam, Tensor, Variable, type Flavour, type NadamOptions } from '../src/index.js';
import { TfjsNadam } from '../src/tfjs/index.js';
import { cpuBackend, hex, recordGradients, replay, tfHex } from './helpers/tfjs.js';

/** Per flavour, options that exercise its own features (clipping, schedule_decay, a schedule). */
const OPTIONS: Record<Flavour, NadamOptions> = {
  'tf-keras': { learning_rate: 0.01, clipnorm: 0.05 },
  keras2: { learning_rate: 0.02, schedule_decay: 0.01 },
  'tf-keras-new': { learning_rate: 0.01, global_clipnorm: 0.1 },
  keras3: { learning_rate: new ExponentialDecay({ initial_learning_rate: 0.02, decay_steps: 3, decay_rate: 0.5 }), global_clipnorm: 0.2 },
};

function denseModel(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [6], units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: 'ones' }),
    ],
  });
}

/** Copies of the model's trainable weights as kerasopt variables named as tfjs names them. */
const snapshot = (model: tf.LayersModel): Variable[] =>
  model.trainableWeights.map((w) => new Variable(new Tensor('float32', w.shape as number[], (w.read().dataSync() as Float32Array).slice()), { name: w.read().name }));

beforeAll(cpuBackend);

describe('TfjsNadam is kerasopt\'s Nadam, bit for bit, in every flavour', () => {
  for (const flavour of FLAVOURS) {
    it(`${flavour}: after model.fit, variables, slots, schedule and iterations equal a typed-backend replay of the recorded gradients`, async () => {
      const model = denseModel(7);
      const optimizer = new TfjsNadam({ ...OPTIONS[flavour], flavour });
      model.compile({ optimizer, loss: 'categoricalCrossentropy' });
      const initial = snapshot(model);
      const steps = recordGradients(optimizer);
      const xs = tf.randomNormal([24, 6], 0, 1, 'float32', 3);
      const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 1, 1, 0, 2, 0, 1, 2, 2, 1, 0, 0, 1], 'int32'), 3);
      await model.fit(xs, ys, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
      expect(steps.length).toBe(6);
      expect(optimizer.iterations).toBe(6);

      const reference = new Nadam({ ...OPTIONS[flavour], flavour });
      replay(reference, steps, (name) => initial.find((v) => v.name === name)!, initial);
      model.trainableWeights.forEach((w, i) => {
        expect(tfHex(w.read()), w.name).toBe(hex(initial[i]!.value));
        expect(tfHex(w.read()), `${w.name} moved`).not.toBe(hex(snapshot(denseModel(7))[i]!.value));
      });
      expect(optimizer.nadam.weights.map((w) => [w.name, hex(w.value)])).toEqual(reference.weights.map((w) => [w.name, hex(w.value)]));
      expect(optimizer.nadam.weights.length).toBe(reference.weights.length);
      expect(optimizer.nadam.weights.length).toBeGreaterThan(8); // iterations, the slots of 4 variables, and more
    });
  }

  it('reads the tfjs values at every step: weights set between fits are what the next step starts from', async () => {
    const model = denseModel(11);
    const optimizer = new TfjsNadam({ learning_rate: 0.01, flavour: 'keras3' });
    model.compile({ optimizer, loss: 'meanSquaredError' });
    const [xs, ys] = [tf.randomNormal([4, 6], 0, 1, 'float32', 5), tf.randomNormal([4, 3], 0, 1, 'float32', 6)];
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    model.setWeights(model.getWeights().map((w) => tf.mul(w, 0.5)));
    const before = snapshot(model);
    const reference = new Nadam({ learning_rate: 0.01, flavour: 'keras3' });
    reference.build(before);
    reference.setWeights(optimizer.nadam.weights.map((w) => w.value.clone()));
    const steps = recordGradients(optimizer);
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    replay(reference, steps, (name) => before.find((v) => v.name === name)!, before);
    model.trainableWeights.forEach((w, i) => expect(tfHex(w.read()), w.name).toBe(hex(before[i]!.value)));
  });

  it('is driven by minimize too, and refuses a non-float32 variable by name', () => {
    const x = tf.variable(tf.scalar(10), true, 'tfjs_nadam_x');
    const optimizer = new TfjsNadam({ learning_rate: 0.2 });
    optimizer.minimize(() => tf.mul(tf.square(x), 0.5) as tf.Scalar, false, [x]);
    // the tf.keras docstring example: one step from 10 with lr 0.2 (kerasopt's README: 9.78871)
    expect(x.dataSync()[0]).toBeCloseTo(9.78871, 4);
    expect(optimizer.iterations).toBe(1);
    const n = tf.variable(tf.scalar(3, 'int32'), true, 'tfjs_nadam_int');
    expect(() => optimizer.applyGradients([{ name: n.name, tensor: tf.scalar(1, 'int32') }])).toThrow(/tfjs_nadam_int.*int32.*float32 variables only/);
  });
});

describe('TfjsNadam and tfjs serialization', () => {
  it('is registered as Nadam; getConfig / fromConfig keep the Keras config and the flavour (camelCase keys and custom_objects accepted)', () => {
    const entry = tf.serialization.SerializationMap.getMap().classNameMap.Nadam;
    expect(entry?.[0]).toBe(TfjsNadam);
    const original = new TfjsNadam({ learning_rate: 0.005, beta_1: 0.8, flavour: 'tf-keras-new' });
    const config = original.getConfig();
    expect(config.flavour).toBe('tf-keras-new');
    const again = TfjsNadam.fromConfig(TfjsNadam, config) as TfjsNadam;
    expect(again.nadam.flavour).toBe('tf-keras-new');
    expect(again.getConfig()).toEqual(config);
    const camel = TfjsNadam.fromConfig(TfjsNadam, { learningRate: 0.005, beta1: 0.8, flavour: 'keras3', custom_objects: {} }) as TfjsNadam;
    expect(camel.nadam.hyperparameters.beta_1).toBe(0.8);
    expect(camel.nadam.flavour).toBe('keras3');
  });

  it('survives tfjs model.save({ includeOptimizer }) and loadLayersModel: slots and iterations restored, training goes on', async () => {
    const model = denseModel(3);
    const optimizer = new TfjsNadam({ learning_rate: 0.01, flavour: 'keras3' });
    model.compile({ optimizer, loss: 'meanSquaredError' });
    const [xs, ys] = [tf.randomNormal([8, 6], 0, 1, 'float32', 1), tf.randomNormal([8, 3], 0, 1, 'float32', 2)];
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }), { includeOptimizer: true });
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    const back = loaded.optimizer as TfjsNadam;
    expect(back).toBeInstanceOf(TfjsNadam);
    expect(back.iterations).toBe(2);
    const saved = await optimizer.getWeights();
    const restored = await back.getWeights();
    expect(restored.map((w) => [w.name, tfHex(w.tensor)])).toEqual(saved.map((w) => [w.name, tfHex(w.tensor)]));
    await loaded.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    expect(back.iterations).toBe(4);
  });
});
