import type { CompiledKernel, KernelSource } from './codegen.js';
import { ARENA_SCRATCH_BYTES, Float32Arena } from './arena.js';
import { F32, I32, moduleBytes, OP, SIMD, simd, sleb, uleb, V128, wasmApi, type FunctionSpec, type WasmMemory } from './wasmBinary.js';

/*
 * The float32 fast path: a dense kernel's own source, translated statement by statement into a
 * WebAssembly f32x4 loop. Why this is bit-identical to the Math.fround kernel: the translation accepts
 * only sources where every arithmetic operation is *immediately* wrapped in R(...), i.e. every op is
 * rounded to float32 on its own; a wasm f32 add/sub/mul/div/sqrt is the IEEE float32 operation,
 * correctly rounded (no flush to zero: wasm keeps subnormals); and Math.fround of the double result of
 * one such op on float32 inputs is that same correctly rounded float32, because double has at least
 * 2*24+2 significand bits (double rounding is innocuous for +, -, *, /, sqrt). The only freedom wasm
 * has is the NaN payload/sign, so NaNs stay NaN but their bits are unspecified (as in JS).
 * Anything else in a source (a literal, an op outside R, a helper call) makes the translation refuse,
 * and the kernel keeps its plain JavaScript form.
 */

const LOOP = /^\s*for \(let i = 0; i < n; i\+\+\) \{([\s\S]*)\}\s*$/;
const TOKEN = /\s*(Math\.sqrt|[A-Za-z_$][\w$]*|[()[\]+\-*/=;])/y;
const OPS: Record<string, number> = { '+': SIMD.f32x4Add, '-': SIMD.f32x4Sub, '*': SIMD.f32x4Mul, '/': SIMD.f32x4Div };

/** Elements of each array copied into wasm memory per call: small enough that the copies stay in cache. */
export const CHUNK = 16384;
/** Below this many elements the plain kernel is used: the wasm call overhead would dominate. */
export const SIMD_MIN_ELEMENTS = 64;

class Untranslatable extends Error {}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const match = TOKEN.exec(text);
    if (!match) throw new Untranslatable(`unexpected text at '${text.slice(TOKEN.lastIndex, TOKEN.lastIndex + 20)}'`);
    tokens.push(match[1]!);
  }
  return tokens;
}

/** Translates the loop body of a dense kernel into an f32x4 function over byte offsets. */
class Translator {
  private pos = 0;
  private readonly code: number[] = [];
  private readonly locals = new Map<string, number>();
  private readonly extraLocals: number[] = [];
  private readonly arrayParam = new Map<string, number>();
  private readonly scalarLocal = new Map<string, number>();
  private readonly offset: number;
  private readonly lengthParam: number;

  constructor(private readonly source: KernelSource, private readonly tokens: string[]) {
    const arrays = source.params.filter((p) => source.floatArrays.includes(p));
    const scalars = source.params.filter((p) => !source.floatArrays.includes(p) && p !== 'n');
    arrays.forEach((a, k) => this.arrayParam.set(a, k));
    this.lengthParam = arrays.length;
    const paramCount = arrays.length + 1 + scalars.length;
    this.offset = this.newLocal(I32, paramCount);
    scalars.forEach((s, k) => {
      const local = this.newLocal(V128, paramCount);
      this.code.push(OP.localGet, ...uleb(arrays.length + 1 + k), ...simd(SIMD.f32x4Splat), OP.localSet, ...uleb(local));
      this.scalarLocal.set(s, local);
    });
  }

  private newLocal(type: number, paramCount: number): number {
    this.extraLocals.push(type);
    return paramCount + this.extraLocals.length - 1;
  }

  get paramTypes(): number[] {
    return [...this.arrayParam.keys()].map(() => I32).concat([I32], [...this.scalarLocal.keys()].map(() => F32));
  }

  private peek(): string | undefined {
    return this.tokens[this.pos];
  }

  private take(expected?: string): string {
    const token = this.tokens[this.pos++];
    if (token === undefined || (expected !== undefined && token !== expected)) {
      throw new Untranslatable(`expected '${expected ?? 'a token'}' but found '${token ?? 'end'}'`);
    }
    return token;
  }

  private address(array: string): void {
    const param = this.arrayParam.get(array);
    if (param === undefined) throw new Untranslatable(`'${array}' is not a float array parameter`);
    this.take('[');
    this.take('i');
    this.take(']');
    this.code.push(OP.localGet, ...uleb(param), OP.localGet, ...uleb(this.offset), OP.i32Add);
  }

