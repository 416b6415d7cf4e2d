/**
 * The open store: one better-sqlite3 connection in WAL mode with foreign keys
 * on, its schema brought up to date by `node/migrations.ts`, a cache of
 * prepared statements, the clock and the transaction. Each record kind's SQL
 * lives in its own module (parties, catalog, jobs, ledger rows); the store's
 * methods hand them a {@link StoreContext}.
 */
import { closeSync, existsSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { InvalidArgumentError, UmbraError, UnreadableFileError } from "../../engine/errors.js";
import { migrate, schemaVersion } from "../migrations.js";
import * as catalog from "./catalog.js";
import { Checkpoints } from "./checkpoints.js";
import { DurableRows } from "./durable.js";
import { VenueRows } from "./venue.js";
import { ReceiptRows } from "./receipts.js";
import { checkTime } from "./checks.js";
import type { StoreContext } from "./context.js";
import * as jobs from "./jobs.js";
import * as ledger from "./ledger-rows.js";
import { LogRows } from "./log-rows.js";
import * as parties from "./parties.js";
import type {
  BudgetRecord,
  DatasetInput,
  DatasetRecord,
  InvitationInput,
  InvitationRecord,
  JobFilter,
  JobInput,
  JobRecord,
  JobState,
  LedgerRow,
  PartyInput,
  PartyRecord,
  PartyRole,
  PolicyRecord,
  ReplayGuard,
  ResultInput,
  ResultRecord,
  StepInput,
  StepRecord,
  Store,
  StoreOptions,
  StoreStatus,
} from "./types.js";

/**
 * Opens (creating if needed) the store at `path`, or an in-memory one for
 * ":memory:", and brings its schema up to date.
 */
export function openStore(path: string, options: StoreOptions = {}): Store {
  if (typeof path !== "string" || path.length === 0) throw new InvalidArgumentError("store path must be a non-empty string");
  const inMemory = path === ":memory:";
  let db: Database.Database;
  try {
    // Create the file owner-only before SQLite does: it holds the node's identity.
    if (!inMemory && !existsSync(path)) closeSync(openSync(path, "a", 0o600));
    db = new Database(path);
  } catch (cause) {
    throw new UnreadableFileError("cannot open the store file", { cause });
  }
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    migrate(db, options.now ?? Date.now);
  } catch (err) {
    db.close();
    if (err instanceof UmbraError) throw err;
    throw new UnreadableFileError("the store file is not a usable SQLite database", { cause: err });
  }
  return new SqliteStore(db, path, options.now ?? Date.now);
}

class SqliteStore implements Store {
  readonly replayGuard: ReplayGuard;
  readonly durable: DurableRows;
  readonly checkpoints: Checkpoints;
  readonly log: LogRows;
  readonly venue: VenueRows;
  readonly receipts: ReceiptRows;
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #stmts = new Map<string, Database.Statement>();
  readonly #ctx: StoreContext;

