import { describe, expect, test } from 'vitest';
import { Float32Arena, Nadam, Tensor, Variable, type Flavour } from '../src/index.js';
import { bits, xorshiftValues } from './helpers/build.js';

/** Deterministic pseudo-random floats, salted with exact zeros and tiny values. */
function values(n: number, seed: number, scale: number): number[] {
  return xorshiftValues(n, seed, scale, (i, u) => (i % 97 === 0 ? 0 : i % 89 === 0 ? u * 1e-30 : undefined));
}

const FLAVOURS: Flavour[] = ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'];
const SHAPES = [[1003], [37, 5]];

/**
 * Runs `steps` steps of `flavour` on two variables, placed by `place`, and returns the bits of every
 * variable and every optimizer weight after every step.
 */
function run(flavour: Flavour, place: (values: number[], shape: number[], name: string) => Variable, gradIn?: Float32Arena, steps = 12) {
  const vars = SHAPES.map((shape, k) => place(values(shape.reduce((a, b) => a * b), 11 + k, 2), shape, `w${k}`));
  const opt = new Nadam({ flavour, learning_rate: 0.01, onWarning: () => {} });
  const trace: string[][] = [];
  for (let s = 0; s < steps; s++) {
    const pairs = vars.map((v, k) => {
      const g = values(v.value.size, 1000 * s + k + 1, 0.1);
      return [gradIn ? gradIn.from(g, v.shape) : Tensor.from(g, 'float32', v.shape), v] as const;
    });
    opt.applyGradientsSync(pairs);
    trace.push(...vars.map((v) => bits(v.value)), ...opt.getWeights().map(bits));
  }
  return { opt, vars, trace };
}

const ordinary = (v: number[], shape: number[], name: string) => new Variable(Tensor.from(v, 'float32', shape), { name });

describe('variables in a Float32Arena: slots in the same arena, steps in place, the same bits', () => {
  test.each(FLAVOURS)('%s: m and v are created in the variable\'s arena and every step is bit-identical to ordinary arrays', (flavour) => {
    const expected = run(flavour, ordinary).trace;
    const arena = new Float32Arena(Float32Arena.capacityFor(SHAPES, 3));
    const inArena = run(flavour, (v, shape, name) => arena.variable(Tensor.from(v, 'float64', shape), { name }));
    for (const v of inArena.vars) {
      for (const slot of inArena.opt.getSlotNames()) expect(Float32Arena.of(inArena.opt.getSlot(v, slot).value.data)).toBe(arena);
    }
    expect(inArena.trace).toEqual(expected);
    // with the gradients in the arena as well, everything runs in place
    const all = new Float32Arena(Float32Arena.capacityFor(SHAPES, 3) + 12 * Float32Arena.capacityFor(SHAPES, 1));
    expect(run(flavour, (v, shape, name) => new Variable(all.from(v, shape), { name }), all).trace).toEqual(expected);
  });

  test('an arena without room for the slots: they fall back to ordinary memory, with the same bits', () => {
    const expected = run('tf-keras', ordinary).trace;
    const arena = new Float32Arena(Float32Arena.capacityFor(SHAPES, 2));
    const r = run('tf-keras', (v, shape, name) => {
      const w = new Variable(arena.from(v, shape), { name });
      if (name === 'w1') arena.allocate(arena.remaining - 1008); // leave room for w0's m (1003 elements) only
      return w;
    });
    const [w0, w1] = r.vars as [Variable, Variable];
    expect(Float32Arena.of(r.opt.getSlot(w0, 'm').value.data as Float32Array)).toBe(arena);
    for (const [v, slot] of [[w0, 'v'], [w1, 'm'], [w1, 'v']] as const) {
      expect(Float32Arena.of(r.opt.getSlot(v, slot).value.data as Float32Array)).toBeUndefined();
    }
    expect(r.trace).toEqual(expected);
  });

  test('float64 variables and variables outside any arena get ordinary slots', () => {
    const opt = new Nadam();
    const a = new Variable(Tensor.from([1, 2], 'float64'), { name: 'a' });
    const b = new Variable(Tensor.from([1, 2], 'float32'), { name: 'b' });
    opt.applyGradientsSync([[Tensor.from([0.1, 0.2], 'float64'), a], [Tensor.from([0.1, 0.2], 'float32'), b]]);
    for (const v of [a, b]) expect(Float32Arena.of(opt.getSlot(v, 'm').value.data as Float32Array)).toBeUndefined();
  });

  test('the arena cannot grow, so no array it handed out is ever detached', () => {
    const arena = new Float32Arena(Float32Arena.capacityFor([[100]]));
    const w = arena.variable(values(100, 3, 1), { name: 'w' });
    const opt = new Nadam();
    opt.applyGradientsSync([[arena.from(values(100, 4, 0.1)), w]]);
    const m = opt.getSlot(w, 'm').value.data as Float32Array;
    const before = bits(w.value);
    expect(() => arena.memory.grow(1)).toThrow(RangeError);
    expect(w.value.data.byteLength).toBe(400);
    expect(m.byteLength).toBe(400);
    expect(bits(w.value)).toEqual(before);
    opt.applyGradientsSync([[arena.from(values(100, 5, 0.1)), w]]);
    expect(bits(w.value)).not.toEqual(before);
  });

  test('setWeights writes into the arena slots; getWeights returns copies outside it', () => {
    const arena = new Float32Arena(Float32Arena.capacityFor([[64]]));
    const w = arena.variable(values(64, 7, 1), { name: 'w' });
    const opt = new Nadam();
    opt.build([w]);
    const weights = opt.getWeights();
    weights[2] = Tensor.from(values(64, 8, 1), 'float32');
    opt.setWeights(weights);
    const m = opt.getSlot(w, 'm');
    expect(Float32Arena.of(m.value.data as Float32Array)).toBe(arena);
    expect(bits(m.value)).toEqual(bits(weights[2]!));
    expect(Float32Arena.of(opt.getWeights()[2]!.data as Float32Array)).toBeUndefined();
  });

  test('arena.variable copies its initial value (rounded to float32) and refuses what does not fit', () => {
    const arena = new Float32Arena(8);
    const v = arena.variable(Tensor.from([0.1, 2], 'float64', [2, 1]), { name: 'x', trainable: false });
    expect(v.name).toBe('x');
    expect(v.trainable).toBe(false);
    expect(v.shape).toEqual([2, 1]);
    expect(v.value.toArray()).toEqual([Math.fround(0.1), 2]);
    expect(Float32Arena.of(v.value.data)).toBe(arena);
    const left = arena.remaining;
    expect(() => arena.variable(new Array(left + 1).fill(1))).toThrow(/full/);
    expect(arena.remaining).toBe(left);
    expect(Float32Arena.capacityFor([[1], [17]])).toBe(4 * 16 + 4 * 32);
  });
});
