import { describe, expect, test } from 'vitest';
import { deserialize, FormatError } from '../src/index.js';
import { dumpsPython, markFloat, parsePythonJson, pythonFloatRepr } from '../src/config/pyjson.js';
import { missingPython, python } from './helpers/python.js';

/** Deterministic doubles spread over every exponent range Keras configs meet, plus float32-derived ones. */
function doubles(n: number): number[] {
  let seed = 12345;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const out: number[] = [0.9, 0.999, 1e-7, 1e-5, 0.0001, 0.004, 0.002, 1e16, 1e15, 123456789012345680, 5e-324, 1.7976931348623157e308, 0.1, 2.5, 1e22, 1e21];
  for (let i = 0; i < n; i++) {
    const x = (rand() - 0.5) * Math.pow(10, Math.floor(rand() * 44) - 22);
    out.push(x, Math.fround(x));
  }
  return out;
}

describe('Python json.dumps, byte for byte', () => {
  test('float repr matches /usr/bin/python3 on 4000 doubles (shortest digits, Python exponent style)', () => {
    if (missingPython(['json'])) return;
    const xs = doubles(2000);
    const py = python('import json,sys\nxs=json.load(sys.stdin)\nprint("\\n".join(repr(float(x)) for x in xs))', [], JSON.stringify(xs)).trim().split('\n');
    const mismatches = xs.map((x, i) => [pythonFloatRepr(x), py[i]] as const).filter(([a, b]) => a !== b);
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(py).toHaveLength(xs.length);
  });

  test('a whole document: floats, ints, strings with non-ASCII and control characters, nested', () => {
    if (missingPython(['json'])) return;
    const doc: Record<string, unknown> = {
      name: 'Nadam é ☃ "q" \\ \n\t\u0001\u007f 😀',
      learning_rate: 0.0010000000474974513,
      decay: 0.004,
      epsilon: 1e-7,
      one: 1,
      list: [1, 2.5, null, true, false, 'x'],
      nested: { a: { b: [] }, c: {} },
      big: 1e16,
      neg: -0.00001,
    };
    markFloat(doc, 'one');
    const py = python(
      'import json,sys\nd=json.loads(sys.stdin.read())\nd["one"]=float(d["one"])\nsys.stdout.write(json.dumps(d))',
      [],
      JSON.stringify(doc),
    );
    expect(dumpsPython(doc)).toBe(py);
  });

  test('NaN and infinities are written as Python writes them', () => {
    expect(dumpsPython([NaN, Infinity, -Infinity, -0])).toBe('[NaN, Infinity, -Infinity, -0.0]');
  });
});

describe('parsePythonJson', () => {
  test('keeps the int/float distinction, so re-writing gives the same text', () => {
    const text = '{"a": 1.0, "b": 1, "c": [2.0, 2, 1e-07], "d": {"e": 3e+16}}';
    expect(dumpsPython(parsePythonJson(text, 'x.json'))).toBe('{"a": 1.0, "b": 1, "c": [2.0, 2, 1e-07], "d": {"e": 3e+16}}');
  });

  test('accepts NaN/Infinity as Python json.loads does', () => {
    expect(parsePythonJson('[NaN, -Infinity]', 'x.json')).toEqual([NaN, -Infinity]);
  });

  test('objects have no prototype and prototype keys are refused with their path', () => {
    const v = parsePythonJson('{"a": {"b": 1}}', 'x.json') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBeNull();
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const text = `{"config": {"learning_rate": 0.1, "${key}": {"polluted": true}}}`;
      expect(() => parsePythonJson(text, 'evil.json')).toThrow(FormatError);
      expect(() => parsePythonJson(text, 'evil.json')).toThrow(`key '${key}' at config.${key} is not allowed`);
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  test('invalid JSON says where', () => {
    expect(() => parsePythonJson('{"a": 1,\n "b": }', 'bad.json')).toThrow(/bad\.json: not valid JSON: unexpected '}' at line 2 column 7/);
    expect(() => parsePythonJson('{"a": 1} x', 'bad.json')).toThrow(/after the JSON value/);
    expect(() => parsePythonJson('{"a": "x', 'bad.json')).toThrow(/unterminated string/);
    expect(() => parsePythonJson('', 'bad.json')).toThrow(/unexpected end of text/);
  });

  test('absurd nesting is a FormatError, not a stack overflow; Keras-sized nesting is fine', () => {
    const nested = (n: number): string => `{"a": ${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(() => parsePythonJson(nested(200_000), 'deep.json')).toThrow(/deep\.json: not valid JSON: nested deeper than 1000 levels at line 1 column/);
    expect(() => parsePythonJson(nested(200_000), 'deep.json')).toThrow(FormatError);
    expect(dumpsPython(parsePythonJson(nested(900), 'ok.json'))).toBe(nested(900));
    // Values built in code go through the same guard when deserialized.
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = [deep];
    expect(() => deserialize({ class_name: 'Nadam', config: { learning_rate: deep } })).toThrow(/nested deeper than 1000 levels/);
  });
});
