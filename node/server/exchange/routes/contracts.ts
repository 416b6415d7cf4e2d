/**
 * Orders and contracts (docs/venue.md). A buyer orders a product version
 * with the contract its agent signed (POST /v1/orders); the exchange checks
 * that the contract copies the product's current version, provider, prices
 * and share, and that the buyer's signature verifies under the key it
 * registered; the provider approves by signing it too (its signature checked
 * under its registered key, then the exchange countersigns: the contract is
 * active) or rejects it; the buyer or the provider revokes it (the operator
 * too: {@link revokeContract}). Each change commits with its ledger entry
 * (ids and digests); a refusal changes nothing.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { AlreadyExistsError, ForbiddenError, NotFoundError } from "../../../errors.js";
import { LedgerKind } from "../../../ledger.js";
import { ApprovalSchema, EndContractSchema, OrderSchema } from "../../../schemas/venue.js";
import { canonicalJson, type ContractRow, type ContractState, type Store } from "../../../store.js";
import type { NodeIdentity } from "../../../identity.js";
import { appendEntry } from "../../../ledger.js";
import { contractDigest, ContractDeniedError, ContractRule, countersign, parseContract, signedContractOf, verifyContractSignature } from "../../../venue/contract.js";
import type { Product } from "../../../venue/product.js";
import { productOf } from "../../../venue/job-contracts.js";
import { privacyBudgetView, type PrivacyBudgetView } from "../../../privacy-budget.js";
import type { UsagePolicy } from "../../../policy.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";
import { productVisible } from "./products.js";

/** The longest window a contract may have: 5 years. */
const MAX_WINDOW_MS = 5 * 366 * 24 * 3600 * 1000;

/**
 * A contract as its buyer and provider read it: the document, its
 * signatures, state and jobs used; and, per dataset of its product whose
 * policy sets a privacy budget, the buyer's ρ budget, spent and remaining
 * as the exchange holds them (node/privacy-budget.ts).
 */
export function contractView(r: ContractRow, privacy: readonly PrivacyBudgetView[] = []): Record<string, unknown> {
  return {
    id: r.id,
    state: r.state,
    product: { id: r.productId, version: r.productVersion },
    buyer: r.buyer,
    provider: r.provider,
    quotaJobs: r.quotaJobs,
    jobsUsed: r.jobsUsed,
    notBefore: new Date(r.notBefore).toISOString(),
    notAfter: new Date(r.notAfter).toISOString(),
    reason: r.reason,
    digest: r.digest,
    contract: r.document,
    signatures: { buyer: r.buyerSignature, provider: r.providerSignature, exchange: r.exchangeSignature },
    privacy,
  };
}

/**
 * Revokes a pending or active contract with its ledger entry (by its buyer,
 * its provider, or the exchange's operator); false when it was neither.
 */
export function revokeContract(store: Store, identity: NodeIdentity, id: string, by: "buyer" | "provider" | "operator"): boolean {
  return store.transaction(() => {
    const row = store.venue.getContract(id);
    if (row === undefined || !store.venue.endContract(id, "revoked", `revoked-by-${by}`)) return false;
    appendEntry(store, identity.signing, { kind: LedgerKind.ContractRevoked, body: { contract: id, digest: row.digest, by } });
    return true;
  });
}

