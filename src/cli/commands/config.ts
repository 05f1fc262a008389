import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { convertConfig } from '../../config/convert.js';
import { LAYOUTS, isDialect } from '../../config/dialects.js';
import { dumpsPython } from '../../config/pyjson.js';
import { deserialize, nadamEnvelope, serialize } from '../../config/serialize.js';
import { readOptimizerConfigFile } from '../../config/sources.js';
import { ConfigError } from '../../config/errors.js';
import { FormatError, KerasValueError } from '../../errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
// Registers the .h5/.hdf5/.keras config loaders (src/formats/configSource.ts) with src/config/sources.ts.
import '../../formats/index.js';
import { isFlavour } from '../../optimizers/flavour.js';
import { Nadam } from '../../optimizers/nadam/index.js';
import { readOptimizerState } from '../../formats/index.js';
import { checkpointPrefix } from '../../formats/checkpoint/nadam.js';
import { sniff } from '../../formats/read.js';
import type { Command } from '../command.js';
import { convertDescribed, describedEnvelope, descriptorOf, normalizeConfig } from '../../config/described.js';
import { canonicalClassName } from '../../optimizers/catalog/index.js';
import { isNadamState } from '../../formats/restore.js';

interface Streams {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

const USAGE = `config show FILE [--json] [--optimizer NAME]
    Prints the optimizer config in FILE (a serialized optimizer, a tf.keras/Keras 2 training_config,
    a Keras 3 config.json or a parity fixture manifest; a Keras file: .h5, .weights.h5, .keras, a TF
    checkpoint or SavedModel, read as a whole), where it was found, its flavour and the Keras release
    that wrote it with the evidence (docs/keras-releases.md), and the config exactly as Keras writes it.
    Every built-in Keras optimizer is read (docs/optimizers.md); --optimizer names the class of a file
    that records none (a Keras 3 .weights.h5). Exit: 0 read, 2 bad input (the error names the file and the JSON path).
config convert FILE --to keras3|tf-keras|keras2|tf-keras-new [--dialect D] [-o OUT]
    Converts the optimizer to another flavour and writes the serialized optimizer as the target Keras
    writes it (stdout, or OUT written atomically); lists every change in behaviour on stderr.`;

/** Whether `file` is a Keras model/weights file or a TF checkpoint (read as a whole state), not a JSON config. */
function isKerasFile(file: string): boolean {
  if (checkpointPrefix(file) !== null) return true;
  try {
    sniff(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * `config show` of a Keras file: the flavour, release and evidence come from the whole file (its
 * keras_version, weight names and layout), which tells more than the config keys alone; a file
 * that records no config (a .weights.h5, a checkpoint) shows the config kerasopt rebuilt, and says so.
 */
async function showKerasFile(file: string, json: boolean, io: Streams, optimizer?: string): Promise<number> {
  const state = await readOptimizerState(file, optimizer === undefined ? {} : { optimizer });
  const written = isNadamState(state)
    ? serialize(Nadam.fromConfig(state.config, { flavour: state.flavour, onWarning: (m) => io.stderr.write(`warning: ${m}\n`) }))
    : state.className === null
      ? null
      : describedEnvelope(descriptorOf(state.className, state.flavour, state.kerasVersion), normalizeConfig(descriptorOf(state.className, state.flavour, state.kerasVersion), state.config));
  const r = state.release;
  if (json) {
    io.stdout.write(`${dumpsPython({ file, origin: state.format, class_name: state.className, flavour: state.flavour, release: r.range, layout: r.layout, evidence: r.evidence, keras_version: state.kerasVersion, config: state.config, as_keras_writes_it: written })}\n`);
    return 0;
  }
  io.stdout.write(
    [
      `file:     ${file} (${state.format})`,
      `class:    ${state.className ?? `not recorded in the file (its variables fit ${state.fits?.join(', ') || 'none'}; say which with --optimizer NAME)`}`,
      `flavour:  ${state.flavour}`,
      `release:  ${r.range} (layout ${r.layout})`,
      ...r.evidence.map((e, i) => `${i === 0 ? 'evidence:' : '         '} ${e}`),
      `config:   ${dumpsPython(state.config)}`,
      ...state.notes.filter((n) => /config/.test(n)).map((n) => `note:     ${n}`),
      written === null ? 'Keras writes it back as: unknown until the class is known' : `Keras writes it back as: ${dumpsPython(written)}`,
    ].join('\n') + '\n',
  );
  return 0;
}

/** Runs `fn`, naming the file and the config's JSON path in any config error it throws. */
function inConfig<T>(file: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof KerasValueError) throw new ConfigError(path, `${path || 'the top level'}: ${e.message}`, file);
    throw e;
  }
}

/** The catalog's class name for a found config when it is an optimizer kerasopt describes but does not step. */
function describedClass(className: string): string | null {
  const canonical = canonicalClassName(className);
  return canonical !== null && canonical !== 'Nadam' ? canonical : null;
}

async function show(file: string, json: boolean, io: Streams, optimizer?: string): Promise<number> {
  if (isKerasFile(file)) {
    try {
      return await showKerasFile(file, json, io, optimizer);
    } catch (e) {
      // a model compiled but saved without optimizer weights still has its config (training_config)
      if (!(e instanceof FormatError) || !/no optimizer state/.test(e.message) || checkpointPrefix(file) !== null) throw e;
    }
  }
  const found = await readOptimizerConfigFile(file);
  const d = found.detection;
  const other = describedClass(found.className);
  const written = other
    ? inConfig(file, found.configPath, () => describedEnvelope(descriptorOf(other, d.flavour), normalizeConfig(descriptorOf(other, d.flavour), found.config)))
    : serialize(deserialize(found.document, { file, onWarning: (m) => io.stderr.write(`warning: ${m}\n`) }) as Nadam);
  if (json) {
    io.stdout.write(
      `${dumpsPython({ file, origin: found.origin, path: found.envelopePath, kind: found.kind, class_name: found.className, flavour: d.flavour, dialect: d.dialect, evidence: d.evidence, certain: d.certain, config: found.config, as_keras_writes_it: written })}\n`,
    );
    return 0;
  }
  const same = dumpsPython(written['config']) === dumpsPython(found.config);
  io.stdout.write(
    [
      `file:     ${file} (${found.origin})`,
      `found at: ${found.envelopePath || 'the top level'} (${found.kind})`,
      `class:    ${found.className}${found.registeredName ? ` (registered as ${found.registeredName})` : ''}`,
      `flavour:  ${d.flavour}${d.certain ? '' : ' (a guess: nothing in the config tells the flavours apart)'}`,
      `release:  ${d.dialect}: ${LAYOUTS[d.dialect].writtenBy}`,
      `evidence: ${d.evidence}`,
      `config:   ${dumpsPython(found.config)}`,
      same ? 'Keras writes this config back unchanged.' : `Keras writes it back as: ${dumpsPython(written)}`,
    ].join('\n') + '\n',
  );
  return 0;
}

async function convert(file: string, to: string | undefined, dialect: string | undefined, out: string | undefined, io: Streams): Promise<number> {
  if (!isFlavour(to)) throw new KerasValueError(`--to must be keras3, tf-keras, keras2 or tf-keras-new, got ${to === undefined ? 'nothing' : `'${to}'`}`);
  if (dialect !== undefined && !isDialect(dialect)) throw new KerasValueError(`--dialect must be one of ${Object.keys(LAYOUTS).join(', ')}, got '${dialect}'`);
  const found = await readOptimizerConfigFile(file);
  const other = describedClass(found.className);
  let text: string;
  if (other) {
    const result = inConfig(file, found.configPath, () => convertDescribed(other, found.detection.flavour, to, found.config));
    text = `${dumpsPython(result.envelope)}\n`;
    io.stderr.write(`converted the ${found.detection.flavour} ${other} to ${to}; changes in behaviour:\n`);
    io.stderr.write(result.changes.map((c) => `  - ${c}\n`).join(''));
  } else {
    deserialize(found.document, { file, onWarning: () => {} });
    const result = convertConfig(found.config, { to, ...(dialect ? { dialect } : {}), fromDialect: found.detection.dialect });
    text = `${dumpsPython(nadamEnvelope(result.config, result.dialect))}\n`;
    io.stderr.write(`converted ${found.detection.flavour} (${found.detection.dialect}) to ${to} (${result.dialect}); changes in behaviour:\n`);
    io.stderr.write(result.changes.length ? result.changes.map((c) => `  - ${c}\n`).join('') : '  (none)\n');
  }
  if (out) {
    try {
      writeFileAtomic(resolve(out), text);
    } catch (e) {
      throw new FormatError(out, `cannot write the converted config: ${(e as Error).message}`);
    }
  }
  else io.stdout.write(text);
  return 0;
}

/** `kerasopt config`, writing to the given streams (the CLI passes process.stdout/stderr). */
export function createConfigCommand(io: Streams = { stdout: process.stdout, stderr: process.stderr }): Command {
  return {
    name: 'config',
    docs: 'docs/configs.md',
    usage: USAGE,
    async run(argv) {
      const [sub, ...rest] = argv;
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { json: { type: 'boolean' }, to: { type: 'string' }, dialect: { type: 'string' }, out: { type: 'string', short: 'o' }, optimizer: { type: 'string' } },
      });
      if ((sub !== 'show' && sub !== 'convert') || positionals.length !== 1) {
        io.stderr.write(`usage: kerasopt ${USAGE}\n`);
        return 2;
      }
      const file = positionals[0]!;
      const misplaced = sub === 'show' ? (['to', 'dialect', 'out'] as const).filter((k) => values[k] !== undefined) : values.json ? ['json'] : [];
      if (misplaced.length > 0) throw new KerasValueError(`config ${sub} does not take ${misplaced.map((k) => (k === 'out' ? '-o/--out' : `--${k}`)).join(', ')}`);
      if (sub === 'show') return show(file, values.json === true, io, values.optimizer);
      return convert(file, values.to, values.dialect, values.out, io);
    },
  };
}

export const config: Command = createConfigCommand();
