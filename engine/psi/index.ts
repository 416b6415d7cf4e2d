/**
 * engine/psi — building blocks of the PSI operators: distinct keys and
 * their row mapping, random permutations, and an exact-match index over
 * fixed-size elements (blinded group elements, OPRF outputs, tags), and the
 * cuckoo / simple hashing of the OT-extension PSI.
 */
export {
  distinctKeys,
  hashBytes,
  permuteFixed,
  permuteFixedAsync,
  permutePacked,
  shuffledOrder,
  tableCapacity,
  type DistinctKeys,
} from "./distinct.js";
export { ElementIndex } from "./element-index.js";
export {
  CUCKOO_HASHES,
  CUCKOO_MAX_ITEMS,
  CUCKOO_TABLE,
  cuckooInsert,
  cuckooParams,
  cuckooRowInputs,
  falsePositiveLog2,
  itemDigests,
  ITEM_BYTES,
  MAX_KICKS,
  simpleHashQueries,
  STASH_CLASS,
  type CuckooParams,
  type CuckooTable,
  type ItemDigests,
} from "./cuckoo.js";
