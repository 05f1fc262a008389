import type { FloatDType } from '../../tensor/dtype.js';
import { sameShape, shapeToString, Tensor } from '../../tensor/tensor.js';
import { reconstructUProduct } from '../kerasH5.js';
import { layoutById } from '../layouts.js';
import type { KerasOptimizerState, ModelVariable, SlotState, StoredWeight } from '../state.js';
import { tieInOrder } from '../tie.js';
import { OBJECT_GRAPH_KEY, type CheckpointGraph, type Node } from './nadam.js';

/**
 * TF 2.11-2.15 tf.keras "new" optimizers in TF2 checkpoints and SavedModels (docs/keras-releases.md,
 * row `tf-keras-new-checkpoint`). The optimizer is an AutoTrackable (keras/optimizers/optimizer.py
 * `_BaseOptimizer`): its tracked attributes are its object-graph children. `_variables` is a list whose
 * entries are the iteration (the `_iterations` node) then, as Nadam.build creates them with
 * add_variable_from_reference, m and v of each variable in turn; `_learning_rate` is a variable unless
 * a schedule was given; `_u_product` is Nadam's bare tf.Variable (in no list, but tracked, so saved);
 * `_momentums` / `_velocities` list the same slot nodes. There are no slot_variables references: the
 * i-th m / v pair belongs to the i-th variable of the list build() was given, the model's trainable
 * variables, so slots are tied by position (shapes and dtypes checked).
 */

const SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';

/** Keras 2.11-2.15 Nadam defaults of the hyperparameters TF keeps as Python floats (not saved). */
const DEFAULTS = { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } as const;

/** Children of a SavedModel's Keras objects that are no layer (lists of the same variables, functions, metadata). */
const NOT_LAYERS = new Set([
  'variables', 'trainable_variables', 'non_trainable_variables', 'regularization_losses', 'keras_api', 'signatures',
  '__call__', 'call_and_return_all_conditional_losses', 'call_and_return_conditional_losses', '_default_save_signature',
]);

/** Variables Keras always creates non-trainable, so no optimizer holds slots for them (BatchNormalization's moving statistics). */
const NEVER_TRAINABLE = new Set(['moving_mean', 'moving_variance']);

const childOf = (n: Node, name: string): number | undefined => n.children.find((c) => c.local_name === name)?.node_id;
const isVariable = (n: Node): boolean => n.attributes.some((a) => a.name === 'VARIABLE_VALUE');
const nameOf = (key: string): string => (key.endsWith(SUFFIX) ? key.slice(0, -SUFFIX.length) : key);

/** A list node's entries '0', '1', ... in order (a FormatError if they are not exactly 0..n-1). */
function listEntries(g: CheckpointGraph, id: number, path: string): number[] {
  const entries = g.node(id, `'${path}'`).children.filter((c) => /^\d+$/.test(c.local_name));
  const sorted = [...entries].sort((a, b) => Number(a.local_name) - Number(b.local_name));
  sorted.forEach((c, i) => {
    if (Number(c.local_name) !== i) g.fail(`key '${OBJECT_GRAPH_KEY}': the list '${path}' should hold entries 0..${sorted.length - 1}; entry ${i} is '${c.local_name}'`);
  });
  for (const c of sorted) g.node(c.node_id, `entry ${c.local_name} of '${path}'`);
  return sorted.map((c) => c.node_id);
}

/**
 * The node of a TF 2.11+ optimizer (one with a `_variables` list and `_iterations`), or null when the
 * graph holds none: the root's child `optimizer` when it is one, else the only such node. A root
 * `optimizer` that is an optimizer_v2 (it has `iter`) gives null.
 */
export function findNewOptimizer(g: CheckpointGraph): number | null {
  const isNew = (n: Node): boolean => childOf(n, '_variables') !== undefined && childOf(n, '_iterations') !== undefined;
  const rootOptimizer = g.nodes[0] ? childOf(g.nodes[0], 'optimizer') : undefined;
  if (rootOptimizer !== undefined) {
    const n = g.node(rootOptimizer, "the root's child 'optimizer'");
    if (isNew(n)) return rootOptimizer;
    if (childOf(n, 'iter') !== undefined) return null;
  }
  const found = g.nodes.flatMap((n, id) => (isNew(n) ? [id] : []));
  if (found.length > 1) {
    g.fail(`key '${OBJECT_GRAPH_KEY}': ${found.length} objects look like TF 2.11+ optimizers (${found.map((id) => `'${g.paths.get(id) ?? `node ${id}`}'`).join(', ')}); kerasopt reads checkpoints with one optimizer`);
  }
  return found[0] ?? null;
}

/** How the model's trainable variables were found, in the order the optimizer was built on them. */
export interface ModelOrder {
  readonly variables: ModelVariable[];
  readonly how: string;
}

