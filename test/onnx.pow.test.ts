import { afterAll, describe, expect, it } from 'vitest';
import { arith, type FloatDType } from '../src/index.js';
import { missingPython, python } from './helpers/python.js';
import { ulp } from './onnx.util.js';
import { GraphBuilder } from '../src/onnx/graph.js';
import { createSession, loadOnnxRuntime, type OrtSession } from '../src/backends/onnx/runtime.js';

/*
 * An exported step computes its coefficients inside the graph with onnxruntime's Pow, while
 * kerasopt's Nadam uses arith().pow (float32: the float32 rounding of V8's double pow; float64:
 * V8's pow). This measures how far the two are apart over the exponents Nadam uses for the first
 * 100 000 steps, and pins the bound the README promises.
 */

const STEPS = 100_000;
const sessions: OrtSession[] = [];
afterAll(async () => { for (const s of sessions) await s.release(); });

async function ortPow(dtype: 'float32' | 'float64', bases: number[], exponents: number[]): Promise<ArrayLike<number>> {
  const b = new GraphBuilder('pow');
  const x = b.input('x', dtype, ['n']);
  const y = b.input('y', dtype, ['n']);
  b.output(b.op('Pow', [x, y], 'z'), dtype, ['n']);
  const session = await createSession(b.toModel({}), 'pow probe', { intraOpNumThreads: 1 });
  sessions.push(session);
  const ort = loadOnnxRuntime();
  const Array_ = dtype === 'float32' ? Float32Array : Float64Array;
  const out = await session.run({ x: new ort.Tensor(dtype, Array_.from(bases), [bases.length]), y: new ort.Tensor(dtype, Array_.from(exponents), [bases.length]) });
  return out.z!.data as Float32Array;
}

/** (base, exponent) pairs of Nadam's Pow ops at t = 1..STEPS+1 for the default hyperparameters. */
function nadamPows(dtype: FloatDType): { name: string; bases: number[]; exponents: number[] }[] {
  const a = arith(dtype);
  const ts = Array.from({ length: STEPS + 1 }, (_, i) => a.cast(i + 1));
  const c096 = a.cast(0.96);
  return [
    { name: '0.96^(0.004 t) (tf-keras, keras2)', bases: ts.map(() => c096), exponents: ts.map((t) => a.mul(a.cast(0.004), t)) },
    { name: '0.96^t (keras3)', bases: ts.map(() => c096), exponents: ts },
    { name: 'beta_2^t, beta_2 = 0.999', bases: ts.map(() => a.cast(Math.fround(0.999))), exponents: ts },
  ];
}

/** glibc's pow / powf (called through ctypes, not numpy, whose SIMD pow is another implementation) on the same pairs. */
function cPow(dtype: 'float32' | 'float64', bases: number[], exponents: number[]): Float64Array {
  const out = python(
    `import sys, json, ctypes, struct
libm = ctypes.CDLL('libm.so.6')
t = ctypes.c_float if json.loads(sys.stdin.readline()) == 'float32' else ctypes.c_double
f = libm.powf if t is ctypes.c_float else libm.pow
f.restype = t
f.argtypes = [t, t]
d = json.load(sys.stdin)
sys.stdout.write(struct.pack('<%dd' % len(d['b']), *(f(b, e) for b, e in zip(d['b'], d['e']))).hex())`,
    [],
    `${JSON.stringify(dtype)}\n${JSON.stringify({ b: bases, e: exponents })}`,
  );
  return new Float64Array(Buffer.from(out, 'hex').buffer.slice(0));
}

describe("onnxruntime's Pow vs kerasopt's arith pow on Nadam's exponents", () => {
  for (const dtype of ['float32', 'float64'] as const) {
    it(`${dtype}: at most 1 ULP apart over ${STEPS} steps (mismatch counts logged)`, async () => {
      for (const { name, bases, exponents } of nadamPows(dtype)) {
        const got = await ortPow(dtype, bases, exponents);
        let mismatches = 0;
        let maxUlp = 0;
        let first = -1;
        for (let i = 0; i < bases.length; i++) {
          const want = arith(dtype).pow(bases[i]!, exponents[i]!);
          const d = ulp(got[i]!, want, dtype);
          if (d > 0) {
            mismatches++;
            if (first < 0) first = i + 1;
          }
          maxUlp = Math.max(maxUlp, d);
        }
        console.log(`Pow ${dtype} ${name}: ${mismatches} of ${bases.length} steps differ (first at t=${first}), max ${maxUlp} ULP`);
        expect(maxUlp, name).toBeLessThanOrEqual(1);
        if (!missingPython(['ctypes'])) {
          const c = cPow(dtype, bases, exponents);
          let ortOff = 0;
          let arithOff = 0;
          for (let i = 0; i < bases.length; i++) {
            if (ulp(got[i]!, c[i]!, dtype) > 0) ortOff++;
            if (ulp(arith(dtype).pow(bases[i]!, exponents[i]!), c[i]!, dtype) > 0) arithOff++;
          }
          console.log(`  vs glibc ${dtype === 'float32' ? 'powf' : 'pow'}: onnxruntime differs at ${ortOff}, kerasopt arith at ${arithOff} of ${bases.length}`);
          // glibc's pow is what onnxruntime's double Pow calls (and TF's CPU Pow): pinned exactly.
          if (dtype === 'float64') expect(ortOff, name).toBe(0);
        }
      }
    });
  }
});
