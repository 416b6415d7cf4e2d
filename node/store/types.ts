/**
 * The store's records and its interface: what goes in (`*Input`), what comes
 * back (`*Record`), the job graph, and {@link Store} itself, which
 * `node/store/sqlite.ts` implements.
 */
import type { Checkpoints } from "./checkpoints.js";
import type { JsonValue } from "./checks.js";
import type { DurableRows } from "./durable.js";
import type { LogRows } from "./log-rows.js";
import type { VenueRows } from "./venue.js";
import type { ReceiptRows } from "./receipts.js";

export type { JsonValue } from "./checks.js";

export const PartyRole = {
  Exchange: "exchange",
  Provider: "provider",
  Buyer: "buyer",
} as const;
export type PartyRole = (typeof PartyRole)[keyof typeof PartyRole];

export interface PartyInput {
  /** The node name envelopes carry ([A-Za-z0-9._-]{1,64}). */
  readonly name: string;
  readonly role: PartyRole;
  /** Ed25519 public key, 32 bytes. */
  readonly signingPublicKey: Uint8Array;
  /** X25519 public key for sealed payloads, 32 bytes; absent when the party has none. */
  readonly boxPublicKey?: Uint8Array | null;
  /** X25519 mask key (federated-aggregate's pairwise masks), 32 bytes; absent when the party has none. */
  readonly maskPublicKey?: Uint8Array | null;
  /** Where the party's agent listens (a URL); absent for parties that only connect out. */
  readonly endpoint?: string | null;
}

export interface PartyRecord {
  readonly name: string;
  readonly role: PartyRole;
  readonly signingPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array | null;
  readonly maskPublicKey: Uint8Array | null;
  readonly endpoint: string | null;
  readonly registeredAt: number;
  readonly updatedAt: number;
}

export interface DatasetInput {
  readonly id: string;
  /** The owning party's name. */
  readonly owner: string;
  /** A display name. */
  readonly name: string;
  /** The columns and their types (JSON), never values. */
  readonly schema: unknown;
  readonly rowCount: number;
  /** Lowercase hex digest of the dataset's content. */
  readonly contentHash: string;
}

