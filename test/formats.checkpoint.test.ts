import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createConfigCommand } from '../src/cli/commands/config.js';
import { createInspectCommand } from '../src/cli/commands/inspect.js';
import { TensorBundle } from '../src/formats/checkpoint/bundle.js';
import { crc32c, maskCrc } from '../src/formats/checkpoint/crc32c.js';
import { FormatError, KerasValueError, Nadam, optimizerFromState, readOptimizerState, saveOptimizerState, Tensor, Variable } from '../src/index.js';
import { missingPython, PYTHON } from './helpers/python.js';

/**
 * TF2 object-based checkpoints. Every checkpoint here is made by kerasopt's test helper
 * (test/helpers/tf_checkpoint.py) in the TF tensor-bundle layout, NOT by TensorFlow: the reader is
 * checked against our own independent reading of TF's sources, never against TF-written files.
 */
interface Manifest {
  tensors: Record<string, { dtype: string; shape: number[]; data: string | string[]; shard: number; offset: number; size: number }>;
  hypers: Record<string, number>;
  /** Every block of the .index as [offset, size], in file order (data blocks, metaindex, index). */
  blocks: Array<[number, number]>;
}

const missing = missingPython(['numpy']);
const dir = mkdtempSync(join(tmpdir(), 'kerasopt-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function make(name: string, ...args: string[]): { prefix: string; manifest: Manifest } {
  const prefix = join(dir, name, 'ckpt');
  mkdirSync(join(dir, name), { recursive: true });
  const out = execFileSync(PYTHON, [resolve('test/helpers/tf_checkpoint.py'), prefix, ...args], { encoding: 'utf8' });
  return { prefix, manifest: JSON.parse(out) as Manifest };
}

function hexOf(t: Tensor): string {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');
}

let sharded: ReturnType<typeof make>;
beforeAll(() => {
  if (!missing) sharded = make('sharded', '--shards', '2', '--block-size', '200');
});

describe('tensor bundle reader', () => {
  test('every tensor the helper wrote reads back bit for bit, with its dtype, shape, shard and position', () => {
    if (missing) return;
    const bundle = TensorBundle.open(sharded.prefix);
    expect(bundle.numShards).toBe(2);
    expect(bundle.keys().sort()).toEqual(Object.keys(sharded.manifest.tensors).sort());
    const dtypes = new Set<string>();
    for (const [key, m] of Object.entries(sharded.manifest.tensors)) {
      const info = bundle.info(key);
      expect(info, key).toMatchObject({ dtype: m.dtype, shape: m.shape, shard: m.shard, offset: m.offset, size: m.size });
      dtypes.add(info.dtype);
      if (m.dtype === 'string') expect(bundle.strings(key).map((s) => Buffer.from(s).toString('hex')), key).toEqual(m.data);
      else expect(hexOf(bundle.tensor(key)), key).toBe(m.data);
    }
    expect([...dtypes].sort()).toEqual(['float16', 'float32', 'float64', 'int32', 'int64', 'string']);
  });
});

describe('tf.keras Nadam from a checkpoint', () => {
  test('a tf.train.Checkpoint(model=, optimizer=) layout, by prefix or by .index', async () => {
    if (missing) return;
    for (const path of [sharded.prefix, `${sharded.prefix}.index`]) {
      const state = await readOptimizerState(path);
      expect(state).toMatchObject({ format: 'tf-checkpoint', flavour: 'tf-keras', className: 'Nadam', iterations: 3, kerasVersion: null });
      expect(state.config).toEqual({ name: 'Nadam', ...sharded.manifest.hypers, schedule_decay: sharded.manifest.hypers.decay, epsilon: 1e-7 });
      expect(state.notes.join('\n')).toMatch(/saves no optimizer config/);
      expect(state.notes.join('\n')).toMatch(/epsilon/);
      const t = sharded.manifest.tensors;
      const kernel = 'model/layer_with_weights-0/kernel';
      const bias = 'model/layer_with_weights-0/bias';
      expect(state.variables.map((v) => v.name)).toEqual([kernel, bias]);
      expect(hexOf(state.variables[0]!.value)).toBe(t[`${kernel}/.ATTRIBUTES/VARIABLE_VALUE`]!.data);
      expect(state.slots.map((s) => [s.variable, s.slot])).toEqual([[kernel, 'm'], [bias, 'm'], [kernel, 'v'], [bias, 'v']]);
      for (const s of state.slots) expect(hexOf(s.value)).toBe(t[`${s.variable}/.OPTIMIZER_SLOT/optimizer/${s.slot}/.ATTRIBUTES/VARIABLE_VALUE`]!.data);
      expect(state.weights.map((w) => w.name).slice(0, 2)).toEqual(['optimizer/iter', 'optimizer/momentum_cache']);
      expect(hexOf(state.schedule.value)).toBe(t['optimizer/momentum_cache/.ATTRIBUTES/VARIABLE_VALUE']!.data);
    }
  });

  test('model.save_weights (root = the model) and a SavedModel directory', async () => {
    if (missing) return;
    const model = make('model', '--root', 'model');
    const state = await readOptimizerState(model.prefix);
    expect(state.variables.map((v) => v.name)).toEqual(['layer_with_weights-0/kernel', 'layer_with_weights-0/bias']);
    const saved = join(dir, 'savedmodel');
    mkdirSync(join(saved, 'variables'), { recursive: true });
    for (const f of readdirSync(join(dir, 'model'))) copyFileSync(join(dir, 'model', f), join(saved, 'variables', f.replace('ckpt', 'variables')));
    writeFileSync(join(saved, 'saved_model.pb'), '');
    const fromDir = await readOptimizerState(saved);
    expect(fromDir.weights.map((w) => hexOf(w.value))).toEqual(state.weights.map((w) => hexOf(w.value)));
  });

  test.each(['float64', 'float16'] as const)('a %s model resumes with its slots in that dtype', async (dtype) => {
    if (missing) return;
    const made = make(dtype, '--dtype', dtype);
    const state = await readOptimizerState(made.prefix);
    expect(state.slots.map((s) => s.value.dtype)).toEqual([dtype, dtype, dtype, dtype]);
    for (const s of state.slots) expect(hexOf(s.value)).toBe(made.manifest.tensors[`${s.variable}/.OPTIMIZER_SLOT/optimizer/${s.slot}/.ATTRIBUTES/VARIABLE_VALUE`]!.data);
    expect(state.notes.join('\n')).toMatch(new RegExp(`known to float32 precision only: with ${dtype} variables`));
    const { optimizer, variables } = optimizerFromState(state);
    optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill(dtype, v.shape, 0.5), v] as const));
    expect(optimizer.iterations).toBe(4);
    expect(variables.every((v) => v.dtype === dtype)).toBe(true);
    expect(hexOf(variables[1]!.value)).not.toBe(hexOf(state.variables[1]!.value));
  });

  test('an early optimizer_v2 Nadam that saved epsilon as a hyper variable', async () => {
    if (missing) return;
    const early = make('epsilon', '--epsilon-hyper');
    const state = await readOptimizerState(early.prefix);
    expect(state.config.epsilon).toBe(early.manifest.hypers.epsilon);
    expect(state.config.epsilon).toBe(Math.fround(1e-5));
    expect(state.notes.join('\n')).toMatch(/epsilon read from the saved epsilon variable/);
  });

  test('optimizerFromState resumes it: its weights are the checkpoint\'s and a step equals a Nadam set up by hand', async () => {
    if (missing) return;
    const state = await readOptimizerState(sharded.prefix);
    const { optimizer, variables } = optimizerFromState(state);
    expect(optimizer.getWeights().map(hexOf)).toEqual(state.weights.map((w) => hexOf(w.value)));

    // The same optimizer set up from the helper's manifest alone.
    const t = sharded.manifest.tensors;
    const tensorOf = (key: string): Tensor => {
      const m = t[`${key}/.ATTRIBUTES/VARIABLE_VALUE`]!;
      const bytes = Buffer.from(m.data as string, 'hex');
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      return m.dtype === 'int64' ? new Tensor('int64', m.shape, new BigInt64Array(buf)) : new Tensor('float32', m.shape, new Float32Array(buf));
    };
    const names = ['kernel', 'bias'].map((n) => `model/layer_with_weights-0/${n}`);
    const manual = names.map((n) => new Variable(tensorOf(n), { name: n }));
    const h = sharded.manifest.hypers;
    const nadam = new Nadam({ learning_rate: h.learning_rate, beta_1: h.beta_1, beta_2: h.beta_2, schedule_decay: h.decay, epsilon: 1e-7, flavour: 'tf-keras' });
    nadam.build(manual);
    const slot = (s: string) => names.map((n) => tensorOf(`${n}/.OPTIMIZER_SLOT/optimizer/${s}`));
    nadam.setWeights([tensorOf('optimizer/iter'), tensorOf('optimizer/momentum_cache'), ...slot('m'), ...slot('v')]);

    const grads = (vs: readonly Variable[]) => vs.map((v, i) => [Tensor.fill('float32', v.shape, 0.25 - 0.5 * i), v] as const);
    optimizer.applyGradientsSync(grads(variables));
    nadam.applyGradientsSync(grads(manual));
    expect(optimizer.iterations).toBe(4);
    expect(variables.map((v) => hexOf(v.value))).toEqual(manual.map((v) => hexOf(v.value)));
    expect(hexOf(variables[0]!.value)).not.toBe(hexOf(state.variables[0]!.value));

    // A checkpoint is updated in place, never created: saving "like" a checkpoint into a new path is refused, and nothing is written.
    const target = join(dir, 'like-checkpoint.h5');
    await expect(saveOptimizerState(target, optimizer, { like: state })).rejects.toThrow(KerasValueError);
    await expect(saveOptimizerState(target, optimizer, { like: state })).rejects.toThrow(/is no TF checkpoint: kerasopt updates an existing checkpoint/);
    expect(existsSync(target)).toBe(false);
  });
});