/**
 * The model's variables in model.trainable_variables order: a SavedModel's own `trainable_variables`
 * list when there is one; else the `layer_with_weights-<i>` children in numeric order
 * (Functional._layer_checkpoint_dependencies), each layer's variables in graph (creation) order, its
 * sublayers after them; else (a subclassed model) every variable below the model in graph order. The
 * model is the root's child `model` (tf.train.Checkpoint(model=...)) or else the root (model.save_weights,
 * SavedModel). Non-float variables (counters) are left out; BatchNormalization's moving statistics are
 * marked not trainable.
 */
export function modelVariables(g: CheckpointGraph, optimizerId: number): ModelOrder {
  const root = g.node(0, 'the root');
  const modelId = childOf(root, 'model') ?? 0;
  const modelPath = g.paths.get(modelId) || 'the root';
  const model = g.node(modelId, 'the model');
  const seen = new Set<number>([optimizerId]);
  const out: ModelVariable[] = [];
  const add = (id: number, localName: string, trainable: boolean): void => {
    if (seen.has(id)) return;
    seen.add(id);
    const path = g.paths.get(id) ?? `node ${id}`;
    const key = g.variableKey(g.node(id, `'${path}'`), path);
    if (!g.bundle.info(key).dtype.startsWith('float')) return;
    const value = g.bundle.tensor(key);
    out.push({ name: nameOf(key), value, ...(trainable && !NEVER_TRAINABLE.has(localName) ? {} : { trainable: false }) });
  };
  const numbered = (n: Node): Node['children'] =>
    n.children.filter((c) => /^layer_with_weights-\d+$/.test(c.local_name)).sort((a, b) => Number(a.local_name.slice(19)) - Number(b.local_name.slice(19)));
  const walk = (id: number, depth: number): void => {
    if (depth > 64) return;
    const n = g.node(id, 'a model object');
    const own = n.children.filter((c) => !NOT_LAYERS.has(c.local_name) && isVariable(g.node(c.node_id, `child '${c.local_name}'`)));
    for (const c of own) add(c.node_id, c.local_name, true);
    const layers = numbered(n);
    const subs = layers.length > 0 ? layers : n.children.filter((c) => !NOT_LAYERS.has(c.local_name) && !/^layer-\d+$/.test(c.local_name) && !own.includes(c));
    for (const c of subs) {
      if (seen.has(c.node_id)) continue;
      seen.add(c.node_id);
      walk(c.node_id, depth + 1);
    }
  };
  const listed = childOf(model, 'trainable_variables');
  if (listed !== undefined) {
    for (const id of listEntries(g, listed, `${modelPath}/trainable_variables`)) add(id, '', true);
    return { variables: out, how: `the SavedModel's list '${g.paths.get(listed)}'` };
  }
  walk(modelId, 0);
  const how = numbered(model).length > 0
    ? `the layer_with_weights-<i> children of ${modelPath === 'the root' ? 'the root' : `'${modelPath}'`} in numeric order, each layer's variables in graph order`
    : `every variable below ${modelPath === 'the root' ? 'the root' : `'${modelPath}'`} in graph order (no layer_with_weights-<i> children: a subclassed model)`;
  return { variables: out, how };
}

/**
 * Reads the TF 2.11-2.15 Nadam at node `optimizerId` (see the file comment). Hyperparameters other
 * than the learning rate are Python floats TF does not save, so the config takes Keras's defaults and
 * the notes say so; u_product is read when `_u_product` is saved, else reconstructed from iterations.
 */
