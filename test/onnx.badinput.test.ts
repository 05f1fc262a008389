import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../src/cli/commands/index.js';
import { exportOnnx } from '../src/cli/commands/exportOnnx.js';
import {
  BackendError,
  exportNadamStep,
  FormatError,
  KerasValueError,
  OnnxBackend,
  OnnxNadamStep,
  Tensor,
  arith,
  type NadamStepFeeds,
} from '../src/index.js';
import { GraphBuilder } from '../src/onnx/graph.js';
import { decodeModel, encodeModel, type ModelObject } from '../src/onnx/proto.js';
import { buildKernelGraph } from '../src/onnx/nadamGraph.js';
import { tfKerasCoefficients } from '../src/optimizers/nadam/tfKeras.js';

const dir = mkdtempSync(join(tmpdir(), 'kerasopt-onnx-bad-'));
const backend = new OnnxBackend({ intraOpNumThreads: 1 });
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await backend.dispose();
});

function feeds(over: Partial<NadamStepFeeds> = {}): NadamStepFeeds {
  const t = (v: number[]) => Tensor.from(v, 'float32');
  return {
    variable: t([1, 2, 3]), gradient: t([0.1, 0.2, 0.3]), m: t([0, 0, 0]), v: t([0, 0, 0]),
    iterations: 0, schedule: 1, learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004,
    ...over,
  };
}

describe('loading a step model refuses what is not ours, naming the file', () => {
  it('random bytes: FormatError "not an ONNX model"', async () => {
    const file = join(dir, 'noise.onnx');
    writeFileSync(file, Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37 + 11) % 256)));
    await expect(OnnxNadamStep.load(file)).rejects.toThrow(FormatError);
    await expect(OnnxNadamStep.load(file)).rejects.toThrow(/noise\.onnx: not an ONNX model/);
  });

  it('a truncated step model is refused with a kerasopt error naming the file', async () => {
    const bytes = exportNadamStep();
    const err = await OnnxNadamStep.load(bytes.slice(0, Math.floor(bytes.length / 2)), { file: 'half.onnx' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(String(err)).toMatch(/half\.onnx/);
  });

  it('a valid but foreign ONNX model (no kerasopt metadata): FormatError naming the missing metadata', async () => {
    const foreign = buildKernelGraph('dense-tf-keras', 'float32').model;
    await expect(OnnxNadamStep.load(foreign, { file: 'foreign.onnx' })).rejects.toThrow(/foreign\.onnx: not a kerasopt Nadam step model: metadata 'kerasopt\.kind' is "kernel:dense-tf-keras"/);
  });

  it('our metadata on a graph without the step inputs: FormatError listing them', async () => {
    const b = new GraphBuilder('impostor');
    const x = b.input('x', 'float32', ['n']);
    b.output(b.op('Neg', [x], 'y'), 'float32', ['n']);
    const bytes = b.toModel({ 'kerasopt.kind': 'nadam-step', 'kerasopt.format': '1', 'kerasopt.flavour': 'keras3', 'kerasopt.dtype': 'float32' });
    await expect(OnnxNadamStep.load(bytes, { file: 'impostor.onnx' })).rejects.toThrow(/impostor\.onnx: Nadam step model \(keras3\) lacks graph input\(s\) 'variable', 'gradient'/);
  });

  it('unknown flavour or dtype in the metadata: FormatError', async () => {
    const b = new GraphBuilder('odd');
    const bytes = b.toModel({ 'kerasopt.kind': 'nadam-step', 'kerasopt.format': '1', 'kerasopt.flavour': 'adamw', 'kerasopt.dtype': 'float32' });
    await expect(OnnxNadamStep.load(bytes, { file: 'odd.onnx' })).rejects.toThrow(/odd\.onnx: metadata 'kerasopt\.flavour' is "adamw"/);
  });

  it('a model that decodes but onnxruntime rejects: BackendError naming the file', async () => {
    const b = new GraphBuilder('bogus');
    const names = ['variable', 'gradient', 'm', 'v', 'iterations', 'u_product', 'learning_rate', 'beta_1', 'beta_2', 'epsilon'];
    for (const n of names) b.input(n, n === 'iterations' ? 'int64' : 'float32', []);
    for (const n of ['new_variable', 'new_m', 'new_v', 'new_iterations', 'new_u_product']) b.output(b.op('NoSuchOp', ['variable'], n), n === 'new_iterations' ? 'int64' : 'float32', []);
    const bytes = b.toModel({ 'kerasopt.kind': 'nadam-step', 'kerasopt.format': '1', 'kerasopt.flavour': 'keras3', 'kerasopt.dtype': 'float32' });
    await expect(OnnxNadamStep.load(bytes, { file: 'bogus.onnx' })).rejects.toThrow(BackendError);
    await expect(OnnxNadamStep.load(bytes, { file: 'bogus.onnx' })).rejects.toThrow(/onnxruntime cannot load Nadam step model bogus\.onnx/);
  });

  it('a step model whose tensors are not of the dtype its metadata says: FormatError naming the tensor', async () => {
    const model = decodeModel(exportNadamStep({ flavour: 'tf-keras', dtype: 'float64' }), 'x');
    const relabelled = { ...model, metadata_props: model.metadata_props!.map((p) => (p.key === 'kerasopt.dtype' ? { key: p.key, value: 'float32' } : p)) } as ModelObject;
    await expect(OnnxNadamStep.load(encodeModel(relabelled), { file: 'liar.onnx' }))
      .rejects.toThrow("liar.onnx: Nadam step model (tf-keras, float32): graph input 'variable' is float64, expected float32");
    const intIterations = decodeModel(exportNadamStep({ flavour: 'keras3', dtype: 'float32' }), 'x') as ModelObject;
    intIterations.graph.output.find((o) => o.name === 'new_iterations')!.type.tensor_type.elem_type = 6;
    await expect(OnnxNadamStep.load(encodeModel(intIterations), { file: 'int32.onnx' }))
      .rejects.toThrow("int32.onnx: Nadam step model (keras3, float32): graph output 'new_iterations' is int32, expected int64");
  });

  it('a missing file: FormatError "cannot read"', async () => {
    await expect(OnnxNadamStep.load(join(dir, 'absent.onnx'))).rejects.toThrow(/absent\.onnx: cannot read/);
  });
});

