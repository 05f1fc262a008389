import { IS_DEFAULT_OTHER_CORPUS, OTHER_CORPUS_DIR } from './helpers/corpus.js';
import { corpusSuite } from './helpers/corpusSuite.js';

/**
 * Every loadable item of the other optimizers' real-file corpus (../shared/corpus/real-other: Adam,
 * Adamax, Adadelta, Adagrad, RMSprop, SGD from Keras 2.0.8 to TF 2.15 and Keras 3 .weights.h5 without
 * a config; KERASOPT_OTHER_CORPUS_DIR for the held-back files), by the same suite as the Nadam corpus.
 */
corpusSuite(OTHER_CORPUS_DIR, IS_DEFAULT_OTHER_CORPUS);
