import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createInspectCommand } from '../src/cli/commands/inspect.js';
import { TensorBundle } from '../src/formats/checkpoint/bundle.js';
import { reconstructUProduct, type KerasOptimizerState } from '../src/formats/index.js';
import { sameBits } from '../src/formats/state.js';
import { FormatError, Nadam, optimizerFromState, readOptimizerState, saveOptimizerState, Tensor, Variable } from '../src/index.js';
import { missingPython, PYTHON } from './helpers/python.js';

/**
 * TF 2.11-2.15 tf.keras "new" Nadam in TF2 object-based checkpoints (layout row tf-keras-new-checkpoint).
 * Every checkpoint here is made by kerasopt's test helper in the TF 2.11+ checkpoint layout, NOT by
 * TensorFlow (test/helpers/tf_checkpoint.py --new-optimizer, numpy only, sharing no code with the
 * reader): the reader is checked against our own reading of the Keras sources, never against
 * TF-written files. Written bundles are re-checked by test/helpers/bundle_check.py (pure Python).
 */

const SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';

interface Tie {
  variable: string;
  m: string;
  v?: string;
}
interface Manifest {
  tensors: Record<string, { dtype: string; shape: number[]; data: string }>;
  new_optimizer: { iterations: number; learning_rate: number | null; u_product: number; ties: Tie[]; trainable: string[]; non_trainable: string[] };
}

