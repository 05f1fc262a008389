import { FormatError } from '../errors.js';

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Parses untrusted JSON so that no key can reach an object prototype: objects come back with a null
 * prototype, and the keys `__proto__`, `constructor` and `prototype` are refused with an error that
 * names their JSON path (silently dropping them could hide what a file really says).
 */
export function parseJsonSafely(text: string, file: string): unknown {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `not valid JSON: ${(e as Error).message}`);
  }
  return harden(raw, file, '');
}

function harden(value: unknown, file: string, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => harden(v, file, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return value;
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    const where = path === '' ? key : `${path}.${key}`;
    if (FORBIDDEN.has(key)) throw new FormatError(file, `key '${key}' at ${where} is not allowed (it could reach an object prototype)`);
    out[key] = harden((value as Record<string, unknown>)[key], file, where);
  }
  return out;
}
