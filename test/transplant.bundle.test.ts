import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TensorBundle } from '../src/formats/checkpoint/bundle.js';
import { openCheckpointGraph } from '../src/formats/checkpoint/nadam.js';
import { readTable } from '../src/formats/checkpoint/sstable.js';
import { buildTable } from '../src/formats/checkpoint/tableWriter.js';
import { readOptimizerState } from '../src/formats/index.js';
import { transplantOptimizerState } from '../src/formats/transplant/index.js';
import { CORPUS_DIR, hexOf } from './helpers/corpus.js';
import { missingPython, PYTHON } from './helpers/python.js';

/*
 * Issue 14, item 2 / 3 for TF2 tensor bundles: adding an optimizer to a checkpoint saved without one.
 * The targets are real TF-written bundles of the corpus with their optimizer taken out by an
 * independent Python writer (test/helpers/strip_optimizer.py: what TF writes for the same model saved
 * before compile); the transplant puts an optimizer back, and the result is compared with the real file.
 */

const REAL = {
  // Keras Tuner's model.save_weights checkpoint (TF 2.x, optimizer_v2 Nadam, 60 steps): Dense 32 on 8 inputs, Dense 1
  tuner: 'sonu275981__Diabetes_by-using-keras-hyperparameter/my_dir/my_project/trial_772d3985cf54cc3f97f74581031c4f4d/checkpoints/epoch_0/checkpoint',
  // TF 2.10 SavedModel (726 steps): Dense 30 on 8 inputs, Dense 1; its graph records has_checkpoint_values
  savedmodel: 'SiddharthYadav-v__ML-with-sklearn-keras-tf/my_model_with_a_custom_loss',
  h5: 'sankalptambe__tf-custom-models/my_model_with_a_custom_loss.h5',
  keras313: 'quanai06__hands-on_machine_learning_with_Scikit-learn/my_model_with_a_custom_loss.keras',
} as const;
const at = (id: string): string => join(CORPUS_DIR, id);
const SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';