export function readNewOptimizerCheckpoint(g: CheckpointGraph, optimizerId: number): KerasOptimizerState {
  const { bundle, fail } = g;
  const optimizer = g.node(optimizerId, 'the optimizer');
  const optPath = g.paths.get(optimizerId) || '(root)';
  const child = (name: string): number | undefined => childOf(optimizer, name);
  const keyOf = (id: number, what: string): string => g.variableKey(g.node(id, `'${what}'`), what);

  if (child('_model_variables_moving_average') !== undefined) {
    fail(`key '${OBJECT_GRAPH_KEY}': the optimizer at '${optPath}' has _model_variables_moving_average (use_ema=True): its averages sit between the iteration and the slots in _variables, and kerasopt does not read that state yet`);
  }
  const variablesId = child('_variables')!;
  const entries = listEntries(g, variablesId, `${optPath}/_variables`);
  if (entries.length === 0) fail(`key '${OBJECT_GRAPH_KEY}': the optimizer's list '${optPath}/_variables' is empty; a TF 2.11+ optimizer puts its iteration first`);
  const iterationsId = child('_iterations')!;
  if (entries[0] !== iterationsId) fail(`key '${OBJECT_GRAPH_KEY}': '${optPath}/_variables/0' is not the optimizer's _iterations, as TF 2.11-2.15 optimizers save it`);
  const learningRateId = child('_learning_rate');
  const uProductId = child('_u_product');
  const keras3 = entries.slice(1).some((id) => id === learningRateId || id === uProductId);
  if (keras3) {
    fail(`key '${OBJECT_GRAPH_KEY}': the optimizer's '${optPath}/_variables' lists ${entries.includes(learningRateId!) ? '_learning_rate' : '_u_product'} among its variables, as Keras 3 optimizers do (TF 2.11-2.15 keep them out of the list); kerasopt reads Keras 3 optimizer state from .keras / .weights.h5 files only`);
  }

  const iterKey = keyOf(iterationsId, `${optPath}/_iterations`);
  const iter = bundle.tensor(iterKey);
  if ((iter.dtype !== 'int64' && iter.dtype !== 'int32') || iter.rank !== 0) fail(`key '${iterKey}': ${iter.dtype}${shapeToString(iter.shape)}, expected an int64 scalar (the iteration count)`);
  const iterations = Number(iter.data[0]);
  if (!Number.isSafeInteger(iterations) || iterations < 0) fail(`key '${iterKey}': holds ${iterations} iterations`);

  // The slots: m, v of each variable in turn after the iteration.
  const slotIds = entries.slice(1);
  const slotKeys = slotIds.map((id, i) => keyOf(id, `${optPath}/_variables/${i + 1}`));
  if (slotKeys.length % 2 !== 0) {
    fail(`key '${slotKeys[slotKeys.length - 1]}': the optimizer's list '${optPath}/_variables' holds ${slotKeys.length} variables after the iteration, an odd count; a TF 2.11-2.15 Nadam keeps an m and a v for each model variable`);
  }
  const pairs: Array<{ m: StoredWeight; v: StoredWeight }> = [];
  for (let i = 0; i < slotKeys.length; i += 2) {
    const [mKey, vKey] = [slotKeys[i]!, slotKeys[i + 1]!];
    const [m, v] = [bundle.tensor(mKey), bundle.tensor(vKey)];
    if (!m.dtype.startsWith('float')) fail(`key '${mKey}': ${m.dtype}${shapeToString(m.shape)}, expected a float slot (m)`);
    if (m.dtype !== v.dtype || !sameShape(m.shape, v.shape)) {
      fail(`key '${vKey}': ${v.dtype}${shapeToString(v.shape)}, but the m before it ('${mKey}') is ${m.dtype}${shapeToString(m.shape)}: they should be the two slots of one variable`);
    }
    pairs.push({ m: { name: nameOf(mKey), value: m }, v: { name: nameOf(vKey), value: v } });
  }
  const evidence = [
    `object graph: the optimizer at '${optPath}' is a TF 2.11+ optimizer: a _variables list (the iteration, then ${slotKeys.length} slots), _iterations${learningRateId !== undefined ? ', _learning_rate' : ''}${uProductId !== undefined ? ', _u_product' : ''}, and no slot_variables references`,
  ];
  // _momentums / _velocities, when saved, name the same nodes: a check of which entry is which slot.
  const lists = (['_momentums', '_velocities'] as const).filter((name) => child(name) !== undefined);
  for (const name of lists) {
    const listed = listEntries(g, child(name)!, `${optPath}/${name}`);
    const expected = pairs.map((_, i) => slotIds[2 * i + (name === '_momentums' ? 0 : 1)]);
    if (listed.length !== expected.length || listed.some((id, i) => id !== expected[i])) {
      const at = listed.findIndex((id, i) => id !== expected[i]);
      fail(`key '${OBJECT_GRAPH_KEY}': '${optPath}/${name}' ${at >= 0 && at < expected.length ? `entry ${at} is not '${optPath}/_variables/${2 * at + (name === '_momentums' ? 1 : 2)}'` : `holds ${listed.length} slots, _variables ${expected.length} pairs`}: the lists disagree on which variable is which slot`);
    }
  }
  if (lists.length > 0) evidence.push(`its ${lists.join(' and ')} list${lists.length > 1 ? 's' : ''} name the same slot nodes as _variables (m at odd, v at even indices)`);

  // What TF saves of the hyperparameters: the learning rate variable (with a schedule, none).
  const notes: string[] = [];
  const config: Record<string, unknown> = { name: 'Nadam' };
  let learningRate: StoredWeight | null = null;
  if (learningRateId !== undefined) {
    const key = keyOf(learningRateId, `${optPath}/_learning_rate`);
    const value = bundle.tensor(key);
    if (value.dtype !== 'float32' || value.rank !== 0) fail(`key '${key}': ${value.dtype}${shapeToString(value.shape)}, expected a float32 scalar (the learning rate; kerasopt's Nadam keeps it in float32)`);
    learningRate = { name: nameOf(key), value, role: { kind: 'learning_rate' } };
    config.learning_rate = value.get(0);
  } else {
    const current = child('_current_learning_rate');
    const value = current === undefined ? null : bundle.tensor(keyOf(current, `${optPath}/_current_learning_rate`));
    config.learning_rate = value !== null && value.rank === 0 && value.dtype.startsWith('float') ? value.get(0) : 0.001;
    notes.push(value !== null
      ? `no _learning_rate variable: the optimizer ran a LearningRateSchedule, which a checkpoint does not save; learning_rate set to ${String(config.learning_rate)}, the schedule's last value (_current_learning_rate): pass the schedule to continue it`
      : 'no _learning_rate variable (a LearningRateSchedule?): learning_rate set to the default 0.001; pass the real one');
  }
  Object.assign(config, DEFAULTS);
  notes.unshift(
    `TF checkpoint (tensor bundle ${g.prefix}): it saves no optimizer config; a TF 2.11-2.15 tf.keras Nadam config was built from ${learningRate ? 'the saved learning_rate variable' : 'no saved hyperparameter'} and Keras's defaults beta_1=0.9, beta_2=0.999, epsilon=1e-7 (Python floats TF does not save: pass the real ones if training used others)`,
  );

  // The model variables each pair belongs to: position in the model's trainable variables.
  const firstDtype = (pairs[0]?.m.value.dtype ?? 'float32') as FloatDType;
  const model = modelVariables(g, optimizerId);
  let owners: ModelVariable[];
  if (pairs.length === 0) {
    owners = model.variables.filter((v) => v.trainable !== false);
    notes.push('the optimizer was saved before its first build: it holds no slots yet');
  } else {
    if (model.variables.length === 0) fail(`key '${OBJECT_GRAPH_KEY}': no model variables in the checkpoint to tie the ${pairs.length} slot pairs of '${optPath}/_variables' to (found by ${model.how})`);
    const tied = tieInOrder(`${g.label}.index`, pairs.map((p) => ({ name: `${p.m.name}${SUFFIX}`, value: p.m.value })), model.variables, 'position');
    owners = tied.owners;
    notes.push(...tied.notes, `model variables in model.trainable_variables order from ${model.how}`);
    evidence.push(`slots tied by position to the model's trainable variables (${model.how})`);
  }

  let schedule: KerasOptimizerState['schedule'];
  let scheduleWeight: StoredWeight | null = null;
  if (uProductId !== undefined) {
    const key = keyOf(uProductId, `${optPath}/_u_product`);
    const value = bundle.tensor(key);
    if (!value.dtype.startsWith('float') || value.rank !== 0) fail(`key '${key}': ${value.dtype}${shapeToString(value.shape)}, expected a float scalar (u_product)`);
    if (pairs.length > 0 && value.dtype !== firstDtype) fail(`key '${key}': u_product is ${value.dtype}, but Nadam.build makes it in the first variable's dtype, ${firstDtype}`);
    schedule = { name: 'u_product', value, reconstructed: false };
    scheduleWeight = { name: nameOf(key), value, role: { kind: 'schedule' } };
    notes.push(`u_product read from the saved _u_product variable (a checkpoint tracks it, unlike .h5 and .keras files)`);
  } else {
    const value = reconstructUProduct(DEFAULTS.beta_1, iterations, firstDtype);
    schedule = { name: 'u_product', value: Tensor.scalar(value, firstDtype), reconstructed: true };
    notes.push(`no _u_product variable${pairs.length === 0 ? ' (not built yet)' : ''}: u_product reconstructed as the ${firstDtype} product of u_1..u_${iterations} from iterations and beta_1=0.9, with kerasopt's arithmetic`);
  }

  const slots: SlotState[] = pairs.flatMap((p, i) => [
    { variable: owners[i]!.name, slot: 'm', weightName: p.m.name, value: p.m.value, inModel: true },
    { variable: owners[i]!.name, slot: 'v', weightName: p.v.name, value: p.v.value, inModel: true },
  ]);
  const weights: StoredWeight[] = [
    { name: nameOf(iterKey), value: iter, role: { kind: 'iterations' } },
    ...(learningRate ? [learningRate] : []),
    ...(scheduleWeight ? [scheduleWeight] : []),
    ...slots.map((s) => ({ name: s.weightName, value: s.value, role: { kind: 'slot' as const, variable: s.variable, slot: s.slot } })),
  ];
  const row = layoutById('tf-keras-new-checkpoint');
  return {
    file: g.label, format: 'tf-checkpoint', flavour: 'tf-keras-new', kerasVersion: null, className: 'Nadam', config, iterations, weights, slots,
    variables: owners, schedule, stringStyle: null,
    release: { layout: row.id, range: row.releases, evidence },
    notes,
  };
}
