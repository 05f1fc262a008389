import type { Flavour } from '../flavour.js';

/**
 * What differs between the Nadam flavours apart from the math itself: names, defaults, state
 * layout and how hyperparameters are stored before being cast to a variable's dtype.
 */
export interface NadamRecipe {
  readonly flavour: Flavour;
  readonly defaultLearningRate: number;
  readonly defaultName: string;
  readonly iterationsName: string;
  readonly slotNames: readonly [first: string, second: string];
  /** The scalar that carries the momentum-schedule product between steps. */
  readonly scheduleWeight: 'momentum_cache' | 'm_schedule' | 'u_product';
  /** Keras 2 keeps m_schedule out of `weights`, TF 2.11+ u_product out of `variables`: never saved. */
  readonly scheduleSaved: boolean;
  /** TF's sparse paths (duplicates summed into unique rows first) or sparse gradients made dense first. */
  readonly sparseUpdate: 'unique-rows' | 'dense';
  /**
   * Hyperparameters that Keras holds in float32 variables and casts to the variable's dtype (so a
   * float64 variable sees the float32 rounding of 0.9): tf-keras keeps learning_rate, beta_1 and
   * beta_2 as float32 hyper variables; Keras 3 keeps learning_rate as a float32 variable.
   */
  readonly float32Hypers: ReadonlySet<'learning_rate' | 'beta_1' | 'beta_2'>;
}

export const RECIPES: Readonly<Record<Flavour, NadamRecipe>> = {
  'tf-keras': {
    flavour: 'tf-keras',
    defaultLearningRate: 0.001,
    defaultName: 'Nadam',
    iterationsName: 'iter',
    slotNames: ['m', 'v'],
    scheduleWeight: 'momentum_cache',
    scheduleSaved: true,
    sparseUpdate: 'unique-rows',
    float32Hypers: new Set(['learning_rate', 'beta_1', 'beta_2']),
  },
  keras2: {
    flavour: 'keras2',
    defaultLearningRate: 0.002,
    defaultName: 'Nadam',
    iterationsName: 'iterations',
    slotNames: ['m', 'v'],
    scheduleWeight: 'm_schedule',
    scheduleSaved: false,
    sparseUpdate: 'dense',
    float32Hypers: new Set(),
  },
  keras3: {
    flavour: 'keras3',
    defaultLearningRate: 0.001,
    defaultName: 'nadam',
    iterationsName: 'iteration',
    slotNames: ['momentum', 'velocity'],
    scheduleWeight: 'u_product',
    scheduleSaved: true,
    sparseUpdate: 'dense',
    float32Hypers: new Set(['learning_rate']),
  },
  'tf-keras-new': {
    flavour: 'tf-keras-new',
    defaultLearningRate: 0.001,
    defaultName: 'Nadam',
    iterationsName: 'iteration',
    slotNames: ['m', 'v'],
    scheduleWeight: 'u_product',
    scheduleSaved: false,
    sparseUpdate: 'unique-rows',
    float32Hypers: new Set(['learning_rate']),
  },
};
