/**
 * federated-aggregate's messages (see index.ts, Validation): building step 1,
 * and the checks every role makes before it looks at a message's content —
 * the job binding, the step, the announced HE parameters, the public key and
 * each ciphertext, under whichever scheme the job uses.
 */
import { assertState } from "../state.js";
import { KeyMismatchError, ParameterMismatchError, type HeScheme } from "../../engine/he/index.js";
import { ProtocolId, type AggregateCiphertext, type AggregateKey, type ProtocolMessage } from "../codec.js";
import { InvalidMessageError, RefusedError } from "../errors.js";
import { checkBinding, expectStep, header } from "../steps.js";
import { FA_VERSION, FaStep, type FaResolved } from "./params.js";

/** What every role's state holds besides its own fields. */
export interface FaCommon extends FaResolved {
  readonly role: "buyer" | "exchange" | "provider";
}

export function assertRole(s: { readonly role?: unknown; readonly protocol?: unknown; readonly version?: unknown }, role: FaCommon["role"]): void {
  assertState(s, { protocols: [ProtocolId.FederatedAggregate], role, version: FA_VERSION });
}

/** Step 1: the buyer's public key under the job's scheme, with the context options every party derives. */
export function keyMessage(s: FaResolved, he: HeScheme, publicKey: Uint8Array): AggregateKey {
  return {
    kind: "aggregateKey",
    header: header(s, FaStep.Key, 0, 1),
    polyModulusDegree: s.he.polyModulusDegree,
    maxAbsValue: s.he.maxAbsValue,
    scale: s.he.scale,
    maxRows: s.he.maxRows,
    maxLength: s.he.maxLength,
    fingerprint: he.fingerprint,
    publicKey,
    ...(s.approximate ? { approximate: true, precisionBits: s.precisionBits } : {}),
  };
}

/** A ciphertext of step 2 (one provider's, party = its index) or step 3 (the sum, party 0). */
export function ciphertextMessage(s: FaResolved, step: typeof FaStep.Masked | typeof FaStep.Sum, party: number, contributors: number, ciphertext: Uint8Array): AggregateCiphertext {
  return { kind: "aggregateCiphertext", header: header(s, step, 0, 1), party, contributors, ciphertext };
}

/** Binds a message to the job and throws a refusal as RefusedError. */
export function checkBound(s: FaResolved, m: ProtocolMessage): void {
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
}

/** Step 1, checked against what this party derives from the job (the key itself: {@link checkPublicKey}). */
export function checkKeyMessage(s: FaResolved, m: ProtocolMessage): AggregateKey {
  checkBound(s, m);
  expectStep(m.header, FaStep.Key, 0, 1, "aggregateKey", m.kind);
  const k = m as AggregateKey;
  const approximate = s.approximate === true;
  if ((k.approximate === true) !== approximate || (approximate && k.precisionBits !== s.precisionBits)) {
    throw new ParameterMismatchError(`the announced arithmetic differs from the job's, which is ${approximate ? "approximate (CKKS)" : "exact (BFV)"}`);
  }
  const h = s.he;
  if (k.polyModulusDegree !== h.polyModulusDegree || k.maxAbsValue !== h.maxAbsValue || k.scale !== h.scale || k.maxRows !== h.maxRows || k.maxLength !== h.maxLength) {
    throw new ParameterMismatchError("the announced HE context options differ from the ones this job derives");
  }
  return k;
}

/** Loads and checks the announced public key under the job's scheme; returns its key-set id (hex). */
export function checkPublicKey(he: HeScheme, k: AggregateKey): string {
  if (k.fingerprint !== he.fingerprint) throw new ParameterMismatchError(`the announced ${he.name.toUpperCase()} parameter fingerprint differs from this job's`);
  return he.publicKeyId(k.publicKey);
}

/**
 * Checks a ciphertext against the job, its header first, then every block
 * through SEAL: the job's scheme and parameters, the buyer's key set, L
 * slots, and the history of `contributors` fresh encryptions summed
 * (re-randomised for step 3).
 */
export function checkCiphertext(he: HeScheme, s: FaResolved, ct: Uint8Array, keyId: string, contributors: number, reRandomized: boolean): void {
  const info = he.inspect(ct);
  if (info.keyId !== keyId) throw new KeyMismatchError("the ciphertext is not under the buyer's key set");
  if (info.length !== s.length) throw new InvalidMessageError(`the ciphertext holds ${info.length} slots, the job's vector ${s.length}`);
  for (const [field, value] of Object.entries(he.sumHistory(contributors, reRandomized))) {
    const got = info.history[field];
    if (got !== value) throw new InvalidMessageError(`the ciphertext's ${field} is ${got}, expected ${value}`);
  }
  he.validate(ct);
}
