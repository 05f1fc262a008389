import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FormatError, KerasValueError } from '../../errors.js';
import type { Nadam } from '../../optimizers/nadam/index.js';
import { isLearningRateSchedule } from '../../optimizers/schedules.js';
import { Tensor } from '../../tensor/tensor.js';
import type { ModelVariable } from '../state.js';
import type { BundleLimits } from './bundle.js';
import { OBJECT_GRAPH_KEY, openCheckpointGraph, type CheckpointGraph } from './nadam.js';
import { findNewOptimizer, modelVariables } from './newOptimizer.js';
import { ByteCursor } from './sstable.js';
import { varintBytes } from './tableWriter.js';
import { writeBundle, type BundleTensorSpec } from './write.js';

/**
 * Adds a tf.keras optimizer_v2 Nadam (TF 2.0-2.10) to a TF2 object-based checkpoint that holds none
 * (a model saved with `model.save_weights` in the TF format before compile), as TensorFlow would have
 * written the same model compiled with that optimizer:
 *
 * - the optimizer is the root's last child `optimizer` (Model.compile assigns `self.optimizer` after
 *   every attribute of the model, and Functional lists its layer dependencies first); its children are
 *   optimizer_v2's variables in creation order: `iter`, the hypers sorted by name (`beta_1`, `beta_2`,
 *   `decay`, `learning_rate`: `_create_hypers`; no learning_rate with a LearningRateSchedule), then
 *   Nadam's `momentum_cache` (`_create_slots`), each holding its VARIABLE_VALUE attribute;
 * - nodes are numbered breadth first from the root (checkpoint graph_view `_breadth_first_traversal`),
 *   and the slot variables come after all of them, slot name by slot name (m, then v), each in the
 *   order of its model variable's node (util.py `_serialize_slot_variables`), referenced by the
 *   optimizer's `slot_variables`;
 * - keys are object paths plus `/.ATTRIBUTES/VARIABLE_VALUE`; a slot's is
 *   `<variable path>/.OPTIMIZER_SLOT/optimizer/<slot>/.ATTRIBUTES/VARIABLE_VALUE`; full names are the
 *   variables' (`Nadam/iter`, `Nadam/dense/kernel/m`);
 * - where the graph records `has_checkpoint_values` (TF 2.8+ writes it on every node) the new nodes
 *   carry it too (true: each holds a value or owns slots);
 * - the data shard holds the tensors in node order (BundleWriter::Add order), the object graph last.
 *
 * Checked against real TF-written checkpoints of the corpus (test/transplant.bundle.test.ts): with
 * its optimizer removed, a Keras Tuner checkpoint comes back byte for byte.
 */

const SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';
const enc = new TextEncoder();
const dec = new TextDecoder();

/** One protobuf field: its number and its whole serialized bytes (tag included). */
interface RawField {
  readonly num: number;
  readonly bytes: Uint8Array;
  /** Wire type 0: the value; wire type 2: the payload. */
  readonly value?: number;
  readonly payload?: Uint8Array;
}

function parseFields(bytes: Uint8Array, fail: (m: string) => never): RawField[] {
  const c = new ByteCursor(bytes, 0, bytes.length, fail);
  const out: RawField[] = [];
  while (c.pos < bytes.length) {
    const start = c.pos;
    const tag = c.varint('field tag');
    const wire = tag % 8;
    const num = Math.floor(tag / 8);
    if (wire === 0) {
      const value = c.varint('varint field');
      out.push({ num, bytes: bytes.subarray(start, c.pos), value });
    } else if (wire === 2) {
      const payload = c.take(c.varint('field length'), 'length-delimited field');
      out.push({ num, bytes: bytes.subarray(start, c.pos), payload });
    } else if (wire === 1 || wire === 5) {
      c.take(wire === 1 ? 8 : 4, 'fixed field');
      out.push({ num, bytes: bytes.subarray(start, c.pos) });
    } else fail(`unexpected protobuf wire type ${wire}`);
  }
  return out;
}

const fVarint = (num: number, v: number): number[] => (v === 0 ? [] : [...varintBytes(num << 3), ...varintBytes(v)]);
const fBytes = (num: number, payload: ArrayLike<number>): number[] => [...varintBytes((num << 3) | 2), ...varintBytes(payload.length), ...Array.from(payload)];
const fString = (num: number, s: string): number[] => (s === '' ? [] : fBytes(num, enc.encode(s)));

