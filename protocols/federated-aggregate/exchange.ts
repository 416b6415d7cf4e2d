/**
 * federated-aggregate's exchange, the aggregator (see index.ts): takes the
 * buyer's key (step 1) and relays it to every provider; adds each
 * provider's masked ciphertext (step 2) as it arrives; once all N are in,
 * re-randomises the sum and sends it to the buyer (step 3). Never forwards
 * anything else to the buyer, and learns nothing but sizes.
 */
import type { AggregateCiphertext, ProtocolMessage } from "../codec.js";
import { InvalidMessageError, WrongSenderError, WrongStepError } from "../errors.js";
import { providerRole, RoleName, type Outgoing, type Role, type Step } from "../role.js";
import { expectStep } from "../steps.js";
import { assertRole, checkBound, checkCiphertext, checkKeyMessage, checkPublicKey, ciphertextMessage, type FaCommon } from "./messages.js";
import { FaStep, resolveFaParams, withFaScheme, type FaContext, type FederatedAggregateParams } from "./params.js";

export interface FaExchangeState extends FaCommon {
  readonly role: "exchange";
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  /** 1 for each provider whose step 2 is in. */
  readonly received: Uint8Array;
  /** The running sum (empty until the first). */
  readonly sum: Uint8Array;
  readonly done: boolean;
}

/** Providers whose masked vector has not arrived. */
export function faExchangeMissing(s: FaExchangeState): number[] {
  const out: number[] = [];
  s.received.forEach((r, i) => {
    if (r === 0) out.push(i);
  });
  return out;
}

/** Step 1 from the buyer: checks the key under the job's scheme and relays it to every provider. */
async function onBuyerKey(s: FaExchangeState, m: ProtocolMessage, ctx: FaContext): Promise<Step<FaExchangeState>> {
  const k = checkKeyMessage(s, m);
  const keyId = await withFaScheme(s, ctx, (he) => checkPublicKey(he, k));
  const messages: Outgoing[] = [];
  for (let i = 0; i < s.providers; i++) messages.push({ to: providerRole(i), message: k });
  return { state: { ...s, publicKey: Uint8Array.from(k.publicKey), keyId }, messages };
}

/** Step 2 from provider i: adds its ciphertext; the re-randomised sum to the buyer once all N are in. */
async function onProviderVector(s: FaExchangeState, c: AggregateCiphertext, ctx: FaContext): Promise<Step<FaExchangeState>> {
  return withFaScheme(s, ctx, (he): Step<FaExchangeState> => {
    checkCiphertext(he, s, c.ciphertext, s.keyId, 1, false);
    const sum = s.sum.length === 0 ? Uint8Array.from(c.ciphertext) : he.add(s.sum, c.ciphertext);
    const received = Uint8Array.from(s.received);
    received[c.party] = 1;
    const state = { ...s, received, sum };
    if (received.some((r) => r === 0)) return { state, messages: [] };
    // Approximate mode: the masks cancel in the sum, so every slot's total is Σ_i x_i/B, at most N in
    // magnitude (the header would allow N·maxAbsValue). BFV ignores the bound.
    const out = he.reRandomize(sum, s.publicKey, { maxAbsTotal: s.providers + 1 });
    return { state: { ...state, done: true, sum: new Uint8Array(0) }, messages: [{ to: RoleName.Buyer, message: ciphertextMessage(s, FaStep.Sum, 0, s.providers, out) }] };
  });
}

/** The aggregator. Its result is nothing; {@link faExchangeMissing} names the providers still awaited. */
export const faExchange: Role<FaExchangeState, FederatedAggregateParams, FaContext> = {
  async start(params) {
    const p = resolveFaParams(params);
    return { state: { ...p, role: "exchange", publicKey: new Uint8Array(0), keyId: "", received: new Uint8Array(p.providers), sum: new Uint8Array(0), done: false }, messages: [] };
  },

  /**
   * The key set only from the buyer; provider i's vector only from
   * "provider-<i>" (the vector's party index); then the step checks.
   */
  async receive(s, from, m, ctx) {
    assertRole(s, "exchange");
    if (m.kind === "aggregateKey" && from !== RoleName.Buyer) throw new WrongSenderError("the key set of a job comes from its buyer only");
    if (m.kind === "aggregateCiphertext" && from !== providerRole(m.party)) throw new WrongSenderError("a provider's vector comes from that provider only");
    if (s.keyId === "") return onBuyerKey(s, m, ctx);
    checkBound(s, m);
    if (s.done) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
    expectStep(m.header, FaStep.Masked, 0, 1, "aggregateCiphertext", m.kind);
    const c = m as AggregateCiphertext;
    if (c.party >= s.providers) throw new InvalidMessageError(`provider index ${c.party} out of range`);
    if (s.received[c.party] === 1) throw new WrongStepError(`provider ${c.party}'s vector was already received`);
    if (c.contributors !== 1) throw new InvalidMessageError("a provider's vector has exactly one contributor");
    return onProviderVector(s, c, ctx);
  },

  done: (s) => s.done,
  result: () => undefined,
};

