/**
 * `npm run bench`: the dense float32 Nadam step (tf.keras flavour) against this machine's memory
 * bandwidth and against torch 1.13's CPU NAdam on one thread and on all, all measured in ONE run.
 *
 * What it prints, per N (default 1e6 and 1e7 elements):
 * - the copy kernels (Float32Array.prototype.set and a plain JS loop) and, from the faster one, the
 *   bandwidth bound of a Nadam step: 28 bytes per element (read var, m, v, g; write var, m, v) at the
 *   copy's rate. The copy moves 2N floats from one array to another, so that its memory footprint
 *   (16 bytes per step element) is the step's own (var, m, v, g): the bound is not flattered by a
 *   copy that fits in a cache the step does not fit in. It moves 16 bytes per step element (read 8,
 *   write 8): bound = copy time * 28 / 16;
 * - every contender's median step time, ns per element, effective GB/s (28 B/element / time), the
 *   fraction of the bound it reaches (bound time / step time) and its speed-up over torch's default
 *   NAdam on one thread (torch time / step time; > 1 means faster than torch);
 * - torch 1.13 NAdam (spawned: /usr/bin/python3 scripts/bench_torch.py), or a loud notice when missing.
 *
 * Adding a row (e.g. the onnx backend): append one Contender to CONTENDERS. A contender gets N and
 * returns a step function (sync or async) that performs ONE Nadam step on N float32 elements; the
 * harness warms it up, times it, and reports it like the others. For a backend that implements the
 * Backend interface, `backendKernel('label', () => theBackend)` already builds the raw-kernel row.
 *
 * Also printed: a tighter reference than the copy, the step's own access pattern with one add per
 * array (see STREAM), in the managed memory on 1 thread and on all threads, and each contender's
 * fraction of both ('of strm1', 'of strmN'); torch also on all threads (--threads); the issue 16
 * goals as MET / NOT MET; and a scan of where worker threads start to pay (--no-scan skips it).
 * Rows set their own thread count (configureThreads) before each step, since it is process-wide.
 *
 * Then the I/O rows (scripts/benchIo.ts): reading and saving a ~1 GB state as ratios to cat / cp.
 * Then the tfjs row (scripts/benchTfjs.ts): one model.fit step with TfjsNadam vs tf.train.adam, as a ratio.
 *
 * Options: --sizes 1e6,1e7  --reps 15  --warmup 3  --no-torch  --io-bytes 1e9  --no-io  --no-tfjs  --no-scan. The machine (2 shared cores) is
 * noisy: medians of repeated runs after warm-up, and compare ratios from one run, not across runs.
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Backend, NadamState } from '../src/backends/backend.js';
import { compileKernel, type KernelSource } from '../src/backends/typed/codegen.js';
import { Float32Arena, TypedArrayBackend } from '../src/backends/typed/index.js';
import { OnnxBackend } from '../src/backends/onnx/index.js';
import { createSession, loadOnnxRuntime } from '../src/backends/onnx/runtime.js';
import { runWindows, type WindowRuntime } from '../src/backends/onnx/windows.js';
import { GraphBuilder } from '../src/onnx/graph.js';
import { decodeModel } from '../src/onnx/proto.js';
import { buildKernelGraph } from '../src/onnx/nadamGraph.js';
import { NADAM_DENSE_TF_KERAS } from '../src/backends/typed/kernels.js';
import { configureThreads, startThreads, threadSettings } from '../src/backends/typed/threads.js';
import { configurePool, existingPool, inSharedPool, poolStats } from '../src/tensor/pool.js';
import { Nadam } from '../src/optimizers/nadam/index.js';
import { tfKerasCoefficients } from '../src/optimizers/nadam/tfKeras.js';
import { arith } from '../src/tensor/arith.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Variable } from '../src/tensor/variable.js';
import { printIoRows } from './benchIo.js';
import { printTfjsRow } from './benchTfjs.js';
import { timeInterleaved, type Row } from './timing.js';

type Step = () => unknown;

interface Contender {
  readonly name: string;
  prepare(n: number): Step | Promise<Step>;
}

const BYTES_PER_ELEMENT_STEP = 28;

/**
 * A second, tighter reference: the step's own access pattern (read var, m, v, g; write var, m, v) with
 * one add per array instead of Nadam's arithmetic, as a wasm f32x4 loop in place in a Float32Arena.
 * A memcpy pays a read-for-ownership of every destination line it writes (12 bytes of traffic for
 * 8 counted), the step's writes hit lines it has just read: so the copy-derived bound is pessimistic
 * and a ratio above 1 against it is possible; against this stream it is not, short of noise.
 */
