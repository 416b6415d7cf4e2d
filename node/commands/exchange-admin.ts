/**
 * The exchange operator's admission commands, run against the exchange's
 * database file (like `umbra audit verify --db`; the exchange may be
 * running: SQLite WAL lets both use it):
 *
 *   umbra exchange invite --name NAME [--db FILE] [--expires DURATION] [--json]
 *   umbra exchange parties [--db FILE] [--json]
 *   umbra exchange revoke-contract --contract ID [--db FILE] [--key-file FILE] [--json]
 *
 * invite prints a one-time invitation code for NAME (only its hash is kept);
 * parties lists the registered parties and the invitations not used yet —
 * names, key fingerprints and times, never a code.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { admissionView, createInvitation, DEFAULT_INVITATION_TTL_MS, MAX_INVITATION_TTL_MS } from "../admission.js";
import { isNodeName } from "../identity.js";
import { openStore, type Store } from "../store.js";
import { besideDb, EXCHANGE_NAME, loadIdentity } from "../server/start.js";
import { revokeContract } from "../server/exchange/routes/contracts.js";
import { parseOptions, UsageError, type CommandIO, type Options } from "./args.js";

export const DEFAULT_EXCHANGE_DB = ".umbra/exchange.db";

export const EXCHANGE_ADMIN_USAGE = `  exchange invite --name NAME [--db FILE] [--expires DURATION] [--json]
                 issue a one-time invitation for the party NAME (default db
                 ${DEFAULT_EXCHANGE_DB}; expires after 7d by default, e.g. 12h, 30m, at most 90d);
                 prints the code once — the party starts with --invite CODE
  exchange parties [--db FILE] [--json]
                 list the registered parties (key fingerprints, times) and the
                 invitations not used yet (never their codes)
  exchange revoke-contract --contract ID [--db FILE] [--key-file FILE] [--key-passphrase-file FILE] [--json]
                 revoke a contract as the exchange's operator (docs/venue.md): no further
                 job runs under it; recorded in the ledger (contract.revoked, by operator)
`;

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "7d", "12h", "30m", "90s" → ms; `flag` names the option in the error (default --expires, at most 90 days). */
export function parseDuration(text: string, usage: string, flag = "--expires", maxMs = MAX_INVITATION_TTL_MS): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text);
  const ms = m ? Number(m[1]) * (UNITS[m[2] as string] as number) : NaN;
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > maxMs) throw new UsageError(`${flag} needs a duration such as 7d, 12h or 30m (more than 0, at most ${Math.round(maxMs / 86_400_000)}d)`, usage);
  return ms;
}

/** Opens an existing exchange database (never creates one: a mistyped --db would make a new, empty exchange). */
function openExchangeDb(db: string): Store {
  if (!existsSync(db)) throw new UmbraError("UMBRA_NOT_FOUND", `no exchange database at "${db}": give the --db that umbra exchange start uses (it creates the file on its first start)`);
  return openStore(resolve(db));
}

const iso = (ms: number): string => new Date(ms).toISOString();

export async function exchangeInviteCommand(args: readonly string[], io: CommandIO, usage: string): Promise<number> {
  const o = parseOptions(args, { "--name": "string", "--db": "string", "--expires": "string", "--json": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const name = o.require("--name");
  if (!isNodeName(name)) throw new UsageError("--name must be 1 to 64 of [A-Za-z0-9._-]", usage);
  const expires = o.get("--expires");
  const ttl = expires === undefined ? DEFAULT_INVITATION_TTL_MS : parseDuration(expires, usage);
  const store = openExchangeDb(o.get("--db") ?? DEFAULT_EXCHANGE_DB);
  try {
    const inv = createInvitation(store, { name, expiresInMs: ttl });
    if (o.has("--json")) io.out(JSON.stringify({ name: inv.name, code: inv.code, expiresAt: iso(inv.expiresAt) }));
    else {
      io.out(`invitation for "${inv.name}", single use, valid until ${iso(inv.expiresAt)}:`);
      io.out(`  ${inv.code}`);
      io.out(`hand it to the party's operator; it is not stored and cannot be shown again. The party registers with it once:`);
      io.out(`  umbra party start --name ${inv.name} --invite CODE ...`);
    }
    return 0;
  } finally {
    store.close();
  }
}

export async function exchangePartiesCommand(args: readonly string[], io: CommandIO, usage: string): Promise<number> {
  const o = parseOptions(args, { "--db": "string", "--json": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const store = openExchangeDb(o.get("--db") ?? DEFAULT_EXCHANGE_DB);
  try {
    const v = admissionView(store);
    if (o.has("--json")) {
      io.out(
        JSON.stringify({
          parties: v.parties.map((p) => ({ name: p.name, role: p.role, fingerprint: p.fingerprint, invited: p.invited, registeredAt: iso(p.registeredAt), updatedAt: iso(p.updatedAt) })),
          invitations: v.invitations.map((i) => ({ name: i.name, createdAt: iso(i.createdAt), expiresAt: iso(i.expiresAt), expired: i.expired })),
        }),
      );
      return 0;
    }
    const w = Math.max(4, ...v.parties.map((p) => p.name.length), ...v.invitations.map((i) => i.name.length));
    io.out(`registered parties: ${v.parties.length}`);
    if (v.parties.length > 0) {
      io.out(`  ${"name".padEnd(w)}  ${"role".padEnd(8)}  ${"fingerprint".padEnd(16)}  ${"admission".padEnd(10)}  ${"registered".padEnd(24)}  last registration`);
      for (const p of v.parties) io.out(`  ${p.name.padEnd(w)}  ${p.role.padEnd(8)}  ${p.fingerprint}  ${(p.invited ? "invited" : "-").padEnd(10)}  ${iso(p.registeredAt).padEnd(24)}  ${iso(p.updatedAt)}`);
    }
    io.out(`invitations not used: ${v.invitations.length}`);
    if (v.invitations.length > 0) {
      io.out(`  ${"name".padEnd(w)}  ${"issued".padEnd(24)}  expires`);
      for (const i of v.invitations) io.out(`  ${i.name.padEnd(w)}  ${iso(i.createdAt).padEnd(24)}  ${iso(i.expiresAt)}${i.expired ? " (expired)" : ""}`);
    }
    return 0;
  } finally {
    store.close();
  }
}

/** `exchange revoke-contract`: the operator revokes a contract, with its ledger entry signed by the exchange's key. */
export async function exchangeRevokeContractCommand(args: readonly string[], io: CommandIO, usage: string, passphrase: (o: Options) => string | undefined): Promise<number> {
  const o = parseOptions(args, { "--contract": "string", "--db": "string", "--key-file": "string", "--key-passphrase-file": "string", "--json": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const id = o.require("--contract");
  const db = o.get("--db") ?? DEFAULT_EXCHANGE_DB;
  const store = openExchangeDb(db);
  try {
    // Only an exchange's own database (its identity recorded): never a new identity for a file that is not one.
    if (store.getIdentity() === undefined) throw new UmbraError("UMBRA_NOT_FOUND", `"${db}" is not an exchange's database: give the --db that umbra exchange start uses`);
    const identity = loadIdentity(store, EXCHANGE_NAME, o.get("--key-file") ?? besideDb(db, ".key"), passphrase(o));
    if (!revokeContract(store, identity, id, "operator")) throw new UmbraError("UMBRA_NOT_FOUND", "no pending or active contract with this id");
    io.out(o.has("--json") ? JSON.stringify({ id, state: "revoked" }) : `revoked ${id}: no further job runs under it`);
    return 0;
  } finally {
    store.close();
  }
}
