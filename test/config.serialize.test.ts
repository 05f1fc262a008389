import { describe, expect, test, vi } from 'vitest';
import {
  ConfigError,
  convertConfig,
  deserializeSchedule,
  deserialize,
  detectDialect,
  detectFlavour,
  dumpsPython,
  ExponentialDecay,
  Nadam,
  parsePythonJson,
  serialize,
  type ConfigDialect,
} from '../src/index.js';
import { grad, variable } from './helpers/build.js';

const quiet = { onWarning: () => {} };

/** Steps once so that tf.keras has turned its hyperparameters into float32 variables. */
function stepped(opt: Nadam): Nadam {
  opt.applyGradientsSync([[grad([0.1]), variable('w', [1])]]);
  return opt;
}

/**
 * Serialized Nadams as each Keras release writes them. MADE BY US (kerasopt's tests), not by Keras:
 * the key lists and order come from the sources' get_config (tf.keras optimizer_v2.py and nadam.py,
 * Keras 2.2/2.3 optimizers.py, tf_keras optimizers/nadam.py + optimizer.py, Keras 3 base_optimizer.py),
 * the numbers from Python's float repr of float32 variables where Keras reads one back.
 */
const WRITTEN: Record<ConfigDialect, string> = {
  'tf-2.0':
    '{"class_name": "Nadam", "config": {"name": "Nadam", "clipnorm": 1.0, "learning_rate": 0.0020000000949949026, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}}',
  'tf-2.4':
    '{"class_name": "Nadam", "config": {"name": "Nadam", "clipvalue": 0.5, "global_clipnorm": 2.0, "learning_rate": 0.0010000000474974513, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}}',
  'keras-2.2': '{"class_name": "Nadam", "config": {"lr": 0.0020000000949949026, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07, "schedule_decay": 0.004}}',
  'keras-2.3':
    '{"class_name": "Nadam", "config": {"clipnorm": 1.0, "learning_rate": 0.0020000000949949026, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07, "schedule_decay": 0.004}}',
  'tf-2.11':
    '{"class_name": "Nadam", "config": {"name": "Nadam", "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "jit_compile": true, "is_legacy_optimizer": false, "learning_rate": 0.0010000000474974513, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}}',
  'keras-3':
    '{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}',
};

describe('serialize writes each release\'s keys, order, defaults and number formatting', () => {
  test('tf.keras before the first step writes the Python values; after it, the float32 variables', () => {
    const opt = new Nadam();
    expect(dumpsPython(serialize(opt))).toBe(
      '{"class_name": "Nadam", "config": {"name": "Nadam", "learning_rate": 0.001, "decay": 0.004, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}}',
    );
    stepped(opt);
    expect(dumpsPython(serialize(opt))).toBe(
      '{"class_name": "Nadam", "config": {"name": "Nadam", "learning_rate": 0.0010000000474974513, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}}',
    );
  });

  test.each(Object.entries(WRITTEN))('%s', (dialect, text) => {
    // TF 1.14-2.3 and 2.4-2.10 write the same keys unless global_clipnorm is set: tf-2.0 must be asked for.
    const opt = deserialize(text, { ...quiet, ...(dialect === 'tf-2.0' ? { dialect } : {}) }) as Nadam;
    expect(opt).toBeInstanceOf(Nadam);
    expect(opt.dialect).toBe(dialect);
    if (opt.flavour === 'tf-keras') stepped(opt);
    expect(dumpsPython(serialize(opt))).toBe(text);
  });

  test('Keras 2.2 defaults: lr 0.002 read back from float32, epsilon 1e-07, no name', () => {
    expect(dumpsPython(serialize(new Nadam({ flavour: 'keras2' })))).toBe(WRITTEN['keras-2.2']);
  });

  test('serializing as another flavour is refused: that is a conversion', () => {
    expect(() => serialize(new Nadam(), { flavour: 'keras3' })).toThrow(/convertConfig/);
  });

  test('another release of the same flavour: Keras 2.2 lr becomes Keras 2.3 learning_rate', () => {
    const opt = new Nadam({ flavour: 'keras2', clipnorm: 1 });
    expect(dumpsPython(serialize(opt, { dialect: 'keras-2.3' }))).toBe(WRITTEN['keras-2.3']);
    expect(() => serialize(new Nadam({ global_clipnorm: 1 }), { dialect: 'tf-2.0' })).toThrow(/global_clipnorm=1 cannot be written in the tf-2.0 layout/);
  });

  test('TF 2.11 is its own flavour (tf-keras-new): its layout is not written for a Keras 3 optimizer; convertConfig crosses over with the same values', () => {
    expect(dumpsPython(serialize(new Nadam({ flavour: 'tf-keras-new' })))).toBe(WRITTEN['tf-2.11']);
    const tf211 = deserialize(WRITTEN['tf-2.11'], quiet) as Nadam;
    expect([tf211.flavour, tf211.dialect]).toEqual(['tf-keras-new', 'tf-2.11']);
    expect(() => serialize(new Nadam({ flavour: 'keras3' }), { dialect: 'tf-2.11' })).toThrow(/tf-2\.11 is not a keras3 dialect|not one of the keras3 dialects/);
    const k3 = convertConfig(JSON.parse(WRITTEN['tf-2.11']).config, { to: 'keras3' });
    // Each flavour's default name ('Nadam', 'nadam') is a default, not a user's choice: it is not carried over.
    expect(dumpsPython({ module: 'keras.optimizers', class_name: 'Nadam', config: k3.config, registered_name: null })).toBe(WRITTEN['keras-3']);
  });
});