  constructor(db: Database.Database, readonly path: string, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#ctx = {
      db,
      sql: (source) => this.#sql(source),
      time: () => this.#time(),
      transaction: (fn) => this.transaction(fn),
    };
    this.durable = new DurableRows(this.#ctx);
    this.checkpoints = new Checkpoints(this.#ctx);
    this.log = new LogRows(this.#ctx);
    this.venue = new VenueRows(this.#ctx);
    this.receipts = new ReceiptRows(this.#ctx);
    this.replayGuard = {
      seen: (sender, nonce) => this.nonceSeen(sender, nonce),
      remember: (sender, nonce, timestampMs) => this.rememberNonce(sender, nonce, timestampMs),
    };
  }

  get open(): boolean {
    return this.#db.open;
  }

  close(): void {
    if (!this.#db.open) return;
    this.#stmts.clear();
    this.#db.close();
  }

  /** A prepared statement, prepared once per store. */
  #sql(source: string): Database.Statement {
    let s = this.#stmts.get(source);
    if (s === undefined) {
      s = this.#db.prepare(source);
      this.#stmts.set(source, s);
    }
    return s;
  }

  #time(): number {
    return checkTime("the clock", this.#now());
  }

  now(): number {
    return this.#time();
  }

  status(): StoreStatus {
    const sync = ["off", "normal", "full", "extra"] as const;
    return {
      schemaVersion: schemaVersion(this.#db),
      journalMode: String(this.#db.pragma("journal_mode", { simple: true })),
      synchronous: sync[Number(this.#db.pragma("synchronous", { simple: true }))] ?? "full",
      foreignKeys: this.#db.pragma("foreign_keys", { simple: true }) === 1,
    };
  }

  transaction<T>(fn: () => T): T {
    // IMMEDIATE: take the write lock before the first read, so a read-then-write
    // never fails to upgrade while another process writes. Nested: a savepoint.
    return this.#db
      .transaction(() => {
        const out = fn();
        if (out !== null && typeof out === "object" && typeof (out as { then?: unknown }).then === "function") {
          throw new InvalidArgumentError("a store transaction must be synchronous");
        }
        return out;
      })
      .immediate();
  }

  // -- identity
  putIdentity(json: string): void {
    parties.putIdentity(this.#ctx, json);
  }
  replaceIdentity(json: string): void {
    parties.replaceIdentity(this.#ctx, json);
  }
  getIdentity(): string | undefined {
    return parties.getIdentity(this.#ctx);
  }

  // -- parties
  putParty(party: PartyInput): PartyRecord {
    return parties.putParty(this.#ctx, party);
  }
  deleteParty(name: string): boolean {
    return parties.deleteParty(this.#ctx, name);
  }
  getParty(name: string): PartyRecord | undefined {
    return parties.getParty(this.#ctx, name);
  }
  listParties(filter?: { readonly role?: PartyRole }): PartyRecord[] {
    return parties.listParties(this.#ctx, filter);
  }

  // -- invitations (the exchange's admission control)
  putInvitation(invitation: InvitationInput): InvitationRecord {
    return parties.putInvitation(this.#ctx, invitation);
  }
  consumeInvitation(name: string, codeHash: string, usedBy: Uint8Array, nowMs: number): boolean {
    return parties.consumeInvitation(this.#ctx, name, codeHash, usedBy, nowMs);
  }
  listInvitations(): InvitationRecord[] {
    return parties.listInvitations(this.#ctx);
  }

  // -- datasets and policies
  putDataset(dataset: DatasetInput): DatasetRecord {
    return catalog.putDataset(this.#ctx, dataset);
  }
  getDataset(id: string): DatasetRecord | undefined {
    return catalog.getDataset(this.#ctx, id);
  }
  listDatasets(filter?: { readonly owner?: string }): DatasetRecord[] {
    return catalog.listDatasets(this.#ctx, filter);
  }
  putPolicy(datasetId: string, policy: unknown): PolicyRecord {
    return catalog.putPolicy(this.#ctx, datasetId, policy);
  }
  latestPolicy(datasetId: string): PolicyRecord | undefined {
    return catalog.latestPolicy(this.#ctx, datasetId);
  }
  getPolicy(datasetId: string, version: number): PolicyRecord | undefined {
    return catalog.getPolicy(this.#ctx, datasetId, version);
  }
  listPolicies(datasetId: string): PolicyRecord[] {
    return catalog.listPolicies(this.#ctx, datasetId);
  }

  // -- jobs
  createJob(job: JobInput): JobRecord {
    return jobs.createJob(this.#ctx, job);
  }
  getJob(id: string): JobRecord | undefined {
    return jobs.getJob(this.#ctx, id);
  }
  countJobsByState(): Record<string, number> {
    return jobs.countJobsByState(this.#ctx);
  }
  listJobs(filter?: JobFilter): JobRecord[] {
    return jobs.listJobs(this.#ctx, filter);
  }
  transitionJob(id: string, from: readonly JobState[], to: JobState, reason?: string | null, progress?: unknown): JobRecord {
    return jobs.transitionJob(this.#ctx, id, from, to, reason, progress);
  }
  setJobProgress(id: string, progress: unknown): JobRecord {
    return jobs.setJobProgress(this.#ctx, id, progress);
  }
  recordStep(jobId: string, step: StepInput): StepRecord {
    return jobs.recordStep(this.#ctx, jobId, step);
  }
  listSteps(jobId: string): StepRecord[] {
    return jobs.listSteps(this.#ctx, jobId);
  }

  // -- protocol states
  saveState(jobId: string, role: string, state: Uint8Array): void {
    jobs.saveState(this.#ctx, jobId, role, state);
  }
  loadState(jobId: string, role: string): Uint8Array | undefined {
    return jobs.loadState(this.#ctx, jobId, role);
  }
  deleteState(jobId: string, role?: string): number {
    return jobs.deleteState(this.#ctx, jobId, role);
  }

  // -- results
  putResult(jobId: string, result: ResultInput): ResultRecord {
    return jobs.putResult(this.#ctx, jobId, result);
  }
  getResult(jobId: string): ResultRecord | undefined {
    return jobs.getResult(this.#ctx, jobId);
  }
  releaseResult(jobId: string): ResultRecord {
    return jobs.releaseResult(this.#ctx, jobId);
  }

  // -- nonces
  nonceSeen(sender: string, nonce: Uint8Array): boolean {
    return parties.nonceSeen(this.#ctx, sender, nonce);
  }
  rememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): void {
    parties.rememberNonce(this.#ctx, sender, nonce, timestampMs);
  }
  checkAndRememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): boolean {
    return parties.checkAndRememberNonce(this.#ctx, sender, nonce, timestampMs);
  }
  pruneNonces(maxAgeMs: number, nowMs?: number): number {
    return parties.pruneNonces(this.#ctx, maxAgeMs, nowMs);
  }

  // -- budgets
  getBudget(datasetId: string, buyer: string): BudgetRecord | undefined {
    return catalog.getBudget(this.#ctx, datasetId, buyer);
  }
  setBudget(datasetId: string, buyer: string, remaining: number): BudgetRecord {
    return catalog.setBudget(this.#ctx, datasetId, buyer, remaining);
  }
  consumeBudget(datasetId: string, buyer: string, amount: number): BudgetRecord {
    return catalog.consumeBudget(this.#ctx, datasetId, buyer, amount);
  }
  listBudgets(datasetId: string): BudgetRecord[] {
    return catalog.listBudgets(this.#ctx, datasetId);
  }
  refundBudget(datasetId: string, buyer: string, amount: number): BudgetRecord {
    return catalog.refundBudget(this.#ctx, datasetId, buyer, amount);
  }
  getPrivacySpent(datasetId: string, buyer: string): string {
    return catalog.getPrivacySpent(this.#ctx, datasetId, buyer);
  }
  setPrivacySpent(datasetId: string, buyer: string, spent: string): void {
    catalog.setPrivacySpent(this.#ctx, datasetId, buyer, spent);
  }
  listPrivacySpent(datasetId: string): { buyer: string; spent: string }[] {
    return catalog.listPrivacySpent(this.#ctx, datasetId);
  }

  // -- the ledger's rows (node/ledger.ts)
  ledgerHead(): LedgerRow | undefined {
    return ledger.ledgerHead(this.#ctx);
  }
  insertLedgerRow(row: LedgerRow): void {
    ledger.insertLedgerRow(this.#ctx, row);
  }
  ledgerRows(filter?: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number }): IterableIterator<LedgerRow> {
    return ledger.ledgerRows(this.#ctx, filter);
  }
}
