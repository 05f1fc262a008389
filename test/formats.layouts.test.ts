/**
 * The release-layout table (src/formats/layouts.ts) against files made by kerasopt's test helper
 * (test/helpers/keras_files.py, make_layout_files) in the layouts docs/keras-releases.md describes:
 * never Keras output. h5py is the independent reader wherever bits are compared.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createInspectCommand } from '../src/cli/commands/inspect.js';
import { optimizerFromState, readOptimizerState, saveOptimizerState, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits } from '../src/formats/state.js';
import { FormatError, Tensor, type Nadam, type Variable } from '../src/index.js';
import { h5pyDump, useMadeKerasFiles, tensorOfDump, type H5Dump } from './helpers/kerasFiles.js';
import { python } from './helpers/python.js';

const { missing, made, copy } = useMadeKerasFiles('layouts');


/** The saved list as roles: 'iterations', 'learning_rate', 'schedule', '<slot> <variable>'. */
function roles(state: KerasOptimizerState): string[] {
  return state.weights.map((w) => (w.role?.kind === 'slot' ? `${w.role.slot} ${w.role.variable}` : w.role?.kind ?? '?'));
}

/** Keras 3 positional roles of a row for these variables (interleaved slots), u_product first or last. */
function keras3Roles(variables: readonly string[], head: string[], uLast: boolean): string[] {
  const slots = variables.flatMap((v) => [`momentum ${v}`, `velocity ${v}`]);
  return uLast ? [...head, ...slots, 'schedule'] : [...head, 'schedule', ...slots];
}

/** h5py's bits of a dataset (of the model.weights.h5 inside a .keras archive). */
function dumped(d: H5Dump, path: string): Tensor {
  const ds = d.datasets[path];
  if (!ds) throw new Error(`h5py finds no dataset ${path}`);
  return tensorOfDump(ds);
}

/** Each entry of a zip archive, by name in order, with the SHA-256 of its bytes (Python's zipfile). */
function zipEntries(file: string): string {
  return python('import hashlib, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint([(n, hashlib.sha256(z.read(n)).hexdigest()) for n in z.namelist()])', [file]);
}

/** read -> optimizerFromState -> 3 steps -> save with the model variables -> read back. */
async function resume(file: string): Promise<{ state: KerasOptimizerState; back: KerasOptimizerState; optimizer: Nadam; variables: Variable[] }> {
  const state = await readOptimizerState(file);
  const { optimizer, variables } = optimizerFromState(state);
  for (let step = 0; step < 3; step++) {
    optimizer.applyGradientsSync(variables.map((v, i) => [Tensor.fill(v.dtype as 'float32', v.shape, 0.05 * (i + 1) - 0.02 * step), v] as const));
  }
  await saveOptimizerState(file, optimizer, { like: state, modelVariables: variables });
  return { state, back: await readOptimizerState(file), optimizer, variables };
}

/** Every weight read back has the optimizer's value for its role, and h5py reads the same bits at its path. */
function expectWrittenByRole(back: KerasOptimizerState, optimizer: Nadam, dump: H5Dump, prefix: string): void {
  for (const w of back.weights) {
    const r = w.role!;
    const own = r.kind === 'slot' ? `${r.variable}/${r.slot}` : r.kind === 'schedule' ? optimizer.recipe.scheduleWeight : r.kind === 'learning_rate' ? r.kind : null;
    const want = optimizer.weights.find((v) => v.name === own)?.value; // none for iterations (dtype per file) and slots of variables the model lacks
    if (r.kind === 'slot' && !back.slots.some((s) => s.weightName === w.name && !s.inModel)) expect(want, `${w.name}: the optimizer holds ${own}`).toBeDefined();
    if (want) expect(sameBits(w.value, want), `${w.name} (${r.kind})`).toBe(true);
    expect(sameBits(dumped(dump, `${prefix}${w.name}`), w.value), `h5py ${w.name}`).toBe(true);
  }
}

const DENSE_BN_DENSE = ['layers/dense/vars/0', 'layers/dense/vars/1', 'layers/batch_normalization/vars/0', 'layers/batch_normalization/vars/1', 'layers/dense_1/vars/0', 'layers/dense_1/vars/1'];

