/** The parity harness: fixture format, recording, replay, comparison and reports. */
export {
  loadFixture,
  readManifest,
  shippedFixtures,
  type Fixture,
  type FixtureManifest,
  type LoadOptions,
  type ProvenanceKind,
  type RecordSpec,
  type Tolerance,
} from './fixture.js';
export { buildManifest, writeFixture, type FixtureSpec, type Trajectory, type WriteFixtureOptions } from './write.js';
export { fixtureInputs, gradientRecords, nadamImplementation, recordTrajectory, type Implementation, type RecordInputs, type StepGradients } from './record.js';
export { compareRecord, runParity, verdict, type ParityOptions, type ParityResult, type RecordResult } from './run.js';
export { compareTrajectories, type CompareOptions, type CompareScope } from './against.js';
export { compareTensors, ulpDistance, type Difference } from './compare.js';
export { describeTolerance, firstDrift, firstFailure, formatSummary, worstOf, type ParityError } from './summary.js';
export { formatReportJson, parityReport, runPasses, type ParityReport } from './report.js';
export { formatReportHtml, groupRecords, type RecordGroup } from './html.js';
export { ulpPlot, type PlotOptions, type Series } from './plot.js';
export { progressBar, type ProgressBar, type ProgressStream } from './progress.js';
export { isGradientKey, variableOfKey } from './state.js';