const STREAM: KernelSource = {
  name: 'benchStream',
  params: ['W', 'M', 'V', 'G', 'n'],
  floatArrays: ['W', 'M', 'V', 'G'],
  writes: ['W', 'M', 'V'],
  body: `
  for (let i = 0; i < n; i++) {
    const g = G[i];
    W[i] = R(W[i] + g);
    M[i] = R(M[i] + g);
    V[i] = R(V[i] + g);
  }`,
};
/** Remarks a contender wants printed at the end (once each). */
const notes = new Set<string>();

function randomTensor(n: number, scale: number, arena?: Float32Arena): Tensor<'float32'> {
  const data = arena ? arena.allocate(n) : new Float32Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    data[i] = (seed / 2 ** 32 - 0.5) * scale;
  }
  return new Tensor('float32', [n], data);
}

/** The coefficients of step 1 of a default tf.keras Nadam (learning_rate 0.001), in float32. */
function stepCoefficients() {
  return tfKerasCoefficients(arith('float32'), {
    lr: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004,
    iterations: 0, cache: 1, stepForm: 'cast-then-add',
  }).c;
}

/** var, m, v and the gradient, in ordinary typed arrays or all in one Float32Arena. */
function freshState(n: number, arena?: Float32Arena): { state: NadamState; grad: Tensor<'float32'> } {
  // ordinary arrays (not the managed memory that Tensor.zeros would pick): the 'ordinary arrays' rows
  const zeros = () => (arena ? arena.zeros([n]) : new Tensor('float32', [n], new Float32Array(n)));
  return {
    state: { variable: randomTensor(n, 1, arena), m: zeros(), v: zeros() },
    grad: randomTensor(n, 1e-2, arena),
  };
}

/** The raw dense kernel of any Backend: one `nadamDense` call per step (tensors optionally in an arena). */
export function backendKernel(name: string, backend: () => Backend | Promise<Backend>, inArena = false): Contender {
  return {
    name,
    async prepare(n) {
      const b = await backend();
      const { state, grad } = freshState(n, inArena ? new Float32Arena(4 * n) : undefined);
      const c = stepCoefficients();
      return () => b.nadamDense(state, grad, c);
    },
  };
}

/** A public-API step on `w`, after checking that the optimizer put m and v in `w`'s arena. */
function publicStep(w: Variable, g: Tensor, arena: Float32Arena): Step {
  const opt = new Nadam();
  opt.applyGradientsSync([[g, w]]); // creates the slots
  const inArena = ['m', 'v'].every((s) => Float32Arena.of(opt.getSlot(w, s).value.data) === arena);
  if (!inArena) notes.add('public API in a Float32Arena: the optimizer allocated m and v outside the arena, so those rows stage m and v through the arena\'s scratch.');
  return () => opt.applyGradientsSync([[g, w]]);
}

/** Every thread count from 1 to this machine's cores (the default uses all of them). */
const ALL_THREADS = threadSettings().threads;
const THREAD_COUNTS = [...new Set([1, ALL_THREADS])];

/** `step` with the typed backend set to `threads` threads (the setting is global, so every row sets its own). */
function withThreads(threads: number, step: Step): Step {
  return () => {
    configureThreads({ threads });
    return step();
  };
}

/** A float32 tensor made the default way (Tensor.zeros: in the managed memory), filled like randomTensor. */
function managedTensor(n: number, scale: number): Tensor<'float32'> {
  const t = Tensor.zeros('float32', [n]);
  t.data.set(randomTensor(n, scale).data);
  if (!inSharedPool(t.data)) notes.add('Tensor.zeros did not allocate in the managed memory (disabled, or full): the "default" rows are staged.');
  return t;
}

