/**
 * Classes the caller registers for deserialization, by Keras class name (or registered name such as
 * "Custom>MySchedule"). kerasopt never resolves any other class and never evaluates code from a
 * config: an unregistered name is an error.
 */
export interface CustomObject {
  fromConfig(config: Record<string, unknown>): object;
}

/** A plain record or a Map of {@link CustomObject}s. Only own entries count. */
export type CustomObjects = Readonly<Record<string, CustomObject>> | ReadonlyMap<string, CustomObject>;

/** The registered object for `name`, looked up as an own entry only (never through a prototype). */
export function lookupCustom(objects: CustomObjects | undefined, name: string): CustomObject | undefined {
  if (!objects) return undefined;
  const found = objects instanceof Map ? objects.get(name) : Object.prototype.hasOwnProperty.call(objects, name) ? (objects as Record<string, CustomObject>)[name] : undefined;
  return found && typeof found.fromConfig === 'function' ? found : undefined;
}
