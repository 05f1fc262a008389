import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { h5 } from '../src/formats/hdf5.js';
import { optimizerFromState, readOptimizerState, saveOptimizerState } from '../src/formats/index.js';
import { FormatError, Nadam, Tensor, Variable } from '../src/index.js';
import { useMadeKerasFiles } from './helpers/kerasFiles.js';
import { python } from './helpers/python.js';

const { missing, made, copy } = useMadeKerasFiles('bad');

let n = 0;

/** Runs an h5py edit on a copy of a made file (`f` is the open file in the snippet). */
function edited(name: string, edit: string): string {
  const file = copy(name);
  python(`import sys, h5py, numpy as np\nf = h5py.File(sys.argv[1], 'a')\n${edit}\nf.close()`, [file]);
  return file;
}

/** A zip written by Python's zipfile with the given entries (name -> bytes as latin1 text or size of zeros). */
function zipWith(entries: Record<string, string | number>): string {
  const file = join(made.dir, `zip${n++}.keras`);
  python(
    `import sys, json, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nfor k, v in json.loads(sys.argv[2]).items():\n    z.writestr(k, bytes(v) if isinstance(v, int) else v)\nz.close()`,
    [file, JSON.stringify(entries)],
  );
  return file;
}

async function formatError(file: string, options = {}): Promise<FormatError> {
  try {
    await readOptimizerState(file, options);
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe(file);
    return e as FormatError;
  }
  throw new Error(`expected a FormatError for ${file}`);
}

