/**
 * The raw rows of this node's ledger (chained and signed by `node/ledger.ts`),
 * called by the open store (`node/store/sqlite.ts`).
 */
import { checkCount } from "./checks.js";
import type { StoreContext } from "./context.js";
import type { LedgerRow } from "./types.js";

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
