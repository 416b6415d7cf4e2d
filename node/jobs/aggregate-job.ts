/**
 * What the two aggregate protocols share as node jobs (join-aggregate,
 * federated-aggregate): the default value bound, the declared bound read
 * from its text, k set on the request once every policy has passed (the
 * largest asked for), and the protocol's own parameter checks reported as
 * a job-request error.
 */
import { InvalidInputError } from "../../engine/errors.js";
import { ProtocolError } from "../../protocols/index.js";
import { InvalidJobRequestError, type JobRequest, type UsagePolicy } from "../policy.js";

/** The value bound when a job (or `umbra aggregate`) declares none: 2^40. */
export const AGGREGATE_DEFAULT_MAX_ABS = 2n ** 40n;

/** A declared value bound: an integer as a bigint (exact), a fraction as a number; undefined when it is not a positive decimal. */
export function maxAbsValueFromText(text: string): bigint | number | undefined {
  if (/^\d+$/.test(text)) {
    const v = BigInt(text);
    return v > 0n ? v : undefined;
  }
  if (/^(\d+\.\d*|\.\d+)$/.test(text)) {
    const v = Number(text);
    return Number.isFinite(v) && v > 0 ? v : undefined;
  }
  return undefined;
}

/** The request with k set (a copy). */
export function withK(request: JobRequest, k: number): JobRequest {
  return { ...request, params: { ...request.params, minGroupSize: k } };
}

/** The request as it runs once every dataset policy has passed: k the largest of the one asked for and every policy's minGroupSize. */
export function finaliseK(request: JobRequest, policies: readonly UsagePolicy[]): JobRequest {
  return withK(request, Math.max(request.params.minGroupSize ?? 1, ...policies.map((p) => p.minGroupSize)));
}

/** Runs the protocol's own checks of a filled request (bounds, HE parameters); their refusal is an InvalidJobRequestError on params.aggregate. */
export async function checkedAggregate(check: () => unknown): Promise<void> {
  try {
    await check();
  } catch (err) {
    if (err instanceof InvalidInputError || err instanceof ProtocolError) throw new InvalidJobRequestError([{ field: "params.aggregate", problem: err.message }]);
    throw err;
  }
}
