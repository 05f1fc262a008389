/**
 * Moves a Nadam optimizer state from one Keras file into another model file of any release and
 * format (docs/transplant.md): read the source, match its variables to the target's, convert the
 * config and the momentum-schedule scalar to the target flavour, build a Nadam of that flavour on the
 * target's variables and save it in the target release's layout.
 */
import { DEFAULT_DIALECT } from '../../config/dialects.js';
import { dumpsPython } from '../../config/pyjson.js';
import { KerasValueError } from '../../errors.js';
import { FLAVOUR_LIST, type Flavour } from '../../optimizers/flavour.js';
import { Nadam } from '../../optimizers/nadam/index.js';
import { RECIPES } from '../../optimizers/nadam/recipes.js';
import type { FloatDType } from '../../tensor/dtype.js';
import { Tensor } from '../../tensor/tensor.js';
import { Variable } from '../../tensor/variable.js';
import { addNadamToBundle } from '../checkpoint/addOptimizer.js';
import { TensorBundle } from '../checkpoint/bundle.js';
import { checkpointPrefix } from '../checkpoint/nadam.js';
import { updateBundleTensors } from '../checkpoint/update.js';
import { readOptimizerState } from '../read.js';
import { isNadamState } from '../restore.js';
import { sameBits, type KerasOptimizerState } from '../state.js';
import { saveOptimizerState } from '../write.js';
import { convertSchedule, convertStateConfig, type ScheduleConversion } from './convert.js';
import { matchVariables, type MatchTable } from './match.js';
import { FORMAT_FLAVOURS } from '../write.js';
import { copyTarget, describeTarget, removeCopy, type TargetInfo } from './target.js';

export { matchVariables, matchTableText, layerOf, type MatchTable, type VariableMatch, type MatchRule } from './match.js';
export { scheduleAfter, convertSchedule, type ScheduleConversion } from './convert.js';

/** Options of {@link transplantOptimizerState}. */
export interface TransplantOptions {
  /** Write into a copy of the target at this path (a file, a checkpoint prefix or a SavedModel folder; must not exist). Default: the target, in place. */
  readonly output?: string;
  /** SOURCE_VAR -> TARGET_VAR pairs that override the matching (names as `inspect` prints them). */
  readonly map?: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  /** The flavour to write (default: the flavour of the target's Keras release). */
  readonly to?: Flavour;
}

/** What a transplant did. */
export interface TransplantResult {
  readonly source: { readonly file: string; readonly format: string; readonly flavour: Flavour; readonly layout: string; readonly iterations: number };
  readonly target: { readonly file: string; readonly written: string; readonly format: string; readonly flavour: Flavour; readonly layout: string; readonly created: boolean; readonly evidence: string };
  readonly matches: MatchTable;
  /** Slots of the source that were not written, and why. */
  readonly notCarried: readonly string[];
  readonly schedule: ScheduleConversion;
  /** The optimizer config written (target flavour, target release's layout). */
  readonly config: Record<string, unknown>;
  /** Every change in behaviour or in saved state, in words (config convert's list, plus the state's). */
  readonly changes: readonly string[];
}

/**
 * Reads the Nadam state of `source` (any file kerasopt reads) and writes it into the model file
 * `target` (tf.keras / Keras 2 / TF 2.11+ .h5, TF 2.12-2.15 and Keras 3 .keras / .weights.h5, a TF2
 * checkpoint or SavedModel holding an optimizer state) in the layout the target's release writes.
 * m and v carry over bit for bit, iterations is carried, the schedule scalar follows
 * {@link convertSchedule}; the config is the source's converted to the target flavour. Variables are
 * matched by {@link matchVariables}. A KerasValueError says what cannot be done (other optimizers,
 * mismatched models, a target state of another layout that cannot be replaced in place).
 */
