/**
 * federated-aggregate's provider i (see index.ts): aggregates its table
 * locally at start (k applied to its own rows, local.ts); on the buyer's key
 * (step 1, relayed by the exchange) masks its vector with one pairwise mask
 * per other provider (masks.ts) and sends Enc(x_i + Σ_{j>i} m_ij −
 * Σ_{j<i} m_ji) to the exchange (step 2), under whichever scheme the job
 * uses. In a job with dp it adds its own noise shares to its vector at
 * start, before any mask (dp.ts), from FaContext.noise (node:crypto's CSPRNG
 * unless a test passes a seeded source).
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { equalBytes } from "@noble/curves/utils.js";
import type { Table } from "apache-arrow";
import { InvalidArgumentError } from "../../engine/errors.js";
import { maskedReals, maskedResidues } from "../../engine/he/index.js";
import type { ProtocolMessage } from "../codec.js";
import { InvalidStateError, WrongSenderError, WrongStepError } from "../errors.js";
import { RoleName, type Role, type Step } from "../role.js";
import { checkBinding } from "../steps.js";
import { cryptoUniformSource } from "../../engine/dp/index.js";
import { faNoiseShares } from "./dp.js";
import { faLocalVector, faPlaintext } from "./local.js";
import { faPairMasks } from "./masks.js";
import { assertRole, checkKeyMessage, checkPublicKey, ciphertextMessage, type FaCommon } from "./messages.js";
import { FA_MASK_BITS, FaStep, resolveFaParams, withFaScheme, type FaContext, type FederatedAggregateParams } from "./params.js";

export interface FaProviderState extends FaCommon {
  readonly role: "provider";
  readonly index: number;
  /** Its plaintext vector (decimal), computed at start. */
  readonly values: readonly string[];
  readonly boxSecretKey: Uint8Array;
  /** Every provider's box public key, by index (its own included). */
  readonly peers: readonly Uint8Array[];
  readonly done: boolean;
}

export interface FaProviderInput {
  readonly index: number;
  readonly table: Table;
  readonly boxKeyPair: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
  readonly peers: readonly Uint8Array[];
}

/** Provider i's start: the job's parameters and its own input. */
export interface FaProviderInit {
  readonly params: FederatedAggregateParams;
  readonly input: FaProviderInput;
}

/** The provider's masked residues (exact mode; for tests): x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji mod each prime. */
export function faMaskedResidues(s: FaProviderState, primes: readonly number[], fingerprint: string, keyId: string): Uint32Array[] {
  const { masks, close } = faPairMasks(s, s.index, s.boxSecretKey, s.peers, fingerprint, keyId);
  try {
    return maskedResidues(s.values.map((v) => BigInt(v)), primes, masks);
  } finally {
    close();
  }
}

/**
 * Approximate mode: the provider's masked vector (for tests), each slot in
 * units of its bound B: x_i/B + Σ_{j>i} m_ij − Σ_{j<i} m_ji (see
 * Approximate mode). |each| ≤ (N−1)·2^20 + 1, the CKKS context's maxAbsValue.
 */
export function faMaskedValues(s: FaProviderState, fingerprint: string, keyId: string): Float64Array {
  if (s.approximate !== true) throw new InvalidArgumentError("the job does not declare approximate arithmetic");
  if (s.values.length !== s.length) throw new InvalidStateError("the provider's vector does not match the job's");
  const { masks, close } = faPairMasks(s, s.index, s.boxSecretKey, s.peers, fingerprint, keyId);
  try {
    return maskedReals(Float64Array.from(faPlaintext(s, s.values) as number[]), FA_MASK_BITS, masks);
  } finally {
    close();
  }
}

/** Provider i: learns nothing of the others' data; its own vector leaves it only masked and encrypted. */
export const faProvider: Role<FaProviderState, FaProviderInit, FaContext> = {
  /** Aggregates the table locally; sends nothing until step 1. */
  async start({ params, input }, ctx) {
    const p = resolveFaParams(params);
    const { index, peers, boxKeyPair } = input;
    if (!Number.isInteger(index) || index < 0 || index >= p.providers) throw new InvalidArgumentError(`provider index must be in [0, ${p.providers})`);
    if (peers.length !== p.providers) throw new InvalidArgumentError(`peers must list the ${p.providers} providers' box public keys`);
    for (const k of peers) if (!(k instanceof Uint8Array) || k.length !== 32) throw new InvalidArgumentError("box public keys are 32 bytes");
    if (!equalBytes(x25519.getPublicKey(boxKeyPair.secretKey), peers[index] as Uint8Array)) throw new InvalidArgumentError("the box key pair is not the one registered for this index");
    const local = faLocalVector(p, input.table);
    // DP: this provider's share of the noise, added here, before masking — the exchange and the buyer only ever see noisy sums.
    const noise = p.dp ? faNoiseShares(p.dp, p.stride, p.length, ctx.noise ?? cryptoUniformSource()) : null;
    const values = noise ? local.map((v, i) => (BigInt(v) + (noise[i] as bigint)).toString()) : local;
    const state: FaProviderState = { ...p, role: "provider", index, values, boxSecretKey: boxKeyPair.secretKey, peers: peers.map((k) => Uint8Array.from(k)), done: false };
    return { state, messages: [] };
  },

  /** Step 1 (the buyer's key, relayed by the exchange): returns its masked ciphertext (step 2). */
  async receive(s, from, m: ProtocolMessage, ctx) {
    assertRole(s, "provider");
    if (from !== RoleName.Exchange) throw new WrongSenderError("a provider takes messages from the exchange only");
    if (s.done) {
      checkBinding(s, m.header);
      throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
    }
    const k = checkKeyMessage(s, m);
    return withFaScheme(s, ctx, (he): Step<FaProviderState> => {
      const keyId = checkPublicKey(he, k);
      const { masks, close } = faPairMasks(s, s.index, s.boxSecretKey, s.peers, he.fingerprint, keyId);
      let ciphertext: Uint8Array;
      try {
        ciphertext = he.encrypt(faPlaintext(s, s.values), k.publicKey, masks);
      } finally {
        close();
      }
      // The plaintext vector is no longer needed: drop it from the state.
      return { state: { ...s, done: true, values: [] }, messages: [{ to: RoleName.Exchange, message: ciphertextMessage(s, FaStep.Masked, s.index, 1, ciphertext) }] };
    });
  },

  done: (s) => s.done,
  result: () => undefined,
};