const DEFAULT_API = 'typed: DEFAULT public API (Tensor.from variable and gradient)';
const ONNX_STREAM = 'onnx: stream reference as a graph (3 Add nodes), 1 thread';
const CONTENDERS: Contender[] = [
  ...THREAD_COUNTS.map((t): Contender => ({
    name: `${DEFAULT_API}, ${t} thread${t > 1 ? 's' : ''}`,
    prepare(n) {
      const w = new Variable(managedTensor(n, 1), { name: 'w' });
      const g = managedTensor(n, 1e-2);
      const opt = new Nadam();
      return withThreads(t, () => opt.applyGradientsSync([[g, w]]));
    },
  })),
  ...THREAD_COUNTS.map((t): Contender => ({
    name: `typed: public API, user's own Float32Arrays (staged), ${t} thread${t > 1 ? 's' : ''}`,
    prepare(n) {
      // the variable's own array is outside the managed memory, its slots (made by Tensor.zeros) inside
      const w = new Variable(randomTensor(n, 1), { name: 'w' });
      const g = randomTensor(n, 1e-2);
      const opt = new Nadam();
      return withThreads(t, () => opt.applyGradientsSync([[g, w]]));
    },
  })),
  {
    name: 'typed: public API, variable (so m, v) and gradient in a Float32Arena',
    prepare(n) {
      const arena = new Float32Arena(Float32Arena.capacityFor([[n]]));
      const w = arena.variable(randomTensor(n, 1), { name: 'w' });
      const g = randomTensor(n, 1e-2, arena);
      return withThreads(1, publicStep(w, g, arena));
    },
  },
  ...THREAD_COUNTS.map((t): Contender => ({
    name: `typed: raw kernel, managed memory (in place), ${t} thread${t > 1 ? 's' : ''}`,
    prepare(n) {
      const state = { variable: managedTensor(n, 1), m: Tensor.zeros('float32', [n]), v: Tensor.zeros('float32', [n]) };
      const grad = managedTensor(n, 1e-2);
      const b = new TypedArrayBackend();
      const c = stepCoefficients();
      return withThreads(t, () => b.nadamDense(state, grad, c));
    },
  })),
  {
    name: 'typed: raw kernel, ordinary arrays (chunked copies)',
    async prepare(n) {
      const step = await backendKernel('', () => new TypedArrayBackend()).prepare(n);
      return withThreads(1, step);
    },
  },
  {
    name: 'typed: raw kernel, plain JS Math.fround (before)',
    prepare(n) {
      const { state, grad } = freshState(n);
      const c = stepCoefficients();
      const kernel = compileKernel(NADAM_DENSE_TF_KERAS, 'float32', { simd: false });
      return () => kernel(state.variable.data, state.m.data, state.v.data, grad.data, n, c.lr, c.beta1, c.beta2,
        c.oneMinusBeta1, c.oneMinusBeta2, c.oneMinusMuT, c.muT1, c.oneMinusMsNew, c.oneMinusMsNext, c.vDenominator, c.epsilon);
    },
  },
  // the onnxruntime backend (CPU EP, 128K-element windows): on ordinary arrays (fed as views, no copies), and
  // through the public API with the default state in the shared memory, split over worker threads
  backendKernel('onnx: raw kernel, ordinary arrays (views), 1 thread', () => new OnnxBackend({ threads: 1 })),
  ...THREAD_COUNTS.map((t): Contender => ({
    name: `onnx: Nadam.applyGradients (public API), ${t} thread${t > 1 ? 's' : ''}`,
    prepare(n) {
      const w = new Variable(managedTensor(n, 1), { name: 'w' });
      const g = managedTensor(n, 1e-2);
      const opt = new Nadam({ backend: new OnnxBackend({ threads: t }) });
      return () => opt.applyGradients([[g, w]]);
    },
  })),
  {
    name: `onnx: public API, 1 thread with onnxruntime's own ${ALL_THREADS} intra-op threads`,
    prepare(n) {
      const w = new Variable(managedTensor(n, 1), { name: 'w' });
      const g = managedTensor(n, 1e-2);
      const opt = new Nadam({ backend: new OnnxBackend({ threads: 1, intraOpNumThreads: ALL_THREADS }) });
      return () => opt.applyGradients([[g, w]]);
    },
  },
  {
    // onnxruntime's floor: the stream reference as a graph (3 Add nodes), run the way the backend runs its step graphs
    name: ONNX_STREAM,
    async prepare(n) {
      const b = new GraphBuilder('bench_stream');
      const [w, m, v, g] = ['variable', 'm', 'v', 'gradient'].map((x) => b.input(x, 'float32', ['n']));
      for (const [x, out] of [[w, 'new_variable'], [m, 'new_m'], [v, 'new_v']] as const) b.output(b.op('Add', [x!, g!], out), 'float32', ['n']);
      const session = await createSession(b.toModel({}), 'the stream graph');
      const ort = loadOnnxRuntime();
      const arrays = [0, 1, 2, 3].map(() => new Float32Array(1 << 17));
      const buffers = { arrays, tensors: arrays.map((a) => new ort.Tensor('float32', a, [a.length])) };
      const { state, grad } = freshState(n);
      const job = { segments: [[state.variable.data, state.m.data, state.v.data, grad.data] as const], start: 0, end: n, chunk: 1 << 17, type: 'float32', coefficients: {}, outputs: ['new_variable', 'new_m', 'new_v'] as const };
      return withThreads(1, () => runWindows(ort as unknown as WindowRuntime, session, buffers, job));
    },
  },
  // the same N split into MANY_VARIABLES variables: the per-call cost of each backend
  manyVariables(`${DEFAULT_API}, ${ALL_THREADS} threads`, () => 'typed', ALL_THREADS),
  manyVariables(`onnx: public API, ${ALL_THREADS} threads, one run per window`, () => new OnnxBackend(), ALL_THREADS),
  manyVariables(`onnx: public API, ${ALL_THREADS} threads, one call per variable (no batch)`, () => unbatched(new OnnxBackend()), ALL_THREADS),
];