describe('the CLI on a checkpoint', () => {
  test('kerasopt inspect --json and kerasopt config show', async () => {
    if (missing) return;
    let out = '';
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true, isTTY: false } };
    expect(await createInspectCommand(io as never).run([sharded.prefix, '--json'])).toBe(0);
    const summary = JSON.parse(out) as { format: string; iterations: number; slots: Array<{ variable: string; slot: string }> };
    expect(summary).toMatchObject({ format: 'tf-checkpoint', iterations: 3 });
    expect(summary.slots.map((s) => `${s.variable}:${s.slot}`)).toContain('model/layer_with_weights-0/bias:v');
    out = '';
    expect(await createConfigCommand(io as never).run(['show', `${sharded.prefix}.index`])).toBe(0);
    expect(out).toMatch(/config was built from the saved hyperparameter variables/);
    expect(out).toMatch(/flavour: +tf-keras/);
  });
});

describe('bad checkpoints are FormatErrors naming the file and the key', () => {
  /** A copy of the sharded checkpoint to damage. */
  function copy(name: string): string {
    mkdirSync(join(dir, name));
    for (const f of readdirSync(join(dir, 'sharded'))) copyFileSync(join(dir, 'sharded', f), join(dir, name, f));
    return join(dir, name, 'ckpt');
  }
  async function refused(path: string, ...patterns: RegExp[]): Promise<void> {
    const error = await readOptimizerState(path).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    for (const p of patterns) expect((error as Error).message).toMatch(p);
  }
  const kernelKey = 'model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE';

  test('a truncated .index and a bad magic number', async () => {
    if (missing) return;
    const p = copy('truncated');
    truncateSync(`${p}.index`, 40);
    await refused(p, /ckpt\.index: .*shorter than the 48-byte table footer/);
    const q = copy('magic');
    const bytes = readFileSync(`${q}.index`);
    truncateSync(`${q}.index`, bytes.length - 7);
    await refused(q, /ckpt\.index: bad table magic number/);
  });

  test('a CRC mismatch in an index block and in a tensor', async () => {
    if (missing) return;
    const p = copy('crc-index');
    const bytes = readFileSync(`${p}.index`);
    bytes[3] ^= 0x20;
    writeFileSync(`${p}.index`, bytes);
    await refused(p, /ckpt\.index: data block 0 at offset 0: CRC-32C mismatch/);

    const q = copy('crc-data');
    const info = TensorBundle.open(q).info(kernelKey);
    const shard = `${q}.data-0000${info.shard}-of-00002`;
    const data = readFileSync(shard);
    data[info.offset + 1] ^= 1;
    writeFileSync(shard, data);
    await refused(q, new RegExp(`ckpt\\.data-0000${info.shard}-of-00002: tensor '${kernelKey}': CRC-32C mismatch`));

    // A string tensor: the object graph's bytes, then its element lengths.
    for (const [name, at, pattern] of [['crc-string', 'end', /tensor '_CHECKPOINTABLE_OBJECT_GRAPH': CRC-32C mismatch/], ['crc-lengths', 'start', /entry '_CHECKPOINTABLE_OBJECT_GRAPH' \(string tensor\): CRC-32C mismatch on the element lengths/]] as const) {
      const r = copy(name);
      const graph = TensorBundle.open(r).info('_CHECKPOINTABLE_OBJECT_GRAPH');
      const file = `${r}.data-0000${graph.shard}-of-00002`;
      const bytes = readFileSync(file);
      bytes[at === 'end' ? graph.offset + graph.size - 1 : graph.offset + 2] ^= 4;
      writeFileSync(file, bytes);
      await refused(r, pattern);
    }
  });

  test('a missing data shard, and an entry running past the end of its shard (checked before allocating)', async () => {
    if (missing) return;
    const p = copy('noshard');
    const info = TensorBundle.open(p).info(kernelKey);
    unlinkSync(`${p}.data-0000${info.shard}-of-00002`);
    await refused(p, /missing data shard/, /needed by tensor '/);
    const q = copy('short');
    const shard = `${q}.data-0000${info.shard}-of-00002`;
    truncateSync(shard, info.offset + 2);
    await refused(q, /ckpt\.index: entry '[^']+': offset \d+ \+ size \d+ run past the end of .*ckpt\.data-0000\d-of-00002/);
    // A cap on any one tensor is honoured before reading it.
    const error = await readOptimizerState(sharded.prefix, { maxDatasetBytes: 16 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toMatch(/entry '[^']+': \d+ bytes, over the 16-byte cap/);
  });

  test('a sweep of corrupted .index bytes: each read succeeds or is a FormatError, never another error', async () => {
    if (missing) return;
    const p = copy('sweep');
    const original = readFileSync(`${sharded.prefix}.index`);
    const kinds = new Map<string, number>();
    for (let at = 0; at < original.length; at += 3) {
      const bytes = Buffer.from(original);
      bytes[at] ^= 0x5a;
      writeFileSync(`${p}.index`, bytes);
      const outcome = await readOptimizerState(p).then(() => 'read', (e: unknown) => (e instanceof FormatError ? 'FormatError' : `${(e as Error).name}: ${(e as Error).message}`));
      kinds.set(outcome, (kinds.get(outcome) ?? 0) + 1);
    }
    expect([...kinds.keys()].filter((k) => k !== 'read' && k !== 'FormatError')).toEqual([]);
    expect(kinds.get('FormatError')).toBeGreaterThan(0);
  });

  test('the same sweep inside the blocks with their CRCs recomputed reaches the block, entry and graph parsers', async () => {
    if (missing) return;
    // Robustness only: the CRC is re-made with kerasopt's own crc32c so that the damage gets past it.
    const p = copy('sweep-deep');
    const original = readFileSync(`${sharded.prefix}.index`);
    const kinds = new Map<string, number>();
    for (const [offset, size] of sharded.manifest.blocks) {
      for (let at = offset; at < offset + size; at += 2) {
        const bytes = Buffer.from(original);
        bytes[at] ^= 0x41;
        bytes.writeUInt32LE(maskCrc(crc32c(bytes.subarray(offset, offset + size + 1))), offset + size + 1);
        writeFileSync(`${p}.index`, bytes);
        const outcome = await readOptimizerState(p).then(() => 'read', (e: unknown) => (e instanceof FormatError ? 'FormatError' : `${(e as Error).name}: ${(e as Error).message}`));
        kinds.set(outcome, (kinds.get(outcome) ?? 0) + 1);
      }
    }
    expect([...kinds.keys()].filter((k) => k !== 'read' && k !== 'FormatError')).toEqual([]);
    expect(kinds.get('FormatError')).toBeGreaterThan(10);
  });

  test('an unknown dtype, a snappy block, a learning-rate schedule, a checkpoint without optimizer', async () => {
    if (missing) return;
    const p = make('dtype', '--set-dtype', `${kernelKey}=99`).prefix;
    await refused(p, new RegExp(`ckpt\\.index: entry '${kernelKey}': dtype 99`));
    const q = make('snappy', '--compression', '1').prefix;
    await refused(q, /ckpt\.index: .*snappy-compressed/);
    const schedule = make('schedule', '--lr-schedule').prefix;
    await refused(schedule, /key 'optimizer\/learning_rate\/\.ATTRIBUTES\/VARIABLE_VALUE': .*LearningRateSchedule/);
    const r = make('noopt', '--no-optimizer').prefix;
    await refused(r, /ckpt\.index: key '_CHECKPOINTABLE_OBJECT_GRAPH': no optimizer in the checkpoint/);
  });
});

describe('real checkpoints (../shared/corpus/real)', () => {
  const root = resolve('../shared/corpus/real');
  const found: string[] = [];
  const walk = (d: string): void => {
    if (!existsSync(d)) return;
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.index')) found.push(p);
    }
  };
  walk(root);
  test(`${found.length} real checkpoints checked`, async () => {
    if (found.length === 0) console.warn('\n*** TF CHECKPOINTS CORPUS: 0 real checkpoints checked: ../shared/corpus/real holds no .index file. The reader is verified only against kerasopt\'s own test helper. ***\n');
    for (const f of found) {
      const state = await readOptimizerState(f).catch((e: unknown) => e);
      if (state instanceof FormatError && /no optimizer|not one of Nadam|has no variable/.test(state.message)) {
        console.warn(`${f}: no tf.keras Nadam state (${state.message})`);
        continue;
      }
      if (state instanceof Error) throw state;
      const bundle = TensorBundle.open(f.slice(0, -'.index'.length));
      for (const key of bundle.keys()) if (bundle.info(key).dtype !== 'string') bundle.tensor(key);
      expect(() => optimizerFromState(state as never)).not.toThrow();
    }
    expect(found.length).toBeGreaterThanOrEqual(0);
  });
});
