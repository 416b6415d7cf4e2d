/**
 * What the per-kind modules of the store (parties, catalog, jobs, ledger rows)
 * are given by the open store: its connection, its cached prepared
 * statements, its clock and its transaction.
 */
import type Database from "better-sqlite3";

export interface StoreContext {
  readonly db: Database.Database;
  /** A prepared statement, prepared once per store. */
  sql(source: string): Database.Statement;
  /** The store's clock (ms since the epoch), checked. */
  time(): number;
  /** The store's transaction (a savepoint when nested). */
  transaction<T>(fn: () => T): T;
}
