/**
 * Who may register with an exchange (security finding 9).
 *
 * - Invitations. The exchange's operator issues a one-time code bound to one
 *   party name and an expiry (`umbra exchange invite`, {@link createInvitation});
 *   the party presents it once, when it first registers. The store keeps only
 *   the code's SHA-256 (a code is 256 random bits, so the hash needs no
 *   stretching); the registration uses it in the same transaction as the
 *   party's row and its ledger entry, which records that the party was
 *   invited, never the code. A party registered already re-registers (a
 *   restart) with the same signing key and no code. An exchange started with
 *   open registration (a development switch) admits any name without one.
 * - Names. Whatever the admission, a new name may not be a reserved one
 *   ({@link RESERVED_PARTY_NAMES}, the exchange's own name), nor begin with
 *   one followed by ".", nor be a "."-prefix of a registered party's name or
 *   have one as its prefix (compared without case), so that the dataset
 *   namespaces `OWNER.` of two parties never overlap and no name passes for
 *   another's by case alone.
 * - Datasets. A party registers only dataset ids in its namespace
 *   (`OWNER.`), and never over an id another owner registered
 *   ({@link checkDatasetId}).
 *
 * Errors carry stable codes and never the code, a key or another party's name.
 */
import { createHash, randomBytes } from "node:crypto";
import { InvalidArgumentError, UmbraError } from "../engine/errors.js";
import { fingerprint, isNodeName, storedIdentityFrom } from "./identity.js";
import { StoreErrorCode, type InvitationRecord, type Store } from "./store.js";

/** Names no party may take (nor `NAME.` followed by anything), compared without case; the exchange's own name is added to them. */
export const RESERVED_PARTY_NAMES: readonly string[] = ["exchange", "admin", "operator", "root", "system", "umbra", "localhost"];

/** How long an invitation admits by default: 7 days. */
export const DEFAULT_INVITATION_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** The longest an invitation may admit: 90 days. */
export const MAX_INVITATION_TTL_MS = 90 * 24 * 60 * 60 * 1000;

/**
 * An invitation code: "inv_" and 32 random bytes in base64url without padding
 * (47 characters). The prefix makes a code recognisable (in a secret scanner,
 * a log) and keeps it from starting with "-", which a command line would take
 * for an option.
 */
export const INVITATION_CODE = /^inv_[A-Za-z0-9_-]{43}$/;

export const AdmissionErrorCode = {
  InvitationRequired: "UMBRA_INVITATION_REQUIRED",
  InvitationInvalid: "UMBRA_INVITATION_INVALID",
  NameReserved: "UMBRA_NAME_RESERVED",
  NameConflict: "UMBRA_NAME_CONFLICT",
  DatasetNamespace: "UMBRA_DATASET_NAMESPACE",
} as const;

/** A new name registering without an invitation at an exchange that admits by invitation only. */
export class InvitationRequiredError extends UmbraError {
  constructor() {
    super(AdmissionErrorCode.InvitationRequired, "this exchange admits new parties by invitation: ask its operator for one (umbra exchange invite --name NAME) and start the party with --invite CODE");
  }
}

/** An invitation code that admits nobody here: unknown, used, expired, or for another name (not told apart). */
export class InvalidInvitationError extends UmbraError {
  constructor() {
    super(AdmissionErrorCode.InvitationInvalid, "the invitation is not valid for this name: it may be mistyped, used already or expired; ask the exchange's operator for a new one");
  }
}

/** A reserved party name. */
export class NameReservedError extends UmbraError {
  constructor() {
    super(AdmissionErrorCode.NameReserved, "this party name is reserved: choose another");
  }
}

/** A party name that would share a dataset namespace with a registered (or invited) party's. */
export class NameConflictError extends UmbraError {
  constructor() {
    super(AdmissionErrorCode.NameConflict, "this party name is taken, or is a \".\"-prefix of a party's name (or has one as its prefix), which would mix their dataset ids: choose another");
  }
}

/** A dataset id outside its owner's namespace `OWNER.`. */
export class DatasetNamespaceError extends UmbraError {
  constructor() {
    super(AdmissionErrorCode.DatasetNamespace, "a dataset id must begin with its owner's name and a dot (OWNER.NAME)");
  }
}

/** The hash the store keeps of an invitation code (hex SHA-256 of a tagged code). */
export function invitationCodeHash(code: string): string {
  return createHash("sha256").update("umbra.v1.invitation\n").update(code, "utf8").digest("hex");
}

const lower = (s: string): string => s.toLowerCase();

/** Whether two names would overlap: equal without case, or one a "."-prefix of the other. */
function overlaps(a: string, b: string): boolean {
  const x = lower(a);
  const y = lower(b);
  return x === y || x.startsWith(`${y}.`) || y.startsWith(`${x}.`);
}

