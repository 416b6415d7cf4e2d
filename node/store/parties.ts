/**
 * This node's identity, the parties it knows, the exchange's invitations, and
 * the envelope nonces each sender has used (the replay guard): their SQL and
 * row mapping, called by the open store (`node/store/sqlite.ts`).
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { blob, bytesOf, checkBytes, checkKey, checkName, checkText, checkTime } from "./checks.js";
import type { StoreContext } from "./context.js";
import { AlreadyExistsError } from "./errors.js";
import { PartyRole, type InvitationInput, type InvitationRecord, type PartyInput, type PartyRecord } from "./types.js";

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
interface InvitationRow {
  code_hash: string;
  name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_by: Buffer | null;
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
const invitationFromRow = (r: InvitationRow): InvitationRecord => ({
  name: r.name,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  usedBy: r.used_by === null ? null : bytesOf(r.used_by),
});

const ROLES = new Set<string>(Object.values(PartyRole));

export function putIdentity(ctx: StoreContext, json: string): void {
  if (typeof json !== "string") throw new InvalidArgumentError("identity must be JSON text");
  try {
    JSON.parse(json);
  } catch {
    throw new InvalidArgumentError("identity must be JSON text");
  }
  ctx.sql(
    "INSERT INTO identity (id, identity, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, updated_at = excluded.updated_at",
  ).run(json, ctx.time());
}

/**
 * Replaces the identity record and scrubs the old one from the file: freed
 * bytes are zeroed (secure_delete) and the write-ahead log is checkpointed
 * and truncated, so a secret the old record held does not linger on disk.
 */
export function replaceIdentity(ctx: StoreContext, json: string): void {
  ctx.db.pragma("secure_delete = ON");
  try {
    putIdentity(ctx, json);
  } finally {
    ctx.db.pragma("secure_delete = OFF");
  }
  ctx.db.pragma("wal_checkpoint(TRUNCATE)");
}

export function getIdentity(ctx: StoreContext): string | undefined {
  const row = ctx.sql("SELECT identity FROM identity WHERE id = 1").get() as { identity: string } | undefined;
  return row?.identity;
}

export function putParty(ctx: StoreContext, party: PartyInput): PartyRecord {
  const name = checkName("party name", party.name);
  if (typeof party.role !== "string" || !ROLES.has(party.role)) throw new InvalidArgumentError("party role must be exchange, provider or buyer");
  const signing = checkKey("signing public key", party.signingPublicKey, 32);
  const box = party.boxPublicKey == null ? null : checkKey("box public key", party.boxPublicKey, 32);
  const mask = party.maskPublicKey == null ? null : checkKey("mask public key", party.maskPublicKey, 32);
  const endpoint = party.endpoint == null ? null : checkText("endpoint", party.endpoint, 2048);
  const now = ctx.time();
  return ctx.transaction(() => {
    ctx.sql(
      `INSERT INTO parties (name, role, signing_public_key, box_public_key, mask_public_key, endpoint, registered_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET role = excluded.role, signing_public_key = excluded.signing_public_key,
         box_public_key = excluded.box_public_key, mask_public_key = excluded.mask_public_key, endpoint = excluded.endpoint, updated_at = excluded.updated_at`,
    ).run(name, party.role, blob(signing), box === null ? null : blob(box), mask === null ? null : blob(mask), endpoint, now, now);
    return getParty(ctx, name) as PartyRecord;
  });
}

export function deleteParty(ctx: StoreContext, name: string): boolean {
  return ctx.sql("DELETE FROM parties WHERE name = ?").run(checkName("party name", name)).changes === 1;
}

export function getParty(ctx: StoreContext, name: string): PartyRecord | undefined {
  const row = ctx.sql("SELECT * FROM parties WHERE name = ?").get(name) as PartyRow | undefined;
  return row === undefined ? undefined : partyFromRow(row);
}

export function listParties(ctx: StoreContext, filter: { readonly role?: PartyRole } = {}): PartyRecord[] {
  const rows =
    filter.role === undefined
      ? (ctx.sql("SELECT * FROM parties ORDER BY name").all() as PartyRow[])
      : (ctx.sql("SELECT * FROM parties WHERE role = ? ORDER BY name").all(filter.role) as PartyRow[]);
  return rows.map(partyFromRow);
}

export function putInvitation(ctx: StoreContext, invitation: InvitationInput): InvitationRecord {
  if (typeof invitation.codeHash !== "string" || !/^[0-9a-f]{64}$/.test(invitation.codeHash)) throw new InvalidArgumentError("an invitation's code hash must be 64 lowercase hex digits");
  const name = checkName("invited name", invitation.name);
  const ttl = checkTime("invitation lifetime", invitation.expiresInMs);
  if (ttl <= 0) throw new InvalidArgumentError("an invitation must expire after now");
  const now = ctx.time();
  const expiresAt = now + ttl;
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM invitations WHERE code_hash = ?").get(invitation.codeHash) !== undefined) throw new AlreadyExistsError("an invitation with this code");
    ctx.sql("INSERT INTO invitations (code_hash, name, created_at, expires_at, used_at, used_by) VALUES (?, ?, ?, ?, NULL, NULL)").run(invitation.codeHash, name, now, expiresAt);
    return { name, createdAt: now, expiresAt, usedAt: null, usedBy: null };
  });
}

export function consumeInvitation(ctx: StoreContext, name: string, codeHash: string, usedBy: Uint8Array, nowMs: number): boolean {
  checkBytes("registering key", usedBy, 32, 32);
  checkTime("now", nowMs);
  if (typeof codeHash !== "string" || typeof name !== "string") return false;
  // One statement: the code is used once even by two registrations racing for it.
  return (
    ctx.sql("UPDATE invitations SET used_at = ?, used_by = ? WHERE code_hash = ? AND name = ? AND used_at IS NULL AND expires_at > ?").run(nowMs, blob(usedBy), codeHash, name, nowMs).changes === 1
  );
}

export function listInvitations(ctx: StoreContext): InvitationRecord[] {
  return (ctx.sql("SELECT * FROM invitations ORDER BY created_at, name").all() as InvitationRow[]).map(invitationFromRow);
}

export function nonceSeen(ctx: StoreContext, sender: string, nonce: Uint8Array): boolean {
  checkBytes("nonce", nonce, 1, 64);
  return ctx.sql("SELECT 1 FROM nonces WHERE sender = ? AND nonce = ?").get(sender, blob(nonce)) !== undefined;
}

export function rememberNonce(ctx: StoreContext, sender: string, nonce: Uint8Array, timestampMs: number): void {
  checkAndRememberNonce(ctx, sender, nonce, timestampMs);
}

export function checkAndRememberNonce(ctx: StoreContext, sender: string, nonce: Uint8Array, timestampMs: number): boolean {
  checkName("sender", sender);
  checkBytes("nonce", nonce, 1, 64);
  checkTime("nonce timestamp", timestampMs);
  // One statement: atomic without a transaction.
  return ctx.sql("INSERT INTO nonces (sender, nonce, timestamp) VALUES (?, ?, ?) ON CONFLICT (sender, nonce) DO NOTHING").run(sender, blob(nonce), timestampMs).changes === 1;
}

export function pruneNonces(ctx: StoreContext, maxAgeMs: number, nowMs: number = ctx.time()): number {
  checkTime("max age", maxAgeMs);
  checkTime("now", nowMs);
  return ctx.sql("DELETE FROM nonces WHERE timestamp < ?").run(nowMs - maxAgeMs).changes;
}
