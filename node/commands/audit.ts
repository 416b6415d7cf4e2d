/**
 * `umbra audit verify|show --db FILE`: the exchange's audit ledger, read from
 * its store file (the exchange may be running: SQLite WAL lets both read).
 * verify checks the whole hash chain and every signature under the
 * exchange's public key (from the store, or --exchange-key HEX to check it
 * against a key published elsewhere).
 */
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { storedIdentityFrom } from "../identity.js";
import { listEntries, verifyLedger, type LedgerHead, type LedgerVerification } from "../ledger.js";
import { openStore, type Store } from "../store.js";
import { EXCHANGE_NAME } from "../server/start.js";
import { parseOptions, processIO, UsageError, type CommandIO } from "./args.js";

export const AUDIT_USAGE = `  audit verify --db FILE [--exchange-key HEX] [--head SEQ:HASH] [--json]
                 check the exchange's ledger: every entry's hash chain and signature,
                 under --exchange-key (the exchange's signing key, 64 hex digits: the
                 one the parties pinned) or else the db's;
                 --head: also that it reaches a head a party kept (umbra party head),
                 so entries cut off its end are found. FILE is the exchange's
                 database (a party's holds no ledger and is refused)
  audit show --db FILE [--job ID] [--json]
                 print the ledger, one line per entry: seq, time, kind, job, body
`;

/** A party's database given where the exchange's is needed: a party keeps no ledger, only the heads it has seen. */
export class NotAnExchangeDatabaseError extends UmbraError {
  constructor(db: string, party: string) {
    super(
      "UMBRA_NOT_EXCHANGE_DB",
      `"${basename(db)}" is party "${party}"'s database, which holds no ledger: give the exchange's (--db, by default .umbra/exchange.db where umbra exchange start ran); to check the exchange from a party, take umbra party head and give it to audit verify --db EXCHANGE_DB --head SEQ:HASH`,
    );
  }
}

/** The exchange's store: refused when it is a party's (one that has pinned an exchange, or names itself other than the exchange). */
function openLedgerStore(db: string): Store {
  if (!existsSync(db)) throw new UmbraError("UMBRA_NOT_FOUND", `no store file at "${db}"`);
  const store = openStore(db);
  const json = store.getIdentity();
  const name = json !== undefined ? storedIdentityFrom(json).name : undefined;
  if (store.listParties({ role: "exchange" }).length > 0 || (name !== undefined && name !== EXCHANGE_NAME)) {
    store.close();
    throw new NotAnExchangeDatabaseError(db, name ?? "?");
  }
  return store;
}

/** The exchange's signing public key, as its store holds it. */
export function storedPublicKey(store: Store): Uint8Array {
  const json = store.getIdentity();
  if (json === undefined) throw new UmbraError("UMBRA_NOT_FOUND", "the store holds no node identity (is it an exchange's database?)");
  return storedIdentityFrom(json).signingPublicKey;
}

/** Verifies the ledger in a store file. */
export function verifyLedgerFile(db: string, publicKeyHex?: string, head?: LedgerHead): LedgerVerification {
  const store = openLedgerStore(db);
  try {
    const key = publicKeyHex !== undefined ? Uint8Array.from(Buffer.from(publicKeyHex, "hex")) : storedPublicKey(store);
    return verifyLedger(store, key, head ? { head } : {});
  } finally {
    store.close();
  }
}

export function describeVerification(v: LedgerVerification): string {
  return v.ok
    ? `ledger verified: ${v.entries} entries, head ${v.head ? `seq ${v.head.seq} ${v.head.hash.slice(0, 16)}…` : "(empty)"}`
    : `ledger verification FAILED at entry seq ${v.seq}: ${v.problem}`;
}

export async function auditCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${AUDIT_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "verify") {
    const o = parseOptions(rest, { "--db": "string", "--exchange-key": "string", "--head": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const pk = o.get("--exchange-key");
    if (pk !== undefined && !/^[0-9a-f]{64}$/.test(pk)) throw new UsageError("--exchange-key needs the exchange's signing key, 64 lowercase hex digits (its 16-digit fingerprint cannot check a signature)", usage);
    const h = o.get("--head");
    const m = h === undefined ? undefined : /^([1-9]\d{0,15}):([0-9a-f]{64})$/.exec(h);
    if (h !== undefined && !m) throw new UsageError("--head needs SEQ:HASH (the seq and the 64 hex digits of the entry's hash)", usage);
    const v = verifyLedgerFile(o.require("--db"), pk, m ? { seq: Number(m[1]), hash: m[2] as string } : undefined);
    if (o.has("--json")) io.out(JSON.stringify(v));
    else (v.ok ? io.out : io.err)(describeVerification(v));
    return v.ok ? 0 : 1;
  }
  if (sub === "show") {
    const o = parseOptions(rest, { "--db": "string", "--job": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const job = o.get("--job");
    const store = openLedgerStore(o.require("--db"));
    try {
      const entries = listEntries(store, job ? { job } : {});
      if (o.has("--json")) return (io.out(JSON.stringify(entries.map((e) => ({ seq: e.seq, at: new Date(e.at).toISOString(), kind: e.kind, job: e.job ?? null, body: e.body })))), 0);
      for (const e of entries) io.out(`${e.seq}  ${new Date(e.at).toISOString()}  ${e.kind}  ${e.job ?? "-"}  ${JSON.stringify(e.body)}`);
      if (entries.length === 0) io.out(job ? "no entries for this job" : "the ledger is empty");
    } finally {
      store.close();
    }
    return 0;
  }
  throw new UsageError(`unknown audit command "${sub}"`, usage);
}