describe('running a step model with mismatched feeds names the step and the tensor', () => {
  it('shape, dtype and scalar mismatches', async () => {
    const step = await OnnxNadamStep.load(exportNadamStep({ flavour: 'tf-keras', dtype: 'float32' }), { file: 'step.onnx', intraOpNumThreads: 1 });
    try {
      await expect(step.run(feeds({ gradient: Tensor.from([1, 2], 'float32') })))
        .rejects.toThrow("Nadam step (tf-keras, float32) of step.onnx: tensor 'gradient' has shape [2], 'variable' has [3]");
      await expect(step.run(feeds({ v: Tensor.from([0, 0, 0], 'float64') })))
        .rejects.toThrow("Nadam step (tf-keras, float32) of step.onnx: tensor 'v' has dtype float64, the model takes float32");
      await expect(step.run(feeds({ beta_2: Number.NaN }))).rejects.toThrow(KerasValueError);
      await expect(step.run(feeds({ beta_2: Number.NaN }))).rejects.toThrow(/scalar 'beta_2' must be a number/);
      await expect(step.run(feeds({ iterations: -1 }))).rejects.toThrow(/scalar 'iterations' must be an integer >= 0/);
      expect((await step.run(feeds())).iterations).toBe(1);
    } finally {
      await step.dispose();
    }
  });
});

