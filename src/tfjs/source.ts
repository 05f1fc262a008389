import { readArchiveWeights } from '../formats/archiveUpdate.js';
import { checkpointPrefix } from '../formats/checkpoint/nadam.js';
import { H5File } from '../formats/hdf5.js';
import { layerPathsFromConfig } from '../formats/keras3.js';
import { readNameList, readTrainingConfig } from '../formats/kerasH5.js';
import { sniff } from '../formats/read.js';
import { parseStoredJson } from '../formats/state.js';
import type { Tensor } from '../tensor/tensor.js';
import { UnsupportedModelError } from './errors.js';

/** One saved model weight: the name kerasopt's readers and writers give it, and its value. */
export interface SavedWeight {
  /** 'dense/kernel' (tf.keras / Keras 2 .h5) or the dataset path 'layers/dense/vars/0' (.keras). */
  readonly name: string;
  readonly value: Tensor;
}

/** What a Keras file says about its model: the config, the compile settings and each layer's weights. */
export interface ModelSource {
  readonly kind: 'h5' | 'keras';
  /** The model config (`model_config` of an .h5, `config.json` of a .keras archive). */
  readonly modelConfig: Record<string, unknown>;
  /** loss, metrics and loss_weights as Keras saved them (training_config / compile_config); null when not compiled. */
  readonly compile: Record<string, unknown> | null;
  /** Each weighted layer's weights in its saving order, by the layer's name in the model config. */
  readonly layers: ReadonlyMap<string, readonly SavedWeight[]>;
}

/**
 * Reads the model half of a Keras file: a tf.keras / Keras 2 `.h5` model or a Keras 3 / TF 2.13+
 * `.keras` archive. Files that record no model (a `.weights.h5`, a TF checkpoint or SavedModel
 * variables) are refused with an UnsupportedModelError saying so.
 */
export async function readModelSource(file: string): Promise<ModelSource> {
  if (checkpointPrefix(file) !== null) {
    throw new UnsupportedModelError(file, 'no-model-config', 'a TF checkpoint / SavedModel variables file: kerasopt/tfjs builds models from .h5 and .keras files only (build the model in tfjs yourself and use TfjsNadam)');
  }
  if (sniff(file) === 'zip') return readArchiveSource(file);
  const h = await H5File.open(file, 'r');
  try {
    return readH5Source(h, file);
  } catch (e) {
    throw h.asFormatError(e);
  } finally {
    h.closeQuietly();
  }
}

function readH5Source(h: H5File, file: string): ModelSource {
  const text = h.attributeNames('/').includes('model_config') ? h.stringAttribute('/', 'model_config') : null;
  if (typeof text !== 'string') {
    throw new UnsupportedModelError(file, 'no-model-config', 'the file records no model config (a .weights.h5 or a weights-only .h5 holds weights alone): build the model in tfjs yourself and use TfjsNadam');
  }
  const modelConfig = parseStoredJson(text, file, 'attribute model_config');
  const training = readTrainingConfig(h);
  const layers = new Map<string, SavedWeight[]>();
  for (const layer of readNameList(h, 'model_weights', 'layer_names') ?? []) {
    const names = readNameList(h, `model_weights/${layer}`, 'weight_names') ?? [];
    if (names.length) layers.set(layer, names.map((w) => ({ name: w.replace(/:\d+$/, ''), value: h.readTensor(`model_weights/${layer}/${w}`) })));
  }
  return { kind: 'h5', modelConfig, compile: training, layers };
}

async function readArchiveSource(file: string): Promise<ModelSource> {
  const noModel = (what: string) => new UnsupportedModelError(file, 'no-model-config', `the archive lacks ${what}`);
  return readArchiveWeights(file, {}, file, (h, { config }) => {
    const modelConfig = config!;
    const compile = (modelConfig.compile_config as Record<string, unknown> | undefined) ?? null;
    return { kind: 'keras' as const, modelConfig, compile, layers: keras3Layers(h, modelConfig) };
  }, noModel, true);
}

/**
 * saving_lib stores each top-level layer under `layers/<class in snake case>[_<k>]` (not the layer's
 * name), its own variables as `vars/0..n` and its sublayers' (an RNN's cell) in nested groups. The
 * config's layer order gives the names; TF 2.13-2.15 on Windows join paths with '\', read as '/'.
 */
function keras3Layers(h: H5File, config: Record<string, unknown>): Map<string, SavedWeight[]> {
  const datasets: { path: string; parts: string[] }[] = [];
  const walk = (group: string): void => {
    for (const k of h.keys(group) ?? []) {
      const path = group ? `${group}/${k}` : k;
      const kind = h.kind(path);
      if (kind === 'group') walk(path);
      else if (kind === 'dataset') datasets.push({ path, parts: path.split(/[/\\]/) });
    }
  };
  walk('');
  const paths = layerPathsFromConfig(config) ?? [];
  const inner = (config.config as { layers?: Array<{ class_name?: string; config?: { name?: string } }> } | undefined)?.layers ?? [];
  const names = inner.filter((l) => l.class_name !== 'InputLayer').map((l) => String(l.config?.name));
  const out = new Map<string, SavedWeight[]>();
  paths.forEach((p, i) => {
    const mine = datasets.filter((d) => d.parts[0] === 'layers' && d.parts[1] === p).sort((a, b) => comparePaths(a.parts, b.parts));
    if (mine.length) out.set(names[i]!, mine.map((d) => ({ name: d.path, value: h.readTensor(d.path) })));
  });
  return out;
}

/** A layer's own `vars` before its sublayers', numbers numerically, names naturally (dense, dense_1, dense_10). */
function comparePaths(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [x, y] = [a[i]!, b[i]!];
    if (x === y) continue;
    if (x === 'vars' || y === 'vars') return x === 'vars' ? -1 : 1;
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y);
    const [px, py] = [/^(.*?)(?:_(\d+))?$/.exec(x)!, /^(.*?)(?:_(\d+))?$/.exec(y)!];
    if (px[1] !== py[1]) return px[1]! < py[1]! ? -1 : 1;
    return Number(px[2] ?? -1) - Number(py[2] ?? -1);
  }
  return a.length - b.length;
}
