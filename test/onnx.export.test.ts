import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportNadamStep, Nadam, nadamStepFeeds, OnnxNadamStep, Tensor, Variable, type FloatDType, type Flavour } from '../src/index.js';
import { missingPython, python } from './helpers/python.js';
import { bits, maxUlp, random } from './onnx.util.js';

const dir = mkdtempSync(join(tmpdir(), 'kerasopt-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FLAVOURS: Flavour[] = ['tf-keras', 'keras2', 'keras3'];
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
    expect(lines).toHaveLength(9);
    expect(lines[0]).toBe('tf-keras float16 8 17 variable,gradient,m,v,iterations,momentum_cache,learning_rate,beta_1,beta_2,epsilon,schedule_decay new_variable,new_m,new_v,new_iterations,new_momentum_cache');
    expect(lines[8]).toBe('keras3 float64 8 17 variable,gradient,m,v,iterations,u_product,learning_rate,beta_1,beta_2,epsilon new_variable,new_m,new_v,new_iterations,new_u_product');
  });

  it('rejects an unknown flavour or dtype', () => {
    expect(() => exportNadamStep({ flavour: 'adam' as Flavour })).toThrow(/unknown flavour 'adam'/);
    expect(() => exportNadamStep({ dtype: 'int32' as FloatDType })).toThrow(/unknown dtype 'int32'/);
  });
});

/*
 * The exported step computes its coefficients with onnxruntime's Pow (= glibc pow/powf, see
 * onnx.pow.test.ts), kerasopt's Nadam with arith().pow; the two differ by 1 ULP at some steps
 * (float32: first at t = 329, float64: first at t = 10). Each step is run from kerasopt's state and
 * compared with kerasopt's next state, so differences do not accumulate. Measured and promised:
 * float16 and float32 bit for bit on every step run here (in float32 the 1-ULP Pow differences are
 * absorbed by the roundings of 1 - 0.5 * p and v / (1 - beta_2^t) on this data); float64 within
 * 512 ULP of the state (measured worst: 384 ULP, on an element of the variable near zero, where the
 * update cancels most of its digits), bit for bit on about 95% of the steps.
 */
const STEPS: Record<FloatDType, number> = { float16: 300, float32: 1500, float64: 300 };
const EXACT_STEPS: Record<FloatDType, number> = { float16: 300, float32: 1500, float64: 0 };
const BOUND: Record<FloatDType, number> = { float16: 0, float32: 0, float64: 512 };

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
