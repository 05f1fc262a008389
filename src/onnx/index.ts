/** ONNX export of the Nadam step, and a runner for exported step models (onnxruntime-node, loaded on first use). */
export {
  exportNadamStep,
  nadamStepInputs,
  nadamStepOutputs,
  NADAM_STEP_KIND,
  SCHEDULE_NAME,
  type ExportNadamStepOptions,
} from './export.js';
export { OnnxNadamStep, nadamStepFeeds, type NadamStepFeeds, type NadamStepResult } from './stepModel.js';
