import { describe, expect, it } from 'vitest';
import { readOptimizerState, reconstructMSchedule, reconstructUProduct, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits } from '../src/formats/state.js';
import { arith } from '../src/index.js';
import { h5pyDump, useMadeKerasFiles, tensorOfDump, type MadeFile } from './helpers/kerasFiles.js';

const { missing, made } = useMadeKerasFiles('read');

const f = (name: string): MadeFile => made.files[name]!;

/** Where h5py finds each optimizer weight of a state, for the independent reading. */
function h5pyPath(state: KerasOptimizerState, name: string): string {
  return state.format === 'keras3-weights-h5' || state.format === 'keras3-archive' ? name : `optimizer_weights/${name}`;
}

describe.skipIf(missing !== null)('reading Keras files (made by kerasopt test helper in Keras layouts)', () => {
  const h5Files = ['tf_keras_h5py2.h5', 'tf_keras_h5py3.h5', 'tf_keras_f64.h5', 'tf_keras_f16.h5', 'tf_keras_chunked.h5', 'keras2_2.2.4.h5', 'keras2_2.3.1.h5', 'keras3.weights.h5', 'keras3_nested.weights.h5', 'tf_keras_new.h5', 'tf_keras_new_f64.h5'];

  it.each(h5Files)('%s: every weight and model variable equals h5py reading, bit for bit', async (name) => {
    const info = f(name);
    const state = await readOptimizerState(info.file);
    expect(state.flavour).toBe(info.flavour);
    expect(state.iterations).toBe(info.iterations);
    expect(state.slots).toHaveLength(info.slots!);
    const dump = h5pyDump(info.file);
    for (const w of state.weights) {
      const d = dump.datasets[h5pyPath(state, w.name)];
      expect(d, `h5py sees ${w.name}`).toBeDefined();
      expect(sameBits(w.value, tensorOfDump(d!)), w.name).toBe(true);
    }
    const keras3 = state.flavour === 'keras3';
    for (const v of state.variables) {
      const path = keras3 ? v.name : Object.keys(dump.datasets).find((p) => p.startsWith('model_weights/') && p.endsWith(`/${v.name}:0`))!;
      expect(sameBits(v.value, tensorOfDump(dump.datasets[path]!)), v.name).toBe(true);
    }
    // each slot is tied to a model variable of its shape and dtype
    for (const s of state.slots) {
      const owner = state.variables.find((v) => v.name === s.variable)!;
      expect(owner.value.shape).toEqual(s.value.shape);
      expect(owner.value.dtype).toBe(s.value.dtype);
    }
  });

  it('keeps every dtype: float16 slots as half bits, float64 as doubles, int64 iterations', async () => {
    const half = await readOptimizerState(f('tf_keras_f16.h5').file);
    expect(half.slots.every((s) => s.value.dtype === 'float16')).toBe(true);
    expect(half.schedule.value.dtype).toBe('float16');
    const dbl = await readOptimizerState(f('tf_keras_f64.h5').file);
    expect(dbl.slots.every((s) => s.value.dtype === 'float64')).toBe(true);
    expect(dbl.schedule.value.get(0)).toBe(f('tf_keras_f64.h5').momentum_cache);
    expect(dbl.weights[0]!.value.dtype).toBe('int64');
  });

  it('ties tf.keras slots by name: Nadam/dense/kernel/m:0 belongs to dense/kernel', async () => {
    const state = await readOptimizerState(f('tf_keras_h5py2.h5').file);
    expect(state.slots[0]).toMatchObject({ variable: 'dense/kernel', slot: 'm', weightName: 'Nadam/dense/kernel/m:0' });
    expect(state.slots[4]).toMatchObject({ variable: 'dense/kernel', slot: 'v' });
    expect(state.config).toMatchObject({ name: 'Nadam', decay: 0.004 });
    expect(state.kerasVersion).toBe('2.4.0');
    expect(state.stringStyle).toBe('fixed');
    expect((await readOptimizerState(f('tf_keras_h5py3.h5').file)).stringStyle).toBe('vlen');
  });

  it('reads weight_names chunked past 64512 bytes (weight_names0, weight_names1, ...)', async () => {
    const dump = h5pyDump(f('tf_keras_chunked.h5').file);
    expect(Object.keys(dump.attrs['optimizer_weights']!)).toContain('weight_names1');
    const state = await readOptimizerState(f('tf_keras_chunked.h5').file);
    expect(state.weights).toHaveLength(842);
  });

  it('Keras 2.2: m_schedule is reconstructed from iterations and config, and says so', async () => {
    const info = f('keras2_2.2.4.h5');
    const state = await readOptimizerState(info.file);
    expect(state.keras2Layout).toBe('2.2');
    expect(state.schedule.reconstructed).toBe(true);
    expect(state.notes.join(' ')).toMatch(/m_schedule is not saved by standalone Keras 2\.1\.0-2\.2\.5.*: reconstructed/);
    // kerasopt's float32 product against numpy's own float32 ops (the helper's independent computation)
    const ours = state.schedule.value.get(0);
    expect(ours).toBe(reconstructMSchedule(state.config, info.iterations!));
    const ulps = Math.abs(new Int32Array(new Float32Array([ours]).buffer)[0]! - new Int32Array(new Float32Array([info.m_schedule!]).buffer)[0]!);
    expect(ulps).toBeLessThanOrEqual(1);
    expect(arith('float32').cast(ours)).toBe(ours);
    const saved = await readOptimizerState(f('keras2_2.3.1.h5').file);
    expect(saved.keras2Layout).toBe('2.3');
    expect(saved.schedule.reconstructed).toBe(false);
    expect(saved.schedule.value.get(0)).toBe(f('keras2_2.3.1.h5').m_schedule);
  });

  it('TF 2.11-2.15 .h5: iteration, then m and v interleaved per variable, tied by name; u_product reconstructed and said so', async () => {
    for (const [name, dtype] of [['tf_keras_new.h5', 'float32'], ['tf_keras_new_f64.h5', 'float64']] as const) {
      const info = f(name);
      const state = await readOptimizerState(info.file);
      expect([state.format, state.flavour, state.className, state.kerasVersion]).toEqual(['tf-keras-new-h5', 'tf-keras-new', 'Custom>Nadam', '2.11.0']);
      expect(state.weights.map((w) => w.name).slice(0, 3)).toEqual(['iteration:0', 'Nadam/m/dense/kernel:0', 'Nadam/v/dense/kernel:0']);
      expect(state.slots.slice(0, 4).map((s) => [s.variable, s.slot])).toEqual([['dense/kernel', 'm'], ['dense/kernel', 'v'], ['dense/bias', 'm'], ['dense/bias', 'v']]);
      expect(state.variables.map((v) => v.name)).toEqual(['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias']);
      expect(state.schedule).toMatchObject({ name: 'u_product', reconstructed: true });
      expect(state.schedule.value.dtype).toBe(dtype);
      expect(state.notes.join(' ')).toMatch(/u_product is not saved by TF 2\.11-2\.15 .*reconstructed .*TF itself restarts it at 1\.0/);
      const ours = state.schedule.value.get(0);
      expect(ours).toBe(reconstructUProduct(0.9, info.iterations!, dtype));
      // against numpy's own ops in the helper (exact powers rounded once, see keras_files.py): no ulp apart
      const ulps = dtype === 'float32'
        ? Math.abs(new Int32Array(new Float32Array([ours]).buffer)[0]! - new Int32Array(new Float32Array([info.u_product!]).buffer)[0]!)
        : Number(new BigInt64Array(new Float64Array([ours]).buffer)[0]! - new BigInt64Array(new Float64Array([info.u_product!]).buffer)[0]!);
      expect(ulps, name).toBe(0);
    }
  });

  it('TF 2.13-2.15 .keras archive with a TF 2.11+ Nadam: optimizer/vars is iteration then m and v interleaved; u_product reconstructed', async () => {
    const info = f('tf_keras_new.keras');
    const state = await readOptimizerState(info.file);
    expect([state.format, state.flavour, state.kerasVersion, state.iterations]).toEqual(['keras3-archive', 'tf-keras-new', '2.13.1', 11]);
    expect(state.slots.slice(0, 4).map((s) => [s.variable, s.slot, s.weightName])).toEqual([
      ['layers/dense/vars/0', 'm', 'optimizer/vars/1'], ['layers/dense/vars/0', 'v', 'optimizer/vars/2'],
      ['layers/dense/vars/1', 'm', 'optimizer/vars/3'], ['layers/dense/vars/1', 'v', 'optimizer/vars/4'],
    ]);
    expect(state.schedule).toMatchObject({ name: 'u_product', reconstructed: true });
    expect(state.schedule.value.get(0)).toBe(info.u_product);
    expect(state.config).toMatchObject({ name: 'Nadam', jit_compile: false });
  });

  it('Keras 3 .keras archive: config from config.json, weights from model.weights.h5', async () => {
    const info = f('keras3.keras');
    const state = await readOptimizerState(info.file);
    expect(state.format).toBe('keras3-archive');
    expect(state.kerasVersion).toBe('3.3.3');
    expect(state.config).toMatchObject({ name: 'nadam', beta_1: 0.9 });
    expect(state.iterations).toBe(6);
    expect(state.schedule).toMatchObject({ name: 'u_product', reconstructed: false });
    expect(state.schedule.value.get(0)).toBe(info.u_product);
    // Keras 3.3.3 (3.0-3.9 layout): iteration, learning_rate, u_product, then m and v of each variable in turn
    expect(state.release.layout).toBe('keras-3.0-u-first');
    expect(state.weights.map((w) => w.role?.kind)).toEqual(['iterations', 'learning_rate', 'schedule', 'slot', 'slot', 'slot', 'slot', 'slot', 'slot', 'slot', 'slot']);
    expect(state.slots.map((s) => `${s.variable}/${s.slot}`).slice(0, 4)).toEqual(['layers/dense/vars/0/momentum', 'layers/dense/vars/0/velocity', 'layers/dense/vars/1/momentum', 'layers/dense/vars/1/velocity']);
    expect(state.variables.map((v) => v.name)).toEqual(['layers/dense/vars/0', 'layers/dense/vars/1', 'layers/dense_1/vars/0', 'layers/dense_1/vars/1']);
  });

  it('Keras 3 .weights.h5 without a version: the one layout that fits the variables is taken, and the evidence says so', async () => {
    const state = await readOptimizerState(f('keras3.weights.h5').file);
    expect(state.release.layout).toBe('keras-3.10-u-last');
    expect(state.release.evidence.join(' ')).toMatch(/only layout keras-3.10-u-last fits the variables/);
    expect(state.weights.at(-1)!.role).toEqual({ kind: 'schedule' });
    expect(state.schedule.value.get(0)).toBe(f('keras3.weights.h5').u_product);
  });

  it('Keras 3: a nested model\'s variables (layers/<model>/layers/<layer>/vars) are tied too', async () => {
    const state = await readOptimizerState(f('keras3_nested.weights.h5').file);
    expect(state.variables.map((v) => v.name)).toEqual([
      'layers/dense_1/vars/0', 'layers/dense_1/vars/1', 'layers/sequential/layers/dense/vars/0', 'layers/sequential/layers/dense/vars/1',
    ]);
  });

  it('reports progress per dataset', async () => {
    const seen: number[] = [];
    await readOptimizerState(f('tf_keras_h5py3.h5').file, { onProgress: (done) => seen.push(done) });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