/** The exchange's own name, as its store records its identity (the default name when it has none yet). */
export function exchangeNameOf(store: Store): string {
  const stored = store.getIdentity();
  return stored === undefined ? "exchange" : storedIdentityFrom(stored).name;
}

/**
 * Checks that `name` may be registered as a new party: a node name, not
 * reserved, not overlapping a registered party's name (other than itself).
 * @throws InvalidArgumentError, NameReservedError, NameConflictError
 */
export function checkNewPartyName(store: Store, name: string, exchangeName: string): void {
  if (typeof name !== "string" || !isNodeName(name)) throw new InvalidArgumentError("a party name must be 1 to 64 of [A-Za-z0-9._-]");
  const n = lower(name);
  for (const r of [...RESERVED_PARTY_NAMES, exchangeName]) {
    if (n === lower(r) || n.startsWith(`${lower(r)}.`)) throw new NameReservedError();
  }
  for (const p of store.listParties()) {
    if (p.name !== name && overlaps(p.name, name)) throw new NameConflictError();
  }
}

/**
 * Checks a dataset registration: its id in the owner's namespace, and not an
 * id another owner registered.
 * @throws DatasetNamespaceError, or UMBRA_ALREADY_EXISTS
 */
export function checkDatasetId(store: Store, id: string, owner: string): void {
  if (!id.startsWith(`${owner}.`) || id.length === owner.length + 1) throw new DatasetNamespaceError();
  const existing = store.getDataset(id);
  if (existing !== undefined && existing.owner !== owner) throw new UmbraError(StoreErrorCode.AlreadyExists, "a dataset with this id is registered by another party");
}

export interface CreatedInvitation {
  readonly name: string;
  /** The one-time code: hand it to the party's operator; it is not stored and cannot be shown again. */
  readonly code: string;
  readonly expiresAt: number;
}

/**
 * Issues an invitation for `name` in an exchange's store (what `umbra
 * exchange invite` runs; the exchange may be running, SQLite WAL lets both
 * write). Refused: a name a party is registered under already (it restarts
 * without one), a name a new party may not take, a name overlapping a name
 * with a pending invitation, and an expiry outside (0, 90 days].
 */
export function createInvitation(store: Store, o: { readonly name: string; readonly expiresInMs?: number }): CreatedInvitation {
  const ttl = o.expiresInMs ?? DEFAULT_INVITATION_TTL_MS;
  if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > MAX_INVITATION_TTL_MS) throw new InvalidArgumentError("an invitation expires after more than 0 and at most 90 days");
  const name = o.name;
  if (typeof name === "string" && store.getParty(name) !== undefined) {
    throw new UmbraError(StoreErrorCode.AlreadyExists, "a party of this name is registered already (it restarts with its key and needs no invitation)");
  }
  checkNewPartyName(store, name, exchangeNameOf(store));
  const now = store.now();
  for (const inv of store.listInvitations()) {
    if (inv.usedAt === null && inv.expiresAt > now && inv.name !== name && overlaps(inv.name, name)) throw new NameConflictError();
  }
  const code = `inv_${randomBytes(32).toString("base64url")}`;
  const record = store.putInvitation({ codeHash: invitationCodeHash(code), name, expiresInMs: ttl });
  return { name, code, expiresAt: record.expiresAt };
}

export interface AdmissionView {
  readonly parties: readonly { readonly name: string; readonly role: string; readonly fingerprint: string; readonly registeredAt: number; readonly updatedAt: number; readonly invited: boolean }[];
  /** Invitations not used yet (expired ones marked): names and times, never codes. */
  readonly invitations: readonly { readonly name: string; readonly createdAt: number; readonly expiresAt: number; readonly expired: boolean }[];
}

/** The registered parties and the unused invitations of an exchange's store (what `umbra exchange parties` prints). */
export function admissionView(store: Store): AdmissionView {
  const now = store.now();
  const invitations = store.listInvitations();
  const usedBy = new Set(invitations.filter((i): i is InvitationRecord & { usedBy: Uint8Array } => i.usedBy !== null).map((i) => `${i.name}\n${Buffer.from(i.usedBy).toString("hex")}`));
  return {
    parties: store.listParties().map((p) => ({
      name: p.name,
      role: p.role,
      fingerprint: fingerprint(p.signingPublicKey),
      registeredAt: p.registeredAt,
      updatedAt: p.updatedAt,
      invited: usedBy.has(`${p.name}\n${Buffer.from(p.signingPublicKey).toString("hex")}`),
    })),
    invitations: invitations.filter((i) => i.usedAt === null).map((i) => ({ name: i.name, createdAt: i.createdAt, expiresAt: i.expiresAt, expired: i.expiresAt <= now })),
  };
}