/** A node being rewritten: its child references (ids of the node list below) and its other fields, kept raw. */
interface EditNode {
  children: Array<{ id: number; name: string; extra: number[] }>;
  /** Fields other than children and slot_variables, raw, in their order. */
  others: RawField[];
  /** New nodes: their one VARIABLE_VALUE attribute, and the optimizer's slot references. */
  attribute?: { fullName: string; key: string };
  slots?: Array<{ original: number; slot: string; node: number }>;
  /** A tensor this node saves (new nodes). */
  tensor?: Tensor;
}

/** Why a bundle cannot take a new optimizer, or null when it can (see {@link bareCheckpointVariables}). */
function refusal(g: CheckpointGraph): string | null {
  const owners = g.nodes.filter((n) => n.slot_variables.length > 0).length;
  const root = g.nodes[0]!;
  if (owners > 0 || root.children.some((c) => c.local_name === 'optimizer') || findNewOptimizer(g) !== null) return 'it already holds an optimizer';
  if (root.children.some((c) => c.local_name === 'model')) {
    return "its root is a tf.train.Checkpoint with a 'model' child: where TF puts the optimizer then depends on the Python code (Checkpoint(model=..., optimizer=...) or model.optimizer), which the file does not record; kerasopt adds optimizers to model.save_weights checkpoints only";
  }
  if (g.bundle.numShards !== 1) return `it has ${g.bundle.numShards} data shards; kerasopt rewrites single-shard bundles only`;
  return null;
}

/** A SavedModel's variables bundle: refused, with the reason. */
function savedModelRefusal(prefix: string): string | null {
  const dir = dirname(dirname(prefix));
  if (basename(prefix) !== 'variables' || basename(dirname(prefix)) !== 'variables' || !existsSync(join(dir, 'saved_model.pb'))) return null;
  return (
    `${dir} is a SavedModel saved without optimizer state. Its variables bundle could take the optimizer's tensors and object-graph nodes, ` +
    `but saved_model.pb's SavedObjectGraph would need the same nodes (a SavedVariable per optimizer variable and slot, and the optimizer object), ` +
    `in the same numbering as the checkpoint's graph, and keras_metadata.pb a training_config for Keras to compile the model and restore them; ` +
    `kerasopt does not write saved_model.pb or keras_metadata.pb, so it refuses rather than write a SavedModel Keras would load without the state. ` +
    `Transplant into the model's checkpoint (model.save_weights(prefix)) or into an .h5 / .keras file instead`
  );
}

/**
 * The trainable variables of a TF2 checkpoint saved without optimizer, in model.trainable_variables
 * order (as {@link modelVariables} finds them), named by their object paths; or null when the bundle
 * holds an optimizer. Throws a KerasValueError saying why when the bundle holds none but kerasopt
 * cannot add one (a SavedModel, a tf.train.Checkpoint root, several shards).
 */
export function bareCheckpointVariables(path: string, prefix: string, limits: BundleLimits = {}): { variables: ModelVariable[]; how: string } | null {
  const g = openCheckpointGraph(prefix, path, limits);
  const why = refusal(g);
  if (why === 'it already holds an optimizer') return null;
  const saved = savedModelRefusal(prefix);
  if (saved) throw new KerasValueError(saved);
  if (why) throw new KerasValueError(`${path} holds no optimizer state, and kerasopt cannot add one: ${why}`);
  const found = modelVariables(g, -1);
  const variables = found.variables.filter((v) => v.trainable !== false);
  if (variables.length === 0) throw new KerasValueError(`${path} holds no optimizer state and no trainable float variable to build one on (found by ${found.how})`);
  return { variables, how: found.how };
}

/**
 * Writes `optimizer` (a built tf-keras Nadam whose variables are named by the bundle's object paths,
 * as {@link bareCheckpointVariables} names them) into the optimizer-less checkpoint at `prefix`, in
 * place (see the file comment for the layout). Returns notes on what was written.
 */
