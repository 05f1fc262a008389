/** The median of some timings. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** A timed row: a step (sync or async) and the times measured so far. */
export interface Row {
  readonly name: string;
  readonly step: () => unknown;
  readonly times: number[];
}

/**
 * Times every row round-robin (rotating the order each round), so that every row sees the same
 * background load: on a shared machine, timing them one after the other would let a burst of
 * someone else's work land on one row only. Returns the rows' median times.
 */
export async function timeInterleaved(rows: Row[], warmup: number, reps: number): Promise<number[]> {
  for (let r = 0; r < warmup; r++) for (const row of rows) await row.step();
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < rows.length; k++) {
      const row = rows[(k + r) % rows.length]!;
      const t0 = performance.now();
      await row.step();
      row.times.push(performance.now() - t0);
    }
  }
  return rows.map((row) => median(row.times));
}
