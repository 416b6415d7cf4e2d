/**
 * Receipts (docs/venue.md, "Receipts and statements"). A party reads the
 * receipts it is the buyer of or has a share in (any other is answered as
 * missing): `GET /v1/receipts[?job=ID&from=MS&to=MS]` lists them,
 * `GET /v1/receipts/:id` answers one as a bundle that verifies offline (the
 * signed receipt, its receipt.issued entry, a signed tree head and the
 * entry's inclusion proof). The buyer acknowledges one it checked:
 * `POST /v1/receipts/:id/ack {signature}` — verified under the buyer's
 * registered key, recorded once with its receipt.acknowledged entry; a
 * refusal changes nothing.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { NotFoundError } from "../../../errors.js";
import { LedgerKind, listEntries } from "../../../ledger.js";
import { currentTreeHead, inclusionProofOf } from "../../../log/head.js";
import { Identifier } from "../../../schemas/common.js";
import type { ReceiptRow, Store } from "../../../store.js";
import { BUNDLE_TYPE, ReceiptRefusedError, ReceiptRule, verifyAck, type Receipt, type ReceiptBundle } from "../../../venue/receipt.js";
import type { NodeIdentity } from "../../../identity.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";

export const AckSchema = Type.Object({ signature: Type.String({ pattern: "^[0-9a-f]{128}$", description: "the buyer's Ed25519 signature (hex) of the receipt's acknowledgement" }) }, { additionalProperties: false });

/** Whether `party` is a receipt's buyer or has a share in it. */
export const receiptConcerns = (r: ReceiptRow, party: string): boolean => r.buyer === party || r.shares.some((s) => s.provider === party);

/** A receipt as listed: its document, digest, signature and acknowledgement. */
export function receiptView(r: ReceiptRow): Record<string, unknown> {
  return { id: r.id, job: r.job, buyer: r.buyer, currency: r.currency, amount: r.amount, digest: r.digest, signature: r.signature, receipt: r.document, acknowledged: r.ackSignature !== null, ack: r.ackSignature };
}

/** A stored receipt as a bundle that verifies offline: its receipt.issued entry, a head signed now and the entry's audit path. */
export function receiptBundle(store: Store, identity: NodeIdentity, r: ReceiptRow, at: number): ReceiptBundle {
  const entry = listEntries(store, { afterSeq: (r.issuedSeq as number) - 1, limit: 1 })[0];
  if (entry === undefined || entry.kind !== LedgerKind.ReceiptIssued) throw new NotFoundError("no such receipt");
  const head = currentTreeHead(store, identity.signing.secretKey, at);
  return { type: BUNDLE_TYPE, receipt: r.document as unknown as Receipt, signature: r.signature, entry, head, inclusion: inclusionProofOf(store, entry.seq, head.size) };
}

export const receiptRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx }) => {
  const { store, identity } = ctx;
  const ownReceipt = (id: string, party: string): ReceiptRow => {
    const r = store.receipts.get(id);
    if (r === undefined || !receiptConcerns(r, party)) throw new NotFoundError("no such receipt");
    return r;
  };

  app.get(
    "/v1/receipts",
    { preValidation: ctx.auth, schema: { querystring: Type.Object({ job: Type.Optional(Identifier), from: Type.Optional(Type.Integer({ minimum: 0 })), to: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }) } },
    async (req) => {
      const party = req.party as string;
      const q = req.query;
      const rows = store.receipts.list({ party, ...(q.job !== undefined ? { job: q.job } : {}), ...(q.from !== undefined ? { from: q.from } : {}), ...(q.to !== undefined ? { to: q.to } : {}) });
      return { receipts: rows.map(receiptView) };
    },
  );

  app.get("/v1/receipts/:id", { preValidation: ctx.auth }, async (req) => {
    const r = ownReceipt((req.params as { id: string }).id, req.party as string);
    return { bundle: receiptBundle(store, identity, r, ctx.now()), acknowledged: r.ackSignature !== null };
  });

  app.post("/v1/receipts/:id/ack", { preValidation: ctx.auth, schema: { body: AckSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    const party = req.party as string;
    const r = store.receipts.get((req.params as { id: string }).id);
    if (r === undefined) throw new NotFoundError("no such receipt");
    if (r.buyer !== party) throw new ReceiptRefusedError(ReceiptRule.NotBuyer, "only the receipt's buyer acknowledges it");
    const key = store.getParty(party)?.signingPublicKey;
    if (key === undefined || !verifyAck(key, r.id, r.digest, req.body.signature)) throw new ReceiptRefusedError(ReceiptRule.AckSignature, "the acknowledgement does not verify under the buyer's key for this receipt");
    // Said again (the same deterministic signature): recorded once.
    if (r.ackSignature !== null) return { id: r.id, acknowledged: true };
    store.transaction(() => {
      if (!store.receipts.acknowledge(r.id, req.body.signature)) return;
      ctx.ledger(LedgerKind.ReceiptAcknowledged, { receipt: r.id, job: r.job, digest: r.digest, signature: req.body.signature });
    });
    return { id: r.id, acknowledged: true };
  });
};