export async function addNadamToBundle(path: string, prefix: string, optimizer: Nadam): Promise<string[]> {
  if (optimizer.flavour !== 'tf-keras') {
    throw new KerasValueError(
      `${path} holds no optimizer state: kerasopt creates one in a TF checkpoint only in the tf.keras optimizer_v2 layout (TF 2.0-2.10, --to tf-keras), checked against real TF-written bundles. ` +
        `A ${optimizer.flavour} Nadam's object graph (TF 2.11-2.15: _iterations, _learning_rate, _variables, _momentums, _velocities, _u_product) differs between those releases ` +
        `(the order of _iterations and _variables, whether _variables lists the iteration) and a checkpoint does not record its release, so it is not written`,
    );
  }
  const g = openCheckpointGraph(prefix, path);
  const why = savedModelRefusal(prefix) ?? refusal(g);
  if (why) throw new KerasValueError(`${path}: ${why}`);
  const label = `${path}.index`;
  const fail = (m: string): never => {
    throw new FormatError(label, `key '${OBJECT_GRAPH_KEY}': ${m}`);
  };

  // The graph, raw: children decoded, every other field kept as it is.
  const graphBytes = g.bundle.strings(OBJECT_GRAPH_KEY)[0]!;
  const nodes: EditNode[] = parseFields(graphBytes, fail).map((f) => {
    if (f.num !== 1 || !f.payload) fail('a top-level field other than nodes');
    const fields = parseFields(f.payload!, fail);
    const children = fields.filter((x) => x.num === 1).map((x) => {
      const sub = parseFields(x.payload!, fail);
      return {
        id: sub.find((s) => s.num === 1)?.value ?? 0,
        name: dec.decode(sub.find((s) => s.num === 2)?.payload ?? new Uint8Array(0)),
        extra: sub.filter((s) => s.num !== 1 && s.num !== 2).flatMap((s) => Array.from(s.bytes)),
      };
    });
    return { children, others: fields.filter((x) => x.num !== 1) };
  });
  const withValues = nodes.filter((n) => n.others.some((x) => x.num === 5)).length;
  if (withValues !== 0 && withValues !== nodes.length) fail(`${withValues} of ${nodes.length} nodes record has_checkpoint_values; TF writes it on all or none`);
  const marks = withValues > 0;

  // The model variables the optimizer was built on, by object path (its weights are named by them).
  const nodeOfVariable = new Map<string, number>();
  g.nodes.forEach((n, id) => {
    const a = n.attributes.find((x) => x.name === 'VARIABLE_VALUE');
    if (a && a.checkpoint_key.endsWith(SUFFIX)) nodeOfVariable.set(a.checkpoint_key.slice(0, -SUFFIX.length), id);
  });
  const fullNameOf = (id: number): string => g.nodes[id]!.attributes.find((x) => x.name === 'VARIABLE_VALUE')!.full_name;
  const name = optimizer.name;
  const h = optimizer.hyperparameters;
  const f32 = (v: number): Tensor => Tensor.scalar(v, 'float32');

  // The optimizer and its variables (optimizer_v2 creation order), appended to the node list.
  const add = (node: EditNode): number => nodes.push(node) - 1;
  const opt = add({ children: [], others: [], slots: [] });
  nodes[0]!.children.push({ id: opt, name: 'optimizer', extra: [] });
  const hypers: Array<[string, Tensor]> = [
    ['iter', Tensor.scalar(BigInt(optimizer.iterations), 'int64')],
    ['beta_1', f32(h.beta_1)],
    ['beta_2', f32(h.beta_2)],
    ['decay', f32(h.schedule_decay)],
    ...(isLearningRateSchedule(h.learning_rate) ? [] : [['learning_rate', f32(optimizer.learningRateValue())] as [string, Tensor]]),
    ['momentum_cache', optimizer.getWeight('momentum_cache').value],
  ];
  for (const [local, value] of hypers) {
    const id = add({ children: [], others: [], attribute: { fullName: `${name}/${local}`, key: `optimizer/${local}${SUFFIX}` }, tensor: value });
    nodes[opt]!.children.push({ id, name: local, extra: [] });
  }

  // Breadth-first numbering from the root, as TF numbers nodes; nodes no path reaches keep their order after them.
  const order: number[] = [0];
  const seen = new Set([0]);
  for (let i = 0; i < order.length; i++) {
    for (const c of nodes[order[i]!]!.children) {
      if (c.id >= nodes.length) fail(`a child reference to node ${c.id}, but the graph has ${g.nodes.length} nodes`);
      if (!seen.has(c.id)) {
        seen.add(c.id);
        order.push(c.id);
      }
    }
  }
  for (let id = 0; id < nodes.length; id++) if (!seen.has(id)) order.push(id);

  // The slot variables, after every other node: slot by slot, each in the order of its variable's node.
  const newId = new Map(order.map((old, i) => [old, i]));
  const built = optimizer.weights.filter((w) => w.name.endsWith('/m')).map((w) => w.name.slice(0, -2));
  const owners = built.map((v) => {
    const id = nodeOfVariable.get(v);
    if (id === undefined) throw new KerasValueError(`${path}: the optimizer was built on '${v}', which is no variable of the checkpoint`);
    return { name: v, id };
  });
  owners.sort((a, b) => newId.get(a.id)! - newId.get(b.id)!);
  const slotValue = (weight: string): Tensor => {
    const w = optimizer.weights.find((x) => x.name === weight);
    if (!w) throw new KerasValueError(`${path}: the optimizer has no slot weight '${weight}'`);
    return w.value;
  };
  for (const slot of ['m', 'v']) {
    for (const o of owners) {
      const id = add({ children: [], others: [], attribute: { fullName: `${name}/${fullNameOf(o.id)}/${slot}`, key: `${o.name}/.OPTIMIZER_SLOT/optimizer/${slot}${SUFFIX}` }, tensor: slotValue(`${o.name}/${slot}`) });
      nodes[opt]!.slots!.push({ original: o.id, slot, node: id });
      order.push(id);
      newId.set(id, order.length - 1);
    }
  }

  // Serialize in the new numbering; the root's has_checkpoint_values becomes true (it now has values below it).
  const mark = fBytes(5, fVarint(1, 1));
  const encodeNode = (n: EditNode, isRoot: boolean): number[] => {
    const out: number[] = [];
    for (const c of n.children) out.push(...fBytes(1, [...fVarint(1, newId.get(c.id)!), ...fString(2, c.name), ...c.extra]));
    if (n.attribute) out.push(...fBytes(2, [...fString(1, 'VARIABLE_VALUE'), ...fString(2, n.attribute.fullName), ...fString(3, n.attribute.key)]));
    for (const s of n.slots ?? []) out.push(...fBytes(3, [...fVarint(1, newId.get(s.original)!), ...fString(2, s.slot), ...fVarint(3, newId.get(s.node)!)]));
    for (const f of n.others) {
      if (f.num === 3) fail('a node other than the new optimizer owns slot variables');
      out.push(...(f.num === 5 && isRoot ? mark : Array.from(f.bytes)));
    }
    if (marks && !n.others.some((f) => f.num === 5)) out.push(...mark);
    return out;
  };
  // Fields stay in field-number order (children 1, attributes 2, slot_variables 3, ..., has_checkpoint_values 5) only if `others` start at 2.
  for (const n of nodes) {
    for (let i = 1; i < n.others.length; i++) if (n.others[i]!.num < n.others[i - 1]!.num) fail('node fields out of field-number order');
  }
  const graph = Uint8Array.from(order.flatMap((old) => fBytes(1, encodeNode(nodes[old]!, old === 0))));

  // Data in node order (BundleWriter::Add order), the object graph last; keys no node names keep their order before it.
  const specs: BundleTensorSpec[] = [];
  const placed = new Set<string>();
  for (const old of order) {
    const n = nodes[old]!;
    if (n.attribute) {
      specs.push({ key: n.attribute.key, tensor: n.tensor! });
      placed.add(n.attribute.key);
    } else if (old < g.nodes.length) {
      for (const a of g.nodes[old]!.attributes) {
        if (placed.has(a.checkpoint_key) || !g.bundle.has(a.checkpoint_key)) continue;
        specs.push({ key: a.checkpoint_key, existing: true });
        placed.add(a.checkpoint_key);
      }
    }
  }
  const rest = g.bundle.keys().filter((k) => !placed.has(k) && k !== OBJECT_GRAPH_KEY).sort((a, b) => g.bundle.info(a).offset - g.bundle.info(b).offset);
  for (const k of rest) specs.push({ key: k, existing: true });
  for (const s of specs) if ('tensor' in s && g.bundle.has(s.key)) fail(`the bundle already has a tensor '${s.key}'`);
  specs.push({ key: OBJECT_GRAPH_KEY, strings: [graph], shape: [] });
  await writeBundle(prefix, prefix, specs, path);

  return [
    `optimizer_v2 Nadam created in ${path}: the root's child 'optimizer' with ${hypers.map(([n]) => n).join(', ')}, and ${2 * owners.length} slot variables (m, v of ${owners.length} variables) referenced by its slot_variables; ` +
      `object graph renumbered breadth first (${order.length} nodes${marks ? ', has_checkpoint_values on the new nodes' : ''}); a new index and data shard, every existing tensor's bytes unchanged`,
  ];
}