const missing = missingPython(['numpy']);
const dir = mkdtempSync(join(tmpdir(), 'kerasopt-ckpt-new-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let made = 0;

/** A fresh checkpoint from the helper, in its own folder. */
function make(...args: string[]): { prefix: string; manifest: Manifest } {
  const prefix = join(dir, `c${made++}`, 'ckpt');
  mkdirSync(dirname(prefix));
  const out = execFileSync(PYTHON, [resolve('test/helpers/tf_checkpoint.py'), prefix, '--new-optimizer', ...args], { encoding: 'utf8' });
  return { prefix, manifest: JSON.parse(out) as Manifest };
}

/** A copy of a bundle's files in a fresh folder; returns the copy's prefix. */
function copyBundle(prefix: string): string {
  const to = join(dir, `copy${made++}`, basename(prefix));
  mkdirSync(dirname(to));
  for (const f of readdirSync(dirname(prefix)).filter((f) => f.startsWith(`${basename(prefix)}.`))) copyFileSync(join(dirname(prefix), f), join(dirname(to), f));
  return to;
}

/** Every file of a folder, name -> bytes. */
const snapshot = (folder: string): Map<string, Buffer> => new Map(readdirSync(folder).sort().map((f) => [f, readFileSync(join(folder, f))]));
const hexOf = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');
const roles = (s: KerasOptimizerState): string[] => s.weights.map((w) => (w.role?.kind === 'slot' ? `${w.role.slot} ${w.role.variable}` : w.role?.kind ?? '?'));

let base: ReturnType<typeof make>;
beforeAll(() => {
  if (!missing) base = make();
});

describe.skipIf(missing !== null)('TF 2.11-2.15 Nadam from a checkpoint (files made by kerasopt test helper)', () => {
  test('tf.train.Checkpoint(model=, optimizer=): flavour, layout, iterations, learning rate, u_product, ties with BatchNormalization skipped', async () => {
    const { prefix, manifest } = base;
    const m = manifest.new_optimizer;
    const state = await readOptimizerState(prefix);
    expect(state).toMatchObject({ format: 'tf-checkpoint', flavour: 'tf-keras-new', className: 'Nadam', iterations: 7, kerasVersion: null });
    expect(state.release.layout).toBe('tf-keras-new-checkpoint');
    expect(state.release.evidence.join('\n')).toMatch(/_variables list \(the iteration, then 12 slots\), _iterations, _learning_rate, _u_product, and no slot_variables/);
    expect(state.release.evidence.join('\n')).toMatch(/_momentums and _velocities lists name the same slot nodes/);
    expect(state.config).toEqual({ name: 'Nadam', learning_rate: m.learning_rate, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 });
    expect(state.notes.join('\n')).toMatch(/saves no optimizer config; a TF 2\.11-2\.15 tf\.keras Nadam config was built from the saved learning_rate variable/);

    // u_product is saved (a tracked attribute), read bit for bit
    expect(state.schedule.name).toBe('u_product');
    expect(state.schedule.reconstructed).toBe(false);
    expect(hexOf(state.schedule.value)).toBe(manifest.tensors[`optimizer/_u_product${SUFFIX}`]!.data);

    // the model's trainable variables in order; BatchNormalization's moving statistics get no slots
    expect(m.non_trainable).toEqual(['model/layer_with_weights-1/moving_mean', 'model/layer_with_weights-1/moving_variance']);
    expect(state.variables.map((v) => v.name)).toEqual(m.trainable);
    for (const v of state.variables) expect(hexOf(v.value), v.name).toBe(manifest.tensors[`${v.name}${SUFFIX}`]!.data);
    expect(state.notes.join('\n')).toMatch(/2 non-trainable variables skipped \(model\/layer_with_weights-1\/moving_mean, model\/layer_with_weights-1\/moving_variance\)/);
    // bias, gamma, beta are all float32[4]: the position decided, and a note says so
    expect(state.notes.join('\n')).toMatch(/3 of 6 slotted variables share their shape with another candidate/);

    // each slot is tied to the variable the helper made it for, and holds the helper's bits
    expect(state.slots.map((s) => `${s.slot} ${s.weightName} -> ${s.variable}`)).toEqual(m.ties.flatMap((t) => [`m ${t.m} -> ${t.variable}`, `v ${t.v} -> ${t.variable}`]));
    for (const s of state.slots) expect(hexOf(s.value), s.weightName).toBe(manifest.tensors[`${s.weightName}${SUFFIX}`]!.data);
    expect(state.weights.map((w) => w.name).slice(0, 3)).toEqual(['optimizer/_iterations', 'optimizer/_learning_rate', 'optimizer/_u_product']);
    expect(roles(state)).toEqual(['iterations', 'learning_rate', 'schedule', ...m.ties.flatMap((t) => [`m ${t.variable}`, `v ${t.variable}`])]);
    for (const w of state.weights) expect(hexOf(w.value), w.name).toBe(manifest.tensors[`${w.name}${SUFFIX}`]!.data);
  });

  test('kerasopt inspect --json names the flavour, the layout and the evidence', async () => {
    let out = '';
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true, isTTY: false } };
    expect(await createInspectCommand(io as never).run([base.prefix, '--json'])).toBe(0);
    const summary = JSON.parse(out) as { format: string; flavour: string; iterations: number; layout: string; evidence: string[] };
    expect(summary).toMatchObject({ format: 'tf-checkpoint', flavour: 'tf-keras-new', iterations: 7, layout: 'tf-keras-new-checkpoint' });
    expect(summary.evidence.join('\n')).toMatch(/TF 2\.11\+ optimizer/);
  });

  test('model.save_weights (root = the model) and a SavedModel (its trainable_variables list gives the order)', async () => {
    const weights = make('--root', 'model');
    const state = await readOptimizerState(weights.prefix);
    expect(state.variables.map((v) => v.name)).toEqual(weights.manifest.new_optimizer.trainable);
    expect(state.variables[0]!.name).toBe('layer_with_weights-0/kernel');

    const saved = make('--root', 'savedmodel');
    const m = saved.manifest.new_optimizer;
    expect(m.trainable).toEqual(['variables/0', 'variables/1', 'variables/2', 'variables/3', 'variables/4', 'variables/5']);
    expect(m.non_trainable).toEqual(['variables/6', 'variables/7']);
    // as a SavedModel directory (variables/variables.*)
    const folder = join(dir, `savedmodel${made++}`);
    mkdirSync(join(folder, 'variables'), { recursive: true });
    for (const f of readdirSync(dirname(saved.prefix))) copyFileSync(join(dirname(saved.prefix), f), join(folder, 'variables', f.replace('ckpt', 'variables')));
    writeFileSync(join(folder, 'saved_model.pb'), '');
    const state2 = await readOptimizerState(folder);
    expect(state2.release.layout).toBe('tf-keras-new-checkpoint');
    expect(state2.variables.map((v) => v.name)).toEqual(m.trainable);
    expect(state2.slots.map((s) => `${s.slot} ${s.weightName} -> ${s.variable}`)).toEqual(m.ties.flatMap((t) => [`m ${t.m} -> ${t.variable}`, `v ${t.v} -> ${t.variable}`]));
    expect(state2.notes.join('\n')).toMatch(/from the SavedModel's list 'trainable_variables'/);
  });

  test('without _u_product it is reconstructed; without _momentums/_velocities the tie is the same; a schedule saves no learning_rate', async () => {
    const noU = await readOptimizerState(make('--no-u-product').prefix);
    expect(noU.schedule.reconstructed).toBe(true);
    expect(noU.schedule.value.get(0)).toBe(reconstructUProduct(0.9, 7, 'float32'));
    expect(roles(noU).slice(0, 2)).toEqual(['iterations', 'learning_rate']);
    expect(noU.notes.join('\n')).toMatch(/no _u_product variable: u_product reconstructed as the float32 product of u_1\.\.u_7/);
    // a resumed step saves back into it: the iteration and slots are written, u_product (not saved there) is reconstructed again
    const { optimizer, variables } = optimizerFromState(noU);
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill('float32', v.shape, 0.125), v] as const));
    await saveOptimizerState(noU.file, optimizer, { like: noU });
    const noUBack = await readOptimizerState(noU.file);
    expect([noUBack.iterations, noUBack.schedule.reconstructed]).toEqual([8, true]);
    expect(hexOf(noUBack.schedule.value)).toBe(hexOf(optimizer.getWeight('u_product').value));

    const noLists = await readOptimizerState(make('--no-lists').prefix);
    expect(noLists.slots.map((s) => [s.weightName, s.variable])).toEqual((await readOptimizerState(base.prefix)).slots.map((s) => [s.weightName, s.variable]));
    expect(noLists.release.evidence.join('\n')).not.toMatch(/_momentums/);

    const schedule = await readOptimizerState(make('--lr-schedule').prefix);
    expect(schedule.config.learning_rate).toBe(Math.fround(0.0005));
    expect(roles(schedule).slice(0, 2)).toEqual(['iterations', 'schedule']);
    expect(schedule.notes.join('\n')).toMatch(/LearningRateSchedule, which a checkpoint does not save; learning_rate set to .*_current_learning_rate/);
  });

  test('an optimizer saved before its first build: no slots, and it builds on its first step', async () => {
    const { prefix, manifest } = make('--unbuilt');
    const state = await readOptimizerState(prefix);
    expect(state).toMatchObject({ flavour: 'tf-keras-new', iterations: 0, slots: [] });
    expect(roles(state)).toEqual(['iterations', 'learning_rate']);
    expect(state.variables.map((v) => v.name)).toEqual(manifest.new_optimizer.trainable);
    expect(state.notes.join('\n')).toMatch(/saved before its first build/);
    const { optimizer, variables } = optimizerFromState(state);
    expect(optimizer.built).toBe(false);
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill('float32', v.shape, 0.5), v] as const));
    expect([optimizer.iterations, optimizer.weights.length]).toEqual([1, 1 + 2 * variables.length]);
  });

  test('optimizerFromState: a step equals a TF 2.11+ Nadam set up by hand from the helper\'s tensors', async () => {
    const { manifest } = base;
    const m = manifest.new_optimizer;
    const state = await readOptimizerState(base.prefix);
    const { optimizer, variables } = optimizerFromState(state);
    expect(optimizer.flavour).toBe('tf-keras-new');
    expect(hexOf(optimizer.getWeight('u_product').value)).toBe(manifest.tensors[`optimizer/_u_product${SUFFIX}`]!.data);

    const tensorOf = (name: string): Tensor => {
      const t = manifest.tensors[`${name}${SUFFIX}`]!;
      const bytes = Buffer.from(t.data, 'hex');
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      return t.dtype === 'int64' ? new Tensor('int64', t.shape, new BigInt64Array(buf)) : new Tensor('float32', t.shape, new Float32Array(buf));
    };
    const manual = m.ties.map((t) => new Variable(tensorOf(t.variable), { name: t.variable }));
    const nadam = new Nadam({ flavour: 'tf-keras-new', learning_rate: m.learning_rate! });
    nadam.build(manual);
    nadam.setWeights([tensorOf('optimizer/_iterations'), ...m.ties.flatMap((t) => [tensorOf(t.m), tensorOf(t.v!)])]);
    nadam.getWeight('u_product').assign(tensorOf('optimizer/_u_product'));

    const grads = (vs: readonly Variable[]) => vs.map((v, i) => [Tensor.fill('float32', v.shape, 0.25 - 0.1 * i), v] as const);
    optimizer.applyGradientsSync(grads(variables));
    nadam.applyGradientsSync(grads(manual));
    expect(optimizer.iterations).toBe(8);
    expect(variables.map((v) => hexOf(v.value))).toEqual(manual.map((v) => hexOf(v.value)));
    expect(optimizer.getWeights().map(hexOf)).toEqual(nadam.getWeights().map(hexOf));
    expect(hexOf(optimizer.getWeight('u_product').value)).toBe(hexOf(nadam.getWeight('u_product').value));
  });

  test('3 steps saved into a copy: iteration, u_product, slots and model variables read back as the optimizer holds them; nothing else changes', async () => {
    const src = copyBundle(base.prefix);
    const before = TensorBundle.open(base.prefix); // the original: src is rewritten in place
    const state = await readOptimizerState(src);
    const { optimizer, variables } = optimizerFromState(state);
    for (let step = 0; step < 3; step++) {
      optimizer.applyGradientsSync(variables.map((v, i) => [Tensor.fill('float32', v.shape, 0.05 * (i + 1) - 0.02 * step), v] as const));
    }
    await saveOptimizerState(src, optimizer, { like: state, modelVariables: variables });

    const back = await readOptimizerState(src);
    expect(back.iterations).toBe(10);
    expect(back.release.layout).toBe('tf-keras-new-checkpoint');
    expect(roles(back)).toEqual(roles(state));
    expect(back.schedule.reconstructed).toBe(false);
    expect(sameBits(back.schedule.value, optimizer.getWeight('u_product').value)).toBe(true);
    expect(hexOf(back.schedule.value)).not.toBe(hexOf(state.schedule.value));
    for (const s of back.slots) expect(sameBits(s.value, optimizer.weights.find((w) => w.name === `${s.variable}/${s.slot}`)!.value), s.weightName).toBe(true);
    expect(back.slots.every((s, i) => hexOf(s.value) !== hexOf(state.slots[i]!.value))).toBe(true);
    for (const v of variables) expect(sameBits(back.variables.find((b) => b.name === v.name)!.value, v.value), v.name).toBe(true);
    expect(sameBits(back.weights[1]!.value, state.weights[1]!.value)).toBe(true); // the learning rate did not change

    // Tensor by tensor: exactly the optimizer's state and the trainable variables changed.
    const after = TensorBundle.open(src);
    const changed = before.keys().filter((k) => after.info(k).dtype !== 'string' && hexOf(after.tensor(k)) !== hexOf(before.tensor(k))).sort();
    const expected = ['optimizer/_iterations', 'optimizer/_u_product', ...state.slots.map((s) => s.weightName), ...base.manifest.new_optimizer.trainable].map((n) => `${n}${SUFFIX}`).sort();
    expect(changed).toEqual(expected);
    expect(after.keys()).toEqual(before.keys());
    // the pure-Python checker reads the rewritten bundle: every block and tensor CRC holds
    const check = JSON.parse(execFileSync(PYTHON, [resolve('test/helpers/bundle_check.py'), src], { encoding: 'utf8' })) as { errors: string[] };
    expect(check.errors).toEqual([]);
  });

  test('an unchanged save leaves every file byte-identical', async () => {
    const src = copyBundle(base.prefix);
    const files = snapshot(dirname(src));
    const state = await readOptimizerState(src);
    const { optimizer, variables } = optimizerFromState(state);
    await saveOptimizerState(src, optimizer, { like: state });
    await saveOptimizerState(src, optimizer, { like: state, modelVariables: variables });
    expect(snapshot(dirname(src))).toEqual(files);
  });
});

