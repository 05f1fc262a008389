/** One `kerasopt` sub-command: its usage text and what it runs. Exit codes: 0 ok, 1 check failed, 2 bad input. */
export interface Command {
  readonly name: string;
  /** Usage lines shown by `kerasopt --help` (indented by the caller). */
  readonly usage: string;
  /** The docs page that explains the command in full (shown by `--help`), relative to the package root. */
  readonly docs?: string;
  run(argv: string[]): Promise<number>;
}
