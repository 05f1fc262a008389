import { CORPUS_DIR, IS_DEFAULT_CORPUS } from './helpers/corpus.js';
import { corpusSuite } from './helpers/corpusSuite.js';

/**
 * Every loadable item of the Nadam real-file corpus (../shared/corpus/real, or KERASOPT_CORPUS_DIR: the
 * held-back files, same layout), checked by test/helpers/corpusSuite.ts.
 */
corpusSuite(CORPUS_DIR, IS_DEFAULT_CORPUS);