  /** operand := R(inner) | name | array[i] */
  private operand(): void {
    const token = this.take();
    if (token === 'R') return this.rounded();
    if (this.peek() === '[') {
      this.address(token);
      this.code.push(...simd(SIMD.load, { align: 4, offset: 0 }));
      return;
    }
    const local = this.locals.get(token) ?? this.scalarLocal.get(token);
    if (local === undefined) throw new Untranslatable(`'${token}' is not a local, a scalar parameter or rounded`);
    this.code.push(OP.localGet, ...uleb(local));
  }

  /** After 'R': (Math.sqrt(operand)) | (operand op operand) | (operand) */
  private rounded(): void {
    this.take('(');
    if (this.peek() === 'Math.sqrt') {
      this.take();
      this.take('(');
      this.operand();
      this.take(')');
      this.code.push(...simd(SIMD.f32x4Sqrt));
    } else {
      this.operand();
      const op = this.peek();
      if (op !== undefined && op in OPS) {
        this.take();
        this.operand();
        this.code.push(...simd(OPS[op]!));
      }
    }
    this.take(')');
  }

  /** statement := const name = operand; | array[i] = operand; */
  private statement(): void {
    const first = this.take();
    if (first === 'const') {
      const name = this.take();
      if (this.locals.has(name) || this.scalarLocal.has(name)) throw new Untranslatable(`'${name}' redefined`);
      this.take('=');
      this.operand();
      const local = this.newLocal(V128, this.paramTypes.length);
      this.locals.set(name, local);
      this.code.push(OP.localSet, ...uleb(local));
    } else {
      this.address(first);
      this.take('=');
      this.operand();
      this.code.push(...simd(SIMD.store, { align: 4, offset: 0 }));
    }
    this.take(';');
  }

  function(): FunctionSpec {
    const nBytes = this.lengthParam;
    const prologue = this.code.splice(0);
    this.code.push(OP.block, OP.void, OP.localGet, ...uleb(nBytes), OP.i32Eqz, OP.brIf, 0, OP.loop, OP.void);
    while (this.pos < this.tokens.length) this.statement();
    this.code.push(
      OP.localGet, ...uleb(this.offset), OP.i32Const, ...sleb(16), OP.i32Add, OP.localTee, ...uleb(this.offset),
      OP.localGet, ...uleb(nBytes), OP.i32LtU, OP.brIf, 0, OP.end, OP.end,
    );
    return { params: this.paramTypes, locals: this.extraLocals, code: [...prologue, ...this.code] };
  }
}

/**
 * The f32x4 function of a dense kernel, or the reason it cannot be translated exactly. Its parameters:
 * one byte address per float array (in `source.params` order), the byte length (a multiple of 16),
 * then each scalar parameter as f32.
 */
export function translateToF32x4(source: KernelSource): { spec: FunctionSpec } | { reason: string } {
  const loop = LOOP.exec(source.body);
  if (!loop) return { reason: 'the body is not a single `for (let i = 0; i < n; i++)` loop' };
  try {
    return { spec: new Translator(source, tokenize(loop[1]!)).function() };
  } catch (e) {
    if (e instanceof Untranslatable) return { reason: e.message };
    throw e;
  }
}

/** True when two of the arrays overlap in memory (one write would change another's input). */
function overlapping(arrays: readonly Float32Array[]): boolean {
  for (let a = 0; a < arrays.length; a++) {
    for (let b = a + 1; b < arrays.length; b++) {
      const x = arrays[a]!;
      const y = arrays[b]!;
      if (x.buffer === y.buffer && x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength) return true;
    }
  }
  return false;
}

/** Where a kernel runs: a module instance, and the staging slots in its memory. */
interface Site {
  readonly run: (...args: number[]) => void;
  readonly slots: readonly Float32Array[];
  /** The buffer whose arrays the site uses in place (none for the kernel's private memory). */
  readonly inPlace: ArrayBuffer | null;
}

/**
 * The float32 kernel backed by wasm f32x4, or null when the source is untranslatable or wasm SIMD is
 * unavailable. Arrays that live in a Float32Arena are used in place; the others are staged through
 * wasm memory `chunk` elements at a time (copied in, and copied back if written). When no array is in
 * an arena this happens in the kernel's own wasm memory. The last n % 4 elements go through `scalar`
 * (the Math.fround kernel of the same source), which also takes over entirely when the tensor is
 * small, when a scalar argument is not exactly a float32 (the plain kernel would use its double value),
 * when an array is shorter than n, or when two arrays overlap (the vector loop would not see the
 * other's writes element by element).
 */
