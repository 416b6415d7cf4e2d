/**
 * The node's persistent store: one SQLite file (better-sqlite3, synchronous)
 * holding this node's identity, the parties it knows, the dataset catalog and
 * policies, jobs with their steps, persisted protocol states and results, the
 * envelope nonces it has accepted, per-buyer budgets and the audit ledger
 * (whose chaining and signing live in `node/ledger.ts`).
 *
 * The file runs in WAL mode with `synchronous=NORMAL` and foreign keys on; the
 * schema is `node/migrations.ts`, applied forward-only on open. Every method
 * is synchronous; every change that touches more than one row, or reads
 * before it writes, runs in one transaction, and {@link Store.transaction}
 * groups several calls into one (nested calls become savepoints).
 *
 * What is stored: ids, names, public keys, JSON metadata (dataset schemas,
 * policies, job parameters and progress), sizes and digests, protocol states
 * and results. Never a dataset row, and never a message's bytes: a step is its
 * size and digest. A protocol state can hold secret scalars: delete it
 * ({@link Store.deleteState}) when its job ends. The file is created readable
 * by its owner only.
 *
 * Errors: bad arguments are `InvalidArgumentError`; a missing job, dataset or
 * party is {@link NotFoundError}; a state change off the job graph is
 * {@link InvalidTransitionError}; a budget that would go below zero is the
 * protocol layer's `BudgetExceededError`. Each leaves the store unchanged, and
 * no message names an id, a key or a value.
 *
 * Layout: this module is the entry; the store lives in `node/store/` — the
 * open connection and its transaction (`sqlite.ts`), one module per group of
 * records (`parties.ts`: identity, parties, invitations, nonces;
 * `catalog.ts`: datasets, policies, budgets; `jobs.ts`: jobs, steps,
 * protocol states, results; `ledger-rows.ts`: ledger rows and exchange
 * heads), the argument checks and canonical JSON (`checks.ts`), the records
 * and the {@link Store} interface (`types.ts`) and the errors (`errors.ts`).
 */
export { BudgetExceededError } from "../protocols/errors.js";
export { StoreVersionError, LATEST_SCHEMA_VERSION } from "./migrations.js";
export { StoreErrorCode, NotFoundError, AlreadyExistsError, InvalidTransitionError } from "./store/errors.js";
export * from "./store/types.js";
export { canonicalJson } from "./store/checks.js";
export { openStore } from "./store/sqlite.js";
export type { LogRows, StoredTreeHead, LogEvidence } from "./store/log-rows.js";
export { ContractState, ProductState, type ContractInput, type ContractRow, type ProductRow } from "./store/venue.js";
export { type ReceiptInput, type ReceiptRow } from "./store/receipts.js";
export type { DurableRows, RelayInput, RelayRow, RelayKind, RelayUsage, OutboxRow, JobRun } from "./store/durable.js";
