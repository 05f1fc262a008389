/*
 * Just enough of the WebAssembly binary format (core spec + the SIMD128 opcodes) to emit one exported
 * function and one exported memory. Numbers follow the WebAssembly core specification, section 5
 * ("Binary Format"), and the SIMD proposal's BinarySIMD.md.
 */

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** Core opcodes used by the kernels. */
export const OP = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  /** Block type of a block that yields nothing. */
  void: 0x40,
} as const;

/** SIMD opcodes (each follows the 0xfd prefix, LEB128-encoded). */
export const SIMD = {
  load: 0x00,
  load16x4U: 0x04,
  store: 0x0b,
  v128Const: 0x0c,
  i32x4Eq: 0x37,
  f32x4Ne: 0x42,
  f32x4Ge: 0x46,
  v128And: 0x4e,
  v128Or: 0x50,
  v128Bitselect: 0x52,
  store64Lane: 0x5b,
  i16x8NarrowI32x4U: 0x86,
  i32x4Shl: 0xab,
  i32x4ShrU: 0xad,
  i32x4Add: 0xae,
  i32x4MaxU: 0xb9,
  f32x4Splat: 0x13,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f64x2Splat: 0x14,
  f64x2Sqrt: 0xef,
  f64x2Add: 0xf0,
  f64x2Sub: 0xf1,
  f64x2Mul: 0xf2,
  f64x2Div: 0xf3,
} as const;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** A SIMD instruction; loads and stores carry a memarg (alignment exponent, offset). */
export function simd(op: number, memarg?: { align: number; offset: number }): number[] {
  const bytes = [0xfd, ...uleb(op)];
  if (memarg) bytes.push(...uleb(memarg.align), ...uleb(memarg.offset));
  return bytes;
}

function vector(items: readonly number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function utf8(name: string): number[] {
  const bytes = [...new TextEncoder().encode(name)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

export interface FunctionSpec {
  readonly params: readonly number[];
  /** Extra locals, by value type, after the parameters. */
  readonly locals: readonly number[];
  /** Instructions, without the final `end`. */
  readonly code: readonly number[];
}

/**
 * A module with one function (no results) exported as `run`, and one memory: its own of `pages`
 * 64 KiB pages, exported as `memory`, or (pages = 'import') one imported as `env.memory`, or
 * (pages = 'shared') an imported shared one, `(import "env" "memory" (memory 0 65536 shared))`.
 */
export function moduleBytes(fn: FunctionSpec, pages: number | 'import' | 'shared'): Uint8Array {
  const type = [0x60, ...vector(fn.params.map((t) => [t])), ...vector([])];
  const groupedLocals = fn.locals.map((t) => [...uleb(1), t]);
  const body = [...vector(groupedLocals), ...fn.code, OP.end];
  const run = [...utf8('run'), 0x00, ...uleb(0)];
  const imported = pages === 'import' || pages === 'shared';
  // limits: 0x00 min | 0x03 min max, shared (a shared memory must declare its maximum)
  const limits = pages === 'shared' ? [0x03, ...uleb(0), ...uleb(65536)] : [0x00, ...uleb(0)];
  const memory = imported
    ? section(2, vector([[...utf8('env'), ...utf8('memory'), 0x02, ...limits]]))
    : section(5, vector([[0x00, ...uleb(pages)]]));
  const exports = imported ? [run] : [run, [...utf8('memory'), 0x02, ...uleb(0)]];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([type])),
    ...(imported ? memory : []),
    ...section(3, vector([uleb(0)])),
    ...(imported ? [] : memory),
    ...section(7, vector(exports)),
    ...section(10, vector([[...uleb(body.length), ...body]])),
  ];
  return Uint8Array.from(bytes);
}

/** A WebAssembly.Memory, as far as kerasopt uses it. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

/** The slice of the WebAssembly JS API used here (lib.dom's typings are not part of this ES2022 build). */
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

/** The WebAssembly API of this runtime, if any. */
export const wasmApi: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
