import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, test } from 'vitest';
import { DIALECTS, LAYOUTS, Nadam, serialize } from '../src/index.js';
import { schemaPath } from '../src/paths.js';
import { validator } from '../src/schemas.js';

const SCHEMAS = readdirSync(dirname(schemaPath('fixture.schema.json'))).filter((f) => f.endsWith('.schema.json'));

describe('schemas/ (JSON Schemas compiled with ajv, strict mode)', () => {
  test('one config schema per flavour, one envelope schema per flavour, the schedule envelope and the fixture manifest', () => {
    for (const f of ['tf-keras', 'keras2', 'keras3']) {
      expect(SCHEMAS).toContain(`nadam-config.${f}.schema.json`);
      expect(SCHEMAS).toContain(`optimizer-envelope.${f}.schema.json`);
    }
    expect(SCHEMAS).toContain('nadam-config.tf-keras-new.schema.json'); // its envelope is tf.keras's {class_name, config}
    expect(SCHEMAS).toContain('schedule-envelope.schema.json');
    expect(SCHEMAS).toContain('fixture.schema.json');
  });

  test.each(SCHEMAS)('%s compiles', (name) => {
    expect(typeof validator(name)).toBe('function');
  });

  test.each([...DIALECTS])('what kerasopt writes for %s validates against its flavour\'s schemas (and a broken copy does not)', (dialect) => {
    const { flavour, envelope } = LAYOUTS[dialect];
    const written = serialize(new Nadam({ flavour, dialect, clipvalue: 0.5 }));
    const envelopeSchema = envelope === 'module' ? 'optimizer-envelope.keras3.schema.json' : `optimizer-envelope.${flavour === 'tf-keras-new' ? 'tf-keras' : flavour}.schema.json`;
    expect(validator(envelopeSchema)(written)).toBe(true);
    expect(validator(`nadam-config.${flavour}.schema.json`)(written['config'])).toBe(true);
    expect(validator(envelopeSchema)({ ...written, extra: 1 })).toBe(false);
    expect(validator(`nadam-config.${flavour}.schema.json`)({ ...(written['config'] as object), beta_1: '0.9' })).toBe(false);
  });
});