export async function transplantOptimizerState(source: string, target: string, options: TransplantOptions = {}): Promise<TransplantResult> {
  const s = await readOptimizerState(source);
  if (!isNadamState(s) || s.schedule === null || s.iterations === null) {
    throw new KerasValueError(`${source}: the optimizer is ${s.className === null ? `not recorded (it fits ${s.fits?.join(', ') || 'none'})` : `'${s.className}'`}; kerasopt transplants Nadam states only (every flavour: ${FLAVOUR_LIST})`);
  }
  const carried = s.slots.filter((x) => x.inModel);
  if (carried.length === 0) throw new KerasValueError(`${source} holds no slots (its optimizer was saved before its first step): there is no state to transplant`);
  const t = await describeTarget(target);
  const flavour = options.to ?? t.flavour;
  checkFlavour(t, flavour);

  const dialect = flavour === t.flavour ? t.dialect : DEFAULT_DIALECT[flavour];
  const { config, changes } = convertStateConfig(s, flavour, dialect);
  const optimizer = Nadam.fromConfig(config, { flavour, dialect, onWarning: () => {} });

  // the source's slots per variable, in kerasopt's slot order (m, v / momentum, velocity)
  const [first, second] = RECIPES[s.flavour].slotNames;
  const owners = s.variables.filter((v) => carried.some((x) => x.variable === v.name));
  const slotOf = (variable: string, slot: string) => carried.find((x) => x.variable === variable && x.slot === slot)?.value;
  for (const v of owners) {
    if (!slotOf(v.name, first) || !slotOf(v.name, second)) throw new KerasValueError(`${source}: variable '${v.name}' lacks its ${slotOf(v.name, first) ? second : first} slot`);
  }
  const map = options.map instanceof Map ? options.map : new Map(Object.entries(options.map ?? {}));
  const matches = matchVariables(owners, t.variables, map as ReadonlyMap<string, string>);
  const notCarried = [
    ...s.slots.filter((x) => !x.inModel).map((x) => `${x.variable}/${x.slot}: the source's model lacks this variable (its optimizer was reused across models)`),
    ...matches.unmatchedSources.map((n) => `${n} (${first}, ${second}): the target has no such variable`),
  ];

  const variables = t.variables.map((v) => new Variable(v.value.clone(), { name: v.name }));
  const dtype = variables[0]?.dtype;
  if (!dtype || !['float16', 'float32', 'float64'].includes(dtype)) throw new KerasValueError(`${target}: no float trainable variable to build the optimizer on`);
  optimizer.build(variables);
  const schedule = convertSchedule(s, flavour, optimizer.hyperparameters, dtype as FloatDType);
  const sourceOf = new Map(matches.rows.map((r) => [r.target, r.source]));
  const [tFirst, tSecond] = RECIPES[flavour].slotNames;
  const values = optimizer.weights.map((w) => {
    if (w === optimizer.iterationsVariable) return Tensor.scalar(BigInt(s.iterations!), 'int64');
    if (w.name === schedule.to.name) return Tensor.scalar(schedule.to.value, w.dtype);
    if (w.name === 'learning_rate') return w.value;
    for (const [mine, theirs] of [[tFirst, first], [tSecond, second]] as const) {
      const variable = w.name.endsWith(`/${mine}`) ? w.name.slice(0, -mine.length - 1) : null;
      const from = variable === null ? undefined : sourceOf.get(variable);
      if (from !== undefined) return slotOf(from, theirs)!;
    }
    throw new KerasValueError(`no value for the ${flavour} Nadam weight '${w.name}'`);
  });
  optimizer.setWeights(values);
  if (!schedule.to.saved) optimizer.getWeight(schedule.to.name).assign(Tensor.scalar(schedule.to.value, dtype));

  const written = options.output ? copyTarget(target, options.output) : target;
  let back: KerasOptimizerState;
  try {
    const like = t.state ? await readOptimizerState(written) : null;
    if (t.format === 'tf-checkpoint' && !t.state) changes.push(...(await addNadamToBundle(written, checkpointPrefix(written)!, optimizer)));
    else {
      await saveOptimizerState(written, optimizer, like ? { like } : { format: t.format, ...(t.keras2Layout ? { keras2Layout: t.keras2Layout } : {}), ...(t.stringStyle ? { stringStyle: t.stringStyle } : {}), ...(t.nameListStyle ? { nameListStyle: t.nameListStyle } : {}) });
      if (t.format === 'tf-checkpoint') changes.push(...(await writeCheckpointHypers(written, t, optimizer)));
    }
    back = await readOptimizerState(written);
    checkWritten(back, s, matches, schedule, written);
  } catch (e) {
    if (options.output) removeCopy(target, written); // a failed transplant leaves no half-made output
    throw e;
  }
  changes.push(...stateChanges(s, t, flavour, config, schedule, back));
  return {
    source: { file: source, format: s.format, flavour: s.flavour, layout: s.release.layout, iterations: s.iterations },
    target: { file: target, written, format: back.format, flavour: back.flavour, layout: back.release.layout, created: !t.state || t.state.slots.length === 0, evidence: t.evidence },
    matches, notCarried, schedule, config, changes,
  };
}

/** Refuses a flavour the target cannot hold, or a target state that cannot be replaced in place. */
function checkFlavour(t: TargetInfo, flavour: Flavour): void {
  if (!FORMAT_FLAVOURS[t.format].includes(flavour)) {
    throw new KerasValueError(`${t.file} is a ${t.format} file, which holds ${FORMAT_FLAVOURS[t.format].join(' or ')} Nadam state; --to ${flavour} cannot be written there`);
  }
  if (t.state && t.state.flavour !== flavour) {
    throw new KerasValueError(
      `${t.file} already holds a ${t.state.flavour} optimizer state (layout ${t.state.release.layout}): kerasopt updates an existing state in place and cannot replace it ` +
        `with the ${flavour} layout (h5wasm cannot delete HDF5 objects; bundles are updated tensor by tensor). Transplant into a copy of the model saved without optimizer, or keep the target's flavour (${t.state.flavour})`,
    );
  }
}

