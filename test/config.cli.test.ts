import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { COMMANDS } from '../src/cli/commands/index.js';
import { createConfigCommand } from '../src/cli/commands/config.js';
import { configSourceExtensions, FormatError, registerConfigSource } from '../src/index.js';
import { fixturesDir } from '../src/paths.js';
import { missingPython, python } from './helpers/python.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const command = createConfigCommand({ stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code: await command.run(args), out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'kerasopt-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

// Made by us in the tf.keras 2.x layout (not written by Keras).
const TRAINING = '{"loss": "mse", "metrics": [], "optimizer_config": {"class_name": "Nadam", "config": {"name": "Nadam", "learning_rate": 0.0010000000474974513, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}}}';

describe('kerasopt config', () => {
  test('is registered in the CLI', () => {
    expect(COMMANDS.some((c) => c.name === 'config')).toBe(true);
  });

  test('show prints where the optimizer was found, its flavour, release, evidence and config', async () => {
    const r = await cli(['show', file('training.json', TRAINING)]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('found at: optimizer_config (training_config)');
    expect(r.out).toContain('flavour:  tf-keras');
    expect(r.out).toContain('release:  tf-2.4: tf.keras optimizer_v2, TensorFlow 2.4 to 2.10');
    expect(r.out).toContain('config:   {"name": "Nadam", "learning_rate": 0.0010000000474974513, "decay": 0.004');
    expect(r.out).toContain('Keras writes this config back unchanged.');
  });

  test('show --json is machine readable', async () => {
    const r = await cli(['show', file('k3.json', '{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.01}, "registered_name": null}'), '--json']);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(j).toMatchObject({ flavour: 'keras3', dialect: 'keras-3', kind: 'envelope', certain: true });
    expect((j['as_keras_writes_it'] as { config: Record<string, unknown> }).config['learning_rate']).toBe(Math.fround(0.01));
  });

  test('convert writes the target serialization and lists the changes', async () => {
    const out = join(dir, 'out.json');
    const r = await cli(['convert', file('t2.json', TRAINING), '--to', 'keras3', '-o', out]);
    expect(r.code).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text.startsWith('{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.0010000000474974513,')).toBe(true);
    expect(r.err).toMatch(/converted tf-keras \(tf-2.4\) to keras3 \(keras-3\); changes in behaviour:\n {2}- the momentum schedule/);
    const back = await cli(['convert', out, '--to', 'keras2']);
    expect(back.out).toBe('{"class_name": "Nadam", "config": {"lr": 0.0010000000474974513, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07, "schedule_decay": 0.004}}\n');
  });

  test('convert --to tf-keras-new writes the TF 2.11-2.15 layout; keras3 <-> tf-keras-new lists the u_product rounding', async () => {
    const out = join(dir, 'out211.json');
    const r = await cli(['convert', file('t211.json', TRAINING), '--to', 'tf-keras-new', '-o', out]);
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/^\{"class_name": "Nadam", "config": \{"name": "Nadam", "weight_decay": null, .*"jit_compile": true, "is_legacy_optimizer": false, "learning_rate": 0.0010000000474974513,/);
    expect(r.err).toMatch(/converted tf-keras \(tf-2.4\) to tf-keras-new \(tf-2.11\)/);
    const k3 = await cli(['convert', out, '--to', 'keras3']);
    expect(k3.err).toMatch(/converted tf-keras-new \(tf-2.11\) to keras3 \(keras-3\)[^]*u_product: TF 2\.11\+ multiplies it by u_t/);
  });

  test('bad input: usage errors exit 2; errors are typed (main turns them into exit 2 with the message)', async () => {
    expect((await cli(['show'])).code).toBe(2);
    expect((await cli(['frobnicate', 'x.json'])).code).toBe(2);
    await expect(cli(['convert', file('a.json', TRAINING), '--to', 'keras4'])).rejects.toThrow(/--to must be keras3, tf-keras, keras2 or tf-keras-new/);
    await expect(cli(['show', file('bad.json', '{"optimizer_config": {"class_name": "Adamo", "config": {}}}')])).rejects.toThrow(/unknown optimizer class 'Adamo' at optimizer_config\.class_name: not a built-in Keras optimizer/);
    await expect(cli(['show', file('bad.json', '{"optimizer_config": {"class_name": "Adam", "config": {"momentum": 0.9}}}')])).rejects.toThrow(/bad\.json: optimizer_config\.config: a tf-keras Adam takes no 'momentum'/);
    await expect(cli(['show', file('bad2.json', '{"optimizer_config": ')])).rejects.toThrow(/bad2\.json \(the JSON file\): not valid JSON/);
    await expect(cli(['convert', file('c.json', TRAINING), '--to', 'keras3', '-o', join(dir, 'no-such-dir', 'out.json')])).rejects.toThrow(/no-such-dir\/out\.json: cannot write the converted config: ENOENT/);
    await expect(cli(['show', file('d.json', TRAINING), '--to', 'keras3'])).rejects.toThrow('config show does not take --to');
    await expect(cli(['convert', file('e.json', TRAINING), '--to', 'keras3', '--json'])).rejects.toThrow('config convert does not take --json');
    // A missing file is a FormatError naming it (main prints it and exits 2), never an uncaught ENOENT.
    await expect(cli(['show', join(dir, 'missing.json')])).rejects.toThrow(/missing\.json: cannot read the file: ENOENT/);
    await expect(cli(['show', join(dir, 'missing.json')])).rejects.toBeInstanceOf(FormatError);
  });

  test('show reads the config of a parity fixture manifest in the flavour the manifest names', async () => {
    const r = await cli(['show', join(fixturesDir(), 'keras2-float32-clipnorm.json')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('found at: config (config)');
    expect(r.out).toContain('flavour:  keras2');
    expect(r.out).toContain("evidence: the fixture manifest's flavour 'keras2'");
    expect(r.out).toContain('Keras writes it back as: {"class_name": "Nadam", "config": {"clipnorm": 2.0, "clipvalue": 0.875, "lr": 0.0020000000949949026,');
    const k3 = await cli(['show', join(fixturesDir(), 'keras3-float32-clipvalue.json'), '--json']);
    expect(JSON.parse(k3.out)).toMatchObject({ flavour: 'keras3', dialect: 'keras-3', path: 'config' });
  });

  test('.h5: the training_config attribute, through the registered Keras-file loader (file MADE BY US with h5py)', async () => {
    if (missingPython(['h5py'])) return;
    const h5 = join(dir, 'made_by_us.h5');
    python('import h5py,sys\nwith h5py.File(sys.argv[1], "w") as f: f.attrs["training_config"] = sys.stdin.read()', [h5], TRAINING);
    const r = await cli(['show', h5]);
    expect(r.out).toContain('(attribute training_config of /)');
    expect(r.out).toContain('Keras writes this config back unchanged.');
  });

  test('a file kind without a registered loader says which loader is missing; a registered one is used', async () => {
    await expect(cli(['show', file('model.h5x', 'x')])).rejects.toThrow(/no config loader is registered for '\.h5x' files/);
    if (!configSourceExtensions().includes('.h5')) {
      await expect(cli(['show', file('model.h5', 'x')])).rejects.toThrow(/the \.h5 reader registers one with registerConfigSource\('\.h5', loader\)/);
    }
    registerConfigSource('.fake', (f) => ({ text: TRAINING, origin: `attribute training_config of ${f}` }));
    const r = await cli(['show', file('m.fake', '')]);
    expect(r.out).toContain('(attribute training_config of');
    expect(r.out).toContain('flavour:  tf-keras');
  });
});