export interface DatasetRecord {
  readonly id: string;
  readonly owner: string;
  readonly name: string;
  readonly schema: JsonValue;
  readonly rowCount: number;
  readonly contentHash: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface PolicyRecord {
  readonly datasetId: string;
  /** 1, 2, 3, … per dataset; the highest is in force. */
  readonly version: number;
  readonly policy: JsonValue;
  readonly createdAt: number;
}

export const JobState = {
  Submitted: "submitted",
  Running: "running",
  Succeeded: "succeeded",
  Failed: "failed",
  Refused: "refused",
  Cancelled: "cancelled",
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

/** The job graph: the states each state may move to. The last four are final. */
export const JOB_TRANSITIONS: { readonly [S in JobState]: readonly JobState[] } = {
  submitted: ["running", "refused", "failed", "cancelled"],
  running: ["succeeded", "failed", "cancelled"],
  succeeded: [],
  failed: [],
  refused: [],
  cancelled: [],
};

export interface JobInput {
  /** A job id as protocol messages carry it ([A-Za-z0-9._:-]{1,128}). */
  readonly id: string;
  readonly protocol: string;
  readonly buyer: string;
  readonly providers: readonly string[];
  /** The job's parameters (dataset ids, key columns, options), JSON. */
  readonly params: unknown;
}

export interface JobRecord {
  readonly id: string;
  readonly protocol: string;
  readonly buyer: string;
  readonly providers: readonly string[];
  readonly params: JsonValue;
  readonly state: JobState;
  /** Why a job was refused, failed or cancelled: a rule or error code, never a value. */
  readonly reason: string | null;
  readonly progress: JsonValue | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface JobFilter {
  readonly state?: JobState | readonly JobState[];
  readonly buyer?: string;
  /** At most this many, oldest first (default: all). */
  readonly limit?: number;
  /** Newest first instead (the limit keeps the newest). */
  readonly newestFirst?: boolean;
}

export const StepDirection = { In: "in", Out: "out" } as const;
export type StepDirection = (typeof StepDirection)[keyof typeof StepDirection];

export interface StepInput {
  /** The protocol step's name (e.g. "buyer-blinded"). */
  readonly step: string;
  readonly direction: StepDirection;
  /** The message's size in bytes. */
  readonly size: number;
  /** Lowercase hex digest of the message. */
  readonly digest: string;
}

export interface StepRecord extends StepInput {
  readonly jobId: string;
  /** 1, 2, 3, … per job, in the order recorded. */
  readonly seq: number;
  readonly at: number;
}

export type ResultInput = (
  | { readonly digest: string; readonly bytes: Uint8Array; readonly path?: undefined }
  | { readonly digest: string; readonly path: string; readonly size: number; readonly bytes?: undefined }
) & {
  /** The 32-byte salt of a salted digest (node/ledger.ts resultCommitment), when it is one. */
  readonly salt?: Uint8Array;
};

export interface ResultRecord {
  readonly jobId: string;
  readonly digest: string;
  /** The salt of a salted digest, else null. */
  readonly salt: Uint8Array | null;
  /** The result's bytes when stored inline, else null. */
  readonly bytes: Uint8Array | null;
  /** The file holding the result when stored outside the database, else null. */
  readonly path: string | null;
  readonly size: number;
  readonly createdAt: number;
  readonly releasedAt: number | null;
}

export interface BudgetRecord {
  readonly datasetId: string;
  readonly buyer: string;
  readonly remaining: number;
  readonly updatedAt: number;
}

export interface InvitationInput {
  /** Lowercase hex SHA-256 of the invitation code (the code itself is never stored). */
  readonly codeHash: string;
  /** The party name it admits ([A-Za-z0-9._-]{1,64}). */
  readonly name: string;
  /** How long it admits from now (ms, positive): it expires at the store's clock plus this. */
  readonly expiresInMs: number;
}

/** An invitation as the store lists it: never its code, nor the code's hash. */
export interface InvitationRecord {
  readonly name: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** When a party registered with it, or null while unused. */
  readonly usedAt: number | null;
  /** The signing public key that registered with it, or null while unused. */
  readonly usedBy: Uint8Array | null;
}

/** Remembers which envelope nonces a sender has used, so a replay is refused. */
export interface ReplayGuard {
  seen(sender: string, nonce: Uint8Array): boolean;
  remember(sender: string, nonce: Uint8Array, timestampMs: number): void;
}

/** A raw ledger row, for `node/ledger.ts`; use its functions rather than these. */
export interface LedgerRow {
  readonly seq: number;
  readonly at: number;
  readonly kind: string;
  readonly job: string | null;
  readonly body: string;
  readonly prev_hash: string;
  readonly hash: string;
  readonly signature: string;
}

export interface StoreStatus {
  readonly schemaVersion: number;
  /** "wal" for a file, "memory" for ":memory:". */
  readonly journalMode: string;
  readonly synchronous: "off" | "normal" | "full" | "extra";
  readonly foreignKeys: boolean;
}

export interface StoreOptions {
  /** The clock, in ms since the epoch (default Date.now). */
  readonly now?: () => number;
}


export interface Store {
  /** The file's path, or ":memory:". */
  readonly path: string;
  /** The rows that make jobs durable: the relay, sequences, the outbox, watermarks, runs (node/store/durable.ts). */
  readonly durable: DurableRows;
  /** The transparency log's tree nodes, and a party's heads and evidence of the exchange's log (node/store/log-rows.ts). */
  readonly log: LogRows;
  /** Checkpoints of role states (node/store/checkpoints.ts). */
  readonly checkpoints: Checkpoints;
  /** The venue's products and contracts (node/store/venue.ts). */
  readonly venue: VenueRows;
  /** Receipts of jobs run under contracts (node/store/receipts.ts). */
  readonly receipts: ReceiptRows;

  /** Runs `fn` in one transaction (a savepoint when nested): all its changes or none. `fn` must be synchronous. */
  transaction<T>(fn: () => T): T;
  /** The store's clock (ms since the epoch), as it stamps rows. */
  now(): number;
  /** The schema version and the connection's settings (for a health check). */
  status(): StoreStatus;
  close(): void;
  readonly open: boolean;

  // identity
  /** Stores this node's identity (its JSON text), replacing any previous one. */
  putIdentity(json: string): void;
  /** Replaces the identity record, scrubbing the old one's bytes from the file (see node/store/parties.ts replaceIdentity). */
  replaceIdentity(json: string): void;
  getIdentity(): string | undefined;

  // parties
  /** Registers a party, or updates its role, keys and endpoint (keeping when it was first registered). */
  putParty(party: PartyInput): PartyRecord;
  /** Forgets a party (a pinned exchange replaced by a configured one); true when there was one. */
  deleteParty(name: string): boolean;
  getParty(name: string): PartyRecord | undefined;
  listParties(filter?: { readonly role?: PartyRole }): PartyRecord[];

  // invitations (the exchange's admission control)
  /** Stores a new invitation (by its code's hash); a hash already stored is refused. */
  putInvitation(invitation: InvitationInput): InvitationRecord;
  /**
   * Uses an invitation: the one whose code hashes to `codeHash`, for `name`,
   * unused and unexpired at `nowMs`, is marked used by `usedBy` and true is
   * returned; otherwise nothing changes and false is returned.
   */
  consumeInvitation(name: string, codeHash: string, usedBy: Uint8Array, nowMs: number): boolean;
  /** Every invitation, oldest first (names and times, never codes). */
  listInvitations(): InvitationRecord[];

  // datasets and policies
  /** Registers a dataset or updates its metadata; a dataset id of another owner is refused. */
  putDataset(dataset: DatasetInput): DatasetRecord;
  getDataset(id: string): DatasetRecord | undefined;
  listDatasets(filter?: { readonly owner?: string }): DatasetRecord[];
  /** Stores a new version of a dataset's policy (the previous version + 1) and returns it. */
  putPolicy(datasetId: string, policy: unknown): PolicyRecord;
  /** The policy in force: the highest version. */
  latestPolicy(datasetId: string): PolicyRecord | undefined;
  getPolicy(datasetId: string, version: number): PolicyRecord | undefined;
  listPolicies(datasetId: string): PolicyRecord[];

  // jobs
  /** Creates a job in state `submitted`. */
  createJob(job: JobInput): JobRecord;
  getJob(id: string): JobRecord | undefined;
  /** How many jobs are in each state (a state with none is absent). */
  countJobsByState(): Record<string, number>;
  listJobs(filter?: JobFilter): JobRecord[];
  /**
   * Moves a job from one of `from` to `to` along {@link JOB_TRANSITIONS},
   * setting its reason (and progress) when given. Anything else is an
   * InvalidTransitionError and the job stays as it was.
   */
  transitionJob(id: string, from: readonly JobState[], to: JobState, reason?: string | null, progress?: unknown): JobRecord;
  /** Replaces a submitted or running job's progress (JSON). */
  setJobProgress(id: string, progress: unknown): JobRecord;
  /** Appends a step to a job's record and returns it with its seq. */
  recordStep(jobId: string, step: StepInput): StepRecord;
  listSteps(jobId: string): StepRecord[];

  // protocol states
  saveState(jobId: string, role: string, state: Uint8Array): void;
  loadState(jobId: string, role: string): Uint8Array | undefined;
  /** Deletes one role's state, or every state of the job; returns how many were deleted. */
  deleteState(jobId: string, role?: string): number;

  // results
  /** Stores a job's result, once. */
  putResult(jobId: string, result: ResultInput): ResultRecord;
  getResult(jobId: string): ResultRecord | undefined;
  /** Marks a result released to its buyer (the first time only) and returns it. */
  releaseResult(jobId: string): ResultRecord;

  // nonces
  readonly replayGuard: ReplayGuard;
  nonceSeen(sender: string, nonce: Uint8Array): boolean;
  rememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): void;
  /** Remembers the nonce and returns true, or returns false (and changes nothing) when it was seen already. */
  checkAndRememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): boolean;
  /** Forgets nonces whose timestamp is more than `maxAgeMs` before `nowMs`; returns how many. */
  pruneNonces(maxAgeMs: number, nowMs?: number): number;

  // budgets
  getBudget(datasetId: string, buyer: string): BudgetRecord | undefined;
  setBudget(datasetId: string, buyer: string, remaining: number): BudgetRecord;
  /**
   * Takes `amount` from a budget and returns what remains. A budget that would
   * go below zero, or that was never set, refuses with BudgetExceededError and
   * stays as it was.
   */
  consumeBudget(datasetId: string, buyer: string, amount: number): BudgetRecord;
  /** Every buyer's budget row of a dataset. */
  listBudgets(datasetId: string): BudgetRecord[];
  /** Gives `amount` back to a budget (a reservation larger than what was measured). */
  refundBudget(datasetId: string, buyer: string, amount: number): BudgetRecord;
  /** The zCDP ρ a buyer has spent on a dataset, "num/den" ("0/1" when none; node/privacy-budget.ts). */
  getPrivacySpent(datasetId: string, buyer: string): string;
  /** Records it; node/privacy-budget.ts checks the budget in the same transaction. */
  setPrivacySpent(datasetId: string, buyer: string, spent: string): void;
  /** Every buyer's spent ρ on a dataset ("num/den"), by buyer name. */
  listPrivacySpent(datasetId: string): { buyer: string; spent: string }[];

  // the ledger's rows (node/ledger.ts)
  ledgerHead(): LedgerRow | undefined;
  insertLedgerRow(row: LedgerRow): void;
  ledgerRows(filter?: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number }): IterableIterator<LedgerRow>;
}
