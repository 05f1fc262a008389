import type { Command } from '../command.js';
import { config } from './config.js';
import { exportOnnx } from './exportOnnx.js';
import { inspect } from './inspect.js';
import { parity } from './parity.js';
import { transplant } from './transplant.js';

/** Every sub-command, in the order `kerasopt --help` lists them. Add a command here and nowhere else. */
export const COMMANDS: readonly Command[] = [parity, exportOnnx, config, inspect, transplant];
