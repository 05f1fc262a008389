/**
 * Keras optimizer configs: reading, writing and converting them as each Keras release does.
 * See README "Configs".
 */
export { ConfigError } from './errors.js';
export { DIALECTS, LAYOUTS, DEFAULT_DIALECT, isDialect, type ConfigDialect, type DialectLayout } from './dialects.js';
export { detectDialect, detectFlavour, type FlavourDetection } from './detect.js';
export { dumpsPython, parsePythonJson, pythonFloatRepr, markFloat } from './pyjson.js';
export { locateOptimizer, type LocatedOptimizer } from './document.js';
export { nadamOptionsFromConfig, type ConfigReadOptions } from './fromConfig.js';
export { serialize, deserialize, nadamEnvelope, isNadamClassName, OPTIMIZERS_MODULE, type SerializeOptions, type DeserializeOptions } from './serialize.js';
export { serializeSchedule, deserializeSchedule, SCHEDULES_MODULE, type ScheduleReadOptions } from './scheduleSerde.js';
export { convertConfig, type ConvertOptions, type ConvertResult } from './convert.js';
export { relayout } from './relayout.js';
export type { CustomObject, CustomObjects } from './customObjects.js';
export {
  registerConfigSource,
  configSourceExtensions,
  loadConfigDocument,
  readOptimizerConfigFile,
  type ConfigSourceLoader,
  type ConfigSourceText,
  type ConfigDocument,
} from './sources.js';
