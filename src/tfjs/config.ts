import { UnsupportedModelError } from './errors.js';

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Model classes whose config lists layers (they are walked, not run as one layer). */
const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

/** Keys Keras 3 / TF 2.13+ saving_lib add around a config that tfjs neither needs nor knows. */
const DROPPED_KEYS = new Set(['module', 'registered_name', 'build_config', 'compile_config', 'shared_object_id']);

/**
 * Dtypes tfjs can hold an input of: int64 inputs (token ids) are fed as int32, as tfjs has no int64.
 * Weights must be float32 (checked when they are read).
 */
const INPUT_DTYPES: Readonly<Record<string, string>> = { float32: 'float32', int32: 'int32', int64: 'int32', bool: 'bool' };

/**
 * Turns a Keras model config (tf.keras / Keras 2 `model_config`, or a Keras 3 / TF 2.13+ `config.json`)
 * into a topology `tf.models.modelFromJSON` builds, or throws an UnsupportedModelError naming the first
 * layer tfjs cannot run and its class.
 *
 * What changes, and why it is safe: initializers become Zeros (the file's weights replace them, and
 * tfjs lacks some, e.g. LecunNormal, and is slow on others, e.g. Orthogonal of large matrices); dtype
 * policies become their dtype name; a Keras 3 Flatten of a rank-2 input (an identity tfjs refuses) a
 * linear Activation; Keras 3's `batch_shape`, node format and single-tensor
 * `input_layers` become the legacy forms tfjs reads. Nothing that changes training is dropped: an
 * unknown regularizer, constraint or activation still makes tfjs refuse the model.
 */
export function toTfjsTopology(config: Json, file: string, isRegistered: (className: string) => boolean): Json {
  const root = sanitize(config, file) as Json;
  checkModel(root, file, isRegistered);
  return root;
}

/** Layer classes kerasopt knows tfjs refuses an option of: the option, and why. */
function optionProblem(className: string, config: Json): string | null {
  if ((className === 'GRU' || className === 'GRUCell') && config.reset_after === true) {
    return 'reset_after=True (the default since TF 2.0 / Keras 3): tfjs implements only the reset_after=False GRU, whose weights differ';
  }
  return null;
}

function checkModel(model: Json, file: string, isRegistered: (className: string) => boolean): void {
  const className = String(model.class_name);
  const config = model.config;
  if (!MODEL_CLASSES.has(className)) {
    const name = isObject(config) && typeof config.name === 'string' ? config.name : '(the model)';
    throw new UnsupportedModelError(file, 'layer-class', `the model is a custom class '${className}' (a subclassed Keras model): tfjs can build only Sequential and functional models from a config`, { name, className });
  }
  // Keras 2.0-2.1 Sequential: the config is the layer list itself
  const layers = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : [];
  for (const layer of layers) checkLayer(layer, file, isRegistered);
}

function checkLayer(layer: unknown, file: string, isRegistered: (className: string) => boolean): void {
  if (!isObject(layer) || typeof layer.class_name !== 'string') return;
  const className = layer.class_name;
  const config = isObject(layer.config) ? layer.config : {};
  const name = typeof config.name === 'string' ? config.name : '?';
  if (MODEL_CLASSES.has(className)) return checkModel(layer, file, isRegistered);
  if (!isRegistered(className)) {
    const why = className === 'Lambda' ? 'a Lambda layer holds Python code, which tfjs cannot run' : `tfjs has no layer class '${className}' (a custom Python layer, or one tfjs does not implement)`;
    throw new UnsupportedModelError(file, 'layer-class', `layer '${name}' (class ${className}): ${why}`, { name, className });
  }
  const problem = optionProblem(className, config);
  if (problem) throw new UnsupportedModelError(file, 'layer-option', `layer '${name}' (class ${className}): ${problem}`, { name, className });
  // wrappers and RNNs carry the layer / cell they run
  checkLayer(config.layer, file, isRegistered);
  checkLayer(config.cell, file, isRegistered);
}

/** A copy of `node` with the changes described at {@link toTfjsTopology}. */
function sanitize(node: unknown, file: string): unknown {
  if (Array.isArray(node)) return node.map((x) => sanitize(x, file));
  if (!isObject(node)) return node;
  const layer = identityFlatten(node);
  const out: Json = {};
  for (const [k, v] of Object.entries(layer)) {
    if (DROPPED_KEYS.has(k)) continue;
    if (k.endsWith('_initializer') && v !== null) out[k] = { class_name: 'Zeros', config: {} };
    else if (k === 'dtype') out[k] = dtypeOf(v, file, layer);
    else if (k === 'batch_shape' && !('batch_input_shape' in layer)) out.batch_input_shape = v; // Keras 3 InputLayer
    else if (k === 'inbound_nodes' && Array.isArray(v)) out[k] = v.map(legacyNode);
    else if ((k === 'input_layers' || k === 'output_layers') && Array.isArray(v) && typeof v[0] === 'string') out[k] = [v]; // Keras 3: one tensor, not a list
    else out[k] = sanitize(v, file);
  }
  return out;
}

/**
 * Keras 3 flattens a rank-2 input to itself; tfjs's Flatten refuses inputs under rank 3. When the saved
 * build_config shows such an input, the layer is an identity, and runs as a linear Activation (no weights).
 */
function identityFlatten(node: Json): Json {
  const shape = isObject(node.build_config) ? node.build_config.input_shape : undefined;
  if (node.class_name !== 'Flatten' || !Array.isArray(shape) || shape.length > 2 || !isObject(node.config)) return node;
  const { name, trainable } = node.config;
  return { ...node, class_name: 'Activation', config: { name, trainable, activation: 'linear' } };
}

/** A dtype or dtype policy as the plain dtype name tfjs reads; a policy tfjs cannot run is refused. */
function dtypeOf(value: unknown, file: string, owner: Json): unknown {
  const name = isObject(value) ? (isObject(value.config) ? value.config.name : undefined) : value;
  if (name === undefined || name === null) return name;
  const plain = typeof name === 'string' ? INPUT_DTYPES[name] : undefined;
  if (!plain) {
    const layer = typeof owner.name === 'string' ? owner.name : '?';
    throw new UnsupportedModelError(file, 'dtype', `layer '${layer}' has dtype (policy) ${JSON.stringify(name)}: tfjs runs float32 weights only`);
  }
  return plain;
}

/**
 * A Keras 3 inbound node (`{args: [keras tensors], kwargs}`) as the legacy list of
 * `[layer, node index, tensor index, kwargs]` tfjs reads; legacy nodes pass unchanged.
 */
function legacyNode(node: unknown): unknown {
  if (!isObject(node) || !('args' in node)) return node;
  const tensors: unknown[][] = [];
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) return x.forEach(visit);
    if (isObject(x) && x.class_name === '__keras_tensor__' && isObject(x.config) && Array.isArray(x.config.keras_history)) {
      tensors.push([...x.config.keras_history, {}]);
    }
  };
  visit(node.args);
  return tensors;
}
