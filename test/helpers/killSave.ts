import { spawn } from 'node:child_process';

/**
 * The child of the interrupted-save tests: reads the file, takes one Nadam step, prints SAVING, saves,
 * prints SAVED. Run against a private build of kerasopt (test/helpers/privateBuild.ts).
 */
const CHILD = String.raw`
const [build, target] = process.argv.slice(1);
const k = await import(build + 'src/index.js');
const state = await k.readOptimizerState(target);
const { optimizer, variables } = k.optimizerFromState(state, { backend: 'typed' });
optimizer.applyGradientsSync(variables.map((v) => [k.Tensor.fill(v.dtype, v.shape, 1e-3), v]));
process.stdout.write('SAVING\n');
await k.saveOptimizerState(target, optimizer, { like: state });
process.stdout.write('SAVED\n');
`;

/** How a save child ended. */
export interface SaveRun {
  /** The child printed SAVED (the save returned) before it exited or was killed. */
  readonly saved: boolean;
  /** The parent killed it (it was still running at the delay). */
  readonly killed: boolean;
  /** ms from the parent's receipt of SAVING to SAVED (null when not saved). */
  readonly saveMs: number | null;
  readonly code: number | null;
  readonly signal: string | null;
  readonly stderr: string;
}

/**
 * Runs the save child on `target` with `buildUrl` (a private build's URL, ending in '/'); with
 * `killAfterMs`, SIGKILLs it that long after it says SAVING. `env` is added to the child's environment.
 */
export function runSave(buildUrl: string, target: string, killAfterMs: number | null, env: Record<string, string> = {}): Promise<SaveRun> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, buildUrl, target], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let t0 = 0;
    let saveMs: number | null = null;
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (!t0 && out.includes('SAVING\n')) {
        t0 = performance.now();
        if (killAfterMs !== null) timer = setTimeout(() => (killed = child.kill('SIGKILL')), killAfterMs);
      }
      if (saveMs === null && out.includes('SAVED\n')) saveMs = performance.now() - t0;
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      done({ saved: saveMs !== null, killed, saveMs, code, signal, stderr });
    });
  });
}
