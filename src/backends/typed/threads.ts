import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { BackendError } from '../../errors.js';
import { moduleWorkerUrl } from '../workerSource.js';
import { sharedPool, type SharedFloatPool } from '../../tensor/pool.js';

/*
 * Worker threads that run the typed backend's wasm kernels on the managed shared memory
 * (src/tensor/pool.ts). Each worker instantiates the same kernel modules on the same
 * WebAssembly.Memory, so a step on N elements is cut into ranges, one per thread: every element goes
 * through exactly the same wasm ops as on one thread (elements are independent), hence the same bits.
 *
 * Hand-off is synchronous, so `applyGradientsSync` stays synchronous: the main thread writes the job
 * into a small SharedArrayBuffer, bumps a sequence number (Atomics.notify), runs its own range, and
 * waits (Atomics.wait) until every engaged worker has counted itself done. Workers start lazily and
 * in the background; until one has said it is ready, the main thread simply does all the work.
 * Kernel modules reach a worker through a MessagePort that the worker drains synchronously
 * (receiveMessageOnPort) when a job names a kernel it has not instantiated yet.
 */

const MAX_WORKERS = 64;
// Int32 slots of the control block
const SEQ = 0;
/** The block claim word: (job tag << 16) | next block index; CAS-incremented by every thread. */
const CLAIM = 1;
const DONE_BLOCKS = 2;
const KERNEL = 3;
const N_ARRAYS = 4;
const N_SCALARS = 5;
const FAILED = 6;
const SLEEP = 7;
const TOTAL = 8;
/** Blocks below this index are ready to run (the caller stages arrays living outside the memory first). */
const LIMIT = 9;
const READY = 16;
const CONTROL_INTS = READY + MAX_WORKERS;
// Float64 slots, after the ints: array base offsets, scalars, block and total bytes
const F64_AT = CONTROL_INTS * 4;
const ARRAYS_AT = 0;
const SCALARS_AT = 16;
const BLOCK_BYTES = 60;
const END_BYTES = 61;
/** Byte address of a block table in the managed memory (0: blocks are slices of one range). */
const TABLE_AT = 62;
const CONTROL_BYTES = F64_AT + 64 * 8;
/** Claim word layout: 15 bits of job tag, 16 bits of block index. */
const TAG_SHIFT = 16;
const TAG_MASK = 0x7fff;
const INDEX_MASK = 0xffff;
export const MAX_BLOCKS = INDEX_MASK;

/*
 * Every thread (the caller and each worker) claims blocks of the job with a compare-and-swap on the
 * claim word and runs them until none is left; the caller then waits until all blocks are done. So a
 * worker that the OS does not schedule in time (a loaded machine) costs nothing: the caller takes its
 * blocks. A worker woken late for a job that is over finds the claim word closed or tagged with
 * another job and claims nothing; the caller closes the claim word before it rewrites the job, so a
 * late worker can never pair one job's block with another job's arguments.
 */
const WORKER_SOURCE = `
import { workerData, receiveMessageOnPort } from 'node:worker_threads';
const { memory, control, port, index } = workerData;
const ctl = new Int32Array(control, 0, ${CONTROL_INTS});
const f64 = new Float64Array(control, ${F64_AT});
const runs = [];
const args = [];
let seen = Atomics.load(ctl, ${SEQ});
Atomics.store(ctl, ${READY} + index, 1);
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  seen = Atomics.load(ctl, ${SEQ});
  const tag = seen & ${TAG_MASK};
  const id = ctl[${KERNEL}], na = ctl[${N_ARRAYS}], ns = ctl[${N_SCALARS}], total = ctl[${TOTAL}];
  const blockBytes = f64[${BLOCK_BYTES}], endBytes = f64[${END_BYTES}], tableAt = f64[${TABLE_AT}];
  const table = tableAt > 0 ? new Float64Array(memory.buffer) : null;
  args.length = 0;
  for (let k = 0; k < na; k++) args.push(f64[${ARRAYS_AT} + k]);
  args.push(0);
  for (let k = 0; k < ns; k++) args.push(f64[${SCALARS_AT} + k]);
  const first = Atomics.load(ctl, ${CLAIM});
  if ((first >>> ${TAG_SHIFT}) !== tag || (first & ${INDEX_MASK}) >= total) continue;
  try {
    while (runs[id] === undefined) {
      const m = receiveMessageOnPort(port);
      if (m) runs[m.message.id] = new WebAssembly.Instance(m.message.module, { env: { memory } }).exports.run;
      else Atomics.wait(ctl, ${SLEEP}, 0, 1);
    }
  } catch (e) {
    continue;
  }
  const run = runs[id];
  for (;;) {
    const cur = Atomics.load(ctl, ${CLAIM});
    if ((cur >>> ${TAG_SHIFT}) !== tag || (cur & ${INDEX_MASK}) >= total) break;
    const limit = Atomics.load(ctl, ${LIMIT});
    if ((cur & ${INDEX_MASK}) >= limit) {
      Atomics.wait(ctl, ${LIMIT}, limit, 1);
      continue;
    }
    if (Atomics.compareExchange(ctl, ${CLAIM}, cur, cur + 1) !== cur) continue;
    if (table) {
      const row = tableAt / 8 + (cur & ${INDEX_MASK}) * (na + 1);
      for (let k = 0; k <= na; k++) args[k] = table[row + k];
    } else {
      const from = (cur & ${INDEX_MASK}) * blockBytes;
      for (let k = 0; k < na; k++) args[k] = f64[${ARRAYS_AT} + k] + from;
      args[na] = Math.min(blockBytes, endBytes - from);
    }
    try {
      run(...args);
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
    }
    if (Atomics.add(ctl, ${DONE_BLOCKS}, 1) + 1 === total) Atomics.notify(ctl, ${DONE_BLOCKS});
  }
}
`;

