import { describe, expect, test } from 'vitest';
import { FormatError } from '../src/index.js';
import { MAX_JSON_DEPTH, parseJsonSafely } from '../src/io/json.js';

describe('parseJsonSafely', () => {
  test('objects come back without a prototype, values intact', () => {
    const v = parseJsonSafely('{"a": [1, {"b": "x"}], "c": null}', 'in.json') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(JSON.stringify(v)).toBe('{"a":[1,{"b":"x"}],"c":null}');
  });

  test.each(['__proto__', 'constructor', 'prototype'])('a "%s" key is refused with its path and pollutes nothing', (key) => {
    const text = `{"config": {"ok": 1, "${key}": {"polluted": true}}}`;
    expect(() => parseJsonSafely(text, 'in.json')).toThrowError(new RegExp(`in\\.json: key '${key}' at config\\.${key}`));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('invalid JSON names the file', () => {
    expect(() => parseJsonSafely('{"a": ', 'bad.json')).toThrowError(/bad\.json: not valid JSON/);
  });

  test('absurd nesting is a FormatError, not a stack overflow; the limit itself is accepted', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    expect(() => parseJsonSafely(deep(MAX_JSON_DEPTH), 'ok.json')).not.toThrow();
    const err = (() => {
      try {
        parseJsonSafely(deep(200_000), 'deep.json');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/deep\.json: JSON nested deeper than 1000 levels/);
  });
});
