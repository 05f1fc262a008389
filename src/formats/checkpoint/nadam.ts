import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { sameShape, shapeToString, type Tensor } from '../../tensor/tensor.js';
import type { KerasOptimizerState, ModelVariable, SlotState, StoredWeight } from '../state.js';
import { canonicalClassName } from '../../optimizers/catalog/index.js';
import { readCheckpointDescribed, savedModelOptimizerClass } from './described.js';
import { layoutById } from '../layouts.js';
import { TensorBundle, type BundleLimits } from './bundle.js';
import { findNewOptimizer, readNewOptimizerCheckpoint } from './newOptimizer.js';
import { decodeMessage, type ObjectGraph } from './proto.js';

/** The key under which object-based checkpoints store their serialized TrackableObjectGraph. */
export const OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH';

/** The hyperparameters tf.keras optimizer_v2 Nadam keeps as variables (nadam.py `_set_hyper`). */
const HYPERS = ['learning_rate', 'decay', 'beta_1', 'beta_2'] as const;

/**
 * The bundle prefix `path` names, or null when it is no checkpoint: `<prefix>` or `<prefix>.index`
 * of a checkpoint, or a SavedModel directory (its `variables/variables` bundle).
 */
export function checkpointPrefix(path: string): string | null {
  if (path.endsWith('.index') && existsSync(path)) return path.slice(0, -'.index'.length);
  if (existsSync(`${path}.index`) && !isDirectory(path)) return path;
  if (isDirectory(path) && existsSync(join(path, 'variables', 'variables.index'))) return join(path, 'variables', 'variables');
  return null;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export type Node = ObjectGraph['nodes'][number];

/** A checkpoint's tensor bundle and decoded object graph, with the lookups both optimizer readers use. */
export interface CheckpointGraph {
  /** The bundle prefix, and the name errors use for it (`<label>.index` in FormatErrors). */
  readonly prefix: string;
  readonly label: string;
  readonly bundle: TensorBundle;
  readonly nodes: readonly Node[];
  /** Each node's object path from the root (child local names joined by '/'; '' for the root). */
  readonly paths: ReadonlyMap<number, string>;
  /** Throws a FormatError naming `<label>.index` and saying `msg`. */
  fail(msg: string): never;
  /** Node `id`, or a FormatError saying that `what` refers to a node the graph lacks. */
  node(id: number, what: string): Node;
  /** The bundle key of a variable node (its VARIABLE_VALUE attribute), checked to be in the bundle. */
  variableKey(n: Node, what: string): string;
}

/** Opens the bundle at `prefix` and decodes its object graph; a name-based (TF1) checkpoint is refused. */
export function openCheckpointGraph(prefix: string, label: string, limits: BundleLimits = {}): CheckpointGraph {
  const bundle = TensorBundle.open(prefix, label, limits);
  const indexLabel = `${label}.index`;
  const fail = (msg: string): never => {
    throw new FormatError(indexLabel, msg);
  };
  if (!bundle.has(OBJECT_GRAPH_KEY)) fail(`no '${OBJECT_GRAPH_KEY}' key: a name-based (TF1 Saver) checkpoint, which kerasopt does not read`);
  const graphBytes = bundle.strings(OBJECT_GRAPH_KEY);
  if (graphBytes.length !== 1) fail(`'${OBJECT_GRAPH_KEY}' holds ${graphBytes.length} strings, expected one`);
  const graph = decodeMessage<ObjectGraph>('TrackableObjectGraph', graphBytes[0]!, indexLabel, `key '${OBJECT_GRAPH_KEY}'`);
  const nodes = graph.nodes;
  const node = (id: number, what: string): Node => nodes[id] ?? fail(`key '${OBJECT_GRAPH_KEY}': ${what} refers to node ${id}, but the graph has ${nodes.length} nodes`);
  const variableKey = (n: Node, what: string): string => {
    const attr = n.attributes.find((a) => a.name === 'VARIABLE_VALUE');
    if (!attr) return fail(`key '${OBJECT_GRAPH_KEY}': object '${what}' is not a variable (no VARIABLE_VALUE attribute)`);
    if (!bundle.has(attr.checkpoint_key)) return fail(`key '${attr.checkpoint_key}': the object graph names it for '${what}' but the checkpoint has no such tensor`);
    return attr.checkpoint_key;
  };
  return { prefix, label, bundle, nodes, paths: nodePaths(nodes, node), fail, node, variableKey };
}

/**
 * Reads a tf.keras Nadam out of a TF2 object-based checkpoint (or a SavedModel's variables). The
 * object graph says which optimizer it holds: an optimizer_v2 Nadam (TF 1.14-2.10; `iter` and slot
 * variables) is read here; a TF 2.11-2.15 "new" one (a `_variables` list, no slot variables) by
 * {@link readNewOptimizerCheckpoint}.
 *
 * optimizer_v2: the optimizer is the object graph's node that owns slot variables (else the root's
 * child `optimizer`); its hyperparameters, `iter` and `momentum_cache` are its variable children, and
 * each m / v slot is tied to its model variable by the graph's slot_variables references (shapes and
 * dtypes checked). A checkpoint holds no optimizer config, so one is built from the saved hyperparameters.
 */
export function readCheckpointNadam(prefix: string, label: string, limits: BundleLimits & { optimizer?: string } = {}): KerasOptimizerState {
  const g = openCheckpointGraph(prefix, label, limits);
  const { bundle, nodes, paths, fail, node, variableKey } = g;

  const owners = nodes.filter((n) => n.slot_variables.length > 0);
  if (owners.length > 1) fail(`key '${OBJECT_GRAPH_KEY}': ${owners.length} objects own slot variables; kerasopt reads checkpoints with one optimizer`);
  if (owners.length === 0) {
    const fresh = findNewOptimizer(g);
    if (fresh !== null) return readNewOptimizerCheckpoint(g, fresh);
  }
  const rootOptimizer = nodes[0]?.children.find((c) => c.local_name === 'optimizer');
  const optimizer = owners[0] ?? (rootOptimizer ? node(rootOptimizer.node_id, "the root's child 'optimizer'") : undefined);
  if (!optimizer) fail(`key '${OBJECT_GRAPH_KEY}': no optimizer in the checkpoint (no object owns slot variables and the root has no 'optimizer' child): it was saved without one`);
  const optPath = paths.get(nodes.indexOf(optimizer!)) ?? 'optimizer';
  // another optimizer_v2 class (Adam, RMSprop, ...): its SavedModel's metadata names it, or it has slots and no momentum_cache
  // the class: a SavedModel's metadata names it; for a bare checkpoint the caller may (ReadOptions.optimizer)
  const metaClass = savedModelOptimizerClass(prefix) ?? limits.optimizer ?? null;
  const names = optimizer!.children.map((c) => c.local_name);
  const other = metaClass !== null ? canonicalClassName(metaClass) !== 'Nadam' : optimizer!.slot_variables.length > 0 && !names.includes('momentum_cache') && names.includes('iter');
  if (other) return readCheckpointDescribed(g, optimizer!, optPath, metaClass);
  const childKey = (name: string): string => {
    const ref = optimizer!.children.find((c) => c.local_name === name);
    if (!ref) {
      const names = optimizer!.children.map((c) => c.local_name);
      const hint = names.includes('_iterations') ? ' (it has _iterations, as a TF 2.11+ optimizer does, but no _variables list to read its slots from)'
        : !names.includes('momentum_cache') ? ' (a tf.keras Nadam keeps iter, momentum_cache and its hypers here; is it another optimizer, or one that never stepped?)'
        : name === 'learning_rate' ? ' (a LearningRateSchedule is saved as no variable, so kerasopt cannot rebuild it from a checkpoint)' : '';
      return fail(`key '${optPath}/${name}/.ATTRIBUTES/VARIABLE_VALUE': the optimizer at '${optPath}' has no variable '${name}'${hint}`);
    }
    return variableKey(node(ref.node_id, `optimizer child '${name}'`), `${optPath}/${name}`);
  };
  const scalar = (key: string, kinds: readonly string[]): Tensor => {
    const t = bundle.tensor(key);
    if (!kinds.includes(t.dtype) || t.rank !== 0) fail(`key '${key}': ${t.dtype}${shapeToString(t.shape)}, expected a ${kinds.join(' or ')} scalar`);
    return t;
  };
  const stored = (key: string, value: Tensor): StoredWeight => ({ name: key.replace(/\/\.ATTRIBUTES\/VARIABLE_VALUE$/, ''), value });

  const iterKey = childKey('iter');
  const iter = scalar(iterKey, ['int64', 'int32']);
  const iterations = Number(iter.data[0]);
  if (!Number.isSafeInteger(iterations) || iterations < 0) fail(`key '${iterKey}': holds ${iterations} iterations`);
  const config: Record<string, unknown> = { name: 'Nadam' };
  for (const h of HYPERS) config[h] = Number(scalar(childKey(h), ['float32', 'float64']).data[0]);
  // TF's Nadam runs on the Python float _initial_decay, cast to the variables' dtype next to the step;
  // the saved decay variable is float32(_initial_decay): the same number for float32 variables. schedule_decay carries it,
  // since a tf.keras config's decay is overwritten by schedule_decay on reading (as TF does).
  config.schedule_decay = config.decay;
  // Early optimizer_v2 Nadams (TF 1.13/1.14) made epsilon a hyper too; later ones keep it a Python float.
  const savedEpsilon = optimizer!.children.some((c) => c.local_name === 'epsilon');
  config.epsilon = savedEpsilon ? Number(scalar(childKey('epsilon'), ['float32', 'float64']).data[0]) : 1e-7;
  const cacheKey = childKey('momentum_cache');
  const cache = scalar(cacheKey, ['float16', 'float32', 'float64']);

  const refs = optimizer!.slot_variables;
  for (const r of refs) if (r.slot_name !== 'm' && r.slot_name !== 'v') fail(`key '${OBJECT_GRAPH_KEY}': slot '${r.slot_name}' is not one of Nadam's (m, v)`);
  const owned = [...new Set(refs.map((r) => r.original_variable_node_id))];
  if (owned.length === 0) fail(`key '${OBJECT_GRAPH_KEY}': the optimizer at '${optPath}' owns no slot variables (no m / v to resume)`);
  const variables: ModelVariable[] = [];
  const bySlot: Record<'m' | 'v', SlotState[]> = { m: [], v: [] };
  for (const id of owned) {
    const path = paths.get(id) ?? `node ${id}`;
    const owner = { name: path, value: bundle.tensor(variableKey(node(id, 'a slot reference'), path)) };
    variables.push(owner);
    for (const slot of ['m', 'v'] as const) {
      const matching = refs.filter((r) => r.original_variable_node_id === id && r.slot_name === slot);
      if (matching.length !== 1) fail(`key '${OBJECT_GRAPH_KEY}': variable '${path}' has ${matching.length} '${slot}' slots, expected one`);
      const key = variableKey(node(matching[0]!.slot_variable_node_id, `slot ${slot} of '${path}'`), `${path}/${slot}`);
      const value = bundle.tensor(key);
      if (!sameShape(value.shape, owner.value.shape) || value.dtype !== owner.value.dtype) {
        fail(`key '${key}': ${value.dtype}${shapeToString(value.shape)}, but its variable '${path}' is ${owner.value.dtype}${shapeToString(owner.value.shape)}`);
      }
      bySlot[slot].push({ variable: path, slot, weightName: stored(key, value).name, value, inModel: true });
    }
  }
  const slots = [...bySlot.m, ...bySlot.v];
  const weights: StoredWeight[] = [
    { ...stored(iterKey, iter), role: { kind: 'iterations' } },
    { ...stored(cacheKey, cache), role: { kind: 'schedule' } },
    ...slots.map((s) => ({ name: s.weightName, value: s.value, role: { kind: 'slot' as const, variable: s.variable, slot: s.slot } })),
  ];
  const row = layoutById('tf-keras-v2-checkpoint');
  return {
    file: label, format: 'tf-checkpoint', flavour: 'tf-keras', kerasVersion: null, className: 'Nadam', config, iterations, weights, slots, variables,
    schedule: { name: 'momentum_cache', value: cache, reconstructed: false }, stringStyle: null,
    release: {
      layout: row.id, range: row.releases,
      evidence: [`object graph: the optimizer at '${optPath || 'the root'}' has optimizer_v2 Nadam's variables iter and momentum_cache`, `slots named by the graph's slot_variables (m, v)`],
    },
    notes: [
      `TF checkpoint (tensor bundle ${prefix}): it saves no optimizer config; a tf.keras Nadam config was built from the saved hyperparameter variables ${HYPERS.join(', ')}`,
      savedEpsilon ? 'epsilon read from the saved epsilon variable' : 'epsilon is a Python float TF does not save: set to the default 1e-7 (pass the real one if training used another)',
      variables.some((v) => v.value.dtype !== 'float32')
        ? `the momentum-schedule factor is the saved decay variable (config decay and schedule_decay), known to float32 precision only: with ${variables.find((v) => v.value.dtype !== 'float32')!.value.dtype} variables TF casts the Python float itself`
        : 'the momentum-schedule factor is the saved decay variable, float32 as TF computes with it (config decay and schedule_decay)',
      "slots tied to model variables by the object graph's slot_variables references, shapes and dtypes checked; variables in the order the graph lists their slots",
    ],
  };
}

/** Each node's path from the root (child local names joined by '/'), breadth first as TF names keys. */
function nodePaths(nodes: readonly Node[], node: (id: number, what: string) => Node): Map<number, string> {
  const paths = new Map<number, string>([[0, '']]);
  const queue = [0];
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const c of node(id, 'a child reference').children) {
      node(c.node_id, `child '${c.local_name}'`);
      if (paths.has(c.node_id)) continue;
      const base = paths.get(id)!;
      paths.set(c.node_id, base ? `${base}/${c.local_name}` : c.local_name);
      queue.push(c.node_id);
    }
  }
  return paths;
}