export interface ThreadOptions {
  /**
   * Threads a large step uses, the calling thread included (default: os.availableParallelism(), or
   * env KERASOPT_THREADS). 1 keeps every step on the calling thread.
   */
  readonly threads?: number;
  /** Steps on fewer elements than this run on one thread (default 131072: see docs/benchmarks.md). */
  readonly minElements?: number;
}

const settings = {
  threads: Math.max(1, Math.min(MAX_WORKERS + 1, Number(process.env.KERASOPT_THREADS ?? availableParallelism()) || 1)),
  minElements: 1 << 17,
};

/** Changes how many threads large steps use and from which size on. Takes effect on the next step. */
export function configureThreads(o: ThreadOptions): void {
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 1) throw new BackendError(`threads must be an integer >= 1, got ${o.threads}`);
    settings.threads = Math.min(MAX_WORKERS + 1, o.threads);
  }
  if (o.minElements !== undefined) settings.minElements = Math.max(0, o.minElements);
}

export function threadSettings(): Readonly<Required<ThreadOptions>> {
  return { ...settings };
}

interface WorkerSlot {
  readonly worker: Worker;
  readonly port: MessagePort;
}

/** The workers over the managed memory, and their control block. */
export class ThreadTeam {
  private readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private readonly ctl = new Int32Array(this.control, 0, CONTROL_INTS);
  private readonly f64 = new Float64Array(this.control, F64_AT);
  private readonly slots: WorkerSlot[] = [];
  private readonly modules = new Map<object, number>();
  private busy = false;

  constructor(private readonly pool: SharedFloatPool) {}

  /** Starts workers until there are `count` of them (they become ready in the background). */
  ensure(count: number): void {
    while (this.slots.length < Math.min(count, MAX_WORKERS)) {
      const index = this.slots.length;
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(moduleWorkerUrl(WORKER_SOURCE), {
        workerData: { memory: this.pool.memory, control: this.control, port: port2, index },
        transferList: [port2],
      });
      worker.unref();
      port1.unref();
      worker.on('error', () => Atomics.store(this.ctl, READY + index, 0));
      // new workers learn the current job tag from SEQ at start, so they never take part in a stale one
      for (const [module, id] of this.modules) port1.postMessage({ id, module });
      this.slots.push({ worker, port: port1 });
    }
  }

  /** How many of the first `count` workers are ready to take a job. */
  ready(count: number): number {
    let n = 0;
    for (let w = 0; w < Math.min(count, this.slots.length); w++) if (Atomics.load(this.ctl, READY + w) === 1) n++;
    return n;
  }

  private kernelId(module: object): number {
    let id = this.modules.get(module);
    if (id === undefined) {
      id = this.modules.size;
      this.modules.set(module, id);
      for (const s of this.slots) s.port.postMessage({ id, module });
    }
    return id;
  }

  /**
   * Runs `run` (the caller's instance of `module`) over `endBytes` bytes in blocks of `blockBytes`,
   * on this thread and on every worker that wakes in time: each block gets, per array, `bases[k] +
   * its start` (byte addresses), then its length in bytes, then `scalars`. Returns when all blocks are done.
   * With `stage`, blocks become runnable only once this thread has called `stage(fromBytes, toBytes)`
   * for them (copying arrays that live elsewhere into the memory), block after block, while the
   * workers already run the staged ones; this thread joins in once everything is staged.
   */
  runBlocks(module: object, run: (...args: number[]) => void, bases: readonly number[], scalars: readonly number[], blockBytes: number, endBytes: number, stage?: (fromBytes: number, toBytes: number) => void): void {
    const total = Math.ceil(endBytes / blockBytes);
    const args = [...bases, 0, ...scalars];
    const na = bases.length;
    this.dispatch(module, run, total, bases, scalars, { blockBytes, endBytes, tableAt: 0 }, (index) => {
      const from = index * blockBytes;
      for (let k = 0; k < na; k++) args[k] = bases[k]! + from;
      args[na] = Math.min(blockBytes, endBytes - from);
      return args;
    }, stage);
  }

