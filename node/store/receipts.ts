/**
 * Receipts' rows (docs/venue.md, "Receipts and statements"): the exchange's
 * signed receipt of each job that ran under contracts (one per job: `job` is
 * UNIQUE), its shares by provider, and the buyer's acknowledgement. A party
 * keeps the receipts it fetched (as buyer or provider) the same way.
 *
 * Every function may run inside the caller's transaction: a receipt commits
 * with the job's success and its ledger entry.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { checkId, checkName, jsonText, parseJson, type JsonValue } from "./checks.js";
import type { StoreContext } from "./context.js";

export interface ReceiptInput {
  readonly id: string;
  readonly job: string;
  readonly buyer: string;
  readonly currency: string;
  readonly amount: number;
  readonly document: unknown;
  readonly digest: string;
  readonly signature: string;
  readonly shares: readonly { readonly provider: string; readonly amount: number }[];
  readonly issuedAt: number;
  readonly issuedSeq?: number | null;
}

export interface ReceiptRow {
  readonly id: string;
  readonly job: string;
  readonly buyer: string;
  readonly currency: string;
  readonly amount: number;
  readonly document: JsonValue;
  readonly digest: string;
  readonly signature: string;
  readonly shares: readonly { readonly provider: string; readonly amount: number }[];
  readonly issuedSeq: number | null;
  readonly ackSignature: string | null;
  readonly issuedAt: number;
  readonly acknowledgedAt: number | null;
}

interface ReceiptSql {
  id: string;
  job: string;
  buyer: string;
  currency: string;
  amount: number;
  document: string;
  digest: string;
  signature: string;
  issued_seq: number | null;
  ack_signature: string | null;
  issued_at: number;
  acknowledged_at: number | null;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const amountOk = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

export class ReceiptRows {
  constructor(readonly ctx: StoreContext) {}

  #row(r: ReceiptSql): ReceiptRow {
    const shares = this.ctx.sql("SELECT provider, amount FROM receipt_shares WHERE receipt = ? ORDER BY provider").all(r.id) as { provider: string; amount: number }[];
    return {
      id: r.id,
      job: r.job,
      buyer: r.buyer,
      currency: r.currency,
      amount: r.amount,
      document: parseJson(r.document),
      digest: r.digest,
      signature: r.signature,
      shares,
      issuedSeq: r.issued_seq,
      ackSignature: r.ack_signature,
      issuedAt: r.issued_at,
      acknowledgedAt: r.acknowledged_at,
    };
  }

  /** Stores a receipt and its shares; a second receipt of the same job (or id) is refused. */
  put(r: ReceiptInput): ReceiptRow {
    checkId("receipt id", r.id);
    checkId("job id", r.job);
    checkName("buyer", r.buyer);
    if (!/^[A-Z]{3}$/.test(r.currency)) throw new InvalidArgumentError("a currency is 3 capital letters");
    if (!amountOk(r.amount) || !r.shares.every((s) => amountOk(s.amount))) throw new InvalidArgumentError("an amount must be a safe integer of at least 0");
    if (!HEX64.test(r.digest) || !HEX128.test(r.signature)) throw new InvalidArgumentError("a receipt's digest and signature must be lowercase hex of their length");
    const text = jsonText("receipt document", r.document);
    return this.ctx.transaction(() => {
      if (this.byJob(r.job) !== undefined || this.get(r.id) !== undefined) throw new InvalidArgumentError("a receipt of this job is stored already");
      this.ctx
        .sql("INSERT INTO receipts (id, job, buyer, currency, amount, document, digest, signature, issued_seq, ack_signature, issued_at, acknowledged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)")
        .run(r.id, r.job, r.buyer, r.currency, r.amount, text, r.digest, r.signature, r.issuedSeq ?? null, r.issuedAt);
      for (const s of r.shares) this.ctx.sql("INSERT INTO receipt_shares (receipt, provider, amount) VALUES (?, ?, ?)").run(r.id, checkName("provider", s.provider), s.amount);
      return this.get(r.id) as ReceiptRow;
    });
  }

  /** Sets the seq of a receipt's receipt.issued entry (known once appended, in the same transaction). */
  setIssuedSeq(id: string, seq: number): void {
    this.ctx.sql("UPDATE receipts SET issued_seq = ? WHERE id = ?").run(seq, id);
  }

  get(id: string): ReceiptRow | undefined {
    const r = this.ctx.sql("SELECT * FROM receipts WHERE id = ?").get(id) as ReceiptSql | undefined;
    return r ? this.#row(r) : undefined;
  }

  byJob(job: string): ReceiptRow | undefined {
    const r = this.ctx.sql("SELECT * FROM receipts WHERE job = ?").get(job) as ReceiptSql | undefined;
    return r ? this.#row(r) : undefined;
  }

  /** Receipts where `party` is the buyer or has a share (every one without), issued in [from, to), oldest first. */
  list(filter: { readonly party?: string; readonly job?: string; readonly from?: number; readonly to?: number } = {}): ReceiptRow[] {
    const p = filter.party ?? null;
    const rows = this.ctx
      .sql(
        `SELECT * FROM receipts r WHERE (? IS NULL OR r.buyer = ? OR EXISTS (SELECT 1 FROM receipt_shares s WHERE s.receipt = r.id AND s.provider = ?))
           AND (? IS NULL OR r.job = ?) AND r.issued_at >= ? AND r.issued_at < ? ORDER BY r.issued_at, r.id`,
      )
      .all(p, p, p, filter.job ?? null, filter.job ?? null, filter.from ?? 0, filter.to ?? Number.MAX_SAFE_INTEGER) as ReceiptSql[];
    return rows.map((r) => this.#row(r));
  }

  /** Records the buyer's acknowledgement, once: false (nothing changed) when it has one already. */
  acknowledge(id: string, signature: string): boolean {
    if (!HEX128.test(signature)) throw new InvalidArgumentError("an acknowledgement must be lowercase hex of its length");
    return this.ctx.sql("UPDATE receipts SET ack_signature = ?, acknowledged_at = ? WHERE id = ? AND ack_signature IS NULL").run(signature, this.ctx.time(), id).changes === 1;
  }
}