export const contractRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx }) => {
  const { store } = ctx;
  const keyOf = (name: string): Uint8Array => {
    const p = store.getParty(name);
    if (p === undefined) throw new ContractDeniedError(ContractRule.Signature, "the signer is not registered");
    return p.signingPublicKey;
  };
  /**
   * The contract's buyer's privacy budget on each dataset of its product that has one. `policies` holds the policies read
   * for one answer (a list of contracts reads each dataset's once).
   */
  const privacyOf = (r: ContractRow, policies = new Map<string, UsagePolicy | undefined>()): PrivacyBudgetView[] =>
    (productOf(store, r.productId, r.productVersion)?.datasets ?? []).flatMap((d) => {
      if (!policies.has(d)) policies.set(d, ctx.loadPolicy(d));
      const policy = policies.get(d);
      return policy?.privacyBudget !== undefined ? [privacyBudgetView(store, d, policy, "exchange", r.buyer)] : [];
    });
  const view = (r: ContractRow, policies?: Map<string, UsagePolicy | undefined>): Record<string, unknown> => contractView(r, privacyOf(r, policies));
  /** A contract its caller is a party to (any other is answered as missing). */
  const ownContract = (id: string, party: string): ContractRow => {
    const r = store.venue.getContract(id);
    if (r === undefined || (r.buyer !== party && r.provider !== party)) throw new NotFoundError("no such contract");
    return r;
  };

  app.post("/v1/orders", { preValidation: ctx.auth, schema: { body: OrderSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const c = parseContract(req.body.contract);
    if (c.buyer !== req.party) throw new ForbiddenError("an order is placed by its buyer");
    const latest = store.venue.latestProduct(c.product.id);
    if (latest === undefined || !productVisible(ctx, latest, c.buyer)) throw new NotFoundError("no such product");
    const p = latest.document as unknown as Product;
    const copies =
      latest.state === "active" &&
      latest.version === c.product.version &&
      latest.digest === c.product.digest &&
      latest.owner === c.provider &&
      c.provider !== c.buyer &&
      canonicalJson(p.prices) === canonicalJson({ perKey: 0, perMatchedRow: 0, perCell: 0, ...c.prices }) &&
      p.share === c.share;
    if (!copies) throw new ContractDeniedError(ContractRule.ProductMismatch, "the order does not copy the product's current version, provider, prices and share");
    const notBefore = Date.parse(c.notBefore);
    const notAfter = Date.parse(c.notAfter);
    if (notAfter <= ctx.now() || notAfter - notBefore > MAX_WINDOW_MS) throw new ContractDeniedError(ContractRule.Window, "the contract's window must end in the future and last at most 5 years");
    if (!verifyContractSignature(keyOf(c.buyer), c, req.body.signature)) throw new ContractDeniedError(ContractRule.Signature, "the buyer's signature does not verify under its registered key");
    const digest = contractDigest(c);
    const row = store.transaction(() => {
      if (store.venue.getContract(c.id) !== undefined) throw new AlreadyExistsError("a contract with this id exists");
      const r = store.venue.putContract({
        id: c.id,
        productId: c.product.id,
        productVersion: c.product.version,
        buyer: c.buyer,
        provider: c.provider,
        document: c,
        digest,
        buyerSignature: req.body.signature,
        state: "pending",
        quotaJobs: c.quota.jobs,
        notBefore,
        notAfter,
      });
      ctx.ledger(LedgerKind.OrderCreated, { order: c.id, product: c.product.id, version: c.product.version, productDigest: c.product.digest, digest, buyer: c.buyer, provider: c.provider, quotaJobs: c.quota.jobs });
      return r;
    });
    return reply.code(201).send(view(row));
  });

  app.get("/v1/contracts", { preValidation: ctx.auth }, async (req) => {
    const q = req.query as { state?: string };
    const states: readonly string[] = ["pending", "active", "rejected", "revoked"];
    const state = q.state !== undefined && states.includes(q.state) ? (q.state as ContractState) : undefined;
    const policies = new Map<string, UsagePolicy | undefined>();
    return { contracts: store.venue.listContracts({ party: req.party as string, ...(state ? { state } : {}) }).map((r) => view(r, policies)) };
  });

  app.get("/v1/contracts/:id", { preValidation: ctx.auth }, async (req) => view(ownContract((req.params as { id: string }).id, req.party as string)));

  app.post("/v1/contracts/:id/approve", { preValidation: ctx.auth, schema: { body: ApprovalSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    const r = ownContract((req.params as { id: string }).id, req.party as string);
    if (r.provider !== req.party) throw new ForbiddenError("only its provider approves an order");
    if (r.state !== "pending") throw new ContractDeniedError(ContractRule.NotActive, "only a pending order is approved");
    const c = parseContract(r.document);
    if (!verifyContractSignature(keyOf(r.provider), c, req.body.signature)) throw new ContractDeniedError(ContractRule.Signature, "the provider's signature does not verify under its registered key");
    // Both signatures checked against the registered keys (the buyer's again: a key may have changed since the order).
    if (!verifyContractSignature(keyOf(r.buyer), c, r.buyerSignature)) throw new ContractDeniedError(ContractRule.Signature, "the buyer's signature does not verify under its registered key");
    const exchange = countersign(ctx.identity.signing.secretKey, r.digest, r.buyerSignature, req.body.signature);
    const row = store.transaction(() => {
      if (!store.venue.activateContract(r.id, req.body.signature, exchange)) throw new ContractDeniedError(ContractRule.NotActive, "only a pending order is approved");
      ctx.ledger(LedgerKind.ContractSigned, { contract: r.id, digest: r.digest, product: r.productId, version: r.productVersion, buyer: r.buyer, provider: r.provider });
      return store.venue.getContract(r.id) as ContractRow;
    });
    return { ...view(row), signed: signedContractOf(row) };
  });

  app.post("/v1/contracts/:id/reject", { preValidation: ctx.auth, schema: { body: EndContractSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    const r = ownContract((req.params as { id: string }).id, req.party as string);
    if (r.provider !== req.party) throw new ForbiddenError("only its provider rejects an order");
    const reason = req.body.reason ?? "rejected";
    const row = store.transaction(() => {
      if (!store.venue.endContract(r.id, "rejected", reason)) throw new ContractDeniedError(ContractRule.NotActive, "only a pending order is rejected");
      ctx.ledger(LedgerKind.OrderRejected, { order: r.id, digest: r.digest, reason });
      return store.venue.getContract(r.id) as ContractRow;
    });
    return view(row);
  });

  app.post("/v1/contracts/:id/revoke", { preValidation: ctx.auth, schema: { body: EndContractSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    const r = ownContract((req.params as { id: string }).id, req.party as string);
    if (!revokeContract(store, ctx.identity, r.id, r.buyer === req.party ? "buyer" : "provider")) throw new ContractDeniedError(ContractRule.NotActive, "only a pending or active contract is revoked");
    return view(store.venue.getContract(r.id) as ContractRow);
  });
};
