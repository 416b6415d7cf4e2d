/**
 * The audit ledger as a party may read it (finding 8): the entries about it
 * in full, and of every other entry only what the log's design makes public
 * — {seq, prevHash, hash, signature} — so it can check every link and
 * signature of the chain without reading another party's business.
 */
import type { FastifyPluginAsync } from "fastify";
import { NotFoundError } from "../../../errors.js";
import { LedgerKind, listEntries, type LedgerEntry } from "../../../ledger.js";
import type { Store } from "../../../store.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import type { ExchangeServices } from "../services.js";
import { jobOf } from "../views.js";

const JOB_ID_PATTERN = "^[A-Za-z0-9._:-]{1,128}$";

/**
 * Whether a ledger entry is about `party`: an entry of one of its jobs (as
 * buyer or provider), its own registration, the registration or a policy
 * change of one of its datasets, or of its own products, orders and contracts.
 */
function entryConcerns(store: Store, party: string, e: LedgerEntry, jobs: Map<string, boolean>): boolean {
  if (e.job !== null) {
    let mine = jobs.get(e.job);
    if (mine === undefined) {
      const j = store.getJob(e.job);
      mine = j !== undefined && (j.buyer === party || j.providers.includes(party));
      jobs.set(e.job, mine);
    }
    return mine;
  }
  if (e.kind === LedgerKind.PartyRegistered) return e.body["name"] === party;
  if (e.kind === LedgerKind.DatasetRegistered || e.kind === LedgerKind.DatasetCertified) return e.body["owner"] === party;
  if (e.kind === LedgerKind.PolicyChanged) return typeof e.body["dataset"] === "string" && store.getDataset(e.body["dataset"])?.owner === party;
  // The venue (docs/venue.md): its own products, and the orders and contracts it is a party to.
  if (e.kind === LedgerKind.ProductPublished || e.kind === LedgerKind.ProductWithdrawn) return typeof e.body["product"] === "string" && store.venue.latestProduct(e.body["product"])?.owner === party;
  // Receipts: their buyer and the providers with a share.
  if (e.kind === LedgerKind.ReceiptIssued || e.kind === LedgerKind.ReceiptAcknowledged) {
    const r = typeof e.body["receipt"] === "string" ? store.receipts.get(e.body["receipt"]) : undefined;
    return r !== undefined && (r.buyer === party || r.shares.some((s) => s.provider === party));
  }
  const contract = e.body["order"] ?? e.body["contract"];
  if (e.kind.startsWith("order.") || e.kind.startsWith("contract.")) return typeof contract === "string" && [store.venue.getContract(contract)?.buyer, store.venue.getContract(contract)?.provider].includes(party);
  return false;
}

export const auditRoutes: FastifyPluginAsync<ExchangeServices> = async (app, { ctx }) => {
  const { store, identity } = ctx;

  /**
   * At most `limit` entries (default and most 1,000) after `after`; `next` is
   * the seq to ask after for more. With `job`, one of its own jobs' entries.
   */
  app.get(
    "/v1/audit",
    {
      preValidation: ctx.auth,
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { job: { type: "string", pattern: JOB_ID_PATTERN }, after: { type: "integer", minimum: 0 }, limit: { type: "integer", minimum: 1, maximum: 1000 } },
        },
      },
    },
    async (req) => {
      const party = req.party as string;
      const q = req.query as { job?: string; after?: number; limit?: number };
      if (q.job !== undefined) jobOf(store, q.job, party);
      const limit = q.limit ?? 1000;
      const rows = listEntries(store, { ...(q.job !== undefined ? { job: q.job } : {}), ...(q.after !== undefined ? { afterSeq: q.after } : {}), limit: limit + 1 });
      const page = rows.slice(0, limit);
      const jobs = new Map<string, boolean>();
      const entries = page.map((e) => (entryConcerns(store, party, e, jobs) ? e : { seq: e.seq, prevHash: e.prevHash, hash: e.hash, signature: e.signature }));
      return { publicKey: bytesToHex(identity.signing.publicKey), entries, ...(rows.length > limit ? { next: (page.at(-1) as LedgerEntry).seq } : {}) };
    },
  );

  /** The ledger's signed head: {seq, hash, signature, at} of its latest entry (a party keeps the latest it saw). */
  app.get("/v1/audit/head", { preValidation: ctx.auth }, async () => {
    const head = store.ledgerHead();
    if (head === undefined) throw new NotFoundError("the ledger is empty");
    return { seq: head.seq, hash: head.hash, signature: head.signature, at: head.at };
  });
};
