/**
 * engine/psi — building blocks of the PSI operators: distinct keys and
 * their row mapping, random permutations, and an exact-match index over
 * fixed-size elements (blinded group elements, OPRF outputs, tags).
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