// ---------------------------------------------------------------------------------------------------

/** A backend that hides `nadamDenseBatch`, so the optimizer calls `nadamDense` once per variable (the unbatched baseline). */
function unbatched(b: OnnxBackend): Backend {
  return new Proxy(b, {
    get: (target, prop) => {
      if (prop === 'nadamDenseBatch') return undefined;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const MANY_VARIABLES = 1000;

/** Nodes of the benchmarked step graph (tf.keras, float32). */
function stepGraphNodes(): number {
  return decodeModel(buildKernelGraph('dense-tf-keras', 'float32').model, 'the step graph').graph?.node.length ?? 0;
}

/** A public-API step on N elements split into MANY_VARIABLES variables (made the default way, Tensor.from). */
function manyVariables(label: string, backend: () => Backend | string, threads: number): Contender {
  return {
    name: `many: ${label}`,
    prepare(n) {
      const each = Math.max(1, Math.floor(n / MANY_VARIABLES));
      const vars = Array.from({ length: MANY_VARIABLES }, (_, i) => new Variable(Tensor.from(randomTensor(each, 1).data, 'float32'), { name: `w${i}` }));
      const grads = vars.map(() => Tensor.from(randomTensor(each, 1e-2).data, 'float32'));
      const opt = new Nadam({ backend: backend() });
      const pairs = vars.map((v, i) => [grads[i]!, v] as const);
      return withThreads(threads, () => (opt.backend.synchronous ? opt.applyGradientsSync(pairs) : opt.applyGradients(pairs)));
    },
  };
}

interface Options { sizes: number[]; reps: number; warmup: number; torch: boolean; ioBytes: number; tfjs: boolean; scan: boolean }

function options(argv: string[]): Options {
  const o: Options = { sizes: [1e6, 1e7], reps: 15, warmup: 3, torch: true, ioBytes: 1e9, tfjs: true, scan: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--sizes') o.sizes = argv[++i]!.split(',').map(Number);
    else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--warmup') o.warmup = Number(argv[++i]);
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--io-bytes') o.ioBytes = Number(argv[++i]);
    else if (a === '--no-io') o.ioBytes = 0;
    else if (a === '--no-scan') o.scan = false;
    else if (a === '--no-tfjs') o.tfjs = false;
    else throw new Error(`unknown option ${a}; expected --sizes 1e6,1e7 --reps N --warmup N --no-torch --io-bytes 1e9 --no-io --no-tfjs --no-scan`);
  }
  return o;
}

function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The STREAM reference on n elements, all four arrays in the managed memory, on `threads` threads. */
function streamRow(n: number, threads: number): Row {
  const [w, m, v, g] = [0, 1, 2, 3].map(() => managedTensor(n, 1).data);
  const kernel = compileKernel(STREAM, 'float32');
  return { name: `stream, ${threads} thread(s)`, step: withThreads(threads, () => kernel(w, m, v, g, n)), times: [] };
}

/**
 * Where threads start to pay: the raw kernel in the managed memory on 1 thread and on all threads,
 * round-robin, at sizes around the default threshold (configureThreads' minElements).
 */
async function thresholdScan(o: Options): Promise<void> {
  if (ALL_THREADS < 2) return;
  const before = threadSettings().minElements;
  console.log(`\nThread threshold scan (raw kernel, managed memory, in place; threaded rows with minElements 0; current default minElements ${threadSettings().minElements}):`);
  const sizes = [1 << 13, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20];
  console.log(`  ${'N'.padStart(9)} ${'1 thread ms'.padStart(12)} ${`${ALL_THREADS} threads ms`.padStart(12)} ${'speed-up'.padStart(9)}`);
  for (const n of sizes) {
    const state = { variable: managedTensor(n, 1), m: Tensor.zeros('float32', [n]), v: Tensor.zeros('float32', [n]) };
    const grad = managedTensor(n, 1e-2);
    const b = new TypedArrayBackend();
    const c = stepCoefficients();
    const reps = Math.max(o.reps, Math.round(2e7 / n));
    const repeat = 8; // several steps per sample, so that sub-millisecond times are measurable
    const rows: Row[] = [1, ALL_THREADS].map((t) => ({
      name: String(t),
      step: () => {
        configureThreads({ threads: t, minElements: 0 });
        for (let r = 0; r < repeat; r++) b.nadamDense(state, grad, c);
      },
      times: [],
    }));
    const [one, all] = await timeInterleaved(rows, o.warmup, reps);
    console.log(`  ${String(n).padStart(9)} ${(one! / repeat).toFixed(4).padStart(12)} ${(all! / repeat).toFixed(4).padStart(12)} ${(one! / all!).toFixed(2).padStart(9)}`);
  }
  configureThreads({ minElements: before });
}

/**
 * float16 through the default public API (wasm f32 ops each rounded to half with integer SIMD, in the
 * managed memory, on every thread): one line, at N = 1e6, as a ratio to float32 and float64 in the same rounds.
 */
async function float16Row(o: Options): Promise<void> {
  const n = 1e6;
  const rows: Row[] = (['float16', 'float32', 'float64'] as const).map((dtype) => {
    const w = new Variable(Tensor.from(randomTensor(n, 1).data, dtype), { name: 'w' });
    const g = Tensor.from(randomTensor(n, 1e-2).data, dtype);
    const opt = new Nadam();
    return { name: dtype, step: withThreads(ALL_THREADS, () => opt.applyGradientsSync([[g, w]])), times: [] };
  });
  const [f16, f32, f64] = await timeInterleaved(rows, 1, Math.min(o.reps, 5));
  console.log(`\nfloat16 (wasm, every op rounded to half), default public API at N = 1e6: ${f16!.toFixed(1)} ms per step, `
    + `${(f16! / f32!).toFixed(0)}x float32 (${f32!.toFixed(2)} ms) and ${(f16! / f64!).toFixed(0)}x float64 (${f64!.toFixed(2)} ms) on ${ALL_THREADS} threads`);
}

function copyLoop(src: Float32Array, dst: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = src[i]!;
}


interface TorchRow { n: number; variant: string; median_ms: number; torch: string; threads: number }

function runTorch(o: Options): { rows: TorchRow[]; error: string | null } {
  const script = fileURLToPath(new URL('../../scripts/bench_torch.py', import.meta.url));
  const python = process.env.KERASOPT_PYTHON ?? '/usr/bin/python3';
  const r = spawnSync(python, [script, ...o.sizes.map(String), '--warmup', String(o.warmup), '--reps', String(o.reps), '--threads', String(ALL_THREADS)], { encoding: 'utf8' });
  const lines = (r.stdout ?? '').split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l) as TorchRow & { error?: string });
  const error = lines.find((l) => l.error)?.error ?? (r.status === 0 ? null : `${python} ${script} failed: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
  return { rows: lines.filter((l) => !l.error), error };
}

function fmt(x: number, digits = 2): string {
  return x.toFixed(digits).padStart(8);
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const cpu = cpus();
  console.log(`kerasopt bench: dense float32 Nadam step (tf.keras flavour), ${new Date().toISOString()}`);
  console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? '?'}, node ${process.version}; medians of ${o.reps} rounds after ${o.warmup} warm-ups,`);
  console.log('the copy kernels and the contenders timed round-robin (torch: its own process, run first).');
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (above 0.5 means others are using the ${cpu.length} cores).`);
  console.log('The machine may be shared and noisy: compare the ratios below (all from this one run), not absolute times across runs.\n');

  const torch = o.torch ? runTorch(o) : { rows: [], error: 'skipped (--no-torch)' };
  if (torch.error) {
    console.log('*'.repeat(100));
    console.log(`*** TORCH NOT MEASURED: ${torch.error}`);
    console.log('*** Install Debian python3-torch (torch 1.13) to get the torch comparison.');
    console.log(`${'*'.repeat(100)}\n`);
  }

  // every contender's state stays alive while the rows are timed round-robin: give the managed memory
  // wasm32's whole 4 GiB, so that no row is silently staged because an earlier one filled it
  if (!existingPool()) configurePool({ maximumPages: 65536 });
  await startThreads();
  const verdicts: string[] = [];
  const met = (x: boolean) => (x ? 'MET' : 'NOT MET');
  for (const n of o.sizes) {
    collect();
    const src = randomTensor(2 * n, 1).data; // the copy moves 2N floats: the step's footprint (16 B/element)
    const dst = new Float32Array(2 * n);
    const rows: Row[] = [
      { name: 'copy set', step: () => dst.set(src), times: [] },
      { name: 'copy loop', step: () => copyLoop(src, dst), times: [] },
      streamRow(n, 1),
      streamRow(n, ALL_THREADS),
    ];
    const spilled = poolStats().spills;
    for (const c of CONTENDERS) {
      rows.push({ name: c.name, step: await c.prepare(n), times: [] });
      if (poolStats().spills > spilled) notes.add(`N=${n.toExponential(0)}: the managed memory was full from row '${c.name}' on: that row and later ones are partly staged`);
    }
    console.log(`managed memory: ${(poolStats().liveBytes / 2 ** 20).toFixed(0)} MiB live of ${(poolStats().byteLength / 2 ** 20).toFixed(0)} MiB`);
    const [setMs, loopMs, stream1Ms, streamAllMs, ...contenderMs] = await timeInterleaved(rows, o.warmup, o.reps);
    const bound = (Math.min(setMs!, loopMs!) * BYTES_PER_ELEMENT_STEP) / 16;
    const gbs = (bytes: number, ms: number) => bytes / ms / 1e6;
    console.log(`N = ${n.toLocaleString('en-US')} float32 elements (${((n * BYTES_PER_ELEMENT_STEP) / 1e6).toFixed(0)} MB moved per step)`);
    console.log(`  copy of 2N floats, Float32Array.set: ${setMs!.toFixed(3)} ms (${gbs(16 * n, setMs!).toFixed(1)} GB/s read+write)`);
    console.log(`  copy of 2N floats, JS loop         : ${loopMs!.toFixed(3)} ms (${gbs(16 * n, loopMs!).toFixed(1)} GB/s read+write)`);
    console.log(`  bandwidth bound of a step (28 B/element at the faster copy's rate, 1 thread): ${bound.toFixed(3)} ms`);
    console.log(`  stream reference, the step's access pattern with one add per array (wasm, in place): ${stream1Ms!.toFixed(3)} ms on 1 thread, ${streamAllMs!.toFixed(3)} ms on ${ALL_THREADS}\n`);

    const torchRows = torch.rows.filter((r) => r.n === n);
    const torchDefault = (threads: number) => torchRows.find((r) => r.threads === threads && r.variant.includes('default'));
    const torch1 = torchDefault(1);
    console.log(`  ${'contender'.padEnd(72)} ${'ms/step'.padStart(8)} ${'ns/elt'.padStart(8)} ${'GB/s'.padStart(8)} ${'of bound'.padStart(8)} ${'x torch1'.padStart(8)} ${'of strm1'.padStart(8)} ${`of strm${ALL_THREADS}`.padStart(8)}`);
    const results = [
      { name: 'stream reference, 1 thread', ms: stream1Ms! },
      { name: `stream reference, ${ALL_THREADS} threads`, ms: streamAllMs! },
      ...CONTENDERS.map((c, k) => ({ name: c.name, ms: contenderMs[k]! })),
    ];
    for (const r of torchRows) results.push({ name: `torch ${r.torch} NAdam, ${r.threads} thread${r.threads > 1 ? 's' : ''}, ${r.variant}`, ms: r.median_ms });
    for (const { name, ms } of results) {
      const vsTorch = torch1 ? fmt(torch1.median_ms / ms) : '     n/a';
      console.log(`  ${name.padEnd(72)} ${fmt(ms, 3)} ${fmt((ms * 1e6) / n)} ${fmt(gbs(BYTES_PER_ELEMENT_STEP * n, ms), 1)} ${fmt(bound / ms)} ${vsTorch} ${fmt(stream1Ms! / ms)} ${fmt(streamAllMs! / ms)}`);
    }
    const find = (prefix: string) => results.find((r) => r.name.startsWith(prefix));
    const defaultAll = find(`${DEFAULT_API}, ${ALL_THREADS} thread`)!;
    const default1 = find(`${DEFAULT_API}, 1 thread`)!;
    const tag = `N=${n.toExponential(0)}`;
    const goal = n === 1e7 ? '' : ' (the goal is stated at N=1e7)';
    verdicts.push(`${tag} default public API, ${ALL_THREADS} threads: ${(streamAllMs! / defaultAll.ms).toFixed(2)} of the stream reference on ${ALL_THREADS} threads, `
      + `${(stream1Ms! / defaultAll.ms).toFixed(2)} of it on 1 thread (>= 0.8 of the ${ALL_THREADS}-thread stream: ${met(streamAllMs! / defaultAll.ms >= 0.8)})${goal}`);
    if (torch1) {
      verdicts.push(`${tag} default public API vs torch's default NAdam on 1 thread: ${(torch1.median_ms / defaultAll.ms).toFixed(2)}x with ${ALL_THREADS} threads, `
        + `${(torch1.median_ms / default1.ms).toFixed(2)}x with 1 thread (>= 3x: ${met(torch1.median_ms >= 3 * defaultAll.ms)})`);
      const torchAll = torchDefault(ALL_THREADS);
      if (torchAll) verdicts.push(`${tag} default public API vs torch's default NAdam on ${ALL_THREADS} threads: ${(torchAll.median_ms / defaultAll.ms).toFixed(2)}x (> 1: ${met(torchAll.median_ms > defaultAll.ms)})`);
    } else verdicts.push(`${tag} torch: NOT MEASURED`);
    const onnxBest = Math.min(...results.filter((r) => r.name.startsWith('onnx: Nadam.applyGradients')).map((r) => r.ms));
    verdicts.push(`${tag} onnx backend (public API, faster thread setting): ${(onnxBest / defaultAll.ms).toFixed(2)}x the time of the typed default public API on ${ALL_THREADS} threads, `
      + `${(onnxBest / default1.ms).toFixed(2)}x on 1 thread (<= 1.3x: ${met(onnxBest <= 1.3 * defaultAll.ms)})`);
    const onnxStream = find(ONNX_STREAM);
    const onnx1 = find('onnx: raw kernel, ordinary arrays (views), 1 thread');
    if (onnxStream && onnx1) {
      const best = onnxStream.ms / ALL_THREADS;
      verdicts.push(`${tag} why onnx cannot reach 1.3x: the step's data through onnxruntime as a trivial graph (the stream reference as 3 Add nodes, run like the step graphs) `
        + `takes ${onnxStream.ms.toFixed(1)} ms on 1 thread, at best ${best.toFixed(1)} ms on ${ALL_THREADS}: already ${(best / defaultAll.ms).toFixed(1)}x the typed step. `
        + `The step graph has ${stepGraphNodes()} nodes (one per TF op, as bit-exactness requires): ${onnx1.ms.toFixed(1)} ms on 1 thread`);
    }
    const many = (infix: string) => results.find((r) => r.name.startsWith('many: ') && r.name.includes(infix))?.ms;
    const [manyTyped, manyBatched, manyEach] = [DEFAULT_API, 'one run per window', 'one call per variable'].map(many);
    if (manyTyped && manyBatched && manyEach) {
      verdicts.push(`${tag} in ${MANY_VARIABLES} variables (not a goal): the onnx batch takes ${(manyBatched / manyEach).toFixed(2)} of the time of one call per variable, `
        + `${(manyBatched / manyTyped).toFixed(2)}x the typed default public API`);
    }
    console.log('');
  }
  console.log('Goals (issue 16), each a ratio of medians measured side by side in this run:');
  for (const v of verdicts) console.log(`  ${v}`);
  for (const note of notes) console.log(`Note: ${note}`);
  await float16Row(o);
  if (o.scan) await thresholdScan(o);
  if (o.ioBytes > 0) {
    console.log('');
    await printIoRows(o.ioBytes);
  }
  if (o.tfjs) {
    console.log('');
    await printTfjsRow(o.reps, o.warmup);
  }
}

await main();
