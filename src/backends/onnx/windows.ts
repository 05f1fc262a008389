/*
 * The dense step of the onnx backend over many variables at once. A step graph is elementwise and
 * its coefficients are the same for every variable of a dtype, so the variables of one step are one
 * stream: their elements laid end to end. The stream is cut into windows of `chunk` elements (small
 * enough for the graph's intermediates to stay in cache) and each window is ONE onnxruntime run,
 * whatever number of variables it covers. A window inside one variable whose arrays onnxruntime can
 * take is fed as views of them (no copy); any other window (several small variables, or arrays in
 * the shared memory, which onnxruntime-node refuses) is packed into the window buffers, which live
 * as long as the backend or worker and are reused by every run.
 *
 * `runWindows` is also the body of the onnx worker threads (src/backends/onnx/workers.ts), which
 * receive its source text: so it uses nothing but its arguments (no imports, no outer names).
 */

/** The float storage of a dtype: Float32Array, Float64Array, or Uint16Array holding float16 bits. */
export type FloatStorage = Float32Array | Float64Array | Uint16Array;

/** One variable's dense step: variable, m, v and gradient, all of one length. */
export type Segment = readonly [w: FloatStorage, m: FloatStorage, v: FloatStorage, g: FloatStorage];

/** The parts of onnxruntime-node that `runWindows` uses. */
export interface WindowRuntime {
  Tensor: new (type: string, data: FloatStorage, dims: readonly number[]) => unknown;
}

/** A session's run, with the outputs bound to preallocated tensors. */
export interface WindowSession {
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>): Promise<unknown>;
}

/** Buffers of one window (variable, m, v, gradient), each `chunk` elements, and tensors over them. */
export interface WindowBuffers {
  readonly arrays: readonly FloatStorage[];
  readonly tensors: readonly unknown[];
}

/** One call of `runWindows`: elements [start, end) of the stream of `segments`. */
export interface WindowJob {
  readonly segments: readonly Segment[];
  readonly start: number;
  readonly end: number;
  readonly chunk: number;
  /** The ONNX element type of the storage ('float16', 'float32' or 'float64'). */
  readonly type: string;
  /** Coefficient feeds (scalar tensors), the same for every window. */
  readonly coefficients: Record<string, unknown>;
  /** Graph output names of the new variable, m and v. */
  readonly outputs: readonly [string, string, string];
}

/**
 * Runs the step on elements [start, end) of the stream, one onnxruntime run per window. Resolves
 * to the number of runs. The new variable, m and v are written back into the segments' arrays.
 */
export async function runWindows(ort: WindowRuntime, session: WindowSession, buffers: WindowBuffers, job: WindowJob): Promise<number> {
  const { segments, end, chunk, type, coefficients, outputs } = job;
  const offsets = [0];
  for (const s of segments) offsets.push(offsets[offsets.length - 1]! + s[0].length);
  const shared = (a: FloatStorage) => typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer;
  const run = (t: readonly unknown[]) => session.run(
    { ...coefficients, variable: t[0], m: t[1], v: t[2], gradient: t[3] },
    { [outputs[0]]: t[0], [outputs[1]]: t[1], [outputs[2]]: t[2] },
  );
  let runs = 0;
  let first = 0;
  for (let s = job.start; s < end; s += chunk) {
    const e = Math.min(end, s + chunk);
    const len = e - s;
    while (offsets[first + 1]! <= s) first++;
    const own = segments[first]!;
    if (e <= offsets[first + 1]! && !own.some(shared)) {
      const from = s - offsets[first]!;
      await run(own.map((a) => new ort.Tensor(type, a.subarray(from, from + len), [len])));
      runs++;
      continue;
    }
    // copy the window's pieces in (4 arrays), run, copy the new variable, m and v back out
    const move = (count: number, out: boolean) => {
      for (let k = first, pos = s, at = 0; pos < e; k++) {
        const to = Math.min(e, offsets[k + 1]!);
        if (to <= pos) continue;
        const from = pos - offsets[k]!;
        const n = to - pos;
        for (let i = 0; i < count; i++) {
          const seg = segments[k]![i]!;
          const buf = buffers.arrays[i]!;
          if (out) seg.set(buf.subarray(at, at + n), from);
          else buf.set(seg.subarray(from, from + n), at);
        }
        at += n;
        pos = to;
      }
    };
    move(4, false);
    await run(len === chunk ? buffers.tensors : buffers.arrays.map((a) => new ort.Tensor(type, a.subarray(0, len), [len])));
    runs++;
    move(3, true);
  }
  return runs;
}
