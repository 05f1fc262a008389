import type { ParityResult } from './run.js';
import { describeTolerance, firstDrift, firstFailure, worstOf, type ParityError } from './summary.js';

/** The machine-readable report of a parity run (`kerasopt parity --json`). */
export interface ParityReport {
  readonly format: 'kerasopt-parity-report';
  readonly version: 1;
  /** True only if at least one fixture was checked, every one passed, and none failed to load. */
  readonly pass: boolean;
  readonly results: ReadonlyArray<ParityResult & {
    readonly toleranceText: string;
    readonly worst: ReturnType<typeof worstOf>;
    readonly firstFailure: { step: number; key: string } | null;
    readonly firstDrift: { step: number; key: string } | null;
  }>;
  readonly errors: readonly ParityError[];
}

/** Whether a run passes as a whole: something was checked, nothing failed, nothing was left unchecked. */
export function runPasses(results: readonly ParityResult[], errors: readonly ParityError[]): boolean {
  return results.length > 0 && errors.length === 0 && results.every((r) => r.pass);
}

const at = (r: { step: number; key: string } | null) => (r ? { step: r.step, key: r.key } : null);

/** Builds the full report: every result with every per-step, per-record comparison. */
export function parityReport(results: readonly ParityResult[], errors: readonly ParityError[] = []): ParityReport {
  return {
    format: 'kerasopt-parity-report',
    version: 1,
    pass: runPasses(results, errors),
    results: results.map((r) => ({
      ...r,
      toleranceText: describeTolerance(r.tolerance),
      worst: worstOf(r),
      firstFailure: at(firstFailure(r)),
      firstDrift: at(firstDrift(r)),
    })),
    errors,
  };
}

/**
 * The report as compact JSON text (large runs hold tens of thousands of records). JSON has no Infinity or NaN (a NaN in an actual trajectory gives an
 * infinite ULP distance), so non-finite numbers are written as the strings "Infinity", "-Infinity", "NaN".
 */
export function formatReportJson(results: readonly ParityResult[], errors: readonly ParityError[] = []): string {
  return `${JSON.stringify(parityReport(results, errors), (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}\n`;
}
