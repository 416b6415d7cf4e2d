/**
 * engine/he: homomorphic aggregation with BFV (Microsoft SEAL through
 * node-seal 6.0.3): exact sums over CRT primes, packed columns, plaintext
 * masks, rotate-and-sum, re-randomisation. See params.ts for the parameter
 * rule and the bound, bfv.ts for ownership and the operations, format.ts
 * for the bytes; ckks.ts for approximate sums; scheme.ts for the one
 * interface protocols use over both, masks.ts for pairwise masks.
 */
export { createHeContext, withHeContext, HeContext, HePublicKey, HeSecretKey, HeGaloisKeys } from "./bfv.js";
export type { CiphertextBytes, PublicKeyBytes, SecretKeyBytes, GaloisKeyBytes, HeKeyBytes, CiphertextInfo } from "./bfv.js";
export { selectParameters, scaledBound, CrtBasis, PolyModulusDegree, HE_MAX_ROWS_4096, HE_MAX_ROWS, HE_MAX_SCALE } from "./params.js";
export type { HeContextOptions, HeParameters } from "./params.js";
export { valuesFromArrow, fixedPointToString, int64Residues } from "./encode.js";
export { residuesOf, zeroSumMasks } from "./block-residues.js";
export type { ColumnValues } from "./encode.js";
export { loadSeal } from "./seal.js";
export {
  HeErrorCode,
  InvalidCiphertextError,
  InvalidKeyError,
  ParameterMismatchError,
  KeyMismatchError,
  ValueOutOfRangeError,
  BoundExceededError,
  NoiseBudgetExhaustedError,
  DisposedError,
  heErrorFromSerialized,
} from "./errors.js";
export { executeHeTask, HeTaskOp, isHeTask } from "./task.js";
export type { HeTask, HeEncryptTask, HeAddTask, HeMaskedBlockSumsTask, HeBlockTotalsTask, HeReRandomizeTask, CkksEncryptTask, CkksAddTask } from "./task.js";
export {
  createCkksContext,
  selectCkksParameters,
  CkksContext,
  CkksPublicKey,
  CkksSecretKey,
  CkksGaloisKeys,
  CKKS_POLY_MODULUS_DEGREE,
  CKKS_SLOTS,
  CKKS_COEFF_BITS,
  CKKS_DEFAULT_PRECISION_BITS,
  CKKS_MAX_ROWS,
  CKKS_MAX_LENGTH,
  CkksLevel,
  concatCkksColumns,
} from "./ckks.js";
export type { CkksContextOptions, CkksParameters, CkksCiphertextBytes, CkksKeyBytes, CkksCiphertextInfo, CkksResult } from "./ckks.js";
export { bfvScheme, ckksScheme, createHeScheme, HeSchemeName, schemeOfFrame, withHeScheme } from "./scheme.js";
export type { HeCiphertextSummary, HeDecrypted, HeKeySet, HeScheme, HeSchemeOptions } from "./scheme.js";
export { CKKS_MASK_BITS, maskedReals, maskedResidues, uniformReals, uniformResidues } from "./masks.js";
export type { PairMask, WordStream } from "./masks.js";