describe.skipIf(missing !== null)('bad input: a clear FormatError naming the file and the object', () => {
  it('a truncated HDF5 file', async () => {
    const file = join(made.dir, 'truncated.h5');
    writeFileSync(file, readFileSync(made.files['tf_keras_h5py3.h5']!.file).subarray(0, 4000));
    expect((await formatError(file)).message).toMatch(/truncated HDF5 file: its superblock says \d+ bytes, the file has 4000/);
  });

  it('a file that is not HDF5, and an HDF5 signature followed by garbage', async () => {
    const text = join(made.dir, 'text.h5');
    writeFileSync(text, 'model weights, honest\n');
    expect((await formatError(text)).message).toMatch(/neither an HDF5 file .* nor a zip archive/);
    const garbage = join(made.dir, 'garbage.h5');
    writeFileSync(garbage, Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 0xab)]));
    expect((await formatError(garbage)).message).toMatch(/corrupt HDF5 superblock/);
  });

  it('corrupt bytes anywhere: the read succeeds (data bytes) or fails with a FormatError naming the file, never anything else', async () => {
    const source = readFileSync(made.files['tf_keras_h5py3.h5']!.file);
    const clean = await readOptimizerState(made.files['tf_keras_h5py3.h5']!.file);
    const outcomes = new Set<string>();
    for (let k = 0; k < 40; k++) {
      const bytes = Buffer.from(source);
      const at = 96 + Math.floor((k / 40) * (bytes.length - 200));
      for (let j = 0; j < 16; j++) bytes[at + j] = bytes[at + j]! ^ 0x5a;
      const file = join(made.dir, `corrupt${k}.h5`);
      writeFileSync(file, bytes);
      const result = await readOptimizerState(file).then(() => 'read', (e: unknown) => e);
      if (result !== 'read') {
        expect(result, `corruption at byte ${at}`).toBeInstanceOf(FormatError);
        expect((result as FormatError).file).toBe(file);
      }
      outcomes.add(result === 'read' ? 'read' : 'error');
    }
    expect([...outcomes].sort()).toEqual(['error', 'read']); // the sweep did hit structure as well as data
    // libhdf5 aborted on some of them; h5wasm must still read a sound file exactly as before
    const after = await readOptimizerState(made.files['tf_keras_h5py3.h5']!.file);
    expect(after.weights.map((w) => [w.name, Buffer.from(w.value.data.buffer).toString('hex')])).toEqual(clean.weights.map((w) => [w.name, Buffer.from(w.value.data.buffer).toString('hex')]));
    expect(after.variables.map((v) => Buffer.from(v.value.data.buffer).toString('hex'))).toEqual(clean.variables.map((v) => Buffer.from(v.value.data.buffer).toString('hex')));
  });

  it("libhdf5's error stack is not dumped on stderr (the FormatError says what failed)", async () => {
    // the wasm module's fd 2 is pointed at the null device (src/formats/hdf5.ts, silenceDiagnostics)
    const fs = (await h5()) as unknown as { FS: { getStream(fd: number): { nfd: number } } };
    expect(fs.FS.getStream(2).nfd).not.toBe(2);
  });

  it('saving into a bad target (truncated, not HDF5, archive with ../) is refused and writes nothing', async () => {
    const opt = new Nadam();
    opt.build([new Variable(Tensor.zeros('float32', [3, 4]), { name: 'dense/kernel' })]);
    const k3 = new Nadam({ flavour: 'keras3' });
    k3.build([new Variable(Tensor.zeros('float32', [3, 4]), { name: 'layers/dense/vars/0' })]);
    const truncated = join(made.dir, 'save_truncated.h5');
    writeFileSync(truncated, readFileSync(made.files['tf_keras_h5py3.h5']!.file).subarray(0, 4000));
    const text = join(made.dir, 'save_text.h5');
    writeFileSync(text, 'not a model');
    const evil = zipWith({ 'config.json': '{}', '../model.weights.h5': 'x' });
    for (const target of [truncated, text, evil]) {
      const before = readFileSync(target);
      const err = await saveOptimizerState(target, target === evil ? k3 : opt).catch((e: unknown) => e);
      expect(err, target).toBeInstanceOf(FormatError);
      expect((err as FormatError).file).toBe(target);
      expect(readFileSync(target).equals(before)).toBe(true);
    }
    expect(readdirSync(made.dir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
  });

  it('saving, with a read state as template, into a copy whose global heap is corrupt: FormatError, target untouched', async () => {
    const state = await readOptimizerState(made.files['tf_keras_h5py3.h5']!.file);
    const { optimizer } = optimizerFromState(state);
    const bytes = readFileSync(made.files['tf_keras_h5py3.h5']!.file);
    const heap = bytes.indexOf('GCOL'); // the global heap holding the variable-length strings
    expect(heap).toBeGreaterThan(0);
    bytes.write('XXXX', heap);
    const file = join(made.dir, 'corrupt_heap.h5');
    writeFileSync(file, bytes);
    const err = await saveOptimizerState(file, optimizer, { like: state }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).file).toBe(file);
    expect((err as Error).message).toMatch(/training_config|weight_names/);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect(readdirSync(made.dir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
  });

  it('an optimizer-only file (a new file kerasopt wrote, no model in it) says the model is missing', async () => {
    const tf = new Nadam();
    tf.build([new Variable(Tensor.zeros('float32', [3]), { name: 'w' })]);
    const h5 = join(made.dir, `alone${n++}.h5`);
    await saveOptimizerState(h5, tf);
    expect((await formatError(h5)).message).toMatch(/no model_weights group: the model variables are needed/);
    const k3 = new Nadam({ flavour: 'keras3' });
    k3.build([new Variable(Tensor.zeros('float32', [3]), { name: 'w' })]);
    const weights = join(made.dir, `alone${n++}.weights.h5`);
    await saveOptimizerState(weights, k3);
    expect((await formatError(weights)).message).toMatch(/no model variables \(no layers\/<name>\/vars datasets\): the model variables are needed/);
  });

  it('a model saved without optimizer state', async () => {
    expect((await formatError(made.files['no_optimizer.h5']!.file)).message).toMatch(/no optimizer state: no optimizer_weights group/);
  });

  it('weight_names that disagree with the datasets', async () => {
    const missingDataset = edited('tf_keras_h5py3.h5', "g = f['optimizer_weights']\ng.attrs['weight_names'] = [n if isinstance(n, bytes) else n.encode() for n in g.attrs['weight_names']] + [b'Nadam/ghost/m:0']");
    expect((await formatError(missingDataset)).message).toMatch(/weight_names lists 'Nadam\/ghost\/m:0' but optimizer_weights has no such dataset/);
    const unlisted = edited('tf_keras_h5py3.h5', "f['optimizer_weights'].create_dataset('Nadam/extra:0', data=np.zeros(2, 'f4'))");
    expect((await formatError(unlisted)).message).toMatch(/holds dataset 'Nadam\/extra:0' that weight_names does not list/);
  });

  it('slot shapes that disagree with the model (by name in tf.keras, by position in Keras 2 and 3)', async () => {
    const tf = edited('tf_keras_h5py3.h5', "g = f['optimizer_weights/Nadam/dense/kernel']\ndel g['m:0']\ng.create_dataset('m:0', data=np.zeros((3, 5), 'f4'))");
    expect((await formatError(tf)).message).toMatch(/'Nadam\/dense\/kernel\/m:0' is float32\[3, 5\] but model variable 'dense\/kernel' is float32\[3, 4\]/);
    const k2 = edited('keras2_2.2.4.h5', "g = f['optimizer_weights/training/Nadam']\nfor k in ('Variable:0', 'Variable_4:0'):\n    del g[k]\n    g.create_dataset(k, data=np.zeros((7, 7), 'f4'))");
    expect((await formatError(k2)).message).toMatch(/'training\/Nadam\/Variable:0' float32\[7, 7\] matches no remaining model variable/);
    const k3 = edited('keras3.weights.h5', "del f['layers/dense/vars/0']\nf['layers/dense/vars'].create_dataset('0', data=np.zeros((9, 9), 'f4'))");
    expect((await formatError(k3)).message).toMatch(/optimizer\/vars\/2.*matches no remaining model variable/);
  });

  it('a first weight named iteration with a config that is not TF 2.11-2.15\'s (a Keras 3 .h5) is refused by name', async () => {
    const file = edited('tf_keras_h5py3.h5', "g = f['optimizer_weights']\nnames = [n if isinstance(n, bytes) else n.encode() for n in g.attrs['weight_names']]\nnames[0] = b'Nadam/iteration:0'\ng.attrs['weight_names'] = names\ng.move('Nadam/iter:0', 'Nadam/iteration:0')");
    expect((await formatError(file)).message).toMatch(/a TF 2.11\+ Nadam saves iteration then m and v per variable; this file has 9 weights after 'Nadam\/iteration:0'/);
  });

  it('TF 2.11-2.15 .h5: slots out of order (m, m, v, v) or naming no model variable are refused by name', async () => {
    const swapped = edited('tf_keras_new.h5', "g = f['optimizer_weights']\nnames = list(g.attrs['weight_names'])\nnames[2], names[3] = names[3], names[2]\ng.attrs['weight_names'] = names");
    expect((await formatError(swapped)).message).toMatch(/optimizer weights 'Nadam\/m\/dense\/kernel:0' and 'Nadam\/m\/dense\/bias:0' are not in TF 2.11\+ Nadam order/);
    const stranger = edited('tf_keras_new.h5', "g = f['optimizer_weights']\nnames = list(g.attrs['weight_names'])\ng.move(names[1], 'Nadam/m/other/kernel:0')\nnames[1] = 'Nadam/m/other/kernel:0'\ng.attrs['weight_names'] = names");
    expect((await formatError(stranger)).message).toMatch(/optimizer weights 'Nadam\/m\/other\/kernel:0' and 'Nadam\/v\/dense\/kernel:0' are not in TF 2.11\+ Nadam order/);
  });

  it('a dataset declaring 40 GB in a 30 KB file is refused under the default cap, before any allocation', async () => {
    const file = edited('tf_keras_h5py3.h5', "g = f['optimizer_weights/Nadam/dense/kernel']\ndel g['m:0']\ng.create_dataset('m:0', shape=(100000, 100000), dtype='f4', chunks=(100, 100))");
    expect(readFileSync(file).length).toBeLessThan(100_000);
    expect((await formatError(file)).message).toMatch(/dataset \/optimizer_weights\/Nadam\/dense\/kernel\/m:0 declares 40000000000 bytes, over the 1073741824-byte cap/);
  });

  it('uncompressed datasets may not declare more bytes in all than the file holds; compressed ones share the cap', async () => {
    const plain = edited('tf_keras_h5py3.h5', "g = f['optimizer_weights/Nadam/dense/kernel']\ndel g['m:0']\ng.create_dataset('m:0', shape=(1000, 1000), dtype='f4', chunks=(100, 100))");
    expect((await formatError(plain)).message).toMatch(/dataset \/optimizer_weights\/Nadam\/dense\/kernel\/m:0 declares 4000000 bytes; .* more than the file's \d+ bytes \(corrupt, or not written by Keras\)/);
    const zipped = edited('tf_keras_h5py3.h5', "for k in ('kernel', 'bias'):\n    g = f['optimizer_weights/Nadam/dense/' + k]\n    del g['m:0']\n    g.create_dataset('m:0', shape=(1000, 1000), dtype='f4', chunks=(100, 100), compression='gzip')");
    expect((await formatError(zipped, { maxDatasetBytes: 5_000_000 })).message).toMatch(/the compressed datasets read declare 8000000 bytes in all, over the 5000000-byte cap/);
  });

  it('a dataset declaring more bytes than the cap is refused before any allocation', async () => {
    expect((await formatError(made.files['tf_keras_h5py3.h5']!.file, { maxDatasetBytes: 16 })).message).toMatch(/declares 48 bytes, over the 16-byte cap/);
  });

  it("an archive entry with '..' or an absolute path; a huge declared size (zip bomb)", async () => {
    // a private TMPDIR (this file runs in its own process) shows whether any extraction folder is left
    const privateTmp = mkdtempSync(join(made.dir, 'tmp-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    expect(tmpdir()).toBe(privateTmp);
    expect((await formatError(zipWith({ 'config.json': '{}', '../evil.h5': 'x' }))).message).toMatch(/\.\.\/evil\.h5/);
    expect((await formatError(zipWith({ 'config.json': '{}', '/etc/evil.h5': 'x' }))).message).toMatch(/\/etc\/evil\.h5/);
    const bomb = zipWith({ 'config.json': '{}', 'model.weights.h5': 4_000_000 });
    expect((await formatError(bomb, { maxEntryBytes: 1_000_000 })).message).toMatch(/'model\.weights\.h5' declares 4000000 uncompressed bytes, over the cap of 1000000 \(zip bomb\?\)/);
    // a lying header: declared small, inflates past it; yauzl stops the stream
    const liar = zipWith({ 'config.json': '{}', 'model.weights.h5': 200_000 });
    const bytes = readFileSync(liar);
    const central = bytes.lastIndexOf(Buffer.from('model.weights.h5')) - 46;
    const local = bytes.indexOf(Buffer.from('model.weights.h5')) - 30;
    bytes.writeUInt32LE(100, central + 24);
    bytes.writeUInt32LE(100, local + 22);
    writeFileSync(liar, bytes);
    expect((await formatError(liar)).message).toMatch(/model\.weights\.h5/);
    expect(readdirSync(privateTmp)).toEqual([]);
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  });

  it('a truncated .keras archive, and an archive whose model.weights.h5 is truncated', async () => {
    const archive = readFileSync(made.files['keras3.keras']!.file);
    const cut = join(made.dir, 'truncated.keras');
    writeFileSync(cut, archive.subarray(0, archive.length - 300));
    expect((await formatError(cut)).message).toMatch(/not a readable zip archive/);
    const inner = join(made.dir, 'truncated_inner.keras');
    python(
      "import sys, zipfile\nsrc = zipfile.ZipFile(sys.argv[1])\nz = zipfile.ZipFile(sys.argv[2], 'w')\nfor n in src.namelist():\n    z.writestr(n, src.read(n)[:3000] if n == 'model.weights.h5' else src.read(n))\nz.close()",
      [made.files['keras3.keras']!.file, inner],
    );
    const err = await readOptimizerState(inner).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/:model\.weights\.h5: truncated HDF5 file: its superblock says \d+ bytes, the file has 3000/);
  });

  it('an archive without model.weights.h5, and one whose weights are not HDF5', async () => {
    expect((await formatError(zipWith({ 'config.json': '{}', 'metadata.json': '{}' }))).message).toMatch(/archive has no model\.weights\.h5/);
    const err = await readOptimizerState(zipWith({ 'config.json': '{}', 'model.weights.h5': 'not hdf5' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/model\.weights\.h5: not an HDF5 file/);
  });

  it("a Nadam's state under another optimizer's name, and a class no Keras has (tf.keras .h5 and Keras 3 archive)", async () => {
    const h5 = edited('tf_keras_h5py3.h5', "import json\ntc = json.loads(f.attrs['training_config'])\ntc['optimizer_config']['class_name'] = 'Adam'\nf.attrs['training_config'] = json.dumps(tc).encode()");
    expect((await formatError(h5)).message).toMatch(/optimizer weight '.*momentum_cache:0' is not named 'Nadam\/<variable>\/<slot>:0' with a slot of Adam \(m, v under this config\)/);
    const made_up = edited('tf_keras_h5py3.h5', "import json\ntc = json.loads(f.attrs['training_config'])\ntc['optimizer_config']['class_name'] = 'Adamo'\nf.attrs['training_config'] = json.dumps(tc).encode()");
    expect((await formatError(made_up)).message).toMatch(/class_name 'Adamo', which is no built-in Keras optimizer kerasopt describes \(SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam/);
    const archive = join(made.dir, `adam${n++}.keras`);
    python(
      "import sys, json, zipfile\nsrc = zipfile.ZipFile(sys.argv[1])\nz = zipfile.ZipFile(sys.argv[2], 'w')\nfor name in src.namelist():\n    data = src.read(name)\n    if name == 'config.json':\n        c = json.loads(data)\n        c['compile_config']['optimizer']['class_name'] = 'Adam'\n        data = json.dumps(c)\n    z.writestr(name, data)\nz.close()",
      [made.files['keras3.keras']!.file, archive],
    );
    expect((await formatError(archive)).message).toMatch(/optimizer\/vars \(\d+ variables\) fits no Adam layout: Adam \(keras-3\.\d+-u-\w+, with learning_rate\): \d+ optimizer weights leave \d+ for the slots; a Adam keeps 2 per variable \(momentum, velocity\)/);
  });

  it('a training_config that is not valid JSON', async () => {
    const file = edited('tf_keras_h5py3.h5', "f.attrs['training_config'] = b'{\"optimizer_config\": '");
    const err = await readOptimizerState(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/training_config/);
  });

  it('an archive entry whose bytes do not match its CRC-32 is refused, not read as good data', async () => {
    const archive = copy('keras3.keras');
    // flip one byte in the middle of the stored model.weights.h5 (the zip structure stays valid)
    python(`import struct, sys, zipfile
p = sys.argv[1]
with zipfile.ZipFile(p) as z:
    info = z.getinfo('model.weights.h5')
data = bytearray(open(p, 'rb').read())
name_len, extra_len = struct.unpack('<HH', data[info.header_offset + 26:info.header_offset + 30])
start = info.header_offset + 30 + name_len + extra_len
data[start + info.compress_size // 2] ^= 0xFF
open(p, 'wb').write(bytes(data))`, [archive]);
    expect((await formatError(archive)).message).toMatch(/entry model\.weights\.h5 is corrupt: its bytes have CRC-32 [0-9a-f]{8}, the archive says [0-9a-f]{8}/);
  });

  it('a u_product no Nadam can hold after that many steps (another optimizer in a Nadam-shaped file) is refused', async () => {
    // keras3.weights.h5: 4 steps, u_product last; the largest a Keras 3 Nadam can reach is 0.0900 (beta_1 -> 1)
    const file = edited('keras3.weights.h5', "g = f['optimizer/vars']\nlast = str(len(g) - 1)\ndel g[last]\ng[last] = np.float32(0.5)");
    expect((await formatError(file)).message).toMatch(/optimizer\/vars\/10 holds 0\.5, which no Nadam's u_product can hold after 4 steps \(at most 0\.0899\d* for any beta_1 < 1\)/);
  });
});

