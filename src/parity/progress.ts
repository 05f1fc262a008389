/** The part of a stream a progress bar needs (process.stderr fits). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

/** A progress bar on a terminal stream (see {@link progressBar}). */
export interface ProgressBar {
  /** Reports step `step` of `total` (redraws at most every `intervalMs`, and always at the end). */
  update(step: number, total: number): void;
  /** Erases the bar so that what follows starts on a clean line. */
  done(): void;
}

/**
 * A one-line progress bar for long replays, drawn only on an interactive terminal: on a pipe or a
 * CI log (not a TTY) it returns null, so logs stay clean.
 */
export function progressBar(stream: ProgressStream, label: string, intervalMs = 100, now: () => number = Date.now): ProgressBar | null {
  if (!stream.isTTY) return null;
  let last = -Infinity;
  let drawn = false;
  return {
    update(step, total) {
      const t = now();
      if (step < total && t - last < intervalMs) return;
      last = t;
      const width = 30;
      const filled = total > 0 ? Math.round((step / total) * width) : width;
      const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${total}`;
      stream.write(`\r\x1b[K${line.slice(0, Math.max(20, (stream.columns ?? 100) - 1))}`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
