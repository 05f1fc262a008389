import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOptimizerState, stopReaderWorker } from '../src/index.js';
import { loadKerasModel, UnsupportedModelError } from '../src/tfjs/index.js';
import { compileChoice } from '../src/tfjs/compile.js';
import { toTfjsTopology } from '../src/tfjs/config.js';
import { CORPUS_DIR, ensureBuilt, REPO } from './helpers/corpus.js';
import { cpuBackend } from './helpers/tfjs.js';

const base = mkdtempSync(join(tmpdir(), 'kerasopt-tfjs-package-'));
beforeAll(async () => {
  await cpuBackend();
  const note = ensureBuilt();
  if (note) console.warn(note);
}, 300_000);
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  stopReaderWorker();
});

/** Runs `code` as an ES module in `cwd` (node --input-type=module, code on stdin). */
function runModule(code: string, cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module'], { cwd, input: code, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const PROBE = `
import { createRequire } from 'node:module';
const loaded = () => ({ engine: globalThis._tfengine !== undefined, cjs: Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow')).length });
await import(process.argv[1] ?? 'kerasopt');
console.log(JSON.stringify(loaded()));
`;

describe('kerasopt/tfjs as a package', () => {
  it("import 'kerasopt' does not load tfjs; import 'kerasopt/tfjs' does", () => {
    const probe = (specifier: string) => {
      const r = runModule(PROBE.replace("process.argv[1] ?? 'kerasopt'", JSON.stringify(specifier)), REPO);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { engine: boolean; cjs: number };
    };
    expect(probe('kerasopt')).toEqual({ engine: false, cjs: 0 });
    const control = probe('kerasopt/tfjs');
    expect(control.engine).toBe(true);
    expect(control.cjs).toBeGreaterThan(0);
  });

  it('package.json exports ./tfjs (types + import, built), tfjs is an optional peer and a devDependency, and the lock agrees', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    expect(pkg.exports['./tfjs']).toEqual({ types: './dist/src/tfjs/index.d.ts', import: './dist/src/tfjs/index.js' });
    for (const f of Object.values(pkg.exports['./tfjs']) as string[]) expect(existsSync(join(REPO, f)), f).toBe(true);
    expect(pkg.peerDependencies['@tensorflow/tfjs']).toMatch(/^\^4\./);
    expect(pkg.peerDependenciesMeta['@tensorflow/tfjs']).toEqual({ optional: true });
    expect(pkg.devDependencies['@tensorflow/tfjs']).toMatch(/^\^4\./);
    expect(pkg.dependencies['@tensorflow/tfjs']).toBeUndefined();
    const root = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')).packages[''];
    expect(root.peerDependencies).toEqual(pkg.peerDependencies);
    expect(root.peerDependenciesMeta).toEqual(pkg.peerDependenciesMeta);
    expect(root.devDependencies).toEqual(pkg.devDependencies);
  });

  it('the README example "Resume in TensorFlow.js" runs as written against the built package', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Resume in TensorFlow.js'));
    const code = /```ts\n([\s\S]*?)\n```/.exec(section)?.[1];
    expect(code, 'README has a ts example under "## Resume in TensorFlow.js"').toBeDefined();
    // a user's folder: kerasopt and its tfjs peer installed, ../shared beside it as beside a checkout
    const work = join(base, 'readme', 'work');
    mkdirSync(join(work, 'node_modules'), { recursive: true });
    symlinkSync(resolve(REPO, '../shared'), join(base, 'readme', 'shared'));
    symlinkSync(REPO, join(work, 'node_modules', 'kerasopt'));
    symlinkSync(join(REPO, 'node_modules', '@tensorflow'), join(work, 'node_modules', '@tensorflow'));
    const source = join(CORPUS_DIR, 'indahmustika__flask-school-readiness/nadam.h5');
    const sha = () => createHash('sha256').update(readFileSync(source)).digest('hex');
    const before = sha();
    const js = ts.transpileModule(code!, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const r = runModule(js, work);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe('6008');
    expect(sha()).toBe(before);
    return readOptimizerState(join(work, 'resumed.h5')).then((s) => expect(s.iterations).toBe(6008));
  }, 300_000);
});

describe('kerasopt/tfjs: what it translates and what it refuses', () => {
  it('refuses a Lambda layer, naming the layer and its class', async () => {
    const file = join(CORPUS_DIR, 'trojerz__Ear-Detection/nadam.h5');
    const e = await loadKerasModel(file).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UnsupportedModelError);
    expect((e as UnsupportedModelError).layer).toEqual({ name: 'identity_layer', className: 'Lambda' });
    expect((e as Error).message).toMatch(/layer 'identity_layer' \(class Lambda\)/);
  });

  it('translates a Keras 3 functional config (keras tensors, batch_shape, dtype policies, unknown initializers) into one tfjs builds', async () => {
    const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
    const kt = (layer: string) => ({ class_name: '__keras_tensor__', config: { shape: [null, 4], dtype: 'float32', keras_history: [layer, 0, 0] } });
    const config = {
      module: 'keras.src.models.functional', class_name: 'Functional',
      config: {
        name: 'f', trainable: true,
        layers: [
          { module: 'keras.layers', class_name: 'InputLayer', name: 'in', config: { batch_shape: [null, 4], dtype: 'float32', sparse: false, name: 'in' }, inbound_nodes: [] },
          { module: 'keras.layers', class_name: 'Dense', name: 'a', config: { name: 'a', dtype: policy, units: 4, activation: 'relu', use_bias: true, kernel_initializer: { module: 'keras.initializers', class_name: 'LecunNormal', config: { seed: null } }, bias_initializer: 'zeros', quantization_config: null }, build_config: { input_shape: [null, 4] }, inbound_nodes: [{ args: [kt('in')], kwargs: {} }] },
          { module: 'keras.layers', class_name: 'Add', name: 'sum', config: { name: 'sum', dtype: policy }, inbound_nodes: [{ args: [[kt('a'), kt('in')]], kwargs: {} }] },
        ],
        input_layers: ['in', 0, 0],
        output_layers: ['sum', 0, 0],
      },
    };
    const registered = (c: string) => c in tf.serialization.SerializationMap.getMap().classNameMap;
    const model = await tf.models.modelFromJSON(toTfjsTopology(config, 'f.keras', registered) as Parameters<typeof tf.models.modelFromJSON>[0]);
    expect(model.layers.map((l) => l.getClassName())).toEqual(['InputLayer', 'Dense', 'Add']);
    expect(model.outputs[0]!.shape).toEqual([null, 4]);
    expect(() => toTfjsTopology({ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { name: 'd', units: 1, dtype: 'mixed_float16' } }] } }, 'm.h5', registered)).toThrow(/layer 'd' has dtype \(policy\) "mixed_float16"/);
    expect(() => toTfjsTopology({ class_name: 'Sequential', config: { layers: [{ class_name: 'MyBlock', config: { name: 'blk' } }] } }, 'm.h5', registered)).toThrow(/layer 'blk' \(class MyBlock\)/);
  });

  it("maps the file's loss and metrics to tfjs's when tfjs has them, else leaves compiling to the caller", () => {
    expect(compileChoice({ loss: 'categorical_crossentropy', metrics: [[{ class_name: 'MeanMetricWrapper', config: { name: 'accuracy', fn: 'categorical_accuracy' } }]] }))
      .toEqual({ loss: 'categoricalCrossentropy', metrics: ['categoricalAccuracy'], notes: [] });
    expect(compileChoice({ loss: { module: 'keras.losses', class_name: 'MeanSquaredError', config: { name: 'mse', reduction: 'sum_over_batch_size' } }, metrics: ['mae', 'auc'] }))
      .toEqual({ loss: 'meanSquaredError', metrics: ['mae'], notes: ['metric "auc" left out: tfjs has no equal metric'] });
    expect(compileChoice({ loss: { class_name: 'CategoricalCrossentropy', config: { from_logits: true } } }).loss).toBeNull();
    expect(compileChoice({ loss: { module: 'builtins', class_name: 'function', config: 'huber_fn' } }).loss).toBeNull();
    expect(compileChoice(null).loss).toBeNull();
  });
});
