/**
 * engine/oprf: RFC 9497 OPRF(ristretto255, SHA-512).
 *
 * `oprf` is the OPRF mode (mode 0) on the @noble/curves reference backend,
 * synchronous, with the RFC's function names:
 *
 *   const { secretKey, publicKey } = oprf.deriveKeyPair(seed, info);
 *   const { blind, blindedElement } = oprf.blind(input);          // client
 *   const evaluationElement = oprf.blindEvaluate(secretKey, blindedElement); // server
 *   const output = oprf.finalize(input, blind, evaluationElement);  // client
 *   oprf.evaluate(secretKey, input) // server, unblinded: the same output
 *
 * `voprf` and `poprf` are the verifiable and partially-oblivious modes.
 * `createOprf(group, mode)` builds a suite over another ristretto255 backend
 * (e.g. libsodium: `createOprf(await createGroup({ group: "ristretto255" }))`).
 * Bulk evaluation over a column runs in the worker pool: see
 * `CryptoPool.oprfEvaluate` / `oprfBlind` / `oprfFinalize`.
 */
import { createRistrettoNoble } from "../group/ristretto-noble.js";
import type { AdditiveGroup, Group } from "../group/types.js";
import { InvalidArgumentError } from "../errors.js";
import { createOprfSuite, OprfMode, type OprfSuite } from "./oprf.js";

export { OprfMode, VerifyError, contextString, SUITE_ID } from "./oprf.js";
export type { BlindResult, KeyPair, OprfSuite, PoprfBlindResult, ProvedEvaluation } from "./oprf.js";

const reference = createRistrettoNoble();

/** RFC 9497 OPRF mode over ristretto255-SHA512 (reference backend). */
export const oprf: OprfSuite = createOprfSuite(reference, OprfMode.OPRF) as unknown as OprfSuite;
/** RFC 9497 VOPRF mode. */
export const voprf: OprfSuite = createOprfSuite(reference, OprfMode.VOPRF) as unknown as OprfSuite;
/** RFC 9497 POPRF mode. */
export const poprf: OprfSuite = createOprfSuite(reference, OprfMode.POPRF) as unknown as OprfSuite;

/** An OPRF suite over any ristretto255 backend that has addition. */
export function createOprf(group: Group, mode: OprfMode = OprfMode.OPRF): OprfSuite {
  if (typeof (group as Partial<AdditiveGroup>).add !== "function") {
    throw new InvalidArgumentError("the OPRF needs a ristretto255 backend with addition");
  }
  return createOprfSuite(group as AdditiveGroup, mode) as unknown as OprfSuite;
}
