/**
 * A party agent's receipts (docs/venue.md, "Receipts and statements").
 *
 * As a buyer, {@link PartyReceipts.sync} fetches the receipt of each of its
 * jobs that succeeded under contracts, checks it — the exchange's signature,
 * that it is in the exchange's log, that it is this job's and this buyer's,
 * that each line is of a contract the job cites at the prices this buyer
 * signed, and that its units are the units this agent reported (matched
 * rows, cells) or declared (keys: never more) — keeps it, signs its
 * acknowledgement and posts it. A receipt that fails a check is refused
 * (logged with its rule, never acknowledged).
 *
 * The local API: `GET /v1/receipts[?job=ID]`, `GET /v1/receipts/:id` (the
 * bundle, checked), `GET /v1/statement?from=MS&to=MS` (this party's rows).
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { Type } from "typebox";
import { UmbraError } from "../../engine/errors.js";
import type { SenderKeys } from "../envelope.js";
import type { NodeIdentity } from "../identity.js";
import type { JobRequest } from "../job-request.js";
import type { ExchangeClient } from "../server/client.js";
import type { Store } from "../store.js";
import { heldSchedules, meteredUnits } from "./buyer-metering.js";
import { parseReceipt, ReceiptRefusedError, ReceiptRule, signAck, verifyReceiptBundle, verifyReceiptSignature, type Receipt } from "./receipt.js";
import { statementOf, type Statement } from "./statement.js";

export interface PartyReceiptsOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly client: ExchangeClient;
  readonly log: FastifyBaseLogger;
  readonly exchange: () => { readonly name: string; readonly keys: SenderKeys | undefined };
}

export interface PartyReceipts {
  register(app: FastifyInstance): void;
  /** Fetches, checks, keeps and acknowledges the receipts of this buyer's succeeded jobs that have none here yet. */
  sync(): Promise<void>;
}

interface Listed {
  readonly id: string;
  readonly receipt: unknown;
  readonly signature: string;
  readonly acknowledged: boolean;
}

/**
 * Checks a receipt against what this buyer knows of its job: its job and
 * buyer, one line per cited contract at the prices the buyer signed, the
 * units it reported (matched rows, cells) and never more keys than declared.
 * @throws ReceiptRefusedError naming the rule
 */
export function checkAgainstJob(store: Store, me: string, job: string, request: JobRequest, summary: Readonly<Record<string, number>>, r: Receipt): void {
  if (r.job !== job || r.buyer !== me) throw new ReceiptRefusedError(ReceiptRule.WrongJob, "the receipt is not of this job, or not this buyer's");
  const cited = request.contracts ?? [];
  const schedules = heldSchedules(store, request);
  if (r.lines.length !== cited.length || r.lines.some((l, i) => l.contract !== cited[i])) throw new ReceiptRefusedError(ReceiptRule.WrongJob, "the receipt's lines are not the job's contracts");
  const reported = meteredUnits(store, request, summary);
  r.lines.forEach((l, i) => {
    const held = store.venue.getContract(l.contract);
    const p = schedules[i];
    if (held === undefined || p === undefined || held.digest !== l.contractDigest || JSON.stringify(p) !== JSON.stringify({ currency: l.prices.currency, perJob: l.prices.perJob, perKey: l.prices.perKey, perMatchedRow: l.prices.perMatchedRow, perCell: l.prices.perCell })) {
      throw new ReceiptRefusedError(ReceiptRule.Units, "a line's contract or prices are not the ones this buyer signed");
    }
    const u = l.units;
    const keysOk = u.keys === undefined || request.params.queryCount === undefined || u.keys <= request.params.queryCount;
    const rowsOk = u.matchedRows === undefined || u.matchedRows === reported.matchedRows;
    const cellsOk = u.cells === undefined || u.cells === reported.cells;
    if (u.jobs !== 1 || !keysOk || !rowsOk || !cellsOk) throw new ReceiptRefusedError(ReceiptRule.Units, "a line's units are not what this buyer reported");
  });
}

