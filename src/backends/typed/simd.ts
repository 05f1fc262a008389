import type { CompiledKernel, KernelSource } from './codegen.js';
import { ARENA_SCRATCH_BYTES, Float32Arena } from './arena.js';
import { existingPool, type SharedFloatPool } from '../../tensor/pool.js';
import { MAX_BLOCKS, threadSettings, threadTeam } from './threads.js';
import { roundToHalf } from '../../tensor/float16.js';
import { loadHalf, roundHalf, storeHalf } from './half.js';
import { F32, F64, I32, moduleBytes, OP, SIMD, simd, sleb, uleb, V128, wasmApi, type FunctionSpec, type WasmMemory } from './wasmBinary.js';

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
/** The vector form of a dtype: f32x4 for float32, f64x2 for float64 (opcodes of the SIMD proposal). */
export interface Lanes {
  readonly dtype: 'float16' | 'float32' | 'float64';
  /** Bytes per array element. */
  readonly bytes: 2 | 4 | 8;
  /** Elements per vector. */
  readonly count: 2 | 4;
  readonly scalarType: number;
  readonly splat: number;
  readonly sqrt: number;
  readonly ops: Record<string, number>;
  /** float16: elements are widened to f32 on load, every op is rounded to half, results narrowed on store (half.ts). */
  readonly half?: true;
}
const F32_OPS = { '+': SIMD.f32x4Add, '-': SIMD.f32x4Sub, '*': SIMD.f32x4Mul, '/': SIMD.f32x4Div };
export const F32X4: Lanes = { dtype: 'float32', bytes: 4, count: 4, scalarType: F32, splat: SIMD.f32x4Splat, sqrt: SIMD.f32x4Sqrt, ops: F32_OPS };
export const F64X2: Lanes = {
  dtype: 'float64', bytes: 8, count: 2, scalarType: F64, splat: SIMD.f64x2Splat, sqrt: SIMD.f64x2Sqrt,
  ops: { '+': SIMD.f64x2Add, '-': SIMD.f64x2Sub, '*': SIMD.f64x2Mul, '/': SIMD.f64x2Div },
};
/** float16 as four f32 lanes, each op rounded to half (see half.ts for why the bits are the JavaScript kernel's). */
export const F16X4: Lanes = { dtype: 'float16', bytes: 2, count: 4, scalarType: F32, splat: SIMD.f32x4Splat, sqrt: SIMD.f32x4Sqrt, ops: F32_OPS, half: true };

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
  /** Scratch v128 locals of the float16 load / round / store sequences. */
  private readonly scratch: readonly [number, number, number];

  constructor(private readonly source: KernelSource, private readonly tokens: string[], private readonly lanes: Lanes) {
    const arrays = source.params.filter((p) => source.floatArrays.includes(p));
    const scalars = source.params.filter((p) => !source.floatArrays.includes(p) && p !== 'n');
    arrays.forEach((a, k) => this.arrayParam.set(a, k));
    this.lengthParam = arrays.length;
    const paramCount = arrays.length + 1 + scalars.length;
    this.offset = this.newLocal(I32, paramCount);
    this.scratch = [this.newLocal(V128, paramCount), this.newLocal(V128, paramCount), this.newLocal(V128, paramCount)];
    scalars.forEach((s, k) => {
      const local = this.newLocal(V128, paramCount);
      this.code.push(OP.localGet, ...uleb(arrays.length + 1 + k), ...simd(lanes.splat), OP.localSet, ...uleb(local));
      this.scalarLocal.set(s, local);
    });
  }

  private newLocal(type: number, paramCount: number): number {
    this.extraLocals.push(type);
    return paramCount + this.extraLocals.length - 1;
  }

  get paramTypes(): number[] {
    return [...this.arrayParam.keys()].map(() => I32).concat([I32], [...this.scalarLocal.keys()].map(() => this.lanes.scalarType));
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
      this.code.push(...(this.lanes.half ? loadHalf(this.scratch) : simd(SIMD.load, { align: 4, offset: 0 })));
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
      this.code.push(...simd(this.lanes.sqrt));
      if (this.lanes.half) this.code.push(...roundHalf(this.scratch));
    } else {
      this.operand();
      const op = this.peek();
      if (op !== undefined && op in this.lanes.ops) {
        this.take();
        this.operand();
        this.code.push(...simd(this.lanes.ops[op]!));
        if (this.lanes.half) this.code.push(...roundHalf(this.scratch));
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
      this.code.push(...(this.lanes.half ? storeHalf(this.scratch) : simd(SIMD.store, { align: 4, offset: 0 })));
    }
    this.take(';');
  }

  function(): FunctionSpec {
    const nBytes = this.lengthParam;
    const prologue = this.code.splice(0);
    this.code.push(OP.block, OP.void, OP.localGet, ...uleb(nBytes), OP.i32Eqz, OP.brIf, 0, OP.loop, OP.void);
    while (this.pos < this.tokens.length) this.statement();
    this.code.push(
      OP.localGet, ...uleb(this.offset), OP.i32Const, ...sleb(this.lanes.count * this.lanes.bytes), OP.i32Add, OP.localTee, ...uleb(this.offset),
      OP.localGet, ...uleb(nBytes), OP.i32LtU, OP.brIf, 0, OP.end, OP.end,
    );
    return { params: this.paramTypes, locals: this.extraLocals, code: [...prologue, ...this.code] };
  }
}

