/**
 * `umbra audit verify|show --db FILE`: the exchange's audit ledger, read from
 * its store file (the exchange may be running: SQLite WAL lets both read).
 * verify checks the whole hash chain and every signature under the
 * exchange's public key (from the store, or --exchange-key HEX to check it
 * against a key published elsewhere).
 */
import { existsSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { storedIdentityFrom } from "../identity.js";
import { listEntries, syncLogTree, verifyLedger, type LedgerVerification } from "../ledger.js";
import { currentTreeHead, headsConsistent, parseProof, verifyTreeHead, type SignedTreeHead } from "../log/head.js";
import { readHeadFile, readHeadsFile } from "./log-heads.js";
import { openStore, type Store } from "../store.js";
import { besideDb, EXCHANGE_NAME, loadIdentity } from "../server/start.js";
import { passphraseOption } from "./node.js";
import { parseOptions, processIO, UsageError, type CommandIO } from "./args.js";

export const AUDIT_USAGE = `  audit verify --db FILE [--exchange-key HEX] [--head FILE] [--json]
                 check the exchange's ledger: every entry's hash chain and signature,
                 under --exchange-key (the exchange's signing key, 64 hex digits: the
                 one the parties pinned) or else the db's, and the Merkle tree of its
                 transparency log; --head: also that each signed tree head in FILE
                 (one, or an array: umbra party head > FILE, from every party) is the
                 root of the ledger's first SIZE entries — a head it cannot reach
                 means entries were cut off, another root means the history that head
                 vouched for was rewritten or shown to that party differently. FILE is
                 the exchange's database (a party's holds no ledger and is refused)
  audit head --db FILE [--key-file FILE] [--key-passphrase-file FILE] [--out FILE]
                 sign and print the log's current tree head (size, root, at,
                 signature) with the exchange's key (its key file, by default beside
                 the database), to publish for witnesses
  audit witness --exchange URL --exchange-key HEX --head FILE [--out FILE] [--json]
                 an outside witness's check, with only the exchange's public key: take
                 the exchange's current signed tree head (an exchange started with
                 --public-log serves it to anyone) and its consistency proof from the
                 head in FILE (one kept before: a certificate's or receipt's head, a
                 party's); exit 0 when the log only grew, 1 (UMBRA_LOG_INCONSISTENT)
                 when it was rewritten; --out keeps the new head for the next check
  audit show --db FILE [--job ID] [--json]
                 print the ledger, one line per entry: seq, time, kind, job, body
`;

/** A party's database given where the exchange's is needed: a party keeps no ledger, only the heads it has seen. */
export class NotAnExchangeDatabaseError extends UmbraError {
  constructor(db: string, party: string) {
    super(
      "UMBRA_NOT_EXCHANGE_DB",
      `"${basename(db)}" is party "${party}"'s database, which holds no ledger: give the exchange's (--db, by default .umbra/exchange.db where umbra exchange start ran); to check the exchange from a party, save umbra party head to a file and give it to audit verify --db EXCHANGE_DB --head FILE`,
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

/** What a witness finds: the exchange's current head, and whether a proof shows it extends the head held. */
export type WitnessResult = { readonly ok: true; readonly from: number; readonly head: SignedTreeHead } | { readonly ok: false; readonly from: number; readonly head: SignedTreeHead; readonly problem: string };

/** Fetches the exchange's public log head and the consistency proof from `held`, and checks both with only its public key. */
export async function witnessCheck(exchange: string, publicKey: Uint8Array, held: SignedTreeHead): Promise<WitnessResult> {
  const get = async (path: string): Promise<unknown> => {
    let res: Response | undefined;
    // A GET changes nothing: sent again (up to five times) when a kept-alive connection was closed under it.
    for (let attempt = 0; res === undefined; attempt++) {
      try {
        res = await fetch(exchange + path, { signal: AbortSignal.timeout(30_000) });
      } catch {
        if (attempt === 4) throw new UmbraError("UMBRA_EXCHANGE_UNREACHABLE", `the exchange at ${exchange} could not be reached`);
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
    if (res.status === 401) throw new UmbraError("UMBRA_FORBIDDEN", "the exchange serves its log to its parties only: ask its operator to start it with --public-log, or check a head with a party (umbra party check-head)");
    if (!res.ok) throw new UmbraError("UMBRA_EXCHANGE", `the exchange answered ${res.status}`);
    return res.json();
  };
  if (verifyTreeHead(held, publicKey) === undefined) throw new UmbraError("UMBRA_BAD_LOG_HEAD", "the head given is not signed by that key");
  const head = verifyTreeHead(await get("/v1/log/head"), publicKey);
  if (head === undefined) throw new UmbraError("UMBRA_BAD_LOG_HEAD", "the exchange's head is malformed or not signed by that key");
  if (head.size < held.size) return { ok: false, from: held.size, head, problem: "it holds fewer entries than the head held" };
  const proof = parseProof(((await get(`/v1/log/consistency?first=${held.size}&second=${head.size}`)) as { proof?: unknown }).proof);
  if (proof === undefined) throw new UmbraError("UMBRA_BAD_LOG_HEAD", "the exchange's consistency proof is malformed");
  return headsConsistent(held, head, proof) ? { ok: true, from: held.size, head } : { ok: false, from: held.size, head, problem: "the consistency proof fails: the history the held head signed was rewritten" };
}

/** Verifies the ledger in a store file (and the signed tree heads given). */
export function verifyLedgerFile(db: string, publicKeyHex?: string, heads: readonly SignedTreeHead[] = []): LedgerVerification {
  const store = openLedgerStore(db);
  try {
    const key = publicKeyHex !== undefined ? Uint8Array.from(Buffer.from(publicKeyHex, "hex")) : storedPublicKey(store);
    return verifyLedger(store, key, { heads });
  } finally {
    store.close();
  }
}

const HEAD_PROBLEMS: Readonly<Record<string, string>> = {
  truncated: "UMBRA_LOG_INCONSISTENT: the ledger ends before this head's size — entries were cut off its end",
  head: "UMBRA_LOG_INCONSISTENT: the ledger's first SIZE entries have another root — the history this head vouched for was rewritten, or shown to its holder differently",
  head_signature: "this is not a tree head signed by the exchange's key",
};

export function describeVerification(v: LedgerVerification): string {
  if (v.ok) return `ledger verified: ${v.entries} entries, head ${v.head ? `seq ${v.head.seq} ${v.head.hash.slice(0, 16)}…` : "(empty)"}, log root ${v.root.slice(0, 16)}…${v.heads > 0 ? `; ${v.heads} signed head${v.heads === 1 ? "" : "s"} consistent with it` : ""}`;
  if (v.headIndex !== undefined) return `ledger verification FAILED at head ${v.headIndex + 1} (size ${v.seq}): ${HEAD_PROBLEMS[v.problem] ?? v.problem}`;
  return `ledger verification FAILED at entry seq ${v.seq}: ${v.problem}`;
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
    const v = verifyLedgerFile(o.require("--db"), pk, h === undefined ? [] : readHeadsFile(h));
    if (o.has("--json")) io.out(JSON.stringify(v));
    else (v.ok ? io.out : io.err)(describeVerification(v));
    return v.ok ? 0 : 1;
  }
  if (sub === "head") {
    const o = parseOptions(rest, { "--db": "string", "--out": "string", "--key-file": "string", "--key-passphrase-file": "string" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const db = o.require("--db");
    const store = openLedgerStore(db);
    let head: SignedTreeHead;
    try {
      if (store.getIdentity() === undefined) throw new UmbraError("UMBRA_NOT_FOUND", "the store holds no node identity (is it an exchange's database?)");
      const identity = loadIdentity(store, EXCHANGE_NAME, o.get("--key-file") ?? besideDb(db, ".key"), passphraseOption(o));
      syncLogTree(store);
      head = currentTreeHead(store, identity.signing.secretKey, Date.now());
    } finally {
      store.close();
    }
    const text = JSON.stringify(head);
    const out = o.get("--out");
    if (out !== undefined) writeFileSync(out, text + "\n");
    else io.out(text);
    return 0;
  }
  if (sub === "witness") {
    const o = parseOptions(rest, { "--exchange": "string", "--exchange-key": "string", "--head": "string", "--out": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const pk = o.require("--exchange-key");
    if (!/^[0-9a-f]{64}$/.test(pk)) throw new UsageError("--exchange-key needs the exchange's signing key, 64 lowercase hex digits", usage);
    const r = await witnessCheck(o.require("--exchange").replace(/\/+$/, ""), Uint8Array.from(Buffer.from(pk, "hex")), readHeadFile(o.require("--head")));
    const out = o.get("--out");
    if (r.ok && out !== undefined) writeFileSync(out, `${JSON.stringify(r.head)}\n`);
    if (o.has("--json")) io.out(JSON.stringify(r));
    else if (r.ok) io.out(`consistent: the exchange's log grew from ${r.from} to ${r.head.size} entries without changing one (root ${r.head.root.slice(0, 16)}…, signed ${new Date(r.head.at).toISOString()})`);
    else io.err(`UMBRA_LOG_INCONSISTENT: the exchange's log of ${r.head.size} entries is not an extension of the head held (${r.from} entries): ${r.problem}`);
    return r.ok ? 0 : 1;
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
