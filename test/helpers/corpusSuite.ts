import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optimizerFromState, readOptimizerState, saveOptimizerState, type KerasOptimizerState } from '../../src/formats/index.js';
import { isNadamState } from '../../src/formats/restore.js';
import { sameBits } from '../../src/formats/state.js';
import { Tensor } from '../../src/index.js';
import { ulpDistance } from '../../src/parity/compare.js';
import type { FloatDType } from '../../src/tensor/dtype.js';
import {
  assertNoProblems, changedFiles, cli, copyItem, CORPUS_DIR, datasetPath, ensureBuilt, expectedIterations, expectedWeights, h5Facts, hexOf, inModel,
  IS_DEFAULT_CORPUS, kerasoptSchedule, loadCorpus, referenceSchedule, release, structureDifferences, weightProblems, zipDifferences,
  zipEntries, type CorpusItem,
} from './corpus.js';
import { h5dumpDifferences, h5dumpMissing, h5dumpStructure, tensorOfDump } from './kerasFiles.js';
import { missingPython } from './python.js';

/**
 * The suite over a real-file corpus: every loadable item as its manifest.json lists it (.h5/.hdf5/
 * .weights.h5, .keras, TF checkpoints and SavedModels). Per item: read against the manifest's facts
 * (read without kerasopt), h5py's bytes, the CLI's stable outputs, an unchanged write-back
 * (byte-identical), a 3-step Nadam resume (other optimizers: a changed state written back and read
 * back), and a Nadam's saved momentum schedule against kerasopt's recurrence. Nothing here is specific to one file.
 */
const TIMEOUT = 120_000;
const STEPS = 3;

let pythonWhy: string | null | undefined;
/** Whether h5py/numpy are missing (warned once; missingPython throws in CI, failing the test that needed them). */
function pythonMissing(): boolean {
  if (pythonWhy === undefined) pythonWhy = missingPython(['h5py', 'numpy']);
  return pythonWhy !== null;
}
const compact = (names: readonly string[]): string => (names.length > 8 ? `${names.slice(0, 8).join(', ')}, ... (${names.length})` : names.join(', '));

/** Where two name lists first disagree (for order/one-for-one failures). */
function listDifference(what: string, expected: readonly string[], got: readonly string[]): string[] {
  if (JSON.stringify(expected) === JSON.stringify(got)) return [];
  const i = expected.findIndex((n, k) => got[k] !== n);
  const at = i < 0 ? expected.length : i;
  return [`${what}: ${expected.length} expected, ${got.length} read; first difference at #${at}: expected '${expected[at] ?? '(end)'}', got '${got[at] ?? '(end)'}'`];
}

/** Defines the whole suite over the corpus at `dir` (a manifest.json beside the files). */
export function corpusSuite(dir: string, isDefault: boolean): void {
  const { items, problem } = loadCorpus(dir);
  const work = mkdtempSync(join(tmpdir(), 'kerasopt-corpus-'));
  const failed = new Map<string, string[]>();
  const partial = new Set<string>();
  const ran = new Set<string>();
  const ctx: SuiteContext = { work, failed, partial, ran };
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    if (!items.length) return;
    const passed = items.filter((i) => ran.has(i.id) && !failed.has(i.id) && !partial.has(i.id));
    const lines = [...failed].map(([id, tests]) => `  FAILED ${id}: ${tests.join('; ')}`);
    for (const id of partial) if (!failed.has(id)) lines.push(`  NOT FULLY CHECKED ${id}: a cross-check tool was missing`);
    console.log(`\n${passed.length} real files checked (of ${items.length} loadable items in ${dir})\n${lines.join('\n')}`);
  });

  if (problem) {
    describe(`real corpus ${dir}`, () => {
      it('0 real files checked', () => {
        console.warn(`\n*** REAL CORPUS: 0 real files checked: ${problem}. Nothing real was verified. ***\n`);
        if (process.env.CI && isDefault) throw new Error(`0 real files checked in CI: ${problem}`);
      });
    });
  } else {
    beforeAll(() => {
      const note = ensureBuilt(); // the CLI checks run dist/src/cli/main.js
      if (note) console.warn(note);
    }, TIMEOUT);
  }

  for (const item of items) describe(`${item.kind} ${item.id}`, () => defineItem(item, ctx));
}

