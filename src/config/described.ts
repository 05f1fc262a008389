import { KerasValueError } from '../errors.js';
import { coversVersion, descriptorsFor, OPTIMIZERS, type OptimizerDescriptor } from '../optimizers/catalog/index.js';
import type { Flavour } from '../optimizers/flavour.js';

/**
 * Configs of the optimizers kerasopt describes but does not step (src/optimizers/catalog): what
 * Keras's from_config(config).get_config() gives (every key, Keras's defaults for the missing ones,
 * old names such as Keras 2.3's `lr` read as `learning_rate`), a JSON Schema per row, and the
 * conversion between flavours, all from the descriptor rows.
 */

/** The catalog row for a class in a flavour (the one covering `version`, else the newest). */
export function descriptorOf(className: string, flavour: Flavour, version: string | null = null): OptimizerDescriptor {
  const rows = descriptorsFor(className, flavour, version);
  const row = (version && rows.find((d) => coversVersion(d, version))) || rows[rows.length - 1];
  if (!row) {
    const known = [...new Set(OPTIMIZERS.filter((d) => d.flavour === flavour).map((d) => d.className))].join(', ');
    throw new KerasValueError(`kerasopt describes no ${flavour} optimizer '${className}' (${flavour} has ${known})`);
  }
  return row;
}

/** Keys every optimizer of a flavour takes besides its own (Keras 2's clipping keywords). */
const BASE_OPTIONAL: Readonly<Record<Flavour, readonly string[]>> = {
  keras2: ['clipnorm', 'clipvalue'],
  'tf-keras': ['clipnorm', 'clipvalue', 'global_clipnorm'],
  'tf-keras-new': [],
  keras3: [],
};

/**
 * The config Keras writes back for `config`: the row's keys in Keras's order with the given values
 * (aliases resolved), defaults for the missing ones, and the optional clipping keys when given.
 * Unknown keys are an error naming them, as Keras's constructors raise on them.
 */
export function normalizeConfig(d: OptimizerDescriptor, config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) given[d.aliases?.[k] ?? k] = v;
  const out: Record<string, unknown> = {};
  for (const [k, def] of Object.entries(d.config)) out[k] = Object.prototype.hasOwnProperty.call(given, k) ? given[k] : def;
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(given)) {
    if (Object.prototype.hasOwnProperty.call(out, k)) continue;
    if (BASE_OPTIONAL[d.flavour].includes(k)) out[k] = v;
    else unknown.push(k);
  }
  if (unknown.length > 0) throw new KerasValueError(`a ${d.flavour} ${d.className} takes no ${unknown.map((k) => `'${k}'`).join(', ')} (its keys: ${[...Object.keys(d.config), ...BASE_OPTIONAL[d.flavour]].join(', ')})`);
  return out;
}

/** The serialized optimizer as the flavour's Keras writes it (Keras 3 adds module and registered_name). */
export function describedEnvelope(d: OptimizerDescriptor, config: Record<string, unknown>): Record<string, unknown> {
  return d.flavour === 'keras3' ? { module: 'keras.optimizers', class_name: d.className, config, registered_name: null } : { class_name: d.className, config };
}

/** The JSON Schema of a row's config: its keys with the types of their defaults (null: any), no others. */
export function configSchema(d: OptimizerDescriptor): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [k, def] of Object.entries(d.config)) {
    // a learning rate may be a serialized schedule; a None default takes a number too
    if (k === 'learning_rate' || k === 'lr') properties[k] = { anyOf: [{ type: 'number' }, { type: 'object' }] };
    else if (def === null) properties[k] = { type: ['number', 'boolean', 'string', 'object', 'null'] };
    else properties[k] = { type: typeof def === 'boolean' ? 'boolean' : typeof def === 'number' ? 'number' : typeof def === 'string' ? 'string' : 'object' };
  }
  for (const k of BASE_OPTIONAL[d.flavour]) properties[k] = { type: ['number', 'null'] };
  for (const [alias] of Object.entries(d.aliases ?? {})) properties[alias] = { anyOf: [{ type: 'number' }, { type: 'object' }] };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://kerasopt.dev/schemas/optimizers/${d.flavour}.${d.className}.${d.versions[0]}.schema.json`,
    title: `${d.className} config, ${d.flavour} (Keras ${d.versions[0]}${d.versions[1] ? ` to ${d.versions[1]}, exclusive` : ' and later'})`,
    description: d.source,
    type: 'object',
    properties,
    additionalProperties: false,
  };
}

/** What a config conversion produced. */
export interface DescribedConversion {
  readonly envelope: Record<string, unknown>;
  /** Every change in behaviour or in what is written, in words. */
  readonly changes: string[];
}

/**
 * Converts a described optimizer's config to another flavour: the target row's keys, each taken from
 * the source (by name, `lr` as `learning_rate`) or set to the target's default; keys the target lacks
 * are dropped. Every dropped key and every default that differs from the source's is listed.
 */
export function convertDescribed(className: string, from: Flavour, to: Flavour, config: Readonly<Record<string, unknown>>, version: string | null = null): DescribedConversion {
  const src = descriptorOf(className, from, version);
  const dst = descriptorOf(className, to);
  const full = normalizeConfig(src, config);
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(full)) plain[k === 'lr' ? 'learning_rate' : k] = v;
  const out: Record<string, unknown> = {};
  const changes: string[] = [];
  for (const [k, def] of Object.entries(dst.config)) {
    const key = k === 'lr' ? 'learning_rate' : k;
    if (k === 'name') out[k] = dst.config.name;
    else if (Object.prototype.hasOwnProperty.call(plain, key)) out[k] = plain[key];
    else {
      out[k] = def;
      const before = src.config[key] ?? (key === 'learning_rate' ? src.config.lr : undefined);
      changes.push(`${k}: not in the ${from} ${className} config; ${to}'s default ${JSON.stringify(def)}${before !== undefined && JSON.stringify(before) !== JSON.stringify(def) ? ` (the ${from} default was ${JSON.stringify(before)})` : ''}`);
    }
  }
  for (const [k, v] of Object.entries(plain)) {
    const target = Object.prototype.hasOwnProperty.call(dst.config, k) || (k === 'learning_rate' && 'lr' in dst.config);
    if (!target && k !== 'name' && v !== null && v !== undefined) {
      changes.push(`${k}=${JSON.stringify(v)} dropped: the ${to} ${className} has no such option${k === 'decay' ? ' (time-based learning-rate decay: use an InverseTimeDecay schedule)' : ''}`);
    }
  }
  for (const [k, def] of Object.entries(dst.config)) {
    const key = k === 'lr' ? 'learning_rate' : k;
    if (Object.prototype.hasOwnProperty.call(plain, key) && k !== 'name') {
      const srcDefault = src.config[key] ?? (key === 'learning_rate' ? src.config.lr : undefined);
      if (JSON.stringify(srcDefault) !== JSON.stringify(def) && JSON.stringify(plain[key]) === JSON.stringify(srcDefault)) {
        changes.push(`${k}: ${JSON.stringify(plain[key])} kept from the ${from} default; the ${to} default is ${JSON.stringify(def)}`);
      }
    }
  }
  const srcSlots = src.slotGroups.flat().map((s) => s.name).join(', ');
  const dstSlots = dst.slotGroups.flat().map((s) => s.name).join(', ');
  changes.push(`saved state: ${from} slots [${srcSlots}] become ${to} slots [${dstSlots}] (see docs/optimizers.md)`);
  return { envelope: describedEnvelope(dst, out), changes };
}
