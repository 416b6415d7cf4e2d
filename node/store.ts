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
 */
import { closeSync, existsSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { InvalidArgumentError, UmbraError, UnreadableFileError } from "../engine/errors.js";
import { BudgetExceededError } from "../protocols/errors.js";
import { migrate, schemaVersion } from "./migrations.js";

export { BudgetExceededError } from "../protocols/errors.js";
export { StoreVersionError, LATEST_SCHEMA_VERSION } from "./migrations.js";

// ---------------------------------------------------------------------------
// Errors

export const StoreErrorCode = {
  NotFound: "UMBRA_NOT_FOUND",
  AlreadyExists: "UMBRA_ALREADY_EXISTS",
  InvalidTransition: "UMBRA_INVALID_TRANSITION",
  StoreVersion: "UMBRA_STORE_VERSION",
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** A job, dataset, party or result that the store does not hold. */
export class NotFoundError extends UmbraError {
  constructor(what: string) {
    super(StoreErrorCode.NotFound, `${what} not found`);
  }
}

/** A record that exists already and may not be replaced (a job id, a result, a dataset id of another owner). */
export class AlreadyExistsError extends UmbraError {
  constructor(what: string) {
    super(StoreErrorCode.AlreadyExists, `${what} already exists`);
  }
}

/** A job state change that the job graph does not allow, or from a state the caller did not expect. */
export class InvalidTransitionError extends UmbraError {
  readonly from: JobState;
  readonly to: JobState;
  constructor(from: JobState, to: JobState, message?: string) {
    super(StoreErrorCode.InvalidTransition, message ?? `a job cannot go from ${from} to ${to}`);
    this.from = from;
    this.to = to;
  }
}

// ---------------------------------------------------------------------------
// Types

/** A JSON value as the store returns it (parsed from its canonical JSON). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

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
  /** Replaces the identity record, scrubbing the old one's bytes from the file (see SqliteStore). */
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
  /**
   * Records a signed entry of the exchange's ledger this party has seen:
   * "new", "known" (the same hash at that seq before), or "fork" (another
   * hash at that seq — the exchange showed two histories; nothing recorded).
   */
  noteExchangeHead(head: { readonly seq: number; readonly hash: string; readonly signature: string }): "new" | "known" | "fork";
  /** The highest-seq entry of the exchange's ledger this party has seen signed. */
  latestExchangeHead(): { seq: number; hash: string; signature: string } | undefined;
  /** Gives `amount` back to a budget (a reservation larger than what was measured). */
  refundBudget(datasetId: string, buyer: string, amount: number): BudgetRecord;

  // the ledger's rows (node/ledger.ts)
  ledgerHead(): LedgerRow | undefined;
  insertLedgerRow(row: LedgerRow): void;
  ledgerRows(filter?: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number }): IterableIterator<LedgerRow>;
}

// ---------------------------------------------------------------------------
// Validation and JSON

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TOKEN = /^[A-Za-z0-9._:/-]{1,64}$/;
const HEX_DIGEST = /^(?:[0-9a-f]{2}){16,64}$/;
const MAX_JSON_BYTES = 64 * 1024;
const MAX_TEXT = 512;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function checkName(what: string, v: unknown): string {
  if (typeof v !== "string" || !NAME.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._-]{1,64}`);
  return v;
}

function checkId(what: string, v: unknown): string {
  if (typeof v !== "string" || !ID.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._:-]{1,128}`);
  return v;
}

function checkToken(what: string, v: unknown): string {
  if (typeof v !== "string" || !TOKEN.test(v)) throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._:/-]{1,64}`);
  return v;
}

function checkText(what: string, v: unknown, max = MAX_TEXT): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max || CONTROL.test(v) || LONE_SURROGATE.test(v)) {
    throw new InvalidArgumentError(`${what} must be 1 to ${max} printable characters`);
  }
  return v;
}

function checkDigest(what: string, v: unknown): string {
  if (typeof v !== "string" || !HEX_DIGEST.test(v)) throw new InvalidArgumentError(`${what} must be 16 to 64 bytes of lowercase hex`);
  return v;
}

function checkCount(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative safe integer`);
  return v;
}