describe.skipIf(missing !== null)('Keras release layouts (files made by kerasopt test helper)', () => {
  it.each([
    ['keras3_bn_3.5.0.keras', '3.5.0', 'keras-3.0-u-first', false],
    ['keras3_bn_3.11.0.keras', '3.11.0', 'keras-3.10-u-last', true],
  ] as const)('%s: BatchNormalization moving statistics get no slots; a 3-step resume keeps the release order', async (name, version, layout, uLast) => {
    const file = copy(name);
    const before = h5pyDump(file);
    const { state, back, optimizer, variables } = await resume(file);
    expect([state.kerasVersion, state.release.layout]).toEqual([version, layout]);
    expect(state.variables.map((v) => v.name)).toEqual(DENSE_BN_DENSE);
    expect(roles(state)).toEqual(keras3Roles(DENSE_BN_DENSE, ['iterations', 'learning_rate'], uLast));
    expect(state.notes.join('\n')).toMatch(/2 non-trainable variables skipped \(layers\/batch_normalization\/vars\/2, layers\/batch_normalization\/vars\/3\)/);
    // each slot is h5py's dataset at its index, and each tied variable is h5py's model variable of that name
    state.weights.forEach((w) => expect(sameBits(dumped(before, w.name), w.value), w.name).toBe(true));
    state.variables.forEach((v) => expect(sameBits(dumped(before, v.name), v.value), v.name).toBe(true));
    expect(state.schedule.value.get(0)).toBe(made.files[name]!.u_product);

    expect(back.iterations).toBe(state.iterations + 3);
    expect(back.release.layout).toBe(layout);
    expect(roles(back)).toEqual(roles(state));
    const after = h5pyDump(file);
    expectWrittenByRole(back, optimizer, after, '');
    expect(after.datasets['optimizer/vars/0']).toMatchObject({ dtype: '<i8' });
    expect(tensorOfDump(after.datasets['optimizer/vars/0']!).data[0]).toBe(BigInt(state.iterations + 3));
    expect(dumped(after, `optimizer/vars/${uLast ? state.weights.length - 1 : 2}`).get(0)).toBe(optimizer.getWeight('u_product').value.get(0));
    variables.forEach((v) => expect(sameBits(dumped(after, v.name), v.value), v.name).toBe(true));
    for (const still of ['layers/batch_normalization/vars/2', 'layers/batch_normalization/vars/3']) expect(after.datasets[still]).toEqual(before.datasets[still]);
  });

  it('Keras 3 with the first Dense frozen (trainable: false in its config): no slots for it, the rest tied by position', async () => {
    const state = await readOptimizerState(made.files['keras3_bn_frozen.keras']!.file);
    const tied = DENSE_BN_DENSE.slice(2);
    expect(state.release.layout).toBe('keras-3.10-u-last');
    expect(state.variables.map((v) => v.name)).toEqual(tied);
    expect(roles(state)).toEqual(keras3Roles(tied, ['iterations', 'learning_rate'], true));
    expect(state.slots.some((s) => s.variable.startsWith('layers/dense/'))).toBe(false);
    expect(state.notes.join('\n')).toMatch(/slots tied by position .*4 non-trainable variables skipped \(layers\/dense\/vars\/0, layers\/dense\/vars\/1, layers\/batch_normalization\/vars\/2, layers\/batch_normalization\/vars\/3\)/);
    const dump = h5pyDump(made.files['keras3_bn_frozen.keras']!.file);
    state.slots.forEach((s) => expect(sameBits(dumped(dump, s.weightName), s.value), s.weightName).toBe(true));
    state.variables.forEach((v) => expect(sameBits(dumped(dump, v.name), v.value), v.name).toBe(true));
  });

  it('Keras 3 with a learning-rate schedule: no learning_rate variable is saved; read and resume work without one', async () => {
    const file = copy('keras3_schedule.keras');
    const { state, back } = await resume(file);
    expect(state.config.learning_rate).toMatchObject({ module: 'keras.optimizers.schedules', class_name: 'ExponentialDecay' });
    expect(state.release.layout).toBe('keras-3.0-u-first');
    expect(roles(state)).toEqual(keras3Roles(DENSE_BN_DENSE, ['iterations'], false));
    expect(roles(state)).not.toContain('learning_rate');
    expect(state.weights).toHaveLength(2 + 12);
    expect(back.iterations).toBe(state.iterations + 3);
    expect(roles(back)).toEqual(roles(state));
    expect(back.config).toEqual(state.config);
  });

  it('a Keras 3 .weights.h5 without version or config is read in the only layout that fits; one that fits two is refused', async () => {
    const state = await readOptimizerState(made.files['keras3_u_first.weights.h5']!.file);
    expect([state.format, state.kerasVersion, state.release.layout]).toEqual(['keras3-weights-h5', null, 'keras-3.0-u-first']);
    expect(state.release.evidence.join('\n')).toMatch(/only layout keras-3\.0-u-first fits the variables \(4 other readings refused\)/);
    expect(roles(state)).toEqual(keras3Roles(['layers/scale/vars/0', 'layers/scale_1/vars/0'], ['iterations', 'learning_rate'], false));
    expect(state.schedule!.value.get(0)).toBe(made.files['keras3_u_first.weights.h5']!.u_product);
    // one scalar variable: [iteration, lr, x, y, z] reads as u, m, v (u-first) and as m, v, u (u-last)
    const ambiguous = made.files['keras3_ambiguous.weights.h5']!.file;
    // three scalars after learning_rate also fit a centered RMSprop with momentum on one scalar: the class stays unknown
    const unknown = await readOptimizerState(ambiguous);
    expect([unknown.className, unknown.fits]).toEqual([null, ["Nadam (two releases' layouts fit)", 'RMSprop (momentum, centered)']]);
    const err = await readOptimizerState(ambiguous, { optimizer: 'Nadam' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/fits more than one Nadam layout \(keras-3\.0-u-first, keras-3\.10-u-last\) and the file records no keras_version/);
  });

  it('Keras 2.2.4 .h5 with BatchNormalization and a frozen layer: the tie skips the moving statistics and the frozen layer', async () => {
    const info = made.files['keras2_bn_frozen_2.2.4.h5']! as { file: string; tied?: string[] };
    const file = copy('keras2_bn_frozen_2.2.4.h5');
    const { state, back, optimizer } = await resume(file);
    expect(state.release.layout).toBe('keras-2.1-2.2');
    expect(state.variables.map((v) => v.name)).toEqual(info.tied);
    expect(state.slots.map((s) => `${s.slot} ${s.variable}`)).toEqual([...info.tied!.map((v) => `m ${v}`), ...info.tied!.map((v) => `v ${v}`)]);
    expect(state.notes.join('\n')).toMatch(/slots tied by position .*4 non-trainable variables skipped \(dense_1\/kernel, dense_1\/bias, batch_normalization_1\/moving_mean, batch_normalization_1\/moving_variance\)/);
    const dump = h5pyDump(info.file);
    state.weights.forEach((w) => expect(sameBits(dumped(dump, `optimizer_weights/${w.name}`), w.value), w.name).toBe(true));
    expect(back.iterations).toBe(state.iterations + 3);
    expectWrittenByRole(back, optimizer, h5pyDump(file), 'optimizer_weights/');
  });

  it('Keras 2.0.4 .h5: float32 iterations, slots in the order of the trainable weights sorted by name; a resume keeps float32', async () => {
    const info = made.files['keras2_2.0.4_sorted.h5']! as { file: string; tied?: string[] };
    expect(info.tied).toEqual(['conv2d_1/bias', 'conv2d_1/kernel', 'dense_10/bias', 'dense_10/kernel', 'dense_2/bias', 'dense_2/kernel']);
    const file = copy('keras2_2.0.4_sorted.h5');
    const { state, back, optimizer, variables } = await resume(file);
    expect(state.release.layout).toBe('keras-2.0-sorted');
    expect(state.weights[0]!.value.dtype).toBe('float32');
    expect(state.variables.map((v) => v.name)).toEqual(info.tied);
    state.slots.forEach((s, k) => expect(`${s.slot} ${s.variable}`, s.weightName).toBe(`${k < 6 ? 'm' : 'v'} ${info.tied![k % 6]}`));
    expect(state.weights[1]!.name).toBe('Variable_4:0');

    expect(back.iterations).toBe(state.iterations + 3);
    const after = h5pyDump(file);
    expect(after.datasets['optimizer_weights/iterations_3:0']!.dtype).toBe('<f4');
    expect(dumped(after, 'optimizer_weights/iterations_3:0').get(0)).toBe(state.iterations + 3);
    expectWrittenByRole(back, optimizer, after, 'optimizer_weights/');
    for (const v of variables) {
      const layer = v.name.split('/')[0]!;
      expect(sameBits(dumped(after, `model_weights/${layer}/${v.name}:0`), v.value), v.name).toBe(true);
    }
    // a save without `like` into the same file follows the file's own layout too (format, names, float32 iterations)
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill('float32', v.shape, 0.5), v] as const));
    await saveOptimizerState(file, optimizer);
    const again = h5pyDump(file);
    expect(again.datasets['optimizer_weights/iterations_3:0']!.dtype).toBe('<f4');
    expect(dumped(again, 'optimizer_weights/iterations_3:0').get(0)).toBe(state.iterations + 4);
    expectWrittenByRole(await readOptimizerState(file), optimizer, again, 'optimizer_weights/');
  });

  it('tf.keras 2.9 optimizer_v2 .h5 holding slots of variables the model lacks: kept as read, shown, never stepped', async () => {
    const info = made.files['tf_keras_orphans_2.9.h5']!;
    const state = await readOptimizerState(info.file);
    expect(state.release.layout).toBe('tf-keras-v2');
    expect(state.slots.map((s) => `${s.slot} ${s.variable} ${s.inModel}`)).toEqual([
      'm other_a false', 'm other_b false', 'v other_a false', 'v other_b false',
      'm dense/kernel true', 'm dense/bias true', 'v dense/kernel true', 'v dense/bias true',
    ]);
    expect(state.variables.map((v) => v.name)).toEqual(['dense/kernel', 'dense/bias']);

    let out = '';
    const inspect = createInspectCommand({ stdout: { write: (t: string) => (out += t) }, stderr: { isTTY: false, columns: 120, write: () => true } });
    expect(await inspect.run([info.file, '--json'])).toBe(0);
    const json = JSON.parse(out) as { layout: string; slots: { variable: string; in_model: boolean }[] };
    expect(json.layout).toBe('tf-keras-v2');
    expect(json.slots.map((s) => [s.variable, s.in_model])).toEqual(state.slots.map((s) => [s.variable, s.inModel]));

    const file = copy('tf_keras_orphans_2.9.h5');
    const before = h5pyDump(file);
    const { back, optimizer } = await resume(file);
    const after = h5pyDump(file);
    expect(back.iterations).toBe(state.iterations + 3);
    for (const s of state.slots) {
      const path = `optimizer_weights/${s.weightName}`;
      if (s.inModel) expect(after.datasets[path]!.hex, `${path} stepped`).not.toBe(before.datasets[path]!.hex);
      else expect(after.datasets[path], `${path} kept`).toEqual(before.datasets[path]);
    }
    expectWrittenByRole(back, optimizer, after, 'optimizer_weights/');
    expect(back.slots.filter((s) => !s.inModel).map((s) => s.variable)).toEqual(['other_a', 'other_b', 'other_a', 'other_b']);
  });

  it.each([
    'keras3_bn_3.5.0.keras', 'keras3_bn_3.11.0.keras', 'keras3_bn_frozen.keras', 'keras3_schedule.keras',
    'keras3_u_first.weights.h5', 'keras2_bn_frozen_2.2.4.h5', 'keras2_2.0.4_sorted.h5', 'tf_keras_orphans_2.9.h5',
  ])('%s: an unchanged save leaves the file as it was', async (name) => {
    const file = copy(name);
    const bytes = readFileSync(file);
    const entries = name.endsWith('.keras') ? zipEntries(file) : null;
    const state = await readOptimizerState(file);
    await saveOptimizerState(file, optimizerFromState(state).optimizer, { like: state });
    if (entries !== null) expect(zipEntries(file)).toBe(entries);
    else expect(readFileSync(file).equals(bytes)).toBe(true);
  });
});
