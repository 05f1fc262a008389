import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type * as Protobuf from 'protobufjs';
import { parsePythonJson } from '../../config/pyjson.js';
import { canonicalClassName, OPTIMIZERS, slotVariants, type OptimizerDescriptor } from '../../optimizers/catalog/index.js';
import { sameShape, shapeToString, type Tensor } from '../../tensor/tensor.js';
import { layoutById } from '../layouts.js';
import type { KerasOptimizerState, ModelVariable, SlotState, StoredWeight } from '../state.js';
import type { CheckpointGraph, Node } from './nadam.js';

/**
 * TF2 checkpoints and SavedModels of tf.keras optimizer_v2 optimizers other than Nadam (docs/optimizers.md).
 * The optimizer node holds `iter` and its hyperparameters as variable children; its `slot_variables`
 * name each slot (m, v, rms, accumulator, ...) and the model variable it belongs to. A checkpoint
 * records no optimizer class: a SavedModel's keras_metadata.pb does (its training_config); otherwise the
 * optimizers whose hyperparameters and slots are exactly these are the candidates, as for a Keras 3
 * .weights.h5 (one is the answer; several leave the class unknown, `fits` lists them).
 */

/** The class a SavedModel's keras_metadata.pb names in the root's training_config (null when there is none). */
export function savedModelOptimizerClass(prefix: string): string | null {
  // a SavedModel's bundle is <dir>/variables/variables; keras_metadata.pb sits in <dir>
  const file = join(dirname(dirname(prefix)), 'keras_metadata.pb');
  if (!prefix.endsWith(join('variables', 'variables')) || !existsSync(file)) return null;
  try {
    // loaded here, not at import: importing kerasopt does not load protobufjs (test/onnx.lazy.test.ts)
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    // SavedMetadata { repeated SavedObject nodes = 1 }; SavedObject { node_path = 3; metadata = 5 } (keras/protobuf/saved_metadata.proto)
    const reader = protobuf.Reader.create(readFileSync(file));
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
        reader.skipType(tag & 7);
        continue;
      }
      const node = protobuf.Reader.create(reader.bytes());
      let path = '';
      let metadata = '';
      while (node.pos < node.len) {
        const t = node.uint32();
        if (t >>> 3 === 3 && (t & 7) === 2) path = node.string();
        else if (t >>> 3 === 5 && (t & 7) === 2) metadata = node.string();
        else node.skipType(t & 7);
      }
      if (path !== 'root' || !metadata) continue;
      const meta = parsePythonJson(metadata, file) as { training_config?: { optimizer_config?: { class_name?: unknown } } };
      const name = meta?.training_config?.optimizer_config?.class_name;
      return typeof name === 'string' ? name : null;
    }
  } catch {
    return null; // the metadata only names the class; the bundle is read either way
  }
  return null;
}

/** A reading of the optimizer node by one descriptor under one set of conditions. */
interface Fit {
  readonly d: OptimizerDescriptor;
  readonly label: string;
  readonly slotOrder: string[];
}

/** The optimizer_v2 rows whose saved hyperparameters and slots are exactly `hypers` and `slots` (Nadam excluded). */
function fitsOf(hypers: readonly string[], slots: ReadonlySet<string>, className: string | null): Fit[] {
  const out: Fit[] = [];
  for (const d of OPTIMIZERS.filter((x) => x.flavour === 'tf-keras' && x.className !== 'Nadam' && (className === null || x.className === className))) {
    if (!hypers.every((h) => Object.prototype.hasOwnProperty.call(d.config, h))) continue;
    for (const v of slotVariants(d)) {
      const names = v.groups.flat().map((s) => s.name);
      if (names.length !== slots.size || !names.every((n) => slots.has(n))) continue;
      const on = Object.entries(v.config).filter(([, x]) => x).map(([k]) => k);
      out.push({ d, label: on.length ? `${d.className} (${on.join(', ')})` : d.className, slotOrder: names });
    }
  }
  return out;
}

/**
 * Reads the optimizer node `optimizer` (at `optPath`) of a checkpoint as a described optimizer_v2
 * optimizer. `className` is the class the SavedModel's metadata names (null for a bare checkpoint).
 */
