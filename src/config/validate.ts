import type { ErrorObject } from 'ajv';
import { validator } from '../schemas.js';
import { ConfigError, joinPath, where } from './errors.js';

/** ajv's instancePath ("/config/beta_1") as a JSON path in words below `base`. */
function pathOf(base: string, instancePath: string): string {
  let path = base;
  for (const part of instancePath.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    path = /^\d+$/.test(key) ? joinPath(path, Number(key)) : joinPath(path, key);
  }
  return path;
}

function valueAt(value: unknown, instancePath: string): unknown {
  let v = value;
  for (const part of instancePath.split('/').slice(1)) v = (v as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  return v;
}

function shown(v: unknown): string {
  // JSON.stringify would print NaN and ±Infinity as null, which misleads.
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** One ajv error as a sentence a person reads, and the path it is about. */
function sentence(e: ErrorObject, value: unknown, base: string): { path: string; text: string } {
  const at = pathOf(base, e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p['additionalProperty']);
      return { path: joinPath(at, key), text: `unknown key '${key}' ${where(joinPath(at, key))}` };
    }
    case 'required': {
      const key = String(p['missingProperty']);
      return { path: at, text: `missing key '${key}' ${where(at)}` };
    }
    case 'type':
      return { path: at, text: `${where(at)}: expected ${String(p['type']).replace(/,/g, ' or ')}, got ${shown(valueAt(value, e.instancePath))}` };
    case 'anyOf':
      return { path: at, text: `${where(at)}: expected a number or a serialized schedule object, got ${shown(valueAt(value, e.instancePath))}` };
    default:
      return { path: at, text: `${where(at)}: ${e.message ?? e.keyword}, got ${shown(valueAt(value, e.instancePath))}` };
  }
}

/**
 * Checks `value` against schemas/<schema> and throws a {@link ConfigError} naming every problem by
 * its JSON path below `base` (the path of `value` in the document).
 */
export function checkSchema(schema: string, value: unknown, base: string, file?: string, what = 'config'): void {
  const validate = validator(schema);
  if (validate(value)) return;
  // 'if' failures and the per-branch type errors of an anyOf repeat what the other errors say.
  const errors = (validate.errors ?? []).filter((e) => e.keyword !== 'if' && !(e.keyword === 'type' && e.schemaPath.includes('anyOf')));
  const list = errors.map((e) => sentence(e, value, base));
  const first = list[0] ?? { path: base, text: `${where(base)}: does not match ${schema}` };
  throw new ConfigError(first.path, `invalid ${what}: ${list.map((s) => s.text).join('; ')}`, file);
}
