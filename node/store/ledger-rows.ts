/**
 * The raw rows of this node's ledger (chained and signed by `node/ledger.ts`)
 * and the heads of the exchange's ledger this party has seen signed, called by
 * the open store (`node/store/sqlite.ts`).
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { checkCount, checkDigest } from "./checks.js";
import type { StoreContext } from "./context.js";
import type { LedgerRow } from "./types.js";

export function noteExchangeHead(ctx: StoreContext, head: { readonly seq: number; readonly hash: string; readonly signature: string }): "new" | "known" | "fork" {
  checkCount("seq", head.seq);
  if (head.seq < 1) throw new InvalidArgumentError("seq must be at least 1");
  checkDigest("hash", head.hash);
  if (typeof head.signature !== "string" || !/^[0-9a-f]{128}$/.test(head.signature)) throw new InvalidArgumentError("signature must be 64 bytes of lowercase hex");
  return ctx.transaction(() => {
    const row = ctx.sql("SELECT hash FROM exchange_heads WHERE seq = ?").get(head.seq) as { hash: string } | undefined;
    if (row !== undefined) return row.hash === head.hash ? "known" : "fork";
    ctx.sql("INSERT INTO exchange_heads (seq, hash, signature, seen_at) VALUES (?, ?, ?, ?)").run(head.seq, head.hash, head.signature, ctx.time());
    return "new";
  });
}

export function latestExchangeHead(ctx: StoreContext): { seq: number; hash: string; signature: string } | undefined {
  return ctx.sql("SELECT seq, hash, signature FROM exchange_heads ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string; signature: string } | undefined;
}

export function ledgerHead(ctx: StoreContext): LedgerRow | undefined {
  return ctx.sql("SELECT * FROM ledger ORDER BY seq DESC LIMIT 1").get() as LedgerRow | undefined;
}

export function insertLedgerRow(ctx: StoreContext, row: LedgerRow): void {
  ctx.sql("INSERT INTO ledger (seq, at, kind, job, body, prev_hash, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(
    row.seq,
    row.at,
    row.kind,
    row.job,
    row.body,
    row.prev_hash,
    row.hash,
    row.signature,
  );
}

export function ledgerRows(ctx: StoreContext, filter: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number } = {}): IterableIterator<LedgerRow> {
  const where: string[] = ["seq > ?"];
  const args: (string | number)[] = [filter.afterSeq ?? Number.MIN_SAFE_INTEGER];
  if (filter.job !== undefined) {
    where.push("job = ?");
    args.push(filter.job);
  }
  let sql = `SELECT * FROM ledger WHERE ${where.join(" AND ")} ORDER BY seq`;
  if (filter.limit !== undefined) {
    sql += " LIMIT ?";
    args.push(checkCount("limit", filter.limit));
  }
  // Not a cached statement: an iterating statement is busy until it is exhausted.
  return ctx.db.prepare(sql).iterate(...args) as IterableIterator<LedgerRow>;
}
