import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { basename } from 'node:path';
import { exportNadamStep, Nadam, nadamStepFeeds, OnnxNadamStep, Tensor, Variable, type FloatDType, type FloatTensor, type Flavour } from '../src/index.js';
import { compareTensors } from '../src/parity/compare.js';
import { loadFixture, shippedFixtures, type Fixture } from '../src/parity/fixture.js';
import { missingPython, python } from './helpers/python.js';
import { bits, maxUlp, random } from './onnx.util.js';

const dir = mkdtempSync(join(tmpdir(), 'kerasopt-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FLAVOURS: Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];
const DTYPES: FloatDType[] = ['float16', 'float32', 'float64'];

describe('exportNadamStep: the model is valid ONNX', () => {
  it('passes onnx.checker.check_model (full check, with shape inference) for every flavour and dtype', () => {
    const why = missingPython(['onnx']);
    if (why) return;
    const files = FLAVOURS.flatMap((flavour) => DTYPES.map((dtype) => {
      const file = join(dir, `${flavour}_${dtype}.onnx`);
      writeFileSync(file, exportNadamStep({ flavour, dtype }));
      return file;
    }));
    const out = python(
      `import sys, onnx
for f in sys.argv[1:]:
    m = onnx.load(f)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    print(meta['kerasopt.flavour'], meta['kerasopt.dtype'], m.ir_version, m.opset_import[0].version, ','.join(i.name for i in m.graph.input), ','.join(o.name for o in m.graph.output))`,
      files,
    );
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(12);
    expect(lines[0]).toBe('tf-keras float16 8 17 variable,gradient,m,v,iterations,momentum_cache,learning_rate,beta_1,beta_2,epsilon,schedule_decay new_variable,new_m,new_v,new_iterations,new_momentum_cache');
    expect(lines[8]).toBe('keras3 float64 8 17 variable,gradient,m,v,iterations,u_product,learning_rate,beta_1,beta_2,epsilon new_variable,new_m,new_v,new_iterations,new_u_product');
    expect(lines[11]).toBe('tf-keras-new float64 8 17 variable,gradient,m,v,iterations,u_product,learning_rate,beta_1,beta_2,epsilon new_variable,new_m,new_v,new_iterations,new_u_product');
  });

  it('rejects an unknown flavour or dtype', () => {
    expect(() => exportNadamStep({ flavour: 'adam' as Flavour })).toThrow(/unknown flavour 'adam'/);
    expect(() => exportNadamStep({ dtype: 'int32' as FloatDType })).toThrow(/unknown dtype 'int32'/);
  });
});

/*
 * The exported step computes its coefficients with onnxruntime's Pow (= glibc pow/powf, see
 * onnx.pow.test.ts), kerasopt's Nadam with arith().pow (correctly rounded); the two differ by 1 ULP
 * at a few steps. Each step is run from kerasopt's state and compared with kerasopt's next state, so
 * differences do not accumulate. Measured and promised: float16 and float32 bit for bit on every
 * step run here (the 1-ULP Pow differences are absorbed by the roundings of 1 - 0.5 * p and
 * v / (1 - beta_2^t) on this data); float64 within 64 ULP of the state (measured: 1 step of 300 off,
 * by at most 3 ULP).
 */
const STEPS: Record<FloatDType, number> = { float16: 300, float32: 1500, float64: 300 };
const EXACT_STEPS: Record<FloatDType, number> = { float16: 300, float32: 1500, float64: 0 };
const BOUND: Record<FloatDType, number> = { float16: 0, float32: 0, float64: 64 };

describe('an exported step run by onnxruntime-node reproduces kerasopt Nadam step by step', () => {
  for (const flavour of FLAVOURS) {
    for (const dtype of DTYPES) {
      it(`${flavour} ${dtype}: ${STEPS[dtype]} steps (variable, m, v, iterations, schedule)`, async () => {
        const step = await OnnxNadamStep.load(exportNadamStep({ flavour, dtype }), { intraOpNumThreads: 1 });
        try {
          expect([step.flavour, step.dtype]).toEqual([flavour, dtype]);
          const rand = random(7 + DTYPES.indexOf(dtype));
          const init = Array.from({ length: 24 }, () => (rand() - 0.5) * 4);
          const opt = new Nadam({ flavour, learning_rate: 0.01, beta_1: 0.85 });
          const w = new Variable(Tensor.from(init, dtype, [4, 6]), { name: 'w' });
          opt.build([w]);
          const [first, second] = opt.recipe.slotNames;
          let worst = 0;
          let inexact = 0;
          for (let s = 0; s < STEPS[dtype]; s++) {
            const g = Tensor.from(Array.from({ length: 24 }, () => (rand() - 0.5) * 10 ** (rand() * 4 - 2)), dtype, [4, 6]);
            const result = await step.run(nadamStepFeeds(opt, w, g));
            opt.applyGradientsSync([[g, w]]);
            const where = `${flavour} ${dtype} step ${s + 1}`;
            const schedule = opt.getWeight(opt.recipe.scheduleWeight).value;
            const pairs = [[result.variable, w.value], [result.m, opt.getSlot(w, first).value], [result.v, opt.getSlot(w, second).value],
              [Tensor.scalar(result.schedule, dtype), schedule]] as const;
            expect(result.iterations).toBe(opt.iterations);
            if (s < EXACT_STEPS[dtype]) {
              for (const [got, want] of pairs) expect(bits(got), where).toEqual(bits(want));
            }
            const u = Math.max(...pairs.map(([got, want]) => maxUlp(got, want as Tensor)));
            if (u > 0) inexact++;
            worst = Math.max(worst, u);
          }
          console.log(`exported ${flavour} ${dtype}: ${inexact} of ${STEPS[dtype]} steps not bit-exact, max ${worst} ULP`);
          expect(worst).toBeLessThanOrEqual(BOUND[dtype]);
        } finally {
          await step.dispose();
        }
      });
    }
  }
});

/**
 * Replays a parity fixture with the exported step alone: the model carries the whole state (variable,
 * m, v, iterations, schedule) from step to step; kerasopt only supplies the gradients and the
 * hyperparameters as the flavour holds them. Returns the records that fail the fixture's tolerance.
 */
async function replayWithExportedStep(fixture: Fixture): Promise<{ compared: number; failing: string[]; maxUlp: number }> {
  const m = fixture.manifest;
  const opt = Nadam.fromConfig(m.config, { flavour: m.flavour, onWarning: () => {} });
  const step = await OnnxNadamStep.load(exportNadamStep({ flavour: m.flavour, dtype: m.dtype }), { intraOpNumThreads: 1 });
  const [first, second] = opt.recipe.slotNames;
  const state = new Map(m.variables.map((spec) => {
    const w = fixture.initial.get(`var:${spec.name}`)!.clone() as FloatTensor;
    return [spec.name, { w, m: Tensor.zeros(m.dtype, w.shape) as FloatTensor, v: Tensor.zeros(m.dtype, w.shape) as FloatTensor }];
  }));
  const probe = new Variable(Tensor.zeros(m.dtype, [1]), { name: 'probe' });
  opt.build([probe]);
  let iterations = 0;
  let schedule = 1;
  for (const [key, value] of fixture.initial) {
    const slot = /^slot:([a-z_]+):(.+)$/.exec(key);
    if (key.startsWith('var:')) continue;
    if (slot && (slot[1] === first || slot[1] === second)) state.get(slot[2]!)![slot[1] === first ? 'm' : 'v'] = value.clone() as FloatTensor;
    else if (key === 'weight:iterations') iterations = value.get(0);
    else if (key === `weight:${opt.recipe.scheduleWeight}`) schedule = value.get(0);
    else throw new Error(`${m.name}: unexpected initial record ${key}`);
  }
  const tolerance = m.dtype === 'float64' && m.tolerance.kind === 'exact' ? FLOAT64_REPLAY : m.tolerance;
  const failing: string[] = [];
  let compared = 0;
  let maxUlp = 0;
  try {
    for (let s = 0; s < m.steps; s++) {
      const records = fixture.steps[s]!;
      let nextSchedule = schedule;
      for (const spec of m.variables) {
        const st = state.get(spec.name)!;
        const g = records.get(`grad:${spec.name}`) as FloatTensor;
        const hyper = nadamStepFeeds(opt, probe, Tensor.zeros(m.dtype, [1]));
        const r = await step.run({ ...hyper, variable: st.w, gradient: g, m: st.m, v: st.v, iterations, schedule });
        Object.assign(st, { w: r.variable, m: r.m, v: r.v });
        nextSchedule = r.schedule;
      }
      iterations++;
      schedule = nextSchedule;
      for (const [key, expected] of records) {
        const slot = /^slot:([a-z_]+):(.+)$/.exec(key);
        let actual: Tensor;
        if (key.startsWith('grad')) continue;
        if (key.startsWith('var:')) actual = state.get(key.slice(4))!.w;
        else if (slot) actual = slot[1] === first ? state.get(slot[2]!)!.m : state.get(slot[2]!)!.v;
        else if (key === 'weight:iterations') actual = Tensor.scalar(iterations, 'float64');
        else if (key === `weight:${opt.recipe.scheduleWeight}`) actual = Tensor.scalar(schedule, m.dtype);
        else throw new Error(`${m.name}: unexpected record ${key}`);
        const e = expected.dtype === 'int64' ? Tensor.from(expected.toArray(), 'float64', expected.shape) : expected;
        const d = compareTensors(actual, e, expected.dtype === 'int64' ? { kind: 'exact' } : tolerance);
        compared++;
        if (key !== 'weight:iterations') maxUlp = Math.max(maxUlp, Number.isFinite(d.maxUlp) ? d.maxUlp : Infinity);
        if (d.failing > 0) failing.push(`step ${s + 1} ${key}: ${d.failing} element(s) off, max ${d.maxUlp} ULP`);
      }
    }
  } finally {
    await step.dispose();
  }
  return { compared, failing, maxUlp };
}

/**
 * The exported step uses glibc's pow (onnxruntime's), the reference fixtures a correctly rounded one;
 * in float64 they first disagree at t = 31 (0.999^t), and the exported run then carries its own state.
 * Promised for the float64 `exact` fixtures: every element within 64 ULP at every step, the same bound as
 * the step-by-step comparison above (measured worst: 16, on tf-keras-new-float64-awkward).
 */
const FLOAT64_REPLAY = { kind: 'ulp', maxUlp: 64 } as const;

describe('an exported step replays the shipped parity fixtures (dense, unclipped) on its own', () => {
  const eligible = shippedFixtures().filter((file) => {
    const f = loadFixture(file).manifest;
    const clipped = ['clipnorm', 'clipvalue', 'global_clipnorm'].some((k) => f.config[k] !== undefined && f.config[k] !== null);
    return !clipped && f.variables.every((v) => v.gradient === 'dense');
  });
  it('has fixtures to replay', () => {
    if (eligible.length === 0) console.warn('\n*** 0 dense unclipped fixtures shipped: the exported step was replayed against none ***\n');
    expect(eligible.length).toBeGreaterThan(0);
  });
  for (const file of eligible) {
    it(`${basename(file, '.json')}: passes within the fixture's own tolerance (float64 exact: 64 ULP)`, async () => {
      const r = await replayWithExportedStep(loadFixture(file));
      console.log(`exported step on ${basename(file, '.json')}: ${r.compared} records, max ${r.maxUlp} ULP`);
      expect(r.compared).toBeGreaterThan(0);
      expect(r.failing).toEqual([]);
    });
  }
});
