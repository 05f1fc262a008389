import { FormatError } from '../errors.js';

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
/** Python's json refuses deeper documents too; no Keras file comes near it. */
export const MAX_JSON_DEPTH = 1000;

/**
 * Parses untrusted JSON so that no key can reach an object prototype: objects come back with a null
 * prototype, and the keys `__proto__`, `constructor` and `prototype` are refused with an error that
 * names their JSON path (silently dropping them could hide what a file really says). Documents nested
 * deeper than {@link MAX_JSON_DEPTH} are refused rather than overflowing the stack.
 */
export function parseJsonSafely(text: string, file: string): unknown {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `not valid JSON: ${(e as Error).message}`);
  }
  return harden(raw, file, '', 0);
}

function harden(value: unknown, file: string, path: string, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_JSON_DEPTH) throw new FormatError(file, `JSON nested deeper than ${MAX_JSON_DEPTH} levels at ${path || 'the top level'}`);
  if (Array.isArray(value)) return value.map((v, i) => harden(v, file, `${path}[${i}]`, depth + 1));
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    const where = path === '' ? key : `${path}.${key}`;
    if (FORBIDDEN.has(key)) throw new FormatError(file, `key '${key}' at ${where} is not allowed (it could reach an object prototype)`);
    out[key] = harden((value as Record<string, unknown>)[key], file, where, depth + 1);
  }
  return out;
}