describe('flavour detection', () => {
  test.each([
    [{ name: 'Nadam', learning_rate: 0.001, decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, 'tf-keras', 'tf-2.4'],
    [{ lr: 0.002, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004 }, 'keras2', 'keras-2.2'],
    [{ learning_rate: 0.002, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004 }, 'keras2', 'keras-2.3'],
    [{ name: 'nadam', learning_rate: 0.001, use_ema: false }, 'keras3', 'keras-3'],
    [{ name: 'Nadam', jit_compile: true }, 'tf-keras-new', 'tf-2.11'],
  ] as const)('%j is %s', (config, flavour, dialect) => {
    expect(detectFlavour(config)).toBe(flavour);
    expect(detectDialect(config)).toMatchObject({ flavour, dialect, certain: true });
  });

  test('a Keras 3 envelope decides even without Keras 3 keys; an empty config is a guess', () => {
    expect(detectDialect({ learning_rate: 0.1 }, { module: 'keras.optimizers', registered_name: null })).toMatchObject({ flavour: 'keras3', certain: true });
    expect(detectDialect({})).toMatchObject({ flavour: 'tf-keras', certain: false });
  });
});

describe('documents, aliases and class names Keras accepts', () => {
  const tfConfig = '{"name": "Nadam", "learning_rate": 0.0010000000474974513, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07}';

  test('a tf.keras training_config (as in an .h5 file), a Keras 3 config.json, a model JSON holding a training_config', () => {
    const training = `{"loss": "mse", "metrics": ["acc"], "weighted_metrics": null, "sample_weight_mode": null, "loss_weights": null, "optimizer_config": {"class_name": "Nadam", "config": ${tfConfig}}}`;
    expect((deserialize(training, quiet) as Nadam).flavour).toBe('tf-keras');
    const keras3 = `{"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": []}, "compile_config": {"optimizer": ${WRITTEN['keras-3']}, "loss": "mse"}}`;
    expect((deserialize(keras3, quiet) as Nadam).flavour).toBe('keras3');
    const model = `{"modelTopology": {"training_config": ${training}}}`;
    expect((deserialize(model, quiet) as Nadam).getConfig()['learning_rate']).toBe(0.0010000000474974513);
    expect(() => deserialize('{"class_name": "Sequential", "config": {"layers": []}}')).toThrow(/without compile_config or training_config/);
  });

  test('TF 2.13+ .keras archives: the module envelope of a tf.keras legacy Nadam and of a TF 2.11-2.15 Nadam, read and written back', () => {
    const legacy = '{"module": "keras.optimizers.legacy", "class_name": "Nadam", "config": {"name": "Nadam", "learning_rate": 0.001, "decay": 0.004, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}';
    const opt = deserialize(legacy, quiet) as Nadam;
    expect([opt.flavour, opt.dialect]).toEqual(['tf-keras', 'tf-2.4']);
    expect(detectDialect(JSON.parse(legacy).config, JSON.parse(legacy)).evidence).toContain("module 'keras.optimizers.legacy'");
    expect(dumpsPython(serialize(opt))).toBe(legacy);
    const tf211 = `{"module": "keras.optimizers", "class_name": "Nadam", "config": ${dumpsPython(serialize(deserialize(WRITTEN['tf-2.11'], quiet) as Nadam)['config'])}, "registered_name": null}`;
    const opt211 = deserialize(tf211, quiet) as Nadam;
    expect(opt211.dialect).toBe('tf-2.11');
    expect(dumpsPython(serialize(opt211))).toBe(tf211);
    // The legacy module holds only the optimizer_v2 Nadam; made in code, tf.keras writes {class_name, config}.
    expect(() => deserialize(legacy, { ...quiet, flavour: 'keras3' })).toThrow(/module 'keras\.optimizers\.legacy' at module is not keras\.optimizers/);
    expect(dumpsPython(serialize(new Nadam()))).toMatch(/^\{"class_name": "Nadam", "config": /);
  });

  test('Keras 3 compile_config with the optimizer as a string gets Keras 3 defaults', () => {
    const opt = deserialize('{"compile_config": {"optimizer": "nadam"}}', quiet) as Nadam;
    expect(opt.flavour).toBe('keras3');
    expect(opt.getConfig()['learning_rate']).toBe(Math.fround(0.001));
  });

  test('class names in any case, and TF 2.11+\'s registered "Custom>Nadam"', () => {
    for (const name of ['Nadam', 'nadam', 'NADAM', 'Custom>Nadam']) {
      expect(deserialize(`{"class_name": "${name}", "config": ${tfConfig}}`, quiet)).toBeInstanceOf(Nadam);
    }
  });

  test('lr and schedule_decay are read as tf.keras reads them (lr wins; schedule_decay sets decay)', () => {
    const opt = deserialize('{"class_name": "Nadam", "config": {"name": "Nadam", "lr": 0.01, "schedule_decay": 0.008}}', quiet) as Nadam;
    expect(opt.getConfig()).toMatchObject({ learning_rate: 0.01, decay: 0.008 });
  });

  test('tf.keras ignores a config\'s decay when reading it (TF overwrites it with schedule_decay), and says so', () => {
    const warn = vi.fn();
    const opt = deserialize('{"class_name": "Nadam", "config": {"name": "Nadam", "decay": 0.01}}', { onWarning: warn }) as Nadam;
    expect(opt.getConfig()['decay']).toBe(0.004);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('ignores decay=0.01'));
  });

  test('TF 2.11-2.15 take lr and ignore it with TF\'s warning (learning_rate stays); Keras 3 refuses lr', () => {
    const warnings: string[] = [];
    const tf211 = '{"class_name": "Nadam", "config": {"name": "Nadam", "jit_compile": true, "is_legacy_optimizer": false, "lr": 0.5, "learning_rate": 0.01}}';
    const opt = deserialize(tf211, { onWarning: (m) => warnings.push(m) }) as Nadam;
    expect(opt.dialect).toBe('tf-2.11');
    expect(opt.learningRateValue()).toBe(Math.fround(0.01));
    expect(warnings).toEqual(['`lr` is deprecated in Keras optimizer, please use `learning_rate` or use the legacy optimizer, e.g.,tf.keras.optimizers.legacy.Nadam.']);
    expect(serialize(opt)['config']).not.toHaveProperty('lr');
    expect(() => deserialize('{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "lr": 0.5}, "registered_name": null}', quiet)).toThrow(
      /key 'lr' at config\.lr is not taken by the Nadam of Keras 3/,
    );
  });

  test('Keras 3 accepts decay and ignores it with Keras\'s warning', () => {
    const warn = vi.fn();
    deserialize('{"module": "keras.optimizers", "class_name": "Nadam", "config": {"decay": 0.1}, "registered_name": null}', { onWarning: warn });
    expect(warn).toHaveBeenCalledWith('Argument `decay` is no longer supported and will be ignored.');
  });
});

describe('bad input: a clear error with the JSON path in words', () => {
  function error(text: string, options = {}): ConfigError {
    try {
      deserialize(text, { ...quiet, file: 'in.json', ...options });
    } catch (e) {
      return e as ConfigError;
    }
    throw new Error('no error');
  }

  test('wrong types name the path, the expected type and the value', () => {
    const e = error('{"optimizer_config": {"class_name": "Nadam", "config": {"name": "Nadam", "beta_1": "0.9"}}}');
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.path).toBe('optimizer_config.config.beta_1');
    expect(e.message).toBe('in.json: invalid tf-keras Nadam config: at optimizer_config.config.beta_1: expected number, got "0.9"');
    expect(error('{"class_name": "Nadam", "config": {"learning_rate": "x"}}').message).toBe(
      'in.json: invalid tf-keras Nadam config: at config.learning_rate: expected a number or a serialized schedule object, got "x"',
    );
  });

  test('unknown keys, in the schema and in the release layout', () => {
    expect(error('{"class_name": "Nadam", "config": {"name": "Nadam", "momentum": 0.9}}').message).toContain("unknown key 'momentum' at config.momentum");
    const e = error('{"class_name": "Nadam", "config": {"lr": 0.1, "schedule_decay": 0.004, "global_clipnorm": 1.0}}', { flavour: 'keras2' });
    expect(e.message).toContain("unknown key 'global_clipnorm' at config.global_clipnorm");
    expect(error('{"class_name": "Nadam", "config": {"name": "Nadam", "global_clipnorm": 1.0}}', { dialect: 'tf-2.0' }).message).toContain(
      "key 'global_clipnorm' at config.global_clipnorm is not taken by the Nadam of tf.keras optimizer_v2, TensorFlow 1.14 to 2.3",
    );
  });

  test('another optimizer: deserialize steps Nadam only (and says where the others are read); an unknown class is refused', () => {
    expect(error('{"class_name": "Adam", "config": {"learning_rate": 0.001}}').message).toBe(
      "in.json: the optimizer at class_name is Keras's 'Adam': kerasopt steps Nadam only (the configs and saved state of the others are read and written: config show, readOptimizerState; docs/optimizers.md)",
    );
    expect(error('{"optimizer_config": {"class_name": "MyOpt", "config": {}}}').path).toBe('optimizer_config.class_name');
    expect(error('{"compile_config": {"optimizer": "adam"}}').message).toMatch(/^in\.json: the optimizer at compile_config\.optimizer is Keras's 'adam': kerasopt steps Nadam only/);
    expect(error('{"class_name": "constructor", "config": {}}', { customObjects: {} }).message).toContain("unknown optimizer class 'constructor'");
  });

  test('Keras 3 features kerasopt does not implement are refused by name', () => {
    const k3 = (extra: string): string => `{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", ${extra}}, "registered_name": null}`;
    expect(() => deserialize(k3('"use_ema": true'), quiet)).toThrow(/use_ema=true is not supported/);
    expect(() => deserialize(k3('"weight_decay": 0.01'), quiet)).toThrow(/weight_decay=0.01 is not supported/);
    expect(() => deserialize(k3('"gradient_accumulation_steps": 4'), quiet)).toThrow(/gradient_accumulation_steps=4/);
    expect(() => deserialize(k3('"loss_scale_factor": 128.0'), quiet)).toThrow(/loss_scale_factor=128/);
    expect(() => deserialize(k3('"ema_overwrite_frequency": 1.5'), quiet)).toThrow(/ema_overwrite_frequency: expected integer/);
    const e = error(`{"compile_config": {"optimizer": ${k3('"use_ema": true')}}}`);
    expect(e).toMatchObject({ path: 'compile_config.optimizer.config.use_ema', code: 'UNSUPPORTED_FEATURE' });
    expect(e.message).toMatch(/^in\.json: use_ema=true is not supported .* \(at compile_config\.optimizer\.config\.use_ema\)$/);
    expect(error(k3('"weight_decay": 0.01')).message).toBe("in.json: weight_decay=0.01 is not supported by kerasopt's Nadam yet; it must be null (unset) (at config.weight_decay)");
    // A rule over several keys names the file and the config it is about.
    const two = error(`{"compile_config": {"optimizer": ${k3('"clipnorm": 1.0, "clipvalue": 1.0')}}}`);
    expect(two).toBeInstanceOf(ConfigError);
    expect(two.path).toBe('compile_config.optimizer.config');
    expect(two.message).toBe('in.json: Only one of clipnorm, clipvalue and global_clipnorm can be set; got clipnorm, clipvalue (in the config at compile_config.optimizer.config)');
  });

  test('values out of range name their path (lr as written)', () => {
    expect(error('{"class_name": "Nadam", "config": {"name": "Nadam", "beta_1": 1.5}}')).toMatchObject({ path: 'config.beta_1', code: 'BAD_HYPERPARAMETER' });
    expect(error('{"class_name": "Nadam", "config": {"lr": -1.0, "schedule_decay": 0.004}}').path).toBe('config.lr');
  });

  test('invalid JSON and prototype keys', () => {
    expect(() => deserialize('{"class_name": "Nadam", ', quiet)).toThrow(/not valid JSON/);
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      expect(() => deserialize(`{"class_name": "Nadam", "config": {"${key}": {"x": 1}}}`, quiet)).toThrow(`key '${key}' at config.${key} is not allowed`);
    }
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
    // Objects parsed elsewhere (JSON.parse makes "__proto__" an own key) are checked too.
    expect(() => deserialize(JSON.parse('{"class_name": "Nadam", "config": {"__proto__": {"x": 1}}}'), quiet)).toThrow("key '__proto__' at config.__proto__ is not allowed");
    expect(() => Nadam.fromConfig(JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>)).toThrow("key '__proto__' at __proto__ is not allowed");
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  test('prototype keys never reach a prototype through the other public entry points either', () => {
    // The config handed to a registered class is copied key by key: an own "__proto__" would set the copy's prototype.
    const seen: object[] = [];
    const W = { fromConfig: (c: Record<string, unknown>) => (seen.push(c), { className: 'W', call: () => 1, getConfig: () => c }) };
    const sched = (inner: string): unknown => JSON.parse(`{"class_name": "W", "config": ${inner}}`);
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      expect(() => deserializeSchedule(sched(`{"${key}": {"x": 1}}`), { customObjects: { W } })).toThrow(`key '${key}' at config.${key} is not allowed`);
      expect(() => deserializeSchedule(sched(`{"a": [{"${key}": 1}]}`), { customObjects: { W } })).toThrow(`key '${key}' at config.a[0].${key} is not allowed`);
      const cfg = JSON.parse(`{"learning_rate": {"class_name": "W", "config": {"${key}": {"x": 1}}}}`) as Record<string, unknown>;
      expect(() => Nadam.fromConfig(cfg, { flavour: 'keras3', customObjects: { W } })).toThrow(`key '${key}' at learning_rate.config.${key} is not allowed`);
      expect(() => convertConfig(JSON.parse(`{"name": "Nadam", "${key}": {"x": 1}}`) as Record<string, unknown>, { to: 'keras3' })).toThrow(`key '${key}' at ${key} is not allowed`);
    }
    expect(seen).toEqual([]);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
    // Without prototype keys the same registered class is used, and gets a plain object.
    deserializeSchedule(sched('{"x": 1}'), { customObjects: { W } });
    expect(seen).toHaveLength(1);
    expect(Object.getPrototypeOf(seen[0])).toBe(Object.prototype);
  });

  test('an envelope with a module other than keras.optimizers, or extra envelope keys', () => {
    expect(error('{"module": "evil.module", "class_name": "Nadam", "config": {}, "registered_name": null}').path).toBe('module');
    expect(error('{"class_name": "Nadam", "config": {}, "extra": 1}').message).toContain("unknown key 'extra' at extra");
  });
});

describe('custom objects: only what the caller registers, never code from the config', () => {
  test('a registered custom optimizer is built by its fromConfig; an inherited entry is not used', () => {
    const made: unknown[] = [];
    const MyOpt = { fromConfig: (c: Record<string, unknown>) => (made.push(c), { kind: 'mine' }) };
    expect(deserialize('{"class_name": "MyOpt", "config": {"a": 1}}', { customObjects: { MyOpt } })).toEqual({ kind: 'mine' });
    expect(made).toEqual([{ a: 1 }]);
    expect(deserialize('{"module": null, "class_name": "MyOpt", "config": {}, "registered_name": "Custom>MyOpt"}', { customObjects: new Map([['Custom>MyOpt', MyOpt]]) })).toEqual({ kind: 'mine' });
    const inherited = Object.create({ MyOpt }) as Record<string, typeof MyOpt>;
    expect(() => deserialize('{"class_name": "MyOpt", "config": {}}', { customObjects: inherited })).toThrow(/not registered in customObjects/);
  });

  test('a custom schedule is resolved only from customObjects', () => {
    const text = '{"module": "keras.optimizers", "class_name": "Nadam", "config": {"learning_rate": {"module": null, "class_name": "Warm", "config": {"x": 2.0}, "registered_name": "Custom>Warm"}}, "registered_name": null}';
    expect(() => deserialize(text, quiet)).toThrow("unknown learning-rate schedule 'Custom>Warm' at config.learning_rate.class_name");
    const Warm = { fromConfig: (c: Record<string, unknown>) => ({ className: 'Warm', call: () => c['x'] as number, getConfig: () => c }) };
    const opt = deserialize(text, { ...quiet, customObjects: { 'Custom>Warm': Warm } }) as Nadam;
    expect(opt.learningRateValue()).toBe(2);
    expect(dumpsPython(serialize(opt))).toContain('"learning_rate": {"module": null, "class_name": "Warm", "config": {"x": 2.0}, "registered_name": "Custom>Warm"}');
  });
});

describe('learning-rate schedules in the forms Keras writes', () => {
  const k3 = '{"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96, "staircase": true, "name": "ExponentialDecay"}, "registered_name": null}';

  test.each([
    k3,
    '{"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 1.0, "decay_steps": 1.0, "decay_rate": 0.5, "staircase": false, "name": "InverseTimeDecay"}, "registered_name": null}',
    '{"module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [100, 200], "values": [1.0, 0.5, 0.1], "name": "PiecewiseConstant"}, "registered_name": null}',
    '{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1000, "end_learning_rate": 0.0001, "power": 1.0, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}',
  ])('Keras 3 Nadam round-trips %s', (schedule) => {
    const text = WRITTEN['keras-3'].replace('"learning_rate": 0.0010000000474974513', `"learning_rate": ${schedule}`);
    const opt = deserialize(text, quiet) as Nadam;
    expect(dumpsPython(serialize(opt))).toBe(text);
  });

  test('the tf.keras form {class_name, config} is read, and the tf.keras Nadam refuses it exactly as TF does', () => {
    const tf = '{"class_name": "Nadam", "config": {"name": "Nadam", "learning_rate": {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96, "staircase": false, "name": null}}}}';
    expect(() => deserialize(tf, quiet)).toThrow('The Nadam optimizer does not support tf.keras.optimizers.LearningRateSchedules as the learning rate.');
    const opt = deserialize(tf, { ...quiet, dialect: 'tf-2.11' }) as Nadam;
    expect(dumpsPython(serialize(opt))).toContain('"learning_rate": {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96, "staircase": false, "name": null}}');
  });

  test.each([
    ['ExponentialDecay', '{"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96, "staircase": true, "name": null}'],
    ['InverseTimeDecay', '{"initial_learning_rate": 1.0, "decay_steps": 1.0, "decay_rate": 0.5, "staircase": false, "name": null}'],
    ['PiecewiseConstantDecay', '{"boundaries": [100, 200], "values": [1.0, 0.5, 0.1], "name": null}'],
    ['PolynomialDecay', '{"initial_learning_rate": 0.1, "decay_steps": 1000, "end_learning_rate": 0.0001, "power": 1.0, "cycle": false, "name": null}'],
  ])('TF 2.11-2.15 tf.keras Nadam round-trips %s in both forms it wrote (2.11-2.12 {class_name, config}, 2.13+ the module form)', (cls, config) => {
    const k3 = (s: string): string => WRITTEN['keras-3'].replace('"learning_rate": 0.0010000000474974513', `"learning_rate": ${s}`);
    const tf211 = (s: string): string =>
      `{"class_name": "Nadam", "config": {"name": "Nadam", "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "jit_compile": true, "is_legacy_optimizer": false, "learning_rate": ${s}, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}}`;
    for (const schedule of [`{"class_name": "${cls}", "config": ${config}}`, `{"module": "keras.optimizers.schedules", "class_name": "${cls}", "config": ${config}, "registered_name": null}`]) {
      const text = tf211(schedule);
      const opt = deserialize(text, quiet) as Nadam;
      expect(opt.dialect).toBe('tf-2.11');
      expect(dumpsPython(serialize(opt))).toBe(text);
      // Keras 3 writes the module form whatever form it read.
      const moduleForm = `{"module": "keras.optimizers.schedules", "class_name": "${cls}", "config": ${config}, "registered_name": null}`;
      expect(dumpsPython(serialize(deserialize(k3(schedule), quiet) as Nadam))).toBe(k3(moduleForm));
    }
  });

  test('the Keras 3 Nadam steps with the schedule evaluated at its iterations', () => {
    const opt = deserialize(WRITTEN['keras-3'].replace('"learning_rate": 0.0010000000474974513', `"learning_rate": ${k3}`), quiet) as Nadam;
    expect(opt.learningRateValue()).toBe(Math.fround(0.1));
    const w = variable('w', [1]);
    for (let i = 0; i < 100; i++) opt.applyGradientsSync([[grad([0.1]), w]]);
    expect(opt.learningRateValue()).toBe(new ExponentialDecay({ initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.96, staircase: true }).call(100));
    expect(opt.learningRateValue()).toBe(Math.fround(Math.fround(0.1) * Math.fround(0.96)));
  });

  test('bad schedules: wrong config key, unknown class, bad module', () => {
    const put = (s: string): string => WRITTEN['keras-3'].replace('"learning_rate": 0.0010000000474974513', `"learning_rate": ${s}`);
    expect(() => deserialize(put('{"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5}}'), quiet)).toThrow(
      /at config\.learning_rate\.config\.decay_steps: must be > 0/,
    );
    expect(() => deserialize(put('{"class_name": "CosineDecay", "config": {}}'), quiet)).toThrow(/unknown learning-rate schedule 'CosineDecay'/);
    expect(() => deserialize(put('{"module": "os", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}, "registered_name": null}'), quiet)).toThrow(/schedule module 'os'/);
  });
});

describe('Nadam.fromConfig / getConfig', () => {
  test('fromConfig without a flavour reads tf-keras, and says which flavour the refused keys belong to', () => {
    expect(() => Nadam.fromConfig(new Nadam({ flavour: 'keras3' }).getConfig())).toThrow(
      /^invalid tf-keras Nadam config: unknown key 'weight_decay' at weight_decay; .* \(read as tf-keras, the default; its keys say keras3: Keras 3 keys weight_decay, .*; pass \{ flavour: 'keras3' \} or use deserialize, which detects it\)$/,
    );
    expect(() => Nadam.fromConfig(new Nadam({ flavour: 'keras3' }).getConfig(), { flavour: 'tf-keras' })).toThrow(/unknown key 'weight_decay' at weight_decay; [^(]*$/);
  });

  test('epsilon 0: tf.keras takes its backend epsilon (`epsilon or 1e-7`), Keras 2 and Keras 3 keep 0', () => {
    const eps = (flavour: 'tf-keras' | 'keras2' | 'keras3', epsilon: number | null): unknown => Nadam.fromConfig({ epsilon }, { flavour }).getConfig()['epsilon'];
    expect([eps('tf-keras', 0), eps('keras2', 0), eps('keras3', 0)]).toEqual([1e-7, 0, 0]);
    expect([eps('tf-keras', null), eps('keras2', null)]).toEqual([1e-7, 1e-7]);
    expect(() => eps('keras3', null)).toThrow(/at epsilon: expected number, got null/);
  });

  test('fromConfig refuses a key the flavour does not take, naming it', () => {
    expect(() => Nadam.fromConfig({ learning_rate: 0.1, amsgrad: true })).toThrow(/unknown key 'amsgrad'/);
    expect(() => Nadam.fromConfig({ name: 'Nadam' }, { flavour: 'keras2' })).toThrow(/unknown key 'name'/);
  });

  test('values Keras writes back as given keep the Python int of the source (clipnorm=1 stays 1); float() and float32 variables give floats', () => {
    const round = (text: string, step = false): string => {
      const opt = deserialize(text, quiet) as Nadam;
      if (step) stepped(opt);
      return dumpsPython(serialize(opt));
    };
    const tf = '{"class_name": "Nadam", "config": {"name": "Nadam", "clipnorm": 1, "learning_rate": 1, "decay": 0.004, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1}}';
    expect(round(tf)).toBe(tf);
    // After a step tf.keras's learning_rate and betas are float32 variables: floats.
    expect(round(tf, true)).toBe('{"class_name": "Nadam", "config": {"name": "Nadam", "clipnorm": 1, "learning_rate": 1.0, "decay": 0.004, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1}}');
    // Keras 2 writes lr and the betas through float(K.get_value(...)); epsilon and schedule_decay as given.
    expect(round('{"class_name": "Nadam", "config": {"clipvalue": 2, "lr": 1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1, "schedule_decay": 0.004}}')).toBe(
      '{"class_name": "Nadam", "config": {"clipvalue": 2, "lr": 1.0, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1, "schedule_decay": 0.004}}',
    );
    // Keras 3: learning_rate is a float32 variable; clipnorm, ema_momentum, betas and epsilon as given.
    const k3 = WRITTEN['keras-3'].replace('"learning_rate": 0.0010000000474974513', '"learning_rate": 1').replace('"clipnorm": null', '"clipnorm": 1').replace('"ema_momentum": 0.99', '"ema_momentum": 1').replace('"epsilon": 1e-07', '"epsilon": 1');
    expect(round(k3)).toBe(k3.replace('"learning_rate": 1,', '"learning_rate": 1.0,'));
    // Floats stay floats, and a value kerasopt changed (tf.keras epsilon 0 -> 1e-07) is written as it now is.
    expect(round(tf.replace('"epsilon": 1}', '"epsilon": 0}'))).toContain('"epsilon": 1e-07}');
    expect(round(tf.replace('"clipnorm": 1,', '"clipnorm": 1.0,'))).toContain('"clipnorm": 1.0,');
  });

  test('an early Keras 3 config without loss_scale_factor / gradient_accumulation_steps is written back without them', () => {
    const early = WRITTEN['keras-3'].replace(', "loss_scale_factor": null, "gradient_accumulation_steps": null', '');
    expect(early).not.toContain('loss_scale_factor');
    expect(dumpsPython(serialize(deserialize(early, quiet) as Nadam))).toBe(early);
    // Made in code, or read with the keys: the full Keras 3 set.
    expect(dumpsPython(serialize(deserialize(WRITTEN['keras-3'], quiet) as Nadam))).toBe(WRITTEN['keras-3']);
    expect(dumpsPython(serialize(new Nadam({ flavour: 'keras3' })))).toContain('"gradient_accumulation_steps": null');
  });

  test('getConfig values are marked as Python floats (1 is written 1.0)', () => {
    expect(dumpsPython(new Nadam({ learning_rate: 1, beta_1: 0, epsilon: 1 }).getConfig())).toBe(
      '{"name": "Nadam", "learning_rate": 1.0, "decay": 0.004, "beta_1": 0.0, "beta_2": 0.999, "epsilon": 1.0}',
    );
  });

  test('parsed text keeps its floats through parsePythonJson', () => {
    const doc = parsePythonJson(WRITTEN['tf-2.4'], 'x') as Record<string, unknown>;
    expect(dumpsPython(doc)).toBe(WRITTEN['tf-2.4']);
  });
});

describe('non-finite numbers in a config are named as such', () => {
  test.each([
    ['learning_rate', NaN, /at learning_rate: .*got NaN/],
    ['beta_1', NaN, /at beta_1: expected number, got NaN/],
    ['epsilon', Infinity, /at epsilon: .*got Infinity/],
  ] as const)('%s = %s', (key, value, message) => {
    expect(() => Nadam.fromConfig({ [key]: value }, { flavour: 'tf-keras' })).toThrow(message);
  });
});