export function partyReceipts(o: PartyReceiptsOptions): PartyReceipts {
  const { store, identity, client, log } = o;
  const me = identity.name;
  const exchangeKey = (): Uint8Array => {
    const k = o.exchange().keys?.signingPublicKey;
    if (k === undefined) throw new UmbraError("UMBRA_EXCHANGE", "the exchange's key is not known yet");
    return k;
  };

  const syncJob = async (job: string, request: JobRequest, summary: Record<string, number>): Promise<void> => {
    const { receipts } = await client.json<{ receipts: Listed[] }>("GET", `/v1/receipts?job=${encodeURIComponent(job)}`);
    const listed = receipts[0];
    if (listed === undefined) return; // not issued (yet)
    const { bundle } = await client.json<{ bundle: unknown }>("GET", `/v1/receipts/${encodeURIComponent(listed.id)}`);
    const v = verifyReceiptBundle(bundle, exchangeKey());
    checkAgainstJob(store, me, job, request, summary, v.receipt);
    const b = bundle as { signature: string };
    store.transaction(() => {
      if (store.receipts.byJob(job) === undefined) {
        store.receipts.put({ id: v.receipt.id, job, buyer: me, currency: v.receipt.currency, amount: v.receipt.amount, document: v.receipt, digest: v.digest, signature: b.signature, shares: v.receipt.shares, issuedAt: Date.parse(v.receipt.at), issuedSeq: v.seq });
      }
    });
    const signature = signAck(identity.signing.secretKey, v.receipt.id, v.digest);
    await client.json("POST", `/v1/receipts/${encodeURIComponent(v.receipt.id)}/ack`, { signature });
    store.receipts.acknowledge(v.receipt.id, signature);
  };

  const sync = async (): Promise<void> => {
    for (const j of store.listJobs({ state: "succeeded", buyer: me })) {
      const request = (j.params as { request?: JobRequest } | null)?.request;
      if (request === undefined || (request.contracts ?? []).length === 0) continue;
      if (store.receipts.byJob(j.id)?.ackSignature != null) continue;
      try {
        await syncJob(j.id, request, (j.progress ?? {}) as Record<string, number>);
      } catch (err) {
        if (!(err instanceof ReceiptRefusedError)) throw err;
        log.warn({ job: j.id, code: err.code, rule: err.rule }, "refused a receipt");
      }
    }
  };

  /** This party's receipts as the exchange lists them, each one's signature checked. */
  const listed = async (query: string): Promise<Receipt[]> => {
    const { receipts } = await client.json<{ receipts: Listed[] }>("GET", `/v1/receipts${query}`);
    const key = exchangeKey();
    return receipts.map((l) => {
      const r = parseReceipt(l.receipt);
      if (!verifyReceiptSignature(key, r, l.signature)) throw new ReceiptRefusedError(ReceiptRule.Signature, "the exchange's signature of a listed receipt does not verify");
      return r;
    });
  };

  const register = (app: FastifyInstance): void => {
    app.get("/v1/receipts", { schema: { querystring: Type.Object({ job: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9._:-]{1,128}$" })) }, { additionalProperties: false }) } }, async (req) => {
      await sync();
      const job = (req.query as { job?: string }).job;
      const { receipts } = await client.json<{ receipts: (Listed & Record<string, unknown>)[] }>("GET", `/v1/receipts${job !== undefined ? `?job=${encodeURIComponent(job)}` : ""}`);
      const key = exchangeKey();
      for (const l of receipts) if (!verifyReceiptSignature(key, parseReceipt(l.receipt), l.signature)) throw new ReceiptRefusedError(ReceiptRule.Signature, "the exchange's signature of a listed receipt does not verify");
      return { receipts };
    });
    app.get("/v1/receipts/:id", async (req) => {
      const answer = await client.json<{ bundle: unknown; acknowledged: boolean }>("GET", `/v1/receipts/${encodeURIComponent((req.params as { id: string }).id)}`);
      verifyReceiptBundle(answer.bundle, exchangeKey());
      return answer;
    });
    app.get(
      "/v1/statement",
      { schema: { querystring: Type.Object({ from: Type.Integer({ minimum: 0 }), to: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }) } },
      async (req): Promise<Statement> => {
        await sync();
        const q = req.query as { from: number; to: number };
        return statementOf(me, await listed(`?from=${q.from}&to=${q.to}`), q.from, q.to);
      },
    );
  };

  return { register, sync };
}