export function simdKernel(source: KernelSource, scalar: CompiledKernel, chunk = CHUNK): CompiledKernel | null {
  const translated = translateToF32x4(source);
  if (!('spec' in translated) || !wasmApi) return null;
  const api = wasmApi;
  const arrayNames = source.params.filter((p) => source.floatArrays.includes(p));
  const bytes = moduleBytes(translated.spec, Math.ceil((arrayNames.length * chunk * 4) / 65536));
  const inPlaceBytes = moduleBytes(translated.spec, 'import');
  if (!api.validate(bytes) || !api.validate(inPlaceBytes)) return null;
  const own = new api.Instance(new api.Module(bytes)).exports;
  const ownBuffer = (own.memory as WasmMemory).buffer;
  const privateSite: Site = {
    run: own.run as Site['run'],
    slots: arrayNames.map((_, k) => new Float32Array(ownBuffer, k * chunk * 4, chunk)),
    inPlace: null,
  };
  const inPlaceModule = new api.Module(inPlaceBytes);
  const arenaChunk = Math.floor(ARENA_SCRATCH_BYTES / (arrayNames.length * 16)) * 4;
  const arenaSites = new WeakMap<Float32Arena, Site>();
  const siteOf = (arena: Float32Arena): Site => {
    let site = arenaSites.get(arena);
    if (!site) {
      const { buffer } = arena.memory;
      site = {
        run: new api.Instance(inPlaceModule, { env: { memory: arena.memory } }).exports.run as Site['run'],
        slots: arrayNames.map((_, k) => new Float32Array(buffer, arena.scratchOffset + k * arenaChunk * 4, arenaChunk)),
        inPlace: buffer,
      };
      arenaSites.set(arena, site);
    }
    return site;
  };

  const arrayAt = arrayNames.map((a) => source.params.indexOf(a));
  const written = source.writes.map((w) => arrayNames.indexOf(w));
  const nAt = source.params.indexOf('n');
  const scalarAt = source.params.map((_, k) => k).filter((k) => !arrayAt.includes(k) && k !== nAt);
  const callArgs = [...arrayNames.map(() => 0), 0, ...scalarAt.map(() => 0)];
  const lengthArg = arrayNames.length;

  const kernel = (...args: unknown[]): unknown => {
    const n = args[nAt] as number;
    const arrays = arrayAt.map((k) => args[k] as Float32Array);
    for (let s = 0; s < scalarAt.length; s++) {
      const x = args[scalarAt[s]!] as number;
      if (Math.fround(x) !== x && x === x) return scalar(...args);
      callArgs[lengthArg + 1 + s] = x;
    }
    if (n < SIMD_MIN_ELEMENTS || arrays.some((a) => a.length < n) || overlapping(arrays)) return scalar(...args);
    const arena = arrays.map((a) => Float32Arena.of(a)).find((x) => x !== undefined);
    const site = arena ? siteOf(arena) : privateSite;
    const inPlace = arrays.map((a) => a.buffer === site.inPlace);
    const staged = inPlace.includes(false);
    const end = n & ~3;
    const step = staged ? site.slots[0]!.length : end;
    for (let start = 0; start < end; start += step) {
      const length = Math.min(step, end - start);
      for (let k = 0; k < arrays.length; k++) {
        if (inPlace[k]) {
          callArgs[k] = arrays[k]!.byteOffset + start * 4;
        } else {
          site.slots[k]!.set(arrays[k]!.subarray(start, start + length));
          callArgs[k] = site.slots[k]!.byteOffset;
        }
      }
      callArgs[lengthArg] = length * 4;
      site.run(...callArgs);
      for (const k of written) if (!inPlace[k]) arrays[k]!.set(site.slots[k]!.subarray(0, length), start);
    }
    if (end < n) {
      const tail = [...args];
      arrayAt.forEach((k, j) => (tail[k] = arrays[j]!.subarray(end)));
      tail[nAt] = n - end;
      scalar(...tail);
    }
    return undefined;
  };
  Object.defineProperty(kernel, 'name', { value: `${source.name}F32x4` });
  return kernel;
}
