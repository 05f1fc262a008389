import { describe, expect, test } from 'vitest';
import { convertConfig, dumpsPython, Nadam, type Flavour } from '../src/index.js';

const TF = { name: 'Nadam', learning_rate: 0.002, decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 };
const K2 = { lr: 0.002, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, schedule_decay: 0.004 };
const K3 = new Nadam({ flavour: 'keras3', learning_rate: 0.002 }).getConfig();

describe('convertConfig between standalone Keras 2, tf.keras and Keras 3', () => {
  test('tf-keras -> keras3: values kept, the 0.004 momentum factor dropped and said so', () => {
    const r = convertConfig(TF, { to: 'keras3' });
    expect(r.from).toMatchObject({ flavour: 'tf-keras' });
    expect(r.dialect).toBe('keras-3');
    expect(dumpsPython(r.config)).toBe(
      '{"name": "nadam", "learning_rate": 0.0020000000949949026, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}',
    );
    expect(r.changes.join('\n')).toMatch(/no decay factor.*drops it/);
    expect(r.changes.join('\n')).toMatch(/float32 variable/);
  });

  test('keras3 -> tf-keras: gains the factor 0.004', () => {
    const r = convertConfig(K3, { to: 'tf-keras' });
    expect(r.config).toEqual({ name: 'Nadam', learning_rate: Math.fround(0.002), decay: 0.004, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 });
    expect(r.changes.join('\n')).toMatch(/gains the factor 0\.004/);
  });

  test('tf-keras -> keras2 and back: decay <-> schedule_decay, m_schedule not saved by Keras 2', () => {
    const to2 = convertConfig({ ...TF, clipnorm: 1 }, { to: 'keras2' });
    expect(to2.config).toEqual({ clipnorm: 1, lr: Math.fround(0.002), beta_1: Math.fround(0.9), beta_2: Math.fround(0.999), epsilon: 1e-7, schedule_decay: 0.004 });
    const text = to2.changes.join('\n');
    expect(text).toMatch(/written as schedule_decay/);
    expect(text).toMatch(/does not save m_schedule/);
    expect(text).toMatch(/clipnorm 1: tf-keras clips each gradient by its own norm, Keras 2 by the joint norm/);
    const back = convertConfig(to2.config, { to: 'tf-keras' });
    expect(back.config).toMatchObject({ name: 'Nadam', global_clipnorm: 1, learning_rate: Math.fround(0.002), decay: 0.004 });
    expect(back.changes.join('\n')).toMatch(/clipnorm 1 becomes global_clipnorm/);
  });

  test('keras2 -> keras3 -> keras2 keeps lr, betas and epsilon', () => {
    const there = convertConfig(K2, { to: 'keras3' });
    const back = convertConfig(there.config, { to: 'keras2' });
    expect(back.config).toEqual(new Nadam({ flavour: 'keras2' }).getConfig());
    expect(there.changes.join('\n')).toMatch(/drops it/);
    expect(back.changes.join('\n')).toMatch(/gains the factor/);
  });

  test('every direction between the four flavours gives a config the target reads back unchanged', () => {
    const sources: Record<Flavour, Record<string, unknown>> = { 'tf-keras': TF, keras2: K2, keras3: K3, 'tf-keras-new': new Nadam({ flavour: 'tf-keras-new', learning_rate: 0.002 }).getConfig() };
    for (const [from, config] of Object.entries(sources)) {
      for (const to of ['tf-keras', 'keras2', 'keras3', 'tf-keras-new'] as const) {
        const r = convertConfig(config, { to });
        expect(r.from.flavour).toBe(from);
        expect(Nadam.fromConfig(r.config, { flavour: to, onWarning: () => {} }).getConfig()).toEqual(r.config);
        if (from === to) expect(r.changes).toEqual([]);
        else expect(r.changes.length).toBeGreaterThan(0);
      }
    }
  });

  test('keras3 -> keras2 -> keras3: global_clipnorm <-> Keras 2 clipnorm (joint norm), betas as Keras 2 writes them', () => {
    const there = convertConfig(new Nadam({ flavour: 'keras3', learning_rate: 0.002, global_clipnorm: 2 }).getConfig(), { to: 'keras2' });
    expect(dumpsPython(there.config)).toBe('{"clipnorm": 2.0, "lr": 0.0020000000949949026, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "epsilon": 1e-07, "schedule_decay": 0.004}');
    expect(there.changes.join('\n')).toMatch(/global_clipnorm 2 becomes Keras 2's clipnorm/);
    expect(there.changes.join('\n')).toMatch(/gains the factor 0\.004/);
    const back = convertConfig(there.config, { to: 'keras3' });
    expect(back.config).toMatchObject({ name: 'nadam', global_clipnorm: 2, clipnorm: null, learning_rate: Math.fround(0.002), beta_1: Math.fround(0.9) });
    expect(back.changes.join('\n')).toMatch(/clipnorm 2 becomes global_clipnorm/);
    // Keras 3's per-tensor clipnorm has no Keras 2 equivalent: kept, and the change of meaning listed.
    const perTensor = convertConfig(new Nadam({ flavour: 'keras3', clipnorm: 2 }).getConfig(), { to: 'keras2' });
    expect(perTensor.config).toMatchObject({ clipnorm: 2 });
    expect(perTensor.changes.join('\n')).toMatch(/clipnorm 2: keras3 clips each gradient by its own norm, Keras 2 by the joint norm/);
  });

  test('what the target cannot express is an error, not a silent drop', () => {
    const sched = { ...K3, learning_rate: { module: 'keras.optimizers.schedules', class_name: 'ExponentialDecay', config: { initial_learning_rate: 0.1, decay_steps: 10, decay_rate: 0.9 }, registered_name: null } };
    expect(() => convertConfig(sched, { to: 'tf-keras' })).toThrow(/does not take a learning-rate schedule \(ExponentialDecay\)/);
    expect(() => convertConfig(sched, { to: 'keras2' })).toThrow(/cannot convert to keras2: its Nadam does not take a learning-rate schedule/);
    expect(convertConfig(sched, { to: 'tf-keras-new' }).config['learning_rate']).toMatchObject({ class_name: 'ExponentialDecay', config: { decay_steps: 10 } });
    expect(() => convertConfig({ ...TF, clipnorm: 1, clipvalue: 2 }, { to: 'tf-keras-new' })).toThrow(/TF 2\.11\+ applies only the first of clipnorm, global_clipnorm and clipvalue/);
    expect(() => convertConfig({ ...TF, clipnorm: 1, clipvalue: 2 }, { to: 'keras3' })).toThrow(/only one of clipnorm, clipvalue and global_clipnorm/);
    expect(() => convertConfig({ ...TF, global_clipnorm: 1 }, { to: 'tf-keras', dialect: 'tf-2.0' })).toThrow(/global_clipnorm/);
  });

  test('a tf.keras decay other than 0.004 is reported as TF ignores it', () => {
    expect(convertConfig({ ...TF, decay: 0.01 }, { to: 'keras3' }).changes.join('\n')).toMatch(/decay 0.01 is not used/);
  });
});

describe('convertConfig and the TF 2.11-2.15 flavour (tf-keras-new)', () => {
  const TF211 = new Nadam({ flavour: 'tf-keras-new', learning_rate: 0.002 }).getConfig();

  test('keras3 <-> tf-keras-new: same keys\' values; the change list names u_product rounding, the sparse path and saved state', () => {
    const to211 = convertConfig(K3, { to: 'tf-keras-new' });
    expect(to211.dialect).toBe('tf-2.11');
    expect(to211.config).toMatchObject({ learning_rate: Math.fround(0.002), beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, jit_compile: true, is_legacy_optimizer: false });
    const text = to211.changes.join('\n');
    expect(text).toMatch(/u_product: TF 2\.11\+ multiplies it by u_t .* in the variable dtype/);
    expect(text).toMatch(/sparse gradients: TF 2\.11\+ decays m and v on every row/);
    expect(text).toMatch(/saved state: TF 2\.11\+ saves neither u_product .* nor learning_rate/);
    expect(text).not.toMatch(/momentum schedule/); // both use 0.96^t with no decay factor
    const back = convertConfig(TF211, { to: 'keras3' });
    expect(back.from).toMatchObject({ flavour: 'tf-keras-new', dialect: 'tf-2.11' });
    expect(back.changes.join('\n')).toMatch(/u_product: TF 2\.11\+/);
    expect(back.changes.join('\n')).toMatch(/saved state: the target saves the momentum-schedule product, which TF 2\.11\+ did not/);
  });

  test('tf-keras -> tf-keras-new: the momentum schedule loses its decay factor and the change is listed', () => {
    const r = convertConfig(TF, { to: 'tf-keras-new' });
    expect(r.config).not.toHaveProperty('decay');
    expect(r.changes.join('\n')).toMatch(/the converted optimizer drops it/);
    expect(convertConfig(TF211, { to: 'tf-keras' }).config).toMatchObject({ decay: 0.004 });
  });
});