export function readCheckpointDescribed(g: CheckpointGraph, optimizer: Node, optPath: string, className: string | null): KerasOptimizerState {
  const { bundle, paths, fail, node, variableKey, label } = g;
  const stored = (key: string, value: Tensor): StoredWeight => ({ name: key.replace(/\/\.ATTRIBUTES\/VARIABLE_VALUE$/, ''), value });
  const children = new Map(optimizer.children.map((c) => [c.local_name, c.node_id]));
  const iterId = children.get('iter');
  if (iterId === undefined) fail(`key '${optPath}/iter/.ATTRIBUTES/VARIABLE_VALUE': the optimizer at '${optPath}' has no variable 'iter' (not a tf.keras optimizer_v2)`);
  const iterKey = variableKey(node(iterId!, "optimizer child 'iter'"), `${optPath}/iter`);
  const iter = bundle.tensor(iterKey);
  const iterations = Number(iter.data[0]);
  if ((iter.dtype !== 'int64' && iter.dtype !== 'int32') || iter.rank !== 0 || !Number.isSafeInteger(iterations) || iterations < 0) fail(`key '${iterKey}': ${iter.dtype}${shapeToString(iter.shape)} holding ${iterations}, expected an int64 iteration count`);
  const canonical = className === null ? null : canonicalClassName(className);
  const config: Record<string, unknown> = {};
  const hypers: string[] = [];
  for (const [name, id] of children) {
    if (name === 'iter') continue;
    const key = variableKey(node(id, `optimizer child '${name}'`), `${optPath}/${name}`);
    const t = bundle.tensor(key);
    if (!t.dtype.startsWith('float') || t.rank !== 0) fail(`key '${key}': ${t.dtype}${shapeToString(t.shape)}, expected a float scalar hyperparameter`);
    hypers.push(name);
    config[name] = t.get(0);
  }
  const refs = optimizer.slot_variables;
  const slotNames = new Set(refs.map((r) => r.slot_name));
  const fits = fitsOf(hypers, slotNames, canonical);
  if (fits.length === 0) {
    fail(`key '_CHECKPOINTABLE_OBJECT_GRAPH': the optimizer at '${optPath}' (hyperparameters ${hypers.join(', ') || 'none'}; slots ${[...slotNames].join(', ') || 'none'}) is ${canonical ? `no tf.keras optimizer_v2 ${canonical}` : 'no tf.keras optimizer_v2 kerasopt describes'} (docs/optimizers.md)`);
  }
  const labels = [...new Set(fits.map((f) => f.label))];
  const fit = fits[0]!;
  const owned = [...new Set(refs.map((r) => r.original_variable_node_id))];
  const variables: ModelVariable[] = [];
  const bySlot = new Map<string, SlotState[]>(fit.slotOrder.map((s) => [s, []]));
  for (const id of owned) {
    const path = paths.get(id) ?? `node ${id}`;
    const owner = { name: path, value: bundle.tensor(variableKey(node(id, 'a slot reference'), path)) };
    variables.push(owner);
    for (const slot of fit.slotOrder) {
      const matching = refs.filter((r) => r.original_variable_node_id === id && r.slot_name === slot);
      if (matching.length !== 1) fail(`key '_CHECKPOINTABLE_OBJECT_GRAPH': variable '${path}' has ${matching.length} '${slot}' slots, expected one`);
      const key = variableKey(node(matching[0]!.slot_variable_node_id, `slot ${slot} of '${path}'`), `${path}/${slot}`);
      const value = bundle.tensor(key);
      if (!sameShape(value.shape, owner.value.shape) || value.dtype !== owner.value.dtype) {
        fail(`key '${key}': ${value.dtype}${shapeToString(value.shape)}, but its variable '${path}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
      }
      bySlot.get(slot)!.push({ variable: path, slot, weightName: stored(key, value).name, value, inModel: true });
    }
  }
  // optimizer_v2 creates each slot name for every variable in turn: the saved weights list is blocked
  const slots = fit.slotOrder.flatMap((s) => bySlot.get(s)!);
  const weights: StoredWeight[] = [
    { ...stored(iterKey, iter), role: { kind: 'iterations' } },
    ...slots.map((s) => ({ name: s.weightName, value: s.value, role: { kind: 'slot' as const, variable: s.variable, slot: s.slot } })),
  ];
  const known = labels.length === 1 ? fit.d.className : null;
  const row = layoutById('tf-keras-v2-checkpoint');
  const evidence = [
    `object graph: the optimizer at '${optPath || 'the root'}' has optimizer_v2's iter, hyperparameters ${hypers.join(', ') || 'none'} and slots ${[...slotNames].join(', ')}`,
    className ? `the optimizer is named '${className}' (a SavedModel's keras_metadata.pb, or the caller)` : labels.length === 1 ? `of the described optimizer_v2 optimizers only ${labels[0]} saves these` : `${labels.length} optimizers save these: ${labels.join(', ')}`,
  ];
  return {
    file: label, format: 'tf-checkpoint', flavour: 'tf-keras', kerasVersion: null, className: className ?? known,
    ...(known === null && !className ? { fits: labels } : {}),
    config: { name: className ?? known ?? 'optimizer', ...config }, iterations, weights, slots, variables, schedule: null, stringStyle: null,
    release: { layout: row.id, range: row.releases, evidence },
    notes: [
      `TF checkpoint (tensor bundle ${g.prefix}): it saves no optimizer config; the config holds the saved hyperparameter variables (${hypers.join(', ') || 'none'}), not the Python floats such as epsilon`,
      "slots tied to model variables by the object graph's slot_variables references, shapes and dtypes checked",
    ],
  };
}
