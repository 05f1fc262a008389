import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { schemaPath } from './paths.js';

const ajv = new Ajv({ allErrors: true, strict: true });
const compiled = new Map<string, ValidateFunction>();

/** The compiled validator of schemas/<name>. */
export function validator(name: string): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    const schema = JSON.parse(readFileSync(schemaPath(name), 'utf8')) as { $id?: string };
    try {
      v = ajv.compile(schema);
    } catch (e) {
      // ajv keeps a schema registered under its $id even when compiling it failed; forget it so the
      // next call reports the real error again instead of "already exists".
      if (schema.$id) ajv.removeSchema(schema.$id);
      throw e;
    }
    compiled.set(name, v);
  }
  return v;
}

/** ajv errors in words: "at /steps: must be integer". */
export function describeErrors(errors: readonly ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'invalid';
  return errors
    .slice(0, 8)
    .map((e) => {
      const where = e.instancePath === '' ? 'the top level' : e.instancePath.replace(/^\//, '').replace(/\//g, '.');
      const extra = e.keyword === 'additionalProperties' ? ` ('${String((e.params as { additionalProperty: string }).additionalProperty)}')` : '';
      const allowed = e.keyword === 'enum' ? `: ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}` : '';
      return `at ${where}: ${e.message ?? e.keyword}${extra}${allowed}`;
    })
    .join('; ');
}
