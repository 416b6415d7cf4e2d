/**
 * federated-aggregate's buyer (see index.ts): draws a fresh key set under the
 * job's scheme and sends the public key to the exchange (step 1); takes the
 * re-randomised sum of all N providers from the exchange (step 3) and
 * decrypts it to the totals (approximate mode: with each slot's error
 * bound). Its result is {@link faBuyerResult} (result.ts).
 */
import type { AggregateCiphertext, ProtocolMessage } from "../codec.js";
import { ProtocolError, WrongSenderError, WrongStepError } from "../errors.js";
import { RoleName, type Role, type Step } from "../role.js";
import { expectStep } from "../steps.js";
import { assertRole, checkBound, checkCiphertext, keyMessage } from "./messages.js";
import { faRoundingError, FaStep, resolveFaParams, withFaScheme, type FaContext, type FaResolved, type FederatedAggregateParams } from "./params.js";
import { faBuyerResult, type FaBuyerTotals, type FaResult } from "./result.js";

export interface FaBuyerState extends FaBuyerTotals {
  readonly role: "buyer";
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  readonly keyId: string;
  readonly fingerprint: string;
  readonly done: boolean;
  /** The decrypted totals (decimal), once done: exact integers, or in approximate mode doubles in the slots' own units. */
  readonly totals: readonly string[];
  /** Approximate mode, once done: per slot, the bound on |total − exact total| (decimal doubles). Absent or empty otherwise. */
  readonly bounds?: readonly string[];
}

/**
 * The decrypted sum as the job's totals: exact mode, the integers as they
 * are; approximate mode, each slot multiplied back by its bound B, with the
 * bound B·(E + F) + 2^-52·|total| on its error (see Approximate mode).
 */
function totalsOf(s: FaResolved, values: readonly (bigint | number)[], errorBound: number): { totals: string[]; bounds?: string[] } {
  if (s.approximate !== true) return { totals: values.map((x) => x.toString()) };
  const f = faRoundingError(s.providers);
  const totals: string[] = [];
  const bounds: string[] = [];
  values.forEach((v, i) => {
    const b = s.slotBounds[i % s.stride] as number;
    const total = (v as number) * b;
    totals.push(String(total));
    bounds.push(String(b * (errorBound + f) + 2 ** -52 * Math.abs(total)));
  });
  return { totals, bounds };
}

/** The buyer: the HE key holder, who learns the totals. */
export const faBuyer: Role<FaBuyerState, FederatedAggregateParams, FaContext, FaResult> = {
  /** A fresh key set for the job; step 1 to the exchange. */
  async start(params, ctx) {
    const p = resolveFaParams(params);
    return withFaScheme(p, ctx, (he): Step<FaBuyerState> => {
      const keys = he.generateKeys();
      const state: FaBuyerState = {
        ...p,
        role: "buyer",
        publicKey: keys.publicKey,
        secretKey: keys.secretKey,
        keyId: keys.keyId,
        fingerprint: he.fingerprint,
        done: false,
        totals: [],
        ...(p.approximate ? { bounds: [] } : {}),
      };
      return { state, messages: [{ to: RoleName.Exchange, message: keyMessage(p, he, keys.publicKey) }] };
    });
  },

  /** Step 3 from the exchange: the re-randomised sum of all N providers. */
  async receive(s, from, m: ProtocolMessage, ctx) {
    assertRole(s, "buyer");
    if (from !== RoleName.Exchange) throw new WrongSenderError("the buyer takes messages from the exchange only");
    checkBound(s, m);
    if (s.done) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
    expectStep(m.header, FaStep.Sum, 0, 1, "aggregateCiphertext", m.kind);
    const c = m as AggregateCiphertext;
    if (c.party !== 0 || c.contributors !== s.providers) throw new ProtocolError(`the sum must include all ${s.providers} providers, it says ${c.contributors}`);
    return withFaScheme(s, ctx, (he): Step<FaBuyerState> => {
      // The sum of one fresh ciphertext per provider, re-randomised.
      checkCiphertext(he, s, c.ciphertext, s.keyId, s.providers, true);
      const { values, errorBound } = he.decrypt(c.ciphertext, s.secretKey);
      return { state: { ...s, done: true, ...totalsOf(s, values, errorBound) }, messages: [] };
    });
  },

  done: (s) => s.done,
  result: (s) => faBuyerResult(s),
};
