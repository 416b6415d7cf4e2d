/** Shared checks of engine/dp's batch samplers (counts, 64-bit outputs). */
import { InvalidArgumentError } from "../errors.js";

/** @throws InvalidArgumentError unless count is an integer in [0, 2^32). */
export function checkCount(count: number): number {
  if (!Number.isSafeInteger(count) || count < 0 || count >= 2 ** 32) {
    throw new InvalidArgumentError("count must be an integer in [0, 2^32)");
  }
  return count;
}

const INT64_MAX = 2n ** 63n - 1n;

/** x, checked to fit a BigInt64Array (it does unless the noise scale is beyond about 2^57). */
export function toInt64(x: bigint): bigint {
  if (x > INT64_MAX || x < -INT64_MAX) throw new InvalidArgumentError("a noise draw does not fit in 64 bits: use the single-draw sampler for so large a scale");
  return x;
}
