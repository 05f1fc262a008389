import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { optimizerFromState, readOptimizerState, saveOptimizerState, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits, type WeightRole } from '../src/formats/state.js';
import { FormatError, KerasValueError, Nadam, Tensor, Variable } from '../src/index.js';
import { h5dumpDifferences, h5dumpMissing, h5dumpStructure, h5pyDump, useMadeKerasFiles, tensorOfDump, type H5Dump } from './helpers/kerasFiles.js';
import { python } from './helpers/python.js';

const { missing, made, copy } = useMadeKerasFiles('copy');

let n = 0;

function subtree(d: H5Dump, prefix: string): H5Dump['datasets'] {
  return Object.fromEntries(Object.entries(d.datasets).filter(([k]) => k.startsWith(prefix)));
}

describe.skipIf(missing !== null)('writing optimizer state', () => {
  const files = ['tf_keras_h5py2.h5', 'tf_keras_h5py3.h5', 'tf_keras_f16.h5', 'tf_keras_f64.h5', 'keras2_2.2.4.h5', 'keras2_2.3.1.h5', 'tf_keras_new.h5', 'keras3.weights.h5', 'keras3.keras', 'tf_keras_new.keras'];

  it.each(files)('%s: read, write back, read again changes no bit', async (name) => {
    const file = copy(name);
    const before = readFileSync(file);
    const state = await readOptimizerState(file);
    const { optimizer } = optimizerFromState(state);
    await saveOptimizerState(file, optimizer, { like: state });
    const again = await readOptimizerState(file);
    expect(again.weights.map((w) => w.name)).toEqual(state.weights.map((w) => w.name));
    again.weights.forEach((w, i) => expect(sameBits(w.value, state.weights[i]!.value), w.name).toBe(true));
    expect(again.config).toEqual(state.config);
    // HDF5 files come back byte for byte (same values written in place, configs unchanged)
    if (!name.endsWith('.keras')) expect(readFileSync(file).equals(before)).toBe(true);
  });

  it.each([
    ['tf_keras_h5py3.h5', 'vlen'],
    ['tf_keras_h5py2.h5', 'fixed'],
    ['tf_keras_f16.h5', 'vlen'],
    ['tf_keras_chunked.h5', 'fixed'],
    ['keras2_2.2.4.h5', 'fixed'],
    ['keras2_2.3.1.h5', 'fixed'],
    ['tf_keras_new.h5', 'vlen'],
    ['keras3.weights.h5', 'vlen'],
  ] as const)('a new file has the Keras layout of %s (names, order, shapes, dtypes, string kinds, per h5py)', async (name, style) => {
    const state = await readOptimizerState(made.files[name]!.file);
    const { optimizer } = optimizerFromState(state);
    const out = join(made.dir, `new${n++}_${name}`);
    await saveOptimizerState(out, optimizer, { like: state, stringStyle: style });
    const keras = h5pyDump(made.files[name]!.file);
    const ours = h5pyDump(out);
    const prefix = state.flavour === 'keras3' ? 'optimizer/' : 'optimizer_weights/';
    const k = subtree(keras, prefix);
    const o = subtree(ours, prefix);
    expect(Object.keys(o).sort()).toEqual(Object.keys(k).sort());
    for (const p of Object.keys(k)) expect(o[p], p).toEqual(k[p]);
    if (state.flavour !== 'keras3') {
      // weight_names (or its chunks weight_names0, 1, ...): same values, shape, and string type (fixed/vlen, size, NULLPAD, ASCII)
      expect(ours.attrs['optimizer_weights']).toEqual(keras.attrs['optimizer_weights']);
      const kt = keras.attrs['/']!['training_config']!;
      const ot = ours.attrs['/']!['training_config']!;
      expect({ ...ot.type, size: null }).toEqual({ ...kt.type, size: null }); // same kind; the JSON text (and so a fixed size) differs
      const optimizerConfig = (v: string | string[]): unknown => (JSON.parse(v as string) as { optimizer_config: unknown }).optimizer_config;
      expect(optimizerConfig(ot.value)).toEqual(optimizerConfig(kt.value));
    }
  });

  it.each([
    ['tf_keras_h5py2.h5', 'fixed'],
    ['tf_keras_h5py3.h5', 'vlen'],
    ['tf_keras_f16.h5', 'vlen'],
    ['tf_keras_f64.h5', 'vlen'],
    ['tf_keras_chunked.h5', 'fixed'],
    ['keras2_2.2.4.h5', 'fixed'],
    ['keras2_2.3.1.h5', 'fixed'],
    ['tf_keras_new_f64.h5', 'vlen'],
    ['keras3.weights.h5', 'vlen'],
  ] as const)('a new file has the Keras layout of %s per h5dump (types, spaces, storage layout, filters, fill values)', async (name, style) => {
    if (h5dumpMissing()) return;
    const state = await readOptimizerState(made.files[name]!.file);
    const out = join(made.dir, `dump${n++}_${name}`);
    await saveOptimizerState(out, optimizerFromState(state).optimizer, { like: state, stringStyle: style });
    const group = state.flavour === 'keras3' ? '/optimizer' : '/optimizer_weights';
    const keras = h5dumpStructure(made.files[name]!.file, group);
    const ours = h5dumpStructure(out, group);
    expect(keras.filter((l) => /DATASET "/.test(l)).length).toBe(state.weights.length);
    expect(h5dumpDifferences(keras, ours)).toEqual([]);
  });

  it('a changed config is written back: training_config keeps its other keys, config.json its other entries', async () => {
    const file = copy('tf_keras_h5py2.h5');
    const state = await readOptimizerState(file);
    const { optimizer: base } = optimizerFromState(state);
    const changed = Nadam.fromConfig({ ...state.config, learning_rate: 0.01 }, { flavour: 'tf-keras' });
    changed.build(optimizerFromState(state).variables);
    changed.setWeights(base.getWeights());
    await saveOptimizerState(file, changed, { like: state });
    const tc = h5pyDump(file).attrs['/']!['training_config']!;
    expect(tc.type).toMatchObject({ vlen: false, strpad: 'nullpad' });
    const parsed = JSON.parse(tc.value as string) as { loss: string; optimizer_config: { config: { learning_rate: number } } };
    expect(parsed.loss).toBe('mse');
    expect(parsed.optimizer_config.config.learning_rate).toBe(Math.fround(0.01));
    expect((await readOptimizerState(file)).config.learning_rate).toBe(Math.fround(0.01));

    const archive = copy('keras3.keras');
    const k3 = await readOptimizerState(archive);
    const { optimizer } = optimizerFromState(k3);
    optimizer.getWeight('learning_rate').assign(Tensor.scalar(0.005, 'float32'));
    await saveOptimizerState(archive, optimizer, { like: k3 });
    const back = await readOptimizerState(archive);
    expect(back.config.learning_rate).toBe(Math.fround(0.005));
    expect(back.kerasVersion).toBe('3.3.3');
    expect(sameBits(back.weights[1]!.value, Tensor.scalar(0.005, 'float32'))).toBe(true);
    const entries = python("import sys, zipfile\nprint(','.join(zipfile.ZipFile(sys.argv[1]).namelist()))", [archive]).trim();
    expect(entries).toBe('metadata.json,config.json,model.weights.h5');
  });

  it('into a model file without optimizer state: adds optimizer_weights and training_config, touches nothing else', async () => {
    const file = copy('no_optimizer.h5');
    const before = h5pyDump(file);
    const kernel = new Variable(Tensor.zeros('float32', [3, 4]), { name: 'dense/kernel' });
    const bias = new Variable(Tensor.zeros('float32', [4]), { name: 'dense/bias' });
    const opt = new Nadam({ learning_rate: 0.01 });
    opt.applyGradientsSync([[Tensor.fill('float32', [3, 4], 0.5), kernel], [Tensor.fill('float32', [4], -1), bias]]);
    await saveOptimizerState(file, opt);
    const after = h5pyDump(file);
    expect(subtree(after, 'model_weights/')).toEqual(subtree(before, 'model_weights/'));
    for (const [k, attrs] of Object.entries(before.attrs)) for (const [a, v] of Object.entries(attrs)) expect(after.attrs[k]![a], `${k} ${a}`).toEqual(v);
    expect(Object.keys(after.attrs['/']!)).toContain('training_config');
    const state = await readOptimizerState(file);
    expect(state.iterations).toBe(1);
    expect(state.weights.map((w) => w.name)).toEqual(['Nadam/iter:0', 'Nadam/momentum_cache:0', 'Nadam/dense/kernel/m:0', 'Nadam/dense/bias/m:0', 'Nadam/dense/kernel/v:0', 'Nadam/dense/bias/v:0']);
    state.weights.forEach((w, i) => expect(sameBits(w.value, opt.weights[i]!.value)).toBe(true));
  });

  it('a failure midway leaves the original file intact and no temporary file behind', async () => {
    const file = copy('no_optimizer.h5');
    const before = readFileSync(file);
    const kernel = new Variable(Tensor.zeros('float32', [3, 4]), { name: 'dense/kernel' });
    const opt = new Nadam();
    opt.build([kernel]);
    let writes = 0;
    const failing = saveOptimizerState(file, opt, {
      afterWrite: () => {
        if (++writes === 2) throw new Error('disk full (simulated)');
      },
    });
    const err = await failing.catch((e: unknown) => e);
    // a raw failure in the middle of the HDF5 edit (as h5wasm throws them) becomes a FormatError naming file and object
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).file).toBe(file);
    expect((err as Error).message).toMatch(/updating \/optimizer_weights\/Nadam\/momentum_cache:0 failed: disk full \(simulated\)/);
    expect(writes).toBe(2);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(made.dir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
  });

  it('a failure midway through updating a .keras archive leaves it intact, with no temporary file or folder behind', async () => {
    const file = copy('keras3.keras');
    const before = readFileSync(file);
    const state = await readOptimizerState(file);
    const { optimizer, variables } = optimizerFromState(state);
    // one step, so that the save has something to write (an unchanged state is not written at all)
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill('float32', v.shape, 0.1), v] as const));
    const privateTmp = mkdtempSync(join(made.dir, 'tmp-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    try {
      let writes = 0;
      const err = await saveOptimizerState(file, optimizer, {
        like: state,
        afterWrite: () => {
          if (++writes === 3) throw new Error('disk full (simulated)');
        },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/model\.weights\.h5: .*updating \/optimizer\/vars\/2 failed: disk full \(simulated\)/);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(privateTmp)).toEqual([]);
    expect(readdirSync(made.dir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses, with the original intact: an unbuilt optimizer, a wrong flavour, a different existing state', async () => {
    const file = copy('tf_keras_h5py3.h5');
    const before = readFileSync(file);
    await expect(saveOptimizerState(file, new Nadam())).rejects.toThrow(/no slots yet/);
    const k3 = new Nadam({ flavour: 'keras3' });
    k3.build([new Variable(Tensor.zeros('float32', [2]), { name: 'w' })]);
    await expect(saveOptimizerState(file, k3)).rejects.toThrow(/keras3 Nadam cannot be written in the tf-keras-h5 layout/);
    const other = new Nadam();
    other.build([new Variable(Tensor.zeros('float32', [3, 4]), { name: 'dense/kernel' })]);
    await expect(saveOptimizerState(file, other)).rejects.toThrow(KerasValueError);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('creates float16 datasets (which h5wasm cannot) with their exact bits, as h5py and h5dump read them', async () => {
    const half = new Nadam();
    const h = new Variable(Tensor.from([0.5, -2, 65504], 'float16'), { name: 'h' });
    half.applyGradientsSync([[Tensor.from([0.1, 0.2, -0.3], 'float16'), h]]);
    const out = join(made.dir, `half${n++}.h5`);
    await saveOptimizerState(out, half);
    const dump = h5pyDump(out);
    expect(dump.datasets['optimizer_weights/Nadam/h/m:0']!.dtype).toBe('<f2');
    expect(dump.datasets['optimizer_weights/Nadam/momentum_cache:0']!.dtype).toBe('<f2');
    const back = await readOptimizerState(out).catch(() => null); // no model in the file: compare the datasets directly
    expect(back).toBeNull();
    for (const [i, name] of ['Nadam/iter:0', 'Nadam/momentum_cache:0', 'Nadam/h/m:0', 'Nadam/h/v:0'].entries()) {
      expect(sameBits(tensorOfDump(dump.datasets[`optimizer_weights/${name}`]!), half.weights[i]!.value), name).toBe(true);
    }
    expect(Object.values(dump.attrs).some((a) => Object.keys(a).some((k) => k.includes('kerasopt')))).toBe(false);
    expect(python('import subprocess, sys\nprint(subprocess.run(["h5dump", "-d", "/optimizer_weights/Nadam/h/m:0", sys.argv[1]], capture_output=True, text=True).stdout)', [out])).toMatch(/16-bit little-endian floating-point/);
  });

  it('resume: read a tf.keras Nadam file, train 3 steps on the typed backend, save, read back the same state', async () => {
    const file = copy('tf_keras_h5py3.h5');
    const state: KerasOptimizerState = await readOptimizerState(file);
    const { optimizer, variables } = optimizerFromState(state, { backend: 'typed' });
    for (let step = 0; step < 3; step++) {
      optimizer.applyGradientsSync(variables.map((v, i) => [Tensor.fill('float32', v.shape, 0.1 * (i + 1) - 0.05 * step), v] as const));
    }
    await saveOptimizerState(file, optimizer, { like: state, modelVariables: variables });
    const back = await readOptimizerState(file);
    expect(back.iterations).toBe(state.iterations + 3);
    back.weights.forEach((w, i) => expect(sameBits(w.value, optimizer.weights[i]!.value), w.name).toBe(true));
    back.variables.forEach((v, i) => expect(sameBits(v.value, variables[i]!.value), v.name).toBe(true));
    // what Keras's loader does with the file, replayed with h5py (TF itself is not installed)
    const report = python(KERAS_LOADER_CHECK, [file]);
    expect(JSON.parse(report)).toEqual({ optimizer: 'Nadam', weights: 10, iterations: state.iterations + 3, shapes_match_model: true, compile_keys: true });
  });

  it('resume a TF 2.11-2.15 file: 3 steps from the reconstructed u_product, save, read back; the names are TF\'s, without and with a file to update', async () => {
    const file = copy('tf_keras_new.h5');
    const state = await readOptimizerState(file);
    const { optimizer, variables } = optimizerFromState(state);
    expect(optimizer.flavour).toBe('tf-keras-new');
    expect(optimizer.getWeight('u_product').value.get(0)).toBe(state.schedule.value.get(0));
    for (let step = 0; step < 3; step++) optimizer.applyGradientsSync(variables.map((v, i) => [Tensor.fill('float32', v.shape, 0.2 - 0.1 * i + 0.01 * step), v] as const));
    await saveOptimizerState(file, optimizer, { like: state, modelVariables: variables });
    const back = await readOptimizerState(file);
    expect(back.iterations).toBe(state.iterations + 3);
    back.weights.forEach((w, i) => expect(sameBits(w.value, optimizer.weights[i]!.value), w.name).toBe(true));
    back.variables.forEach((v, i) => expect(sameBits(v.value, variables[i]!.value), v.name).toBe(true));
    // u_product rebuilt from 12 iterations is the one the optimizer carried from the rebuilt 9, bit for bit
    expect(sameBits(back.schedule.value, optimizer.getWeight('u_product').value)).toBe(true);
    expect(back.className).toBe('Custom>Nadam'); // the file's class name is kept
    // a new .h5 from a tf-keras-new optimizer takes TF 2.11's names without being told
    const fresh = join(made.dir, `fresh${n++}.h5`);
    await saveOptimizerState(fresh, optimizer);
    const names = JSON.parse(python('import h5py, sys\nf = h5py.File(sys.argv[1], "r")\nprint(__import__("json").dumps([x.decode() if isinstance(x, bytes) else x for x in f["optimizer_weights"].attrs["weight_names"]]))', [fresh])) as string[];
    expect(names).toEqual(['iteration:0', ...variables.flatMap((v) => [`Nadam/m/${v.name}:0`, `Nadam/v/${v.name}:0`])]);
  });

  it.each(['keras2_2.2.4.h5', 'keras2_2.3.1.h5', 'keras3.keras', 'keras3.weights.h5', 'tf_keras_new.keras'])('resume %s: 3 steps, save, read back the same state', async (name) => {
    const file = copy(name);
    const state = await readOptimizerState(file);
    const { optimizer, variables } = optimizerFromState(state);
    for (let step = 0; step < 3; step++) optimizer.applyGradientsSync(variables.map((v, i) => [Tensor.fill('float32', v.shape, 0.2 - 0.1 * i + 0.01 * step), v] as const));
    await saveOptimizerState(file, optimizer, { like: state, modelVariables: variables });
    const back = await readOptimizerState(file);
    expect(back.iterations).toBe(state.iterations + 3);
    // each saved weight, whatever the release's order, holds what the optimizer holds for its role
    const expected = (role: WeightRole | undefined): Tensor => {
      if (role?.kind === 'iterations') return optimizer.iterationsVariable.value;
      if (role?.kind === 'learning_rate') return optimizer.getWeight('learning_rate').value;
      if (role?.kind === 'schedule') return optimizer.getWeight(state.schedule.name).value;
      return optimizer.weights.find((v) => role?.kind === 'slot' && v.name === `${role.variable}/${role.slot}`)!.value;
    };
    expect(back.weights.map((w) => w.name)).toEqual(state.weights.map((w) => w.name));
    back.weights.forEach((w) => expect(sameBits(w.value, expected(w.role)), w.name).toBe(true));
    back.variables.forEach((v, i) => expect(sameBits(v.value, variables[i]!.value), v.name).toBe(true));
    if (state.flavour === 'tf-keras-new') {
      // the u_product rebuilt from the new iteration count is the one carried through the steps, bit for bit
      expect(back.schedule.reconstructed).toBe(true);
      expect(sameBits(back.schedule.value, optimizer.getWeight('u_product').value)).toBe(true);
    }
    if (state.keras2Layout === '2.2') {
      // the m_schedule rebuilt from 8 iterations is the one the optimizer carried from the rebuilt 5, bit for bit
      expect(back.schedule.reconstructed).toBe(true);
      expect(sameBits(back.schedule.value, optimizer.getWeight('m_schedule').value)).toBe(true);
    }
  });
});

/**
 * The steps of tf.keras load_model_from_hdf5 that concern the optimizer: training_config parsed and
 * its compile arguments present, weight_names read (chunk-aware), one dataset per name, and the
 * slot shapes equal to the model's trainable weights in order (what set_weights checks).
 */
const KERAS_LOADER_CHECK = `
import sys, json, h5py, numpy as np
def names(g, n):
    if n in g.attrs: return [x.decode('utf8') if isinstance(x, bytes) else x for x in g.attrs[n]]
    out, i = [], 0
    while '%s%d' % (n, i) in g.attrs:
        out += [x.decode('utf8') for x in g.attrs['%s%d' % (n, i)]]; i += 1
    return out
f = h5py.File(sys.argv[1], 'r')
tc = f.attrs['training_config']
tc = json.loads(tc.decode('utf8') if isinstance(tc, bytes) else tc)
keys = all(k in tc for k in ('loss', 'metrics', 'sample_weight_mode', 'loss_weights'))
g = f['optimizer_weights']
ws = [np.asarray(g[n]) for n in names(g, 'weight_names')]
mw = f['model_weights']
model = [np.asarray(mw[l][w]) for l in names(mw, 'layer_names') for w in names(mw[l], 'weight_names')]
slots = ws[2:]
ok = len(slots) == 2 * len(model) and all(s.shape == m.shape for s, m in zip(slots, model + model))
print(json.dumps({'optimizer': tc['optimizer_config']['class_name'], 'weights': len(ws), 'iterations': int(ws[0]),
                  'shapes_match_model': ok, 'compile_keys': keys}))
`;
