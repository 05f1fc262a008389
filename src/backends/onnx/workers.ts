import { Worker } from 'node:worker_threads';
import { BackendError } from '../../errors.js';
import { moduleWorkerUrl } from '../workerSource.js';
import { onnxRuntimePath, sessionOptions, type OnnxSessionOptions } from './runtime.js';
import { runWindows, type Segment } from './windows.js';

/**
 * Worker threads that run the onnx backend's dense windows on their own onnxruntime sessions, so a
 * large step uses more than one core (onnxruntime-node runs a session on the calling thread). The
 * state stays where it is, in the shared memory (src/tensor/pool.ts): a job names the segments'
 * arrays, which a worker sees without a copy, and a range of their stream; the worker packs its
 * windows into its own buffers, which it keeps for every later step, as the calling thread does.
 */

/** What a worker gets per job: plain data (coefficients as numbers, the model as bytes). */
interface JobMessage {
  readonly id: number;
  /** Identifies the graph; the worker creates its session once per key. */
  readonly key: string;
  readonly model: Uint8Array;
  readonly options: ReturnType<typeof sessionOptions>;
  readonly segments: readonly Segment[];
  readonly start: number;
  readonly end: number;
  readonly chunk: number;
  readonly type: string;
  readonly scalarType: 'float32' | 'float64';
  readonly coefficients: Record<string, number>;
  readonly outputs: readonly [string, string, string];
}

type Reply = { id: number; runs: number } | { id: number; error: string };

/** The worker: one session per graph key, one set of window buffers per type and chunk, one job at a time. */
function workerSource(): string {
  return `
import { parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
const ort = createRequire(${JSON.stringify(onnxRuntimePath())})(${JSON.stringify(onnxRuntimePath())});
const runWindows = ${runWindows.toString()};
const sessions = new Map();
const buffers = new Map();
const storage = { float16: Uint16Array, float32: Float32Array, float64: Float64Array };
let queue = Promise.resolve();
async function handle(msg) {
  try {
    let session = sessions.get(msg.key);
    if (!session) {
      session = ort.InferenceSession.create(msg.model, msg.options);
      sessions.set(msg.key, session);
    }
    const bkey = msg.type + '/' + msg.chunk;
    let b = buffers.get(bkey);
    if (!b) {
      const arrays = [0, 1, 2, 3].map(() => new storage[msg.type](msg.chunk));
      b = { arrays, tensors: arrays.map((a) => new ort.Tensor(msg.type, a, [msg.chunk])) };
      buffers.set(bkey, b);
    }
    const coefficients = {};
    for (const [k, v] of Object.entries(msg.coefficients)) {
      coefficients[k] = new ort.Tensor(msg.scalarType, msg.scalarType === 'float64' ? Float64Array.of(v) : Float32Array.of(v), []);
    }
    const runs = await runWindows(ort, await session, b, { ...msg, coefficients });
    parentPort.postMessage({ id: msg.id, runs });
  } catch (e) {
    parentPort.postMessage({ id: msg.id, error: String((e && e.message) || e) });
  }
}
parentPort.on('message', (msg) => { queue = queue.then(() => handle(msg)); });
`;
}

/** A job for the team, less what the team adds (id). */
export type TeamJob = Omit<JobMessage, 'id' | 'options'>;

/** The onnx backend's worker threads (started on first use; they do not keep the process alive). */
export class OnnxWorkerTeam {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (runs: number) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readonly options: ReturnType<typeof sessionOptions>;

  constructor(sessionOpts: OnnxSessionOptions) {
    this.options = sessionOptions(sessionOpts);
  }

  /** Runs `job` on worker `index` (started if needed); resolves to its number of onnxruntime runs. */
  run(index: number, job: TeamJob): Promise<number> {
    const worker = this.worker(index);
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref(); // a job in flight keeps the process alive until it settles
      worker.postMessage({ ...job, id, options: this.options } satisfies JobMessage);
    });
  }

  /** Stops every worker; jobs in flight fail. */
  async terminate(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
    this.failAll(new BackendError('onnx backend: the worker threads were stopped'));
  }

  get size(): number {
    return this.workers.length;
  }

  private worker(index: number): Worker {
    while (this.workers.length <= index) {
      const w = new Worker(moduleWorkerUrl(workerSource()));
      w.on('message', (reply: Reply) => {
        const p = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (this.pending.size === 0) for (const x of this.workers) x.unref();
        if (!p) return;
        if ('error' in reply) p.reject(new BackendError(reply.error));
        else p.resolve(reply.runs);
      });
      w.on('error', (e) => this.failAll(new BackendError(`onnx backend: a worker thread failed: ${e.message}`)));
      w.on('exit', () => {
        const at = this.workers.indexOf(w);
        if (at >= 0) this.workers.splice(at, 1);
      });
      w.unref();
      this.workers.push(w);
    }
    return this.workers[index]!;
  }

  private failAll(e: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }
}