describe.skipIf(missing !== null)('bad TF 2.11+ checkpoints are FormatErrors naming the file and the key', () => {
  async function refused(prefix: string, ...patterns: RegExp[]): Promise<void> {
    const error = await readOptimizerState(prefix).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toContain(`${prefix}.index`);
    for (const p of patterns) expect((error as Error).message).toMatch(p);
  }

  test('a _variables list with an odd slot count', async () => {
    const { prefix } = make('--odd-slots');
    await refused(prefix, /key 'optimizer\/_variables\/11\/\.ATTRIBUTES\/VARIABLE_VALUE'/, /holds 11 variables after the iteration, an odd count/);
  });

  test('slots whose shape fits no model variable at their position', async () => {
    const { prefix } = make('--bad-shape');
    await refused(prefix, /optimizer weight 'optimizer\/_variables\/3\/\.ATTRIBUTES\/VARIABLE_VALUE' float32\[5\] matches no remaining model variable/);
  });

  test('m and v of one variable that differ in shape', async () => {
    const { prefix } = make('--bad-pair');
    await refused(prefix, /key 'optimizer\/_variables\/2\/\.ATTRIBUTES\/VARIABLE_VALUE': float32\[2\], but the m before it \('optimizer\/_variables\/1\/\.ATTRIBUTES\/VARIABLE_VALUE'\) is float32\[3, 4\]/);
  });

  test('a Keras 3 optimizer (learning_rate in _variables) is refused, not misread', async () => {
    const { prefix } = make('--keras3');
    await refused(prefix, /_variables' lists _learning_rate among its variables, as Keras 3 optimizers do/);
  });
});