  /**
   * Runs `run` once per row of `table` (in the managed memory, at byte address `tableAt`): each row
   * holds `arrays` byte addresses and a length in bytes, followed by `scalars` for every row. This is
   * how the blocks of many variables make one job (a step's variables, each cut into blocks).
   */
  runRows(module: object, run: (...args: number[]) => void, table: Float64Array, tableAt: number, rows: number, arrays: number, scalars: readonly number[]): void {
    const args = [...new Array<number>(arrays + 1).fill(0), ...scalars];
    this.dispatch(module, run, rows, new Array<number>(arrays).fill(0), scalars, { blockBytes: 0, endBytes: 0, tableAt }, (index) => {
      const row = index * (arrays + 1);
      for (let k = 0; k <= arrays; k++) args[k] = table[row + k]!;
      return args;
    });
  }

  /**
   * Publishes a job of `total` blocks and runs blocks on this thread (`argsOf(index)` gives a block's
   * arguments) until none is left, then waits for the workers' blocks.
   */
  private dispatch(module: object, run: (...args: number[]) => void, total: number, bases: readonly number[], scalars: readonly number[],
    layout: { blockBytes: number; endBytes: number; tableAt: number }, argsOf: (index: number) => number[], stage?: (fromBytes: number, toBytes: number) => void): void {
    if (this.busy) throw new BackendError('a threaded kernel is already running (kernels are not re-entrant)');
    if (total > MAX_BLOCKS) throw new BackendError(`too many blocks (${total})`);
    const id = this.kernelId(module);
    const { ctl, f64 } = this;
    this.busy = true;
    try {
      const seq = (ctl[SEQ]! + 1) & TAG_MASK;
      // close the claim word first: a late worker of an earlier job must not claim with new arguments
      Atomics.store(ctl, CLAIM, (seq << TAG_SHIFT) | INDEX_MASK);
      ctl[KERNEL] = id;
      ctl[N_ARRAYS] = bases.length;
      ctl[N_SCALARS] = scalars.length;
      ctl[TOTAL] = total;
      for (let k = 0; k < bases.length; k++) f64[ARRAYS_AT + k] = bases[k]!;
      for (let k = 0; k < scalars.length; k++) f64[SCALARS_AT + k] = scalars[k]!;
      f64[BLOCK_BYTES] = layout.blockBytes;
      f64[END_BYTES] = layout.endBytes;
      f64[TABLE_AT] = layout.tableAt;
      Atomics.store(ctl, DONE_BLOCKS, 0);
      Atomics.store(ctl, LIMIT, stage ? 0 : total);
      Atomics.store(ctl, CLAIM, seq << TAG_SHIFT);
      Atomics.store(ctl, SEQ, seq);
      Atomics.notify(ctl, SEQ);
      jobs++;
      if (stage) {
        for (let b = 0; b < total; b++) {
          stage(b * layout.blockBytes, Math.min(layout.endBytes, (b + 1) * layout.blockBytes));
          Atomics.store(ctl, LIMIT, b + 1);
          Atomics.notify(ctl, LIMIT);
        }
      }
      for (;;) {
        const cur = Atomics.load(ctl, CLAIM);
        if ((cur & INDEX_MASK) >= total) break;
        if (Atomics.compareExchange(ctl, CLAIM, cur, cur + 1) !== cur) continue;
        run(...argsOf(cur & INDEX_MASK));
        Atomics.add(ctl, DONE_BLOCKS, 1);
      }
      for (;;) {
        const done = Atomics.load(ctl, DONE_BLOCKS);
        if (done >= total) break;
        Atomics.wait(ctl, DONE_BLOCKS, done, 50);
      }
      if (Atomics.exchange(ctl, FAILED, 0) !== 0) throw new BackendError('a kernel failed in a worker thread');
    } finally {
      this.busy = false;
    }
  }

  /** Stops every worker (the next large step starts new ones). */
  async terminate(): Promise<void> {
    const slots = this.slots.splice(0);
    for (let w = 0; w < MAX_WORKERS; w++) Atomics.store(this.ctl, READY + w, 0);
    this.modules.clear();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let team: ThreadTeam | null = null;
let jobs = 0;

/** How many kernel calls have been split across worker threads in this process (for tests and the bench). */
export function threadedJobs(): number {
  return jobs;
}

/** The worker team over the managed memory (created on first use), or null without one. */
export function threadTeam(): ThreadTeam | null {
  if (team) return team;
  const pool = sharedPool();
  if (!pool) return null;
  team = new ThreadTeam(pool);
  return team;
}

/**
 * Starts the workers that `configureThreads` asks for and resolves, with how many are ready, once
 * all are (or after `timeoutMs`). Optional: steps start them on their own and use them once ready.
 */
export async function startThreads(timeoutMs = 10_000): Promise<number> {
  const t = threadTeam();
  const want = settings.threads - 1;
  if (!t || want <= 0) return 0;
  t.ensure(want);
  const until = Date.now() + timeoutMs;
  while (t.ready(want) < want && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  return t.ready(want);
}

/** Stops the worker threads (they start again on the next large step). */
export async function stopThreads(): Promise<void> {
  const t = team;
  team = null;
  await t?.terminate();
}
