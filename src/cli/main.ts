#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KerasoptError } from '../errors.js';
import type { Command } from './command.js';
import { COMMANDS } from './commands/index.js';

/** Where a docs page is: beside this file's package (an installed package ships docs/). */
const docsPath = (page: string): string => fileURLToPath(new URL(`../../../${page}`, import.meta.url));

const commandHelp = (c: Command): string => `  ${c.usage.replace(/\n/g, '\n  ')}${c.docs ? `\n    docs: ${c.docs} (${docsPath(c.docs)})` : ''}`;

const usage = (): string =>
  `usage: kerasopt <command> [options]   (kerasopt <command> --help: that command's options and docs page)\n\ncommands:\n${COMMANDS.map(commandHelp).join('\n\n')}\n\ndocs: README.md and docs/ (${docsPath('docs')})\n`;

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
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`usage: kerasopt ${command.usage}${command.docs ? `\n\ndocs: ${command.docs} (${docsPath(command.docs)})` : ''}\n`);
    return 0;
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