interface SuiteContext {
  readonly work: string;
  readonly failed: Map<string, string[]>;
  readonly partial: Set<string>;
  readonly ran: Set<string>;
}

function defineItem(item: CorpusItem, ctx: SuiteContext): void {
  const { work, failed, partial, ran } = ctx;
  let cached: Promise<KerasOptimizerState> | undefined;
  const state = (): Promise<KerasOptimizerState> =>
    (cached ??= readOptimizerState(item.path).catch((e: Error) => {
      throw new Error(`readOptimizerState(${item.id}) failed: ${e.message}`);
    }));
  const check = (what: string, fn: () => Promise<void>): void => {
    it(`${item.id}: ${what}`, async () => {
      ran.add(item.id);
      try {
        await fn();
      } catch (e) {
        failed.set(item.id, [...(failed.get(item.id) ?? []), what.split(':')[0]!]);
        throw e;
      }
    }, TIMEOUT);
  };
  const h5 = item.kind === 'hdf5' || item.kind === 'keras-archive';
  const noPython = (): boolean => (pythonMissing() ? (partial.add(item.id), true) : false);

  check('read: iterations and every optimizer weight (name/index, shape, dtype, value or min/max) as the manifest says, one for one, in file order', async () => {
    const s = await state();
    const problems: string[] = [];
    const iterations = expectedIterations(item.entry);
    if (iterations === null) console.warn(`*** ${item.id}: the manifest records no iteration count ***`);
    else if (s.iterations !== iterations) problems.push(`iterations: manifest ${iterations}, read ${s.iterations}`);
    const { weights, ordered } = expectedWeights(item.entry);
    const byName = new Map(s.weights.map((w) => [w.name, w]));
    if (ordered) problems.push(...listDifference('optimizer weights in file order', weights.map((w) => w.name), s.weights.map((w) => w.name)));
    else {
      // Bundles: the manifest lists slots and scalars by key, not in any order; the state's weights are a subset plus the iteration counter.
      const known = new Set(weights.map((w) => w.name));
      for (const w of s.weights) {
        const isCounter = w.value.dtype === 'int64' && w.value.size === 1 && w.value.get(0) === iterations;
        if (!known.has(w.name) && !isCounter) problems.push(`${w.name}: in state.weights but not in the manifest`);
      }
      for (const e of weights) if (e.value === undefined && !byName.has(e.name)) problems.push(`${e.name}: in the manifest (a slot) but not in state.weights`);
      const schedule = s.schedule;
      const saved = schedule && weights.find((e) => e.value !== undefined && e.name.endsWith(`/${schedule.name}`));
      if (schedule && saved && !schedule.reconstructed) problems.push(...weightProblems(`schedule ${schedule.name}`, schedule.value, saved));
    }
    for (const e of weights) {
      const w = byName.get(e.name);
      if (w) problems.push(...weightProblems(e.name, w.value, e));
    }
    // Slots are the file's weights, tied to variables; a saved schedule is one of the weights.
    for (const slot of s.slots) {
      const w = byName.get(slot.weightName);
      if (!w || !sameBits(w.value, slot.value)) problems.push(`slot ${slot.variable}/${slot.slot}: weightName '${slot.weightName}' is ${w ? 'another tensor' : 'no weight'} of state.weights`);
    }
    const schedule = s.schedule;
    if (schedule && !schedule.reconstructed && !s.weights.some((w) => sameBits(w.value, schedule.value))) problems.push(`schedule ${schedule.name} says saved, but no weight holds its bits`);
    // the class as the file names it (TF 2.11-2.15's 'Custom>Adam' included)
    const recorded = (item.entry.optimizer_config as { class_name?: unknown } | undefined)?.class_name;
    if (typeof recorded === 'string' && s.className !== recorded) problems.push(`className: manifest ${recorded}, read ${s.className}`);
    const r = release(s) as { range?: unknown; layout?: unknown; evidence?: unknown } | undefined;
    if (typeof r?.range !== 'string' || typeof r.layout !== 'string' || !Array.isArray(r.evidence)) problems.push(`state.release should be {range, layout, evidence[]}, got ${JSON.stringify(r)}`);
    assertNoProblems(problems, `${item.id}: read vs manifest.json`);
  });

  if (h5) {
    check("h5py: every optimizer weight equals h5py's dataset bit for bit, and h5py finds no other optimizer dataset", async () => {
      const s = await state();
      if (noPython()) return;
      const facts = h5Facts(item.path);
      const problems: string[] = [];
      for (const w of s.weights) {
        const d = facts.datasets[datasetPath(w.name)];
        if (!d?.hex) {
          problems.push(`${w.name}: h5py finds no optimizer dataset ${datasetPath(w.name)}`);
          continue;
        }
        const theirs = tensorOfDump(d as { dtype: string; shape: number[]; hex: string });
        if (!sameBits(w.value, theirs)) problems.push(`${w.name}: kerasopt ${w.value.dtype}[${w.value.shape}] differs from h5py ${d.dtype}[${d.shape}] (first values ${w.value.size ? w.value.get(0) : '-'} vs ${theirs.size ? theirs.get(0) : '-'})`);
      }
      const read = new Set(s.weights.map((w) => datasetPath(w.name)));
      for (const [p, d] of Object.entries(facts.datasets)) if (d.hex && !read.has(p)) problems.push(`h5py dataset ${p} is not in state.weights`);
      assertNoProblems(problems, `${item.id}: read vs h5py`);
    });
  }

  check('cli: inspect --json and config show exit 0 with the stable fields; iterations, flavour and slots agree with the state', async () => {
    const s = await state();
    const [inspect, config] = await Promise.all([cli(['inspect', item.path, '--json']), cli(['config', 'show', item.path])]);
    const problems: string[] = [];
    if (config.code !== 0) problems.push(`config show exited ${config.code}: ${config.err.trim()}`);
    else {
      const line = config.out.split('\n').find((l) => l.startsWith('flavour:'));
      if (!line) problems.push(`config show prints no 'flavour:' line:\n${config.out}`);
      else if (line.split(/\s+/)[1] !== s.flavour) problems.push(`config show '${line}', state flavour ${s.flavour}`);
    }
    if (inspect.code !== 0) assertNoProblems([`inspect --json exited ${inspect.code}: ${inspect.err.trim()}`, ...problems], `${item.id}: CLI`);
    let j: Record<string, unknown> & { slots?: Array<Record<string, unknown>> } = {};
    try {
      j = JSON.parse(inspect.out) as typeof j;
    } catch (e) {
      assertNoProblems([`inspect --json printed no JSON (${(e as Error).message}): ${inspect.out.slice(0, 200)}`, ...problems], `${item.id}: CLI`);
    }
    const required = ['flavour', 'release', 'evidence', 'slots', ...(s.className === null ? ['fits'] : ['optimizer']), ...(s.iterations === null ? [] : ['iterations'])];
    for (const key of required) if (j[key] === undefined || j[key] === null) problems.push(`inspect --json has no '${key}'`);
    if ((j.iterations ?? null) !== s.iterations) problems.push(`inspect iterations ${String(j.iterations)}, state ${s.iterations}`);
    if (j.flavour !== s.flavour) problems.push(`inspect flavour ${String(j.flavour)}, state ${s.flavour}`);
    // inspect names the class as the file does, without the 'Custom>' of TF 2.11-2.15's registered names
    const bare = s.className === null ? null : s.className.replace(/^Custom>/, '');
    if (j.optimizer !== bare) problems.push(`inspect optimizer ${String(j.optimizer)}, file ${s.className}`);
    if (s.className === null && (!Array.isArray(j.fits) || j.fits.length < 2)) problems.push(`inspect fits ${JSON.stringify(j.fits)}: a file without a class should list the optimizers that fit`);
    const slots = Array.isArray(j.slots) ? j.slots : [];
    if (slots.length !== s.slots.length) problems.push(`inspect lists ${slots.length} slots, state has ${s.slots.length}`);
    const manifestNames = expectedWeights(item.entry).weights.map((w) => w.name);
    const names = new Set(manifestNames.length ? manifestNames : s.weights.map((w) => w.name));
    const bad = new Map<string, string[]>(); // one line per kind of problem, with the slots it hits
    const note = (kind: string, weight: unknown) => bad.set(kind, [...(bad.get(kind) ?? []), String(weight)]);
    for (const slot of slots) {
      for (const k of ['variable', 'slot', 'weight', 'shape', 'dtype', 'in_model']) if (slot[k] === undefined) note(`lack '${k}'`, slot.weight);
      if (slot.in_model !== undefined && typeof slot.in_model !== 'boolean') note("have a non-boolean 'in_model'", slot.weight);
      if (!names.has(String(slot.weight))) note("name a 'weight' that is none of the file's weight names", slot.weight);
    }
    for (const [kind, list] of bad) problems.push(`${list.length} of ${slots.length} inspect slots ${kind}: ${compact(list)}`);
    const cliOutside = slots.filter((x) => x.in_model === false).map((x) => String(x.weight)).sort();
    const stateOutside = s.slots.filter((x) => !inModel(x)).map((x) => x.weightName).sort();
    if (JSON.stringify(cliOutside) !== JSON.stringify(stateOutside)) problems.push(`slots with in_model false: inspect [${compact(cliOutside)}], state [${compact(stateOutside)}]`);
    assertNoProblems(problems, `${item.id}: CLI vs state`);
  });

  check('write-back: saving the unchanged optimizer into a copy leaves it byte-identical (.keras: every zip entry)', async () => {
    const s = await state();
    const dir = mkdtempSync(join(work, 'unchanged-'));
    const copy = copyItem(item, dir);
    // a Nadam goes through the optimizer kerasopt steps; any other optimizer's state is written back as read
    if (isNadamState(s)) await saveOptimizerState(copy, optimizerFromState(s).optimizer, { like: s });
    else await saveOptimizerState(copy, s);
    const problems = item.kind === 'keras-archive'
      ? [...zipDifferences(await zipEntries(item.path), await zipEntries(copy)), ...listDifference('files beside the copy', [basename(copy)], readdirSync(dir))]
      : changedFiles(item, copy);
    assertNoProblems(problems, `${item.id}: changed by a save of the unchanged optimizer`);
  });

  check(`resume: ${STEPS} typed steps saved with the model variables, read back (iterations, structure, slots, variables, schedule); other optimizers: every weight changed, saved, read back`, async () => {
    const s = await state();
    if (!isNadamState(s)) return changedWriteBack(item, s, work, noPython);
    const copy = copyItem(item, mkdtempSync(join(work, 'resume-')));
    const { optimizer, variables } = optimizerFromState(s, { backend: 'typed' });
    for (let step = 0; step < STEPS; step++) {
      optimizer.applyGradientsSync(variables.map((v) => [Tensor.fill(v.dtype as FloatDType, v.shape, 1e-3 * (step + 1)), v] as const));
    }
    await saveOptimizerState(copy, optimizer, { like: s, modelVariables: variables });
    const back = await readOptimizerState(copy);
    const problems: string[] = [];
    if (back.iterations !== s.iterations! + STEPS) problems.push(`iterations: read back ${back.iterations}, expected ${s.iterations} + ${STEPS}`);
    const layout = (x: KerasOptimizerState) => x.weights.map((w) => `${w.name} ${w.value.dtype}[${w.value.shape}]`);
    // An optimizer saved before its first step (no slots) gains its slots now: its saved weights must stay a prefix.
    const unbuilt = s.slots.length === 0 && back.slots.length > 0;
    const added = new Set(back.weights.slice(s.weights.length).map((w) => datasetPath(w.name)));
    problems.push(...listDifference('weights (name dtype[shape])', layout(s), unbuilt ? layout(back).slice(0, s.weights.length) : layout(back)));
    const stepped = new Map(variables.map((v) => [v.name, v]));
    const before = new Map(s.slots.map((x) => [x.weightName, x]));
    for (const slot of back.slots) {
      const v = stepped.get(slot.variable);
      if (!inModel(slot)) {
        if (!before.get(slot.weightName) || !sameBits(before.get(slot.weightName)!.value, slot.value)) problems.push(`slot ${slot.weightName} (variable not in the model): changed by the resume`);
      } else if (!v) problems.push(`slot ${slot.weightName}: its variable ${slot.variable} is not among the optimizer's variables`);
      else if (!sameBits(slot.value, optimizer.getSlot(v, slot.slot).value)) problems.push(`slot ${slot.weightName} (${slot.variable}/${slot.slot}): read back differs from the stepped optimizer's`);
    }
    for (const mv of back.variables) {
      const v = stepped.get(mv.name);
      if (!v || !sameBits(mv.value, v.value)) problems.push(`model variable ${mv.name}: read back ${v ? 'differs from the stepped variable' : 'is not one of the optimizer variables'}`);
    }
    const schedule = optimizer.getWeight(s.schedule!.name).value;
    if (!sameBits(back.schedule!.value, schedule)) problems.push(`schedule ${s.schedule!.name}: read back ${back.schedule!.value.get(0)}, the stepped optimizer holds ${schedule.get(0)}`);
    if (!s.schedule!.reconstructed && !noPython()) {
      const expected = referenceSchedule({ flavour: s.flavour, dtype: s.schedule!.value.dtype, config: s.config, iterations: s.iterations!, hex: hexOf(s.schedule!.value), steps: STEPS });
      if (expected !== hexOf(back.schedule!.value)) {
        problems.push(`schedule ${s.schedule!.name}: numpy reference from the saved ${s.schedule!.value.get(0)} gives 0x${expected} after ${STEPS} steps, the file holds 0x${hexOf(back.schedule!.value)}`);
      }
    }
    if (item.kind === 'keras-archive') {
      const [a, b] = [await zipEntries(item.path), await zipEntries(copy)];
      delete a['model.weights.h5'];
      delete b['model.weights.h5'];
      problems.push(...zipDifferences(a, b).map((d) => `archive entry ${d}`));
    }
    if (h5 && !noPython()) {
      const differences = structureDifferences(h5Facts(item.path), h5Facts(copy));
      problems.push(...differences.filter((d) => !(unbuilt && added.has(/^dataset (.*) is new$/.exec(d)?.[1] ?? ''))).map((d) => `h5py: ${d}`));
      if (unbuilt) console.log(`  ${item.id}: saved before its first step; h5dump structure not compared (the slots are new)`);
      else if (!h5dumpMissing()) {
        const [original, ours] = item.kind === 'keras-archive' ? await extractWeights(work, item.path, copy) : [item.path, copy];
        const group = s.weights.some((w) => w.name.startsWith('optimizer/')) ? '/optimizer' : '/optimizer_weights';
        problems.push(...h5dumpDifferences(h5dumpStructure(original, group), h5dumpStructure(ours, group)).map((d) => `h5dump ${group}: ${d}`));
      }
    }
    assertNoProblems(problems, `${item.id}: read back after the resume`);
  });

  check("schedule: a saved, non-zero momentum_cache / m_schedule / u_product equals kerasopt's recurrence from iterations and config (0 ULP)", async () => {
    const s = await state();
    if (!isNadamState(s)) {
      expect(s.schedule, `${item.id}: a ${s.className ?? 'unrecorded'} optimizer has no momentum schedule`).toBeNull();
      return;
    }
    const saved = s.schedule!.value.get(0);
    if (s.schedule!.reconstructed || saved === 0) {
      console.log(`  ${item.id}: ${s.schedule!.name} ${s.schedule!.reconstructed ? 'is not saved (reconstructed)' : 'underflowed to 0'} after ${s.iterations} steps: no recurrence check`);
      return;
    }
    const dtype = s.schedule!.value.dtype as FloatDType;
    const ours = kerasoptSchedule(s.flavour, dtype, s.config, s.iterations!);
    const ulps = ulpDistance(ours, saved, dtype);
    console.log(`  ${item.id}: ${s.flavour} ${s.schedule!.name} after ${s.iterations} steps: saved ${saved}, kerasopt ${ours} (${ulps} ULP)`);
    expect(ulps, `${item.id}: ${s.schedule!.name} saved ${saved} after ${s.iterations} steps, kerasopt's recurrence gives ${ours}`).toBe(0);
  });
}