function checkKey(what: string, v: unknown, length: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== length) throw new InvalidArgumentError(`${what} must be ${length} bytes`);
  return v;
}

function checkBytes(what: string, v: unknown, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) throw new InvalidArgumentError(`${what} must be ${min} to ${max} bytes`);
  return v;
}

function checkTime(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a time in ms since the epoch`);
  return v;
}

function checkAmount(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`${what} must be a finite non-negative number`);
  return v;
}

/**
 * The canonical JSON of `value`: RFC 8785 (JCS) — no whitespace, object keys
 * sorted by UTF-16 code units, numbers and strings as ECMAScript's
 * JSON.stringify writes them. Only JSON values are accepted: null, booleans,
 * finite numbers, well-formed strings, arrays and plain objects (no
 * `undefined`, functions, bigints, typed arrays, dates or cycles).
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

function encode(v: unknown, depth: number): string {
  if (depth > 64) throw new InvalidArgumentError("JSON nests deeper than 64 levels");
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new InvalidArgumentError("JSON numbers must be finite");
      return JSON.stringify(v);
    case "string":
      if (LONE_SURROGATE.test(v)) throw new InvalidArgumentError("JSON strings must be well-formed UTF-16");
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return `[${v.map((x) => encode(x, depth + 1)).join(",")}]`;
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new InvalidArgumentError("JSON objects must be plain objects");
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      return `{${keys.map((k) => `${encode(k, depth + 1)}:${encode(obj[k], depth + 1)}`).join(",")}}`;
    }
    default:
      throw new InvalidArgumentError(`a ${typeof v} is not a JSON value`);
  }
}

function jsonText(what: string, v: unknown): string {
  const text = canonicalJson(v);
  if (Buffer.byteLength(text) > MAX_JSON_BYTES) throw new InvalidArgumentError(`${what} exceeds ${MAX_JSON_BYTES} bytes of JSON`);
  return text;
}

function parseJson(text: string): JsonValue {
  return JSON.parse(text) as JsonValue;
}

/** A Buffer view of `u8` (no copy), as better-sqlite3 binds BLOBs. */
function blob(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** A plain Uint8Array view of a BLOB read back (no copy). */
function bytesOf(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

// ---------------------------------------------------------------------------
// Rows

interface PartyRow {
  name: string;
  role: string;
  signing_public_key: Buffer;
  box_public_key: Buffer | null;
  mask_public_key: Buffer | null;
  endpoint: string | null;
  registered_at: number;
  updated_at: number;
}
interface DatasetRow {
  id: string;
  owner: string;
  name: string;
  schema: string;
  row_count: number;
  content_hash: string;
  created_at: number;
  updated_at: number;
}
interface PolicyRow {
  dataset_id: string;
  version: number;
  policy: string;
  created_at: number;
}
interface JobRow {
  id: string;
  protocol: string;
  buyer: string;
  providers: string;
  params: string;
  state: string;
  reason: string | null;
  progress: string | null;
  created_at: number;
  updated_at: number;
}
interface StepRow {
  job_id: string;
  seq: number;
  step: string;
  direction: string;
  size: number;
  digest: string;
  at: number;
}
interface ResultRow {
  job_id: string;
  digest: string;
  salt: Buffer | null;
  bytes: Buffer | null;
  path: string | null;
  size: number;
  created_at: number;
  released_at: number | null;
}
interface BudgetRow {
  dataset_id: string;
  buyer: string;
  remaining: number;
  updated_at: number;
}

const partyFromRow = (r: PartyRow): PartyRecord => ({
  name: r.name,
  role: r.role as PartyRole,
  signingPublicKey: bytesOf(r.signing_public_key),
  boxPublicKey: r.box_public_key === null ? null : bytesOf(r.box_public_key),
  maskPublicKey: r.mask_public_key === null ? null : bytesOf(r.mask_public_key),
  endpoint: r.endpoint,
  registeredAt: r.registered_at,
  updatedAt: r.updated_at,
});
const datasetFromRow = (r: DatasetRow): DatasetRecord => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  schema: parseJson(r.schema),
  rowCount: r.row_count,
  contentHash: r.content_hash,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const policyFromRow = (r: PolicyRow): PolicyRecord => ({ datasetId: r.dataset_id, version: r.version, policy: parseJson(r.policy), createdAt: r.created_at });
const jobFromRow = (r: JobRow): JobRecord => ({
  id: r.id,
  protocol: r.protocol,
  buyer: r.buyer,
  providers: parseJson(r.providers) as string[],
  params: parseJson(r.params),
  state: r.state as JobState,
  reason: r.reason,
  progress: r.progress === null ? null : parseJson(r.progress),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const stepFromRow = (r: StepRow): StepRecord => ({
  jobId: r.job_id,
  seq: r.seq,
  step: r.step,
  direction: r.direction as StepDirection,
  size: r.size,
  digest: r.digest,
  at: r.at,
});
const resultFromRow = (r: ResultRow): ResultRecord => ({
  jobId: r.job_id,
  digest: r.digest,
  salt: r.salt === null || r.salt === undefined ? null : bytesOf(r.salt),
  bytes: r.bytes === null ? null : bytesOf(r.bytes),
  path: r.path,
  size: r.size,
  createdAt: r.created_at,
  releasedAt: r.released_at,
});
interface InvitationRow {
  code_hash: string;
  name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_by: Buffer | null;
}
const invitationFromRow = (r: InvitationRow): InvitationRecord => ({
  name: r.name,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  usedBy: r.used_by === null ? null : bytesOf(r.used_by),
});
const budgetFromRow = (r: BudgetRow): BudgetRecord => ({ datasetId: r.dataset_id, buyer: r.buyer, remaining: r.remaining, updatedAt: r.updated_at });

const ROLES = new Set<string>(Object.values(PartyRole));
const STATES = new Set<string>(Object.values(JobState));
const DIRECTIONS = new Set<string>(Object.values(StepDirection));

function checkState(what: string, v: unknown): JobState {
  if (typeof v !== "string" || !STATES.has(v)) throw new InvalidArgumentError(`${what} is not a job state`);
  return v as JobState;
}

// ---------------------------------------------------------------------------
// The store

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
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #stmts = new Map<string, Database.Statement>();

  constructor(db: Database.Database, readonly path: string, now: () => number) {
    this.#db = db;
    this.#now = now;
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
    if (typeof json !== "string") throw new InvalidArgumentError("identity must be JSON text");
    try {
      JSON.parse(json);
    } catch {
      throw new InvalidArgumentError("identity must be JSON text");
    }
    this.#sql(
      "INSERT INTO identity (id, identity, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, updated_at = excluded.updated_at",
    ).run(json, this.#time());
  }

  /**
   * Replaces the identity record and scrubs the old one from the file: freed
   * bytes are zeroed (secure_delete) and the write-ahead log is checkpointed
   * and truncated, so a secret the old record held does not linger on disk.
   */
  replaceIdentity(json: string): void {
    this.#db.pragma("secure_delete = ON");
    try {
      this.putIdentity(json);
    } finally {
      this.#db.pragma("secure_delete = OFF");
    }
    this.#db.pragma("wal_checkpoint(TRUNCATE)");
  }

  getIdentity(): string | undefined {
    const row = this.#sql("SELECT identity FROM identity WHERE id = 1").get() as { identity: string } | undefined;
    return row?.identity;
  }

  // -- parties

  putParty(party: PartyInput): PartyRecord {
    const name = checkName("party name", party.name);
    if (typeof party.role !== "string" || !ROLES.has(party.role)) throw new InvalidArgumentError("party role must be exchange, provider or buyer");
    const signing = checkKey("signing public key", party.signingPublicKey, 32);
    const box = party.boxPublicKey == null ? null : checkKey("box public key", party.boxPublicKey, 32);
    const mask = party.maskPublicKey == null ? null : checkKey("mask public key", party.maskPublicKey, 32);
    const endpoint = party.endpoint == null ? null : checkText("endpoint", party.endpoint, 2048);
    const now = this.#time();
    return this.transaction(() => {
      this.#sql(
        `INSERT INTO parties (name, role, signing_public_key, box_public_key, mask_public_key, endpoint, registered_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, signing_public_key = excluded.signing_public_key,
           box_public_key = excluded.box_public_key, mask_public_key = excluded.mask_public_key, endpoint = excluded.endpoint, updated_at = excluded.updated_at`,
      ).run(name, party.role, blob(signing), box === null ? null : blob(box), mask === null ? null : blob(mask), endpoint, now, now);
      return this.getParty(name) as PartyRecord;
    });
  }

  // -- invitations

  putInvitation(invitation: InvitationInput): InvitationRecord {
    if (typeof invitation.codeHash !== "string" || !/^[0-9a-f]{64}$/.test(invitation.codeHash)) throw new InvalidArgumentError("an invitation's code hash must be 64 lowercase hex digits");
    const name = checkName("invited name", invitation.name);
    const ttl = checkTime("invitation lifetime", invitation.expiresInMs);
    if (ttl <= 0) throw new InvalidArgumentError("an invitation must expire after now");
    const now = this.#time();
    const expiresAt = now + ttl;
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM invitations WHERE code_hash = ?").get(invitation.codeHash) !== undefined) throw new AlreadyExistsError("an invitation with this code");
      this.#sql("INSERT INTO invitations (code_hash, name, created_at, expires_at, used_at, used_by) VALUES (?, ?, ?, ?, NULL, NULL)").run(invitation.codeHash, name, now, expiresAt);
      return { name, createdAt: now, expiresAt, usedAt: null, usedBy: null };
    });
  }

  consumeInvitation(name: string, codeHash: string, usedBy: Uint8Array, nowMs: number): boolean {
    checkBytes("registering key", usedBy, 32, 32);
    checkTime("now", nowMs);
    if (typeof codeHash !== "string" || typeof name !== "string") return false;
    // One statement: the code is used once even by two registrations racing for it.
    return (
      this.#sql("UPDATE invitations SET used_at = ?, used_by = ? WHERE code_hash = ? AND name = ? AND used_at IS NULL AND expires_at > ?").run(nowMs, blob(usedBy), codeHash, name, nowMs).changes === 1
    );
  }

  listInvitations(): InvitationRecord[] {
    return (this.#sql("SELECT * FROM invitations ORDER BY created_at, name").all() as InvitationRow[]).map(invitationFromRow);
  }

  deleteParty(name: string): boolean {
    return this.#sql("DELETE FROM parties WHERE name = ?").run(checkName("party name", name)).changes === 1;
  }

  getParty(name: string): PartyRecord | undefined {
    const row = this.#sql("SELECT * FROM parties WHERE name = ?").get(name) as PartyRow | undefined;
    return row === undefined ? undefined : partyFromRow(row);
  }

  listParties(filter: { readonly role?: PartyRole } = {}): PartyRecord[] {
    const rows =
      filter.role === undefined
        ? (this.#sql("SELECT * FROM parties ORDER BY name").all() as PartyRow[])
        : (this.#sql("SELECT * FROM parties WHERE role = ? ORDER BY name").all(filter.role) as PartyRow[]);
    return rows.map(partyFromRow);
  }

  // -- datasets and policies

  putDataset(dataset: DatasetInput): DatasetRecord {
    const id = checkId("dataset id", dataset.id);
    const owner = checkName("dataset owner", dataset.owner);
    const name = checkText("dataset name", dataset.name, 256);
    const schema = jsonText("dataset schema", dataset.schema);
    const rowCount = checkCount("row count", dataset.rowCount);
    const contentHash = checkDigest("content hash", dataset.contentHash);
    const now = this.#time();
    return this.transaction(() => {
      const existing = this.#sql("SELECT owner FROM datasets WHERE id = ?").get(id) as { owner: string } | undefined;
      if (existing !== undefined && existing.owner !== owner) throw new AlreadyExistsError("a dataset with this id and another owner");
      this.#sql(
        `INSERT INTO datasets (id, owner, name, schema, row_count, content_hash, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, schema = excluded.schema, row_count = excluded.row_count,
           content_hash = excluded.content_hash, updated_at = excluded.updated_at`,
      ).run(id, owner, name, schema, rowCount, contentHash, now, now);
      return this.getDataset(id) as DatasetRecord;
    });
  }

  getDataset(id: string): DatasetRecord | undefined {
    const row = this.#sql("SELECT * FROM datasets WHERE id = ?").get(id) as DatasetRow | undefined;
    return row === undefined ? undefined : datasetFromRow(row);
  }

  listDatasets(filter: { readonly owner?: string } = {}): DatasetRecord[] {
    const rows =
      filter.owner === undefined
        ? (this.#sql("SELECT * FROM datasets ORDER BY id").all() as DatasetRow[])
        : (this.#sql("SELECT * FROM datasets WHERE owner = ? ORDER BY id").all(filter.owner) as DatasetRow[]);
    return rows.map(datasetFromRow);
  }

  putPolicy(datasetId: string, policy: unknown): PolicyRecord {
    checkId("dataset id", datasetId);
    const text = jsonText("policy", policy);
    const now = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM datasets WHERE id = ?").get(datasetId) === undefined) throw new NotFoundError("dataset");
      const { v } = this.#sql("SELECT coalesce(max(version), 0) AS v FROM policies WHERE dataset_id = ?").get(datasetId) as { v: number };
      this.#sql("INSERT INTO policies (dataset_id, version, policy, created_at) VALUES (?, ?, ?, ?)").run(datasetId, v + 1, text, now);
      return { datasetId, version: v + 1, policy: parseJson(text), createdAt: now };
    });
  }

  latestPolicy(datasetId: string): PolicyRecord | undefined {
    const row = this.#sql("SELECT * FROM policies WHERE dataset_id = ? ORDER BY version DESC LIMIT 1").get(datasetId) as PolicyRow | undefined;
    return row === undefined ? undefined : policyFromRow(row);
  }

  getPolicy(datasetId: string, version: number): PolicyRecord | undefined {
    const row = this.#sql("SELECT * FROM policies WHERE dataset_id = ? AND version = ?").get(datasetId, version) as PolicyRow | undefined;
    return row === undefined ? undefined : policyFromRow(row);
  }

  listPolicies(datasetId: string): PolicyRecord[] {
    return (this.#sql("SELECT * FROM policies WHERE dataset_id = ? ORDER BY version").all(datasetId) as PolicyRow[]).map(policyFromRow);
  }

  // -- jobs

  createJob(job: JobInput): JobRecord {
    const id = checkId("job id", job.id);
    const protocol = checkToken("protocol", job.protocol);
    const buyer = checkName("buyer", job.buyer);
    if (!Array.isArray(job.providers) || job.providers.length === 0 || job.providers.length > 256) {
      throw new InvalidArgumentError("providers must be a list of 1 to 256 party names");
    }
    const providers = job.providers.map((p) => checkName("provider", p));
    const params = jsonText("job params", job.params);
    const now = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM jobs WHERE id = ?").get(id) !== undefined) throw new AlreadyExistsError("a job with this id");
      this.#sql(
        `INSERT INTO jobs (id, protocol, buyer, providers, params, state, reason, progress, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'submitted', NULL, NULL, ?, ?)`,
      ).run(id, protocol, buyer, canonicalJson(providers), params, now, now);
      return this.getJob(id) as JobRecord;
    });
  }

  getJob(id: string): JobRecord | undefined {
    const row = this.#sql("SELECT * FROM jobs WHERE id = ?").get(id) as JobRow | undefined;
    return row === undefined ? undefined : jobFromRow(row);
  }

  listJobs(filter: JobFilter = {}): JobRecord[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.state !== undefined) {
      const states = (typeof filter.state === "string" ? [filter.state] : [...filter.state]).map((s) => checkState("job state", s));
      if (states.length === 0) return [];
      where.push(`state IN (${states.map(() => "?").join(", ")})`);
      args.push(...states);
    }
    if (filter.buyer !== undefined) {
      where.push("buyer = ?");
      args.push(filter.buyer);
    }
    let sql = `SELECT * FROM jobs${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at, id`;
    if (filter.limit !== undefined) {
      sql += " LIMIT ?";
      args.push(checkCount("limit", filter.limit));
    }
    return (this.#sql(sql).all(...args) as JobRow[]).map(jobFromRow);
  }

  transitionJob(id: string, from: readonly JobState[], to: JobState, reason?: string | null, progress?: unknown): JobRecord {
    if (!Array.isArray(from) || from.length === 0) throw new InvalidArgumentError("from must list at least one job state");
    from.forEach((s) => checkState("from state", s));
    checkState("to state", to);
    const reasonText = reason == null ? null : checkText("reason", reason);
    const progressText = progress === undefined ? undefined : progress === null ? null : jsonText("job progress", progress);
    const now = this.#time();
    return this.transaction(() => {
      const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as { state: JobState } | undefined;
      if (row === undefined) throw new NotFoundError("job");
      const current = row.state;
      if (!from.includes(current)) {
        throw new InvalidTransitionError(current, to, `the job is ${current}, not ${from.join(" or ")}`);
      }
      if (!JOB_TRANSITIONS[current].includes(to)) throw new InvalidTransitionError(current, to);
      const sql =
        progressText === undefined
          ? "UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state = ?"
          : "UPDATE jobs SET state = ?, reason = ?, updated_at = ?, progress = ? WHERE id = ? AND state = ?";
      const args = progressText === undefined ? [to, reasonText, now, id, current] : [to, reasonText, now, progressText, id, current];
      this.#sql(sql).run(...args);
      return this.getJob(id) as JobRecord;
    });
  }

  setJobProgress(id: string, progress: unknown): JobRecord {
    const text = progress === null ? null : jsonText("job progress", progress);
    const now = this.#time();
    return this.transaction(() => {
      const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as { state: JobState } | undefined;
      if (row === undefined) throw new NotFoundError("job");
      if (JOB_TRANSITIONS[row.state].length === 0) throw new InvalidTransitionError(row.state, row.state, `the job is ${row.state}: its progress is final`);
      this.#sql("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?").run(text, now, id);
      return this.getJob(id) as JobRecord;
    });
  }

  recordStep(jobId: string, step: StepInput): StepRecord {
    const name = checkToken("step", step.step);
    if (typeof step.direction !== "string" || !DIRECTIONS.has(step.direction)) throw new InvalidArgumentError("step direction must be in or out");
    const size = checkCount("step size", step.size);
    const digest = checkDigest("step digest", step.digest);
    const at = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
      const { s } = this.#sql("SELECT coalesce(max(seq), 0) AS s FROM steps WHERE job_id = ?").get(jobId) as { s: number };
      this.#sql("INSERT INTO steps (job_id, seq, step, direction, size, digest, at) VALUES (?, ?, ?, ?, ?, ?, ?)").run(jobId, s + 1, name, step.direction, size, digest, at);
      return { jobId, seq: s + 1, step: name, direction: step.direction, size, digest, at };
    });
  }

  listSteps(jobId: string): StepRecord[] {
    return (this.#sql("SELECT * FROM steps WHERE job_id = ? ORDER BY seq").all(jobId) as StepRow[]).map(stepFromRow);
  }

  // -- protocol states

  saveState(jobId: string, role: string, state: Uint8Array): void {
    checkToken("role", role);
    checkBytes("protocol state", state, 1, 1 << 30);
    const now = this.#time();
    this.transaction(() => {
      if (this.#sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
      this.#sql(
        "INSERT INTO protocol_state (job_id, role, state, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (job_id, role) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
      ).run(jobId, role, blob(state), now);
    });
  }

  loadState(jobId: string, role: string): Uint8Array | undefined {
    const row = this.#sql("SELECT state FROM protocol_state WHERE job_id = ? AND role = ?").get(jobId, role) as { state: Buffer } | undefined;
    return row === undefined ? undefined : bytesOf(row.state);
  }

  deleteState(jobId: string, role?: string): number {
    const info =
      role === undefined
        ? this.#sql("DELETE FROM protocol_state WHERE job_id = ?").run(jobId)
        : this.#sql("DELETE FROM protocol_state WHERE job_id = ? AND role = ?").run(jobId, role);
    return info.changes;
  }

  // -- results

  putResult(jobId: string, result: ResultInput): ResultRecord {
    const digest = checkDigest("result digest", result.digest);
    let bytes: Uint8Array | null = null;
    let path: string | null = null;
    let size: number;
    if (result.bytes !== undefined) {
      if (result.path !== undefined) throw new InvalidArgumentError("a result has bytes or a path, not both");
      bytes = checkBytes("result bytes", result.bytes, 0, 1 << 30);
      size = bytes.length;
    } else {
      path = checkText("result path", result.path, 4096);
      size = checkCount("result size", result.size);
    }
    const salt = result.salt === undefined ? null : checkKey("result salt", result.salt, 32);
    const now = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
      if (this.#sql("SELECT 1 FROM results WHERE job_id = ?").get(jobId) !== undefined) throw new AlreadyExistsError("a result for this job");
      this.#sql("INSERT INTO results (job_id, digest, salt, bytes, path, size, created_at, released_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)").run(
        jobId,
        digest,
        salt === null ? null : blob(salt),
        bytes === null ? null : blob(bytes),
        path,
        size,
        now,
      );
      return this.getResult(jobId) as ResultRecord;
    });
  }

  getResult(jobId: string): ResultRecord | undefined {
    const row = this.#sql("SELECT * FROM results WHERE job_id = ?").get(jobId) as ResultRow | undefined;
    return row === undefined ? undefined : resultFromRow(row);
  }

  releaseResult(jobId: string): ResultRecord {
    const now = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM results WHERE job_id = ?").get(jobId) === undefined) throw new NotFoundError("result");
      this.#sql("UPDATE results SET released_at = ? WHERE job_id = ? AND released_at IS NULL").run(now, jobId);
      return this.getResult(jobId) as ResultRecord;
    });
  }

  // -- nonces

  nonceSeen(sender: string, nonce: Uint8Array): boolean {
    checkBytes("nonce", nonce, 1, 64);
    return this.#sql("SELECT 1 FROM nonces WHERE sender = ? AND nonce = ?").get(sender, blob(nonce)) !== undefined;
  }

  rememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): void {
    this.checkAndRememberNonce(sender, nonce, timestampMs);
  }

  checkAndRememberNonce(sender: string, nonce: Uint8Array, timestampMs: number): boolean {
    checkName("sender", sender);
    checkBytes("nonce", nonce, 1, 64);
    checkTime("nonce timestamp", timestampMs);
    // One statement: atomic without a transaction.
    return this.#sql("INSERT INTO nonces (sender, nonce, timestamp) VALUES (?, ?, ?) ON CONFLICT (sender, nonce) DO NOTHING").run(sender, blob(nonce), timestampMs).changes === 1;
  }

  pruneNonces(maxAgeMs: number, nowMs: number = this.#time()): number {
    checkTime("max age", maxAgeMs);
    checkTime("now", nowMs);
    return this.#sql("DELETE FROM nonces WHERE timestamp < ?").run(nowMs - maxAgeMs).changes;
  }

  // -- budgets

  getBudget(datasetId: string, buyer: string): BudgetRecord | undefined {
    const row = this.#sql("SELECT * FROM budgets WHERE dataset_id = ? AND buyer = ?").get(datasetId, buyer) as BudgetRow | undefined;
    return row === undefined ? undefined : budgetFromRow(row);
  }

  setBudget(datasetId: string, buyer: string, remaining: number): BudgetRecord {
    checkName("buyer", buyer);
    checkAmount("budget", remaining);
    const now = this.#time();
    return this.transaction(() => {
      if (this.#sql("SELECT 1 FROM datasets WHERE id = ?").get(datasetId) === undefined) throw new NotFoundError("dataset");
      this.#sql(
        "INSERT INTO budgets (dataset_id, buyer, remaining, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (dataset_id, buyer) DO UPDATE SET remaining = excluded.remaining, updated_at = excluded.updated_at",
      ).run(datasetId, buyer, remaining, now);
      return this.getBudget(datasetId, buyer) as BudgetRecord;
    });
  }

  noteExchangeHead(head: { readonly seq: number; readonly hash: string; readonly signature: string }): "new" | "known" | "fork" {
    checkCount("seq", head.seq);
    if (head.seq < 1) throw new InvalidArgumentError("seq must be at least 1");
    checkDigest("hash", head.hash);
    if (typeof head.signature !== "string" || !/^[0-9a-f]{128}$/.test(head.signature)) throw new InvalidArgumentError("signature must be 64 bytes of lowercase hex");
    return this.transaction(() => {
      const row = this.#sql("SELECT hash FROM exchange_heads WHERE seq = ?").get(head.seq) as { hash: string } | undefined;
      if (row !== undefined) return row.hash === head.hash ? "known" : "fork";
      this.#sql("INSERT INTO exchange_heads (seq, hash, signature, seen_at) VALUES (?, ?, ?, ?)").run(head.seq, head.hash, head.signature, this.#time());
      return "new";
    });
  }

  latestExchangeHead(): { seq: number; hash: string; signature: string } | undefined {
    return this.#sql("SELECT seq, hash, signature FROM exchange_heads ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string; signature: string } | undefined;
  }

  listBudgets(datasetId: string): BudgetRecord[] {
    return (this.#sql("SELECT * FROM budgets WHERE dataset_id = ? ORDER BY buyer").all(datasetId) as BudgetRow[]).map(budgetFromRow);
  }

  refundBudget(datasetId: string, buyer: string, amount: number): BudgetRecord {
    checkAmount("amount", amount);
    const now = this.#time();
    return this.transaction(() => {
      if (this.getBudget(datasetId, buyer) === undefined) throw new NotFoundError("budget");
      this.#sql("UPDATE budgets SET remaining = remaining + ?, updated_at = ? WHERE dataset_id = ? AND buyer = ?").run(amount, now, datasetId, buyer);
      return this.getBudget(datasetId, buyer) as BudgetRecord;
    });
  }

  consumeBudget(datasetId: string, buyer: string, amount: number): BudgetRecord {
    checkAmount("amount", amount);
    const now = this.#time();
    return this.transaction(() => {
      const before = this.getBudget(datasetId, buyer);
      if (before === undefined) throw new BudgetExceededError(amount, 0);
      const changed = this.#sql("UPDATE budgets SET remaining = remaining - ?, updated_at = ? WHERE dataset_id = ? AND buyer = ? AND remaining >= ?").run(
        amount,
        now,
        datasetId,
        buyer,
        amount,
      ).changes;
      if (changed !== 1) throw new BudgetExceededError(amount, before.remaining);
      return this.getBudget(datasetId, buyer) as BudgetRecord;
    });
  }

  // -- ledger rows

  ledgerHead(): LedgerRow | undefined {
    return this.#sql("SELECT * FROM ledger ORDER BY seq DESC LIMIT 1").get() as LedgerRow | undefined;
  }

  insertLedgerRow(row: LedgerRow): void {
    this.#sql("INSERT INTO ledger (seq, at, kind, job, body, prev_hash, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(
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

  ledgerRows(filter: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number } = {}): IterableIterator<LedgerRow> {
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
    return this.#db.prepare(sql).iterate(...args) as IterableIterator<LedgerRow>;
  }
}