describe('the onnx backend names the step and the tensor', () => {
  const { c } = tfKerasCoefficients(arith('float32'), {
    lr: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004, iterations: 0, cache: 1, stepForm: 'add-then-cast',
  });
  const state = () => ({ variable: Tensor.from([1, 2, 3, 4], 'float32', [2, 2]), m: Tensor.zeros('float32', [2, 2]), v: Tensor.zeros('float32', [2, 2]) });

  it('mismatched shapes or dtypes between feeds', async () => {
    await expect(backend.nadamDense({ ...state(), m: Tensor.zeros('float32', [4]) }, Tensor.zeros('float32', [2, 2]), c))
      .rejects.toThrow("onnx backend, step dense-tf-keras: tensor 'm' is float32[4], expected float32[2, 2] to match 'variable'");
    await expect(backend.nadamDense(state(), Tensor.zeros('float64', [2, 2]), c))
      .rejects.toThrow("onnx backend, step dense-tf-keras: tensor 'gradient' is float64[2, 2], expected float32[2, 2] to match 'variable'");
    await expect(backend.nadamSparse(state(), { indices: Int32Array.of(0), values: Tensor.zeros('float32', [1, 3]) }, c))
      .rejects.toThrow("onnx backend, step sparse-tf-keras: tensor 'gradient' is float32[1, 3], expected float32[1, 2] to match 'variable'");
  });

  it('an onnxruntime failure while running (a row index out of range) is a BackendError naming the step', async () => {
    const s = state();
    const before = Array.from(s.variable.data as Float32Array);
    const err = await Promise.resolve(backend.nadamSparse(s, { indices: Int32Array.of(5), values: Tensor.zeros('float32', [1, 2]) }, c)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(String(err)).toMatch(/onnx backend, step sparse-tf-keras \(float32\[2, 2\]\): onnxruntime failed: .*(ScatterND|GatherND)/);
    expect(Array.from(s.variable.data as Float32Array)).toEqual(before);
  });
});

describe('kerasopt export-onnx', () => {
  const run = async (args: string[]) => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      return await exportOnnx.run(args);
    } finally {
      out.mockRestore();
    }
  };

  it('is registered and writes a model the runner loads', async () => {
    expect(COMMANDS).toContain(exportOnnx);
    const file = join(dir, 'nadam_step.onnx');
    expect(await run(['--flavour', 'keras3', '--dtype', 'float64', '-o', file])).toBe(0);
    const step = await OnnxNadamStep.load(file);
    expect([step.flavour, step.dtype]).toEqual(['keras3', 'float64']);
    await step.dispose();
    expect(readFileSync(file)).toEqual(Buffer.from(exportNadamStep({ flavour: 'keras3', dtype: 'float64' })));
  });

  it('defaults to tf-keras float32', async () => {
    const file = join(dir, 'default.onnx');
    expect(await run(['-o', file])).toBe(0);
    expect(readFileSync(file)).toEqual(Buffer.from(exportNadamStep({ flavour: 'tf-keras', dtype: 'float32' })));
  });

  it('refuses bad options before writing anything', async () => {
    const file = join(dir, 'never.onnx');
    await expect(run(['--flavour', 'adam', '-o', file])).rejects.toThrow(/--flavour: unknown flavour 'adam'/);
    await expect(run(['--dtype', 'int8', '-o', file])).rejects.toThrow(/--dtype: unknown dtype 'int8'/);
    await expect(run([])).rejects.toThrow(/missing -o OUT\.onnx/);
    expect(existsSync(file)).toBe(false);
  });

  it('a failed write leaves the old file and no temporary file', async () => {
    const sub = join(dir, 'sub');
    await expect(run(['-o', join(sub, 'x.onnx')])).rejects.toThrow(FormatError);
    await expect(run(['-o', join(sub, 'x.onnx')])).rejects.toThrow(/x\.onnx: cannot write the model: ENOENT/);
    const keep = join(dir, 'keep.onnx');
    writeFileSync(keep, 'old');
    expect(await run(['-o', keep])).toBe(0);
    expect(readFileSync(keep).length).toBeGreaterThan(3);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
