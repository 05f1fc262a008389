import { FormatError } from '../errors.js';

/**
 * JSON as Python's `json` module reads and writes it. Keras writes configs with `json.dumps`, which
 * differs from JSON.stringify in ways that matter for byte-exact output: floats use Python's repr
 * (`1e-07`, `1.0`, `1e+16`), ints and floats are distinct types, non-ASCII is escaped, separators are
 * `", "` and `": "`, and NaN/Infinity are allowed. JavaScript has one number type, so which numbers
 * are Python floats is recorded beside the objects (see {@link markFloat}).
 */

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** Per object or array: the keys (or indices) whose number is a Python float even if integral. */
const floats = new WeakMap<object, Set<string | number>>();

/** Records that `container[key]` is a Python float (so 1 is written `1.0`). */
export function markFloat(container: object, key: string | number): void {
  let set = floats.get(container);
  if (!set) floats.set(container, (set = new Set()));
  set.add(key);
}

/** Undoes {@link markFloat}: an integral `container[key]` is written as a Python int again. */
export function unmarkFloat(container: object, key: string | number): void {
  floats.get(container)?.delete(key);
}

/** Whether a number at `container[key]` is written as a Python float. */
export function isPythonFloat(container: object | null, key: string | number, value: number): boolean {
  if (!Number.isInteger(value) || Object.is(value, -0)) return true;
  return container !== null && floats.get(container)?.has(key) === true;
}

/** Copies the float marks of `from[fromKey]` onto `to[toKey]`. */
export function copyFloatMark(from: object, fromKey: string | number, to: object, toKey: string | number): void {
  const v = (from as Record<string | number, unknown>)[fromKey];
  if (typeof v === 'number' && isPythonFloat(from, fromKey, v)) markFloat(to, toKey);
}

/** Python's repr() of a float: shortest round-trip digits, exponent form when exp < -4 or >= 16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const rest = digits.slice(1);
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${digits[0]}${rest ? `.${rest}` : ''}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || '0'}`;
}

function pythonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

function dumpValue(value: unknown, container: object | null, key: string | number, path: string): string {
  if (value === null || value === undefined) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'string') return pythonString(value);
  if (typeof value === 'number') {
    if (isPythonFloat(container, key, value)) return pythonFloatRepr(value);
    return Number.isSafeInteger(value) ? String(value) : BigInt(value).toString();
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => dumpValue(v, value, i, `${path}[${i}]`)).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.keys(value).map((k) => `${pythonString(k)}: ${dumpValue((value as Record<string, unknown>)[k], value, k, path ? `${path}.${k}` : k)}`);
    return `{${entries.join(', ')}}`;
  }
  throw new TypeError(`cannot write ${typeof value} at ${path || 'the top level'} as JSON`);
}

/**
 * Writes `value` exactly as Python's `json.dumps(value)` would (default separators, ensure_ascii,
 * allow_nan), given which numbers are floats: non-integers always, integral numbers when marked by
 * {@link markFloat} or read as floats by {@link parsePythonJson}.
 */
export function dumpsPython(value: unknown): string {
  return dumpValue(value, null, '', '');
}

/** Python's json module stops near its recursion limit (1000); deeper text is not a Keras config. */
export const MAX_JSON_DEPTH = 1000;

/** A small JSON reader that keeps the int/float distinction and refuses prototype keys. */
class Reader {
  private i = 0;
  private depth = 0;
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  fail(message: string): never {
    const before = this.text.slice(0, this.i);
    const line = before.split('\n').length;
    const column = this.i - before.lastIndexOf('\n');
    throw new FormatError(this.file, `not valid JSON: ${message} at line ${line} column ${column}`);
  }

  document(): unknown {
    const value = this.value('');
    this.space();
    if (this.i < this.text.length) this.fail(`unexpected '${this.text[this.i]}' after the JSON value`);
    return value;
  }

  private space(): void {
    while (this.i < this.text.length && ' \t\n\r'.includes(this.text[this.i]!)) this.i++;
  }

  private value(path: string): unknown {
    this.space();
    const c = this.text[this.i];
    if (c === '{' || c === '[') {
      if (++this.depth > MAX_JSON_DEPTH) this.fail(`nested deeper than ${MAX_JSON_DEPTH} levels`);
      const v = c === '{' ? this.object(path) : this.array(path);
      this.depth--;
      return v;
    }
    if (c === '"') return this.string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null], ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]] as const) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    return this.fail(c === undefined ? 'unexpected end of text' : `unexpected '${c}'`);
  }

  private lastNumberIsFloat = false;

  private number(): number {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.i, this.i + 400));
    if (!m) return this.fail('malformed number');
    this.i += m[0].length;
    this.lastNumberIsFloat = m[2] !== undefined || m[3] !== undefined;
    return Number(m[0]);
  }

  private string(): string {
    const start = this.i;
    this.i++;
    let out = '';
    for (;;) {
      const c = this.text[this.i];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') break;
      if (c === '\\') {
        const e = this.text[this.i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          this.i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.i + 2, this.i + 6))) {
          out += String.fromCharCode(parseInt(this.text.slice(this.i + 2, this.i + 6), 16));
          this.i += 6;
        } else this.fail('bad escape in string');
      } else if (c.charCodeAt(0) < 0x20) {
        this.fail('control character in string');
      } else {
        out += c;
        this.i++;
      }
    }
    this.i++;
    if (this.i - start > 1e7) this.fail('string too long');
    return out;
  }

  private array(path: string): unknown[] {
    this.i++;
    const out: unknown[] = [];
    this.space();
    if (this.text[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      const v = this.value(`${path}[${out.length}]`);
      if (typeof v === 'number' && this.lastNumberIsFloat) markFloat(out, out.length);
      this.lastNumberIsFloat = false;
      out.push(v);
      this.space();
      const c = this.text[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.fail(`expected ',' or ']' in the array at ${path || 'the top level'}`);
    }
  }

  private object(path: string): Record<string, unknown> {
    this.i++;
    const out = Object.create(null) as Record<string, unknown>;
    this.space();
    if (this.text[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.space();
      if (this.text[this.i] !== '"') this.fail(`expected a key string in the object at ${path || 'the top level'}`);
      const key = this.string();
      const where = path === '' ? key : `${path}.${key}`;
      if (FORBIDDEN.has(key)) throw new FormatError(this.file, `key '${key}' at ${where} is not allowed (it could reach an object prototype)`);
      this.space();
      if (this.text[this.i++] !== ':') this.fail(`expected ':' after the key '${key}'`);
      const v = this.value(where);
      if (typeof v === 'number' && this.lastNumberIsFloat) markFloat(out, key);
      this.lastNumberIsFloat = false;
      out[key] = v;
      this.space();
      const c = this.text[this.i++];
      if (c === '}') return out;
      if (c !== ',') this.fail(`expected ',' or '}' in the object at ${path || 'the top level'}`);
    }
  }
}

/**
 * Parses JSON the way Python's `json.loads` does (NaN and Infinity allowed), returning objects with
 * a null prototype, numbers written with a '.' or an exponent marked as Python floats, and refusing
 * the keys `__proto__`, `constructor` and `prototype` with an error naming their JSON path.
 */
export function parsePythonJson(text: string, file: string): unknown {
  return new Reader(text, file).document();
}