/** The model.weights.h5 of two archives, written to a scratch folder for h5dump. */
async function extractWeights(work: string, a: string, b: string): Promise<[string, string]> {
  const dir = mkdtempSync(join(work, 'h5dump-'));
  const out: string[] = [];
  for (const [i, file] of [a, b].entries()) {
    const entry = (await zipEntries(file))['model.weights.h5'];
    if (!entry) throw new Error(`${file} has no model.weights.h5`);
    out.push(join(dir, `${i}.h5`));
    writeFileSync(out[i]!, entry);
  }
  return [out[0]!, out[1]!];
}

/**
 * A state kerasopt does not step (any optimizer but Nadam): every float weight gets new bits (x -> x + 1),
 * iterations one more, saved into a copy of the file with the state API, read back: the same weights
 * (names, dtypes, shapes) with exactly the new bits, every other optimizer weight unchanged, and the
 * file's structure per h5py and h5dump unchanged.
 */
async function changedWriteBack(item: CorpusItem, s: KerasOptimizerState, work: string, noPython: () => boolean): Promise<void> {
  const copy = copyItem(item, mkdtempSync(join(work, 'changed-')));
  const bump = (t: Tensor): Tensor => {
    if (t.dtype === 'int64') return Tensor.scalar(BigInt(t.get(0)) + 1n, 'int64');
    const out = t.clone();
    for (let i = 0; i < out.size; i++) out.set(i, out.get(i) + 1);
    return out;
  };
  const weights = s.weights.map((w) => ({ ...w, value: bump(w.value) }));
  const changed: KerasOptimizerState = { ...s, weights };
  await saveOptimizerState(copy, changed);
  const back = await readOptimizerState(copy, s.className === null ? {} : { optimizer: s.className });
  const problems: string[] = [];
  problems.push(...(back.weights.length !== weights.length ? [`read back ${back.weights.length} weights, wrote ${weights.length}`] : []));
  back.weights.forEach((w, i) => {
    const want = weights[i];
    if (!want || w.name !== want.name || !sameBits(w.value, want.value)) problems.push(`${w.name}: read back ${w.value.dtype}[${w.value.shape}] differs from the written ${want?.name}`);
  });
  if (s.iterations !== null && back.iterations !== s.iterations + 1) problems.push(`iterations: read back ${back.iterations}, wrote ${s.iterations + 1}`);
  if (back.className !== s.className) problems.push(`class: read back ${back.className}, was ${s.className}`);
  if ((item.kind === 'hdf5' || item.kind === 'keras-archive') && !noPython()) {
    const [original, ours] = item.kind === 'keras-archive' ? await extractWeights(work, item.path, copy) : [item.path, copy];
    problems.push(...structureDifferences(h5Facts(original), h5Facts(ours)).map((d) => `h5py: ${d}`));
    if (!h5dumpMissing()) {
      const group = s.weights.some((w) => w.name.startsWith('optimizer/')) ? '/optimizer' : '/optimizer_weights';
      problems.push(...h5dumpDifferences(h5dumpStructure(original, group), h5dumpStructure(ours, group)).map((d) => `h5dump ${group}: ${d}`));
    }
  }
  assertNoProblems(problems, `${item.id}: changed state written back`);
}