const scratch = mkdtempSync(join(tmpdir(), 'kerasopt-transplant-bundle-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string): string => join(mkdtempSync(join(scratch, `${counter++}-`)), name);
let noPython: string | null = null;
beforeAll(() => {
  for (const id of Object.values(REAL)) if (!existsSync(at(id)) && !existsSync(`${at(id)}.index`)) throw new Error(`corpus item ${id} is missing from ${CORPUS_DIR}`);
  noPython = missingPython(['numpy']);
  if (noPython && process.env.CI) throw new Error(noPython);
});

/** The real bundle at `prefix` without its optimizer, written by the Python helper at a new prefix. */
function stripped(prefix: string): { prefix: string; kept: string[]; dropped: string[] } {
  const out = fresh('bare');
  const r = JSON.parse(execFileSync(PYTHON, [resolve('test/helpers/strip_optimizer.py'), prefix, out], { encoding: 'utf8' })) as { kept: string[]; dropped: string[] };
  return { prefix: out, ...r };
}

function crcErrors(prefix: string): string[] {
  return (JSON.parse(execFileSync(PYTHON, [resolve('test/helpers/bundle_check.py'), prefix], { encoding: 'utf8' })) as { errors: string[] }).errors;
}

/** The object graph by object path: each node's children (local name -> path), attributes and slot references, ids left out. */
function graphByPath(prefix: string): Record<string, unknown> {
  const g = openCheckpointGraph(prefix, prefix);
  const slotPath = new Map<number, string>();
  for (const n of g.nodes) for (const s of n.slot_variables) slotPath.set(s.slot_variable_node_id, `${g.paths.get(s.original_variable_node_id)}/.OPTIMIZER_SLOT/${s.slot_name}`);
  const name = (id: number): string => g.paths.get(id) ?? slotPath.get(id) ?? `unreachable ${id}`;
  return Object.fromEntries(g.nodes.map((n, id) => [name(id), {
    children: n.children.map((c) => `${c.local_name} -> ${name(c.node_id)}`),
    attributes: n.attributes.map((a) => `${a.name} ${a.full_name} ${a.checkpoint_key}`),
    slots: n.slot_variables.map((s) => `${name(s.original_variable_node_id)} ${s.slot_name} ${name(s.slot_variable_node_id)}`),
  }]));
}

/** has_checkpoint_values of each node, read raw from the graph (kerasopt's schema subset leaves it out). */
function checkpointValueMarks(prefix: string): string[] {
  const graph = TensorBundle.open(prefix).strings('_CHECKPOINTABLE_OBJECT_GRAPH')[0]!;
  return JSON.parse(execFileSync(PYTHON, ['-c', String.raw`
import sys, json
sys.path.insert(0, 'test/helpers')
from strip_optimizer import fields
g = sys.stdin.buffer.read()
out = []
for _, node, _ in fields(g):
    f5 = [v for n, v, _ in fields(node) if n == 5]
    out.append('none' if not f5 else ('true' if any(n == 1 and x == 1 for n, x, _ in fields(f5[0])) else 'false'))
print(json.dumps(out))
`], { input: graph, encoding: 'utf8' })) as string[];
}

describe('the index writer lays tables out as TensorFlow does', () => {
  test.each([REAL.tuner, `${REAL.savedmodel}/variables/variables`, 'schr0841__HOML3e/my_diffusion_model/variables/variables', 'SiddharthYadav-v__ML-with-sklearn-keras-tf/my_custom_model/variables/variables'])('%s: the same entries give the same .index bytes', (id) => {
    const bytes = readFileSync(`${at(id)}.index`);
    const entries = [...readTable(bytes, id)].map(([k, v]) => [Buffer.from(k, 'utf8'), v] as const);
    expect(Buffer.from(buildTable(entries)).equals(bytes)).toBe(true);
  });
});

describe('a TF2 checkpoint saved without optimizer receives a tf.keras optimizer_v2 Nadam', () => {
  test('the Keras Tuner checkpoint without its optimizer, given its own optimizer back: byte for byte the real file TF wrote', async () => {
    if (noPython) throw new Error(noPython);
    const real = at(REAL.tuner);
    const bare = stripped(real);
    expect(bare.dropped).toHaveLength(14);
    expect(crcErrors(bare.prefix)).toEqual([]);
    await expect(readOptimizerState(bare.prefix)).rejects.toThrow(/no optimizer/);
    const before = TensorBundle.open(bare.prefix);

    const out = fresh('out');
    const result = await transplantOptimizerState(real, bare.prefix, { output: out });
    expect(result.target.created).toBe(true);
    expect(result.target.layout).toBe('tf-keras-v2-checkpoint');
    expect(result.schedule.rule).toBe('carried');
    expect(result.notCarried).toEqual([]);
    expect(result.matches.rows.map((r) => `${r.source} -> ${r.target}`)).toEqual(['layer_with_weights-0/kernel', 'layer_with_weights-0/bias', 'layer_with_weights-1/kernel', 'layer_with_weights-1/bias'].map((n) => `${n} -> ${n}`));

    // the strongest check: TF's own files for this model and optimizer
    expect(readFileSync(`${out}.data-00000-of-00001`).equals(readFileSync(`${real}.data-00000-of-00001`))).toBe(true);
    expect(readFileSync(`${out}.index`).equals(readFileSync(`${real}.index`))).toBe(true);

    // and the checks that do not need a real twin: CRCs, untouched tensors, the state read back bit for bit
    expect(crcErrors(out)).toEqual([]);
    const after = TensorBundle.open(out);
    for (const k of before.keys()) if (k !== '_CHECKPOINTABLE_OBJECT_GRAPH') expect(hexOf(after.tensor(k)), k).toBe(hexOf(before.tensor(k)));
    const [source, back] = [await readOptimizerState(real), await readOptimizerState(out)];
    expect(back.weights.map((w) => `${w.name} ${hexOf(w.value)}`)).toEqual(source.weights.map((w) => `${w.name} ${hexOf(w.value)}`));
    expect(back.config).toEqual(source.config);
    expect(graphByPath(out)).toEqual(graphByPath(real));
    // the target itself is untouched
    expect(TensorBundle.open(bare.prefix).keys()).toEqual(before.keys());
  });

  test('in place (no -o): the checkpoint prefix itself is rewritten, no temporary file left', async () => {
    if (noPython) throw new Error(noPython);
    const real = at(REAL.tuner);
    const bare = stripped(real);
    await transplantOptimizerState(real, `${bare.prefix}.index`);
    expect(readFileSync(`${bare.prefix}.index`).equals(readFileSync(`${real}.index`))).toBe(true);
    expect(readFileSync(`${bare.prefix}.data-00000-of-00001`).equals(readFileSync(`${real}.data-00000-of-00001`))).toBe(true);
    expect(readdirSync(resolve(bare.prefix, '..')).sort()).toEqual(['bare.data-00000-of-00001', 'bare.index']);
  });

  test.each([['savedmodel', 'the TF 2.10 SavedModel'], ['h5', 'the TF 2.4 .h5'], ['keras313', 'the Keras 3.13 archive']] as const)(
    'the TF 2.10 SavedModel\'s variables without optimizer (as a checkpoint), from %s: the optimizer nodes, keys and has_checkpoint_values of the real SavedModel bundle',
    async (kind) => {
      if (noPython) throw new Error(noPython);
      const real = join(at(REAL.savedmodel), 'variables/variables');
      const bare = stripped(real);
      const out = fresh('out');
      const result = await transplantOptimizerState(at(REAL[kind]), bare.prefix, { output: out });
      expect(result.target.created).toBe(true);
      expect(crcErrors(out)).toEqual([]);

      // the same graph as the real one, path by path (the real SavedModel lists `optimizer` before `signatures`; a checkpoint root puts it last)
      const [ours, theirs] = [graphByPath(out), graphByPath(real)];
      const rootChildren = (g: Record<string, unknown>): string[] => ((g[''] as { children: string[] }).children).slice().sort();
      expect(rootChildren(ours)).toEqual(rootChildren(theirs));
      expect({ ...ours, '': null }).toEqual({ ...theirs, '': null });
      // has_checkpoint_values: the real graph's marks, node for node, once both are put in path order
      const order = (prefix: string): string[] => {
        const g = openCheckpointGraph(prefix, prefix);
        const marks = checkpointValueMarks(prefix);
        return g.nodes.map((n, id) => `${g.paths.get(id) ?? n.attributes[0]?.checkpoint_key} ${marks[id]}`).sort();
      };
      expect(order(out)).toEqual(order(real));

      // every tensor: the model's unchanged, the optimizer's equal to the real file's where the source is that file (else per the flavour rule)
      const [b, r] = [TensorBundle.open(out), TensorBundle.open(real)];
      expect(b.keys()).toEqual(r.keys());
      const source = await readOptimizerState(at(REAL[kind]));
      const back = await readOptimizerState(out);
      expect(back.iterations).toBe(726);
      for (const k of b.keys()) {
        if (k === '_CHECKPOINTABLE_OBJECT_GRAPH') continue;
        const same = hexOf(b.tensor(k)) === hexOf(r.tensor(k));
        if (bare.kept.includes(k) || kind === 'savedmodel') expect(same, k).toBe(true);
      }
      for (const row of result.matches.rows) {
        for (const [s, t] of kind === 'keras313' ? [['momentum', 'm'], ['velocity', 'v']] : [['m', 'm'], ['v', 'v']]) {
          const want = source.slots.find((x) => x.variable === row.source && x.slot === s)!.value;
          expect(hexOf(b.tensor(`${row.target}/.OPTIMIZER_SLOT/optimizer/${t}${SUFFIX}`)), `${row.target}/${t}`).toBe(hexOf(want));
        }
      }
      expect(b.tensor(`optimizer/momentum_cache${SUFFIX}`).get(0)).toBe(0); // underflowed after 726 steps, as TF's own
    },
  );
});

describe('refused, with the reason, and nothing written', () => {
  test('a SavedModel saved without optimizer: saved_model.pb would need the nodes too', async () => {
    if (noPython) throw new Error(noPython);
    const dir = fresh('savedmodel');
    cpSync(at(REAL.savedmodel), dir, { recursive: true });
    const bare = stripped(join(at(REAL.savedmodel), 'variables/variables'));
    for (const ext of ['index', 'data-00000-of-00001']) {
      rmSync(join(dir, `variables/variables.${ext}`), { force: true });
      copyFileSync(`${bare.prefix}.${ext}`, join(dir, `variables/variables.${ext}`));
    }
    const out = fresh('out_savedmodel');
    await expect(transplantOptimizerState(at(REAL.h5), dir, { output: out })).rejects.toThrow(/SavedModel saved without optimizer state.*saved_model\.pb's SavedObjectGraph/);
    expect(existsSync(out)).toBe(false);
  });

  test('--to tf-keras-new into a checkpoint without optimizer', async () => {
    if (noPython) throw new Error(noPython);
    const bare = stripped(at(REAL.tuner));
    const out = fresh('out');
    await expect(transplantOptimizerState(at(REAL.tuner), bare.prefix, { output: out, to: 'tf-keras-new' })).rejects.toThrow(/only in the tf.keras optimizer_v2 layout/);
    expect(readdirSync(resolve(out, '..'))).toEqual([]);
  });

  test('a Keras 3 archive never compiled (no compile_config, no optimizer group): the state would need a compile() that never happened', async () => {
    if (missingPython(['h5py'])) throw new Error(missingPython(['h5py'])!);
    const uncompiled = fresh('uncompiled.keras');
    const weightsOnly = fresh('bare.weights.h5');
    // the never-trained Keras 3.8 archive of the corpus, its compile_config and optimizer group left out
    execFileSync(PYTHON, ['-c', String.raw`
import io, json, sys, zipfile, h5py
src, dst = sys.argv[1:3]
z = zipfile.ZipFile(src)
config = json.loads(z.read('config.json'))
del config['compile_config']
a = h5py.File(io.BytesIO(z.read('model.weights.h5')), 'r')
buf = io.BytesIO()
with h5py.File(buf, 'w') as b:
    for k in a.attrs:
        b.attrs[k] = a.attrs[k]
    for k in a:
        if k != 'optimizer':
            a.copy(k, b)
with zipfile.ZipFile(dst, 'w') as out:
    out.writestr('metadata.json', z.read('metadata.json'))
    out.writestr('config.json', json.dumps(config))
    out.writestr('model.weights.h5', buf.getvalue())
open(sys.argv[3], 'wb').write(buf.getvalue())
`, at('haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss_threshold_2.keras'), uncompiled, weightsOnly]);
    const out = fresh('out.keras');
    await expect(transplantOptimizerState(at('haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss.keras'), uncompiled, { output: out }))
      .rejects.toThrow(/never compiled .*compile_from_config\(compile_config\).*kerasopt does not invent them/);
    expect(existsSync(out)).toBe(false);
    // its model.weights.h5 alone: no release recorded, so no u_product order
    await expect(transplantOptimizerState(at('haiderareeb__Learn-Building-Custom-Models-NNs-/my_model_with_a_custom_loss.keras'), weightsOnly, { output: fresh('out.weights.h5') }))
      .rejects.toThrow(/\.weights\.h5 without an optimizer group\. It records no Keras release/);
  });

  test('a tf.train.Checkpoint root (model under a `model` child) without optimizer', async () => {
    if (noPython) throw new Error(noPython);
    const prefix = fresh('ckpt');
    execFileSync(PYTHON, [resolve('test/helpers/tf_checkpoint.py'), prefix, '--no-optimizer'], { encoding: 'utf8' });
    await expect(transplantOptimizerState(at(REAL.tuner), prefix, { output: fresh('out') })).rejects.toThrow(/tf.train.Checkpoint with a 'model' child/);
  });
});
