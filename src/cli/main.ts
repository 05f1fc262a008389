#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KerasoptError } from '../errors.js';
import { COMMANDS } from './commands/index.js';

const usage = (): string =>
  `usage: kerasopt <command> [options]\n\ncommands:\n${COMMANDS.map((c) => `  ${c.usage.replace(/\n/g, '\n  ')}`).join('\n\n')}\n`;

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`kerasopt: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (e instanceof KerasoptError || code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`kerasopt ${name}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

/** True when this file is the process's entry point (also through npm's `kerasopt` bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