/**
 * The f32x4 (or, with F64X2, f64x2) function of a dense kernel, or the reason it cannot be translated
 * exactly. Its parameters: one byte address per float array (in `source.params` order), the byte
 * length (a multiple of 16), then each scalar parameter as f32 (f64).
 */
export function translateToF32x4(source: KernelSource, lanes: Lanes = F32X4): { spec: FunctionSpec } | { reason: string } {
  const loop = LOOP.exec(source.body);
  if (!loop) return { reason: 'the body is not a single `for (let i = 0; i < n; i++)` loop' };
  try {
    return { spec: new Translator(source, tokenize(loop[1]!), lanes).function() };
  } catch (e) {
    if (e instanceof Untranslatable) return { reason: e.message };
    throw e;
  }
}

/** True when two of the arrays overlap in memory (one write would change another's input). */
function overlapping(arrays: readonly ArrayBufferView[]): boolean {
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
/** Array storage of the kernels: float32, float64, or float16 bits. */
type FloatArray = Float32Array | Float64Array | Uint16Array;

interface Site {
  readonly run: (...args: number[]) => void;
  readonly slots: readonly FloatArray[];
  /** Whether `array` is in this site's memory, so used in place (never, for the private memory). */
  readonly holds: (array: FloatArray) => boolean;
  /** The module, when worker threads can run it on this site's memory (the managed shared memory). */
  readonly shared?: object;
}

/** Pooled buffers that hold the workers' share of arrays living outside the managed memory. */
const stagingBuffers = new Map<string, FloatArray | null>();

function stagingBuffer(pool: SharedFloatPool, lanes: Lanes, k: number, n: number): FloatArray | null {
  const key = `${lanes.dtype}/${k}`;
  const current = stagingBuffers.get(key);
  if (current && current.length >= n) return current;
  stagingBuffers.delete(key); // the old one is collected (and its block freed) once unreferenced
  const size = Math.ceil(n * 1.25);
  const fresh = lanes.bytes === 2 ? pool.float16(size) : lanes.bytes === 4 ? pool.float32(size) : pool.float64(size);
  stagingBuffers.set(key, fresh);
  return fresh;
}

/** Blocks are a multiple of this many elements (whole 64-byte lines, never shared between threads). */
const RANGE_ALIGN = 16;
/**
 * Elements per block of a threaded call: small enough that a thread the OS schedules late holds up
 * the others by little (~30 us of work), large enough that claiming a block costs nothing.
 */
const BLOCK_ELEMENTS = 32768;

/**
 * The float32 kernel backed by wasm f32x4 (with `lanes` = F64X2, the float64 one backed by f64x2), or
 * null when the source is untranslatable or wasm SIMD is unavailable. Arrays that live in a
 * Float32Arena or in the managed shared memory (src/tensor/pool.ts, where Tensor.zeros puts float32
 * and float64 tensors) are used in place; the others are staged through wasm memory `chunk` elements
 * at a time (copied in, and copied back if written). When no array is in either, this happens in the
 * kernel's own wasm memory. In the managed memory, large calls are split into blocks run by this
 * thread and the worker threads (threads.ts); arrays living elsewhere are then copied into pooled
 * buffers block by block, ahead of the workers, and the written ones copied back at the end. The last
 * n % 4 (n % 2) elements go through `scalar` (the plain kernel of the same source), which also takes
 * over entirely when the tensor is small, when a float32 kernel's scalar argument is not exactly a
 * float32 (the plain kernel would use its double value), when an array is shorter than n, or when two
 * arrays overlap (the vector loop would not see the other's writes element by element).
 */
export function simdKernel(source: KernelSource, scalar: CompiledKernel, chunk = CHUNK, lanes: Lanes = F32X4): CompiledKernel | null {
  const translated = translateToF32x4(source, lanes);
  if (!('spec' in translated) || !wasmApi) return null;
  const api = wasmApi;
  const B = lanes.bytes;
  const Typed = B === 4 ? Float32Array : B === 8 ? Float64Array : Uint16Array;
  const perVector = lanes.count;
  const f32Scalars = lanes.scalarType === F32;
  // float16 needs half scalars: the proof that f32-then-half rounding is exact assumes half operands
  const exactScalar = lanes.half ? (x: number) => roundToHalf(x) === x || x !== x : (x: number) => !f32Scalars || Math.fround(x) === x || x !== x;
  const arrayNames = source.params.filter((p) => source.floatArrays.includes(p));
  const bytes = moduleBytes(translated.spec, Math.ceil((arrayNames.length * chunk * B) / 65536));
  const inPlaceBytes = moduleBytes(translated.spec, 'import');
  if (!api.validate(bytes) || !api.validate(inPlaceBytes)) return null;
  const own = new api.Instance(new api.Module(bytes)).exports;
  const ownBuffer = (own.memory as WasmMemory).buffer;
  const privateSite: Site = {
    run: own.run as Site['run'],
    slots: arrayNames.map((_, k) => new Typed(ownBuffer, k * chunk * B, chunk)),
    holds: () => false,
  };
  const inPlaceModule = new api.Module(inPlaceBytes);
  const arenaChunk = Math.floor(ARENA_SCRATCH_BYTES / (arrayNames.length * 16)) * (16 / B);
  const arenaSites = new WeakMap<Float32Arena, Site>();
  const siteOf = (arena: Float32Arena): Site => {
    let site = arenaSites.get(arena);
    if (!site) {
      const { buffer } = arena.memory;
      site = {
        run: new api.Instance(inPlaceModule, { env: { memory: arena.memory } }).exports.run as Site['run'],
        slots: arrayNames.map((_, k) => new Typed(buffer, arena.scratchOffset + k * arenaChunk * B, arenaChunk)),
        holds: (a) => a.buffer === buffer,
      };
      arenaSites.set(arena, site);
    }
    return site;
  };
  // The managed memory's site, made on first use (its scratch is a block of the memory kept forever).
  let poolSite: Site | null | undefined;
  const sharedSite = (pool: SharedFloatPool): Site | null => {
    if (poolSite !== undefined) return poolSite;
    poolSite = null;
    const sharedBytes = moduleBytes(translated.spec, 'shared');
    if (!api.validate(sharedBytes)) return null;
    const block = pool.allocateBlock(arrayNames.length * chunk * B);
    if (!block) return null;
    const module = new api.Module(sharedBytes);
    const buffer = pool.currentBuffer;
    poolSite = {
      run: new api.Instance(module, { env: { memory: pool.memory } }).exports.run as Site['run'],
      slots: arrayNames.map((_, k) => new Typed(buffer as unknown as ArrayBuffer, block.start + k * chunk * B, chunk)),
      holds: (a) => pool.holds(a),
      shared: module,
    };
    return poolSite;
  };

  const arrayAt = arrayNames.map((a) => source.params.indexOf(a));
  const written = source.writes.map((w) => arrayNames.indexOf(w));
  const nAt = source.params.indexOf('n');
  const scalarAt = source.params.map((_, k) => k).filter((k) => !arrayAt.includes(k) && k !== nAt);
  const callArgs = [...arrayNames.map(() => 0), 0, ...scalarAt.map(() => 0)];
  const lengthArg = arrayNames.length;
  const scalars = scalarAt.map(() => 0);

  /** Runs the vector loop on elements [from, to) (to - from a multiple of the lanes) of `arrays` at `site`. */
  const runRange = (site: Site, arrays: readonly FloatArray[], inPlace: readonly boolean[], from: number, to: number): void => {
    const staged = inPlace.includes(false);
    const step = staged ? site.slots[0]!.length : Math.max(perVector, to - from);
    for (let start = from; start < to; start += step) {
      const length = Math.min(step, to - start);
      for (let k = 0; k < arrays.length; k++) {
        if (inPlace[k]) {
          callArgs[k] = arrays[k]!.byteOffset + start * B;
        } else {
          site.slots[k]!.set(arrays[k]!.subarray(start, start + length));
          callArgs[k] = site.slots[k]!.byteOffset;
        }
      }
      callArgs[lengthArg] = length * B;
      site.run(...callArgs);
      for (const k of written) if (!inPlace[k]) arrays[k]!.set(site.slots[k]!.subarray(0, length), start);
    }
  };

  /**
   * Runs [0, end) in blocks shared by this thread and the workers; false when threads do not apply
   * (then the caller runs everything here). Arrays outside the managed memory go through pooled
   * buffers (the workers can only see that memory): copied in block by block, written ones copied back.
   */
  const runThreaded = (site: Site, pool: SharedFloatPool, arrays: readonly FloatArray[], inPlace: readonly boolean[], end: number): boolean => {
    const { threads, minElements } = threadSettings();
    if (threads < 2 || end < minElements || !site.shared) return false;
    const team = threadTeam();
    if (!team) return false;
    team.ensure(threads - 1);
    const bases: number[] = [];
    const staging: (FloatArray | null)[] = [];
    for (let k = 0; k < arrays.length; k++) {
      if (inPlace[k]) {
        bases.push(arrays[k]!.byteOffset);
        staging.push(null);
        continue;
      }
      const buffer = stagingBuffer(pool, lanes, k, end);
      if (!buffer) return false;
      bases.push(buffer.byteOffset);
      staging.push(buffer);
    }
    for (let s = 0; s < scalars.length; s++) scalars[s] = callArgs[lengthArg + 1 + s]!;
    const blockElements = Math.max(BLOCK_ELEMENTS, Math.ceil(end / MAX_BLOCKS / RANGE_ALIGN) * RANGE_ALIGN);
    // arrays outside the memory are copied in block by block while the workers run the blocks already in
    const stage = staging.some((x) => x !== null)
      ? (fromBytes: number, toBytes: number) => {
          const from = fromBytes / B;
          const to = toBytes / B;
          for (let k = 0; k < arrays.length; k++) staging[k]?.set(arrays[k]!.subarray(from, to), from);
        }
      : undefined;
    team.runBlocks(site.shared, site.run, bases, scalars, blockElements * B, end * B, stage);
    for (const k of written) if (staging[k]) arrays[k]!.set(staging[k]!.subarray(0, end));
    return true;
  };

  const kernel = (...args: unknown[]): unknown => {
    const n = args[nAt] as number;
    const arrays = arrayAt.map((k) => args[k] as FloatArray);
    for (let s = 0; s < scalarAt.length; s++) {
      const x = args[scalarAt[s]!] as number;
      if (!exactScalar(x)) return scalar(...args);
      callArgs[lengthArg + 1 + s] = x;
    }
    if (n < SIMD_MIN_ELEMENTS || arrays.some((a) => a.length < n) || overlapping(arrays)) return scalar(...args);
    // the site that can use the most arrays in place: an arena's, the managed memory's, or the private one
    const arena = lanes.dtype === 'float32' ? arrays.map((a) => Float32Arena.of(a)).find((x) => x !== undefined) : undefined;
    const pool = existingPool();
    let site = privateSite;
    let best = 0;
    if (arena) {
      site = siteOf(arena);
      best = arrays.filter((a) => site.holds(a)).length;
    }
    if (pool && best < arrays.length) {
      const count = arrays.filter((a) => pool.holds(a)).length;
      const candidate = count > best ? sharedSite(pool) : null;
      if (candidate) site = candidate;
    }
    const inPlace = arrays.map((a) => site.holds(a));
    const end = n - (n % perVector);
    if (!(pool && site === poolSite && runThreaded(site, pool, arrays, inPlace, end))) runRange(site, arrays, inPlace, 0, end);
    if (end < n) {
      const tail = [...args];
      arrayAt.forEach((k, j) => (tail[k] = arrays[j]!.subarray(end)));
      tail[nAt] = n - end;
      scalar(...tail);
    }
    return undefined;
  };
  /**
   * One threaded job over many calls' arrays (a step's variables): each call's vector part is cut
   * into blocks listed in a table in the managed memory, which this thread and the workers claim
   * block by block; the n % lanes tails then run here on the plain kernel. Only when threads apply and
   * every array is in the managed memory (false: nothing was run, call the kernel per call instead).
   */
  const many = (calls: readonly ManyCall[], scalarValues: readonly number[]): boolean => {
    const pool = existingPool();
    const { threads, minElements } = threadSettings();
    if (!pool || threads < 2 || scalarValues.length !== scalarAt.length) return false;
    if (!scalarValues.every(exactScalar)) return false;
    let total = 0;
    let rows = 0;
    const blockElements = BLOCK_ELEMENTS;
    for (const { arrays, n } of calls) {
      if (arrays.length !== arrayNames.length || arrays.some((a) => a.length < n || !pool.holds(a)) || overlapping(arrays)) return false;
      total += n;
      rows += Math.ceil((n - (n % perVector)) / blockElements);
    }
    if (total < minElements || rows === 0 || rows > MAX_BLOCKS) return false;
    const site = sharedSite(pool);
    const team = threadTeam();
    if (!site?.shared || !team) return false;
    team.ensure(threads - 1);
    const width = arrayNames.length + 1;
    const block = pool.allocateBlock(rows * width * 8);
    if (!block) return false;
    try {
      const table = new Float64Array(pool.currentBuffer as unknown as ArrayBuffer, block.start, rows * width);
      let row = 0;
      for (const { arrays, n } of calls) {
        const end = n - (n % perVector);
        for (let start = 0; start < end; start += blockElements, row++) {
          for (let k = 0; k < arrays.length; k++) table[row * width + k] = arrays[k]!.byteOffset + start * B;
          table[row * width + arrays.length] = Math.min(blockElements, end - start) * B;
        }
      }
      team.runRows(site.shared, site.run, table, block.start, rows, arrayNames.length, scalarValues);
    } finally {
      pool.releaseBlock(block);
    }
    const tail = new Array<unknown>(source.params.length);
    scalarAt.forEach((k, s) => (tail[k] = scalarValues[s]));
    for (const { arrays, n } of calls) {
      const end = n - (n % perVector);
      if (end === n) continue;
      arrayAt.forEach((k, j) => (tail[k] = arrays[j]!.subarray(end)));
      tail[nAt] = n - end;
      scalar(...tail);
    }
    return true;
  };
  Object.defineProperty(kernel, 'name', { value: `${source.name}${lanes.half ? 'F16x4' : B === 4 ? 'F32x4' : 'F64x2'}` });
  return Object.assign(kernel, { many });
}

/** One call of a kernel in a `many` job: its float arrays (in the source's order) and its length. */
export interface ManyCall {
  readonly arrays: readonly FloatArray[];
  readonly n: number;
}