/** optimizer_v2 checkpoints keep learning_rate, beta_1, beta_2 and decay as variables: they take the converted config's float32 values. */
async function writeCheckpointHypers(written: string, t: TargetInfo, optimizer: Nadam): Promise<string[]> {
  if (optimizer.flavour !== 'tf-keras') return [];
  const prefix = checkpointPrefix(written)!;
  const iter = t.state!.weights.find((w) => w.role?.kind === 'iterations')!.name;
  const base = iter.slice(0, iter.lastIndexOf('/'));
  const bundle = TensorBundle.open(prefix);
  const h = optimizer.hyperparameters;
  const wanted: Record<string, number> = { learning_rate: optimizer.learningRateValue(), beta_1: h.beta_1, beta_2: h.beta_2, decay: h.schedule_decay };
  const updates = new Map<string, Tensor>();
  const out: string[] = [];
  for (const [name, value] of Object.entries(wanted)) {
    const key = `${base}/${name}/.ATTRIBUTES/VARIABLE_VALUE`;
    if (!bundle.has(key)) continue;
    const current = bundle.tensor(key);
    const next = Tensor.scalar(value, current.dtype);
    if (sameBits(current, next)) continue;
    updates.set(key, next);
    out.push(`checkpoint hyperparameter variable ${base}/${name}: ${current.get(0)} -> ${next.get(0)} (the source's)`);
  }
  if (updates.size > 0) await updateBundleTensors(prefix, prefix, updates, written);
  return out;
}

/** Reads the written state back: iterations, every matched slot bit for bit, the schedule as converted. */
function checkWritten(back: KerasOptimizerState, s: KerasOptimizerState, matches: MatchTable, schedule: ScheduleConversion, file: string): void {
  const fail = (msg: string): never => {
    throw new KerasValueError(`${file}: the transplanted state does not read back as written: ${msg}`);
  };
  if (back.iterations !== s.iterations) fail(`iterations ${back.iterations}, wrote ${s.iterations}`);
  const [first, second] = RECIPES[s.flavour].slotNames;
  const [bFirst, bSecond] = RECIPES[back.flavour].slotNames;
  for (const r of matches.rows) {
    for (const [theirs, mine] of [[first, bFirst], [second, bSecond]] as const) {
      const want = s.slots.find((x) => x.variable === r.source && x.slot === theirs)!.value;
      const got = back.slots.find((x) => x.variable === r.target && x.slot === mine)?.value;
      if (!got || !sameBits(got, want)) fail(`slot ${mine} of '${r.target}' differs from the source's ${theirs} of '${r.source}'`);
    }
  }
  if (back.schedule && !back.schedule.reconstructed && back.schedule.value.get(0) !== schedule.to.value && !(Number.isNaN(schedule.to.value) && Number.isNaN(back.schedule.value.get(0)))) {
    fail(`${back.schedule.name} ${back.schedule.value.get(0)}, wrote ${schedule.to.value}`);
  }
}

/** The changes in saved state (beyond the config's): schedule, iterations, what the target held before, what its release does not save. */
function stateChanges(s: KerasOptimizerState, t: TargetInfo, flavour: Flavour, config: Record<string, unknown>, schedule: ScheduleConversion, back: KerasOptimizerState): string[] {
  const out = [schedule.text];
  if (!t.state) out.push(`the target held no optimizer state: created in the ${back.release.layout} layout (${back.release.range})`);
  else if (t.state.slots.length === 0) out.push(`the target's optimizer was saved before its first build (iteration ${t.state.iterations}, no slots): its slots and ${RECIPES[flavour].scheduleWeight} were created in the ${back.release.layout} order`);
  else if (t.state.iterations !== s.iterations) out.push(`iterations: the target's ${t.state.iterations} replaced by the source's ${s.iterations}`);
  if (t.state && t.format !== 'tf-checkpoint') {
    // both as a Nadam of the flavour reads them, so that equivalent spellings (float32 text, defaults left out) are no change
    const normal = (c: Record<string, unknown>): Record<string, unknown> => {
      try {
        return Nadam.fromConfig(c, { flavour, onWarning: () => {} }).getConfig();
      } catch {
        return c;
      }
    };
    const before = normal(t.state.config);
    config = normal(config);
    const keys = [...new Set([...Object.keys(before), ...Object.keys(config)])].filter((k) => dumpsPython(before[k] ?? null) !== dumpsPython(config[k] ?? null));
    if (keys.length > 0) out.push(`the target's optimizer config changed in ${keys.map((k) => `${k} (${dumpsPython(before[k] ?? null)} -> ${dumpsPython(config[k] ?? null)})`).join(', ')}`);
  }
  if (!schedule.to.saved) out.push(`the ${back.release.layout} layout does not save ${schedule.to.name}: Keras restarts it at 1 when it loads the file; kerasopt reconstructs it from iterations when it reads it`);
  return out;
}
