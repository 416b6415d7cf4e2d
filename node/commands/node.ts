/**
 * `umbra exchange start` and `umbra party start`: run a node in this process
 * until SIGINT / SIGTERM. Also the party agent's local HTTP API as the other
 * node commands (dataset, job) call it.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { isNodeName } from "../identity.js";
import { INVITATION_CODE } from "../admission.js";
import { readSecretFile } from "../secret-file.js";
import { DEFAULT_EXCHANGE_URL, DEFAULT_PARTY_PORT, DEFAULT_EXCHANGE_PORT, LOG_LEVELS, loggerAt, startExchangeNode, startPartyNode, type LogLevel } from "../server/start.js";
import { errorOf } from "../server/client.js";
import { CLUSTER_OPTIONS, clusterPoolOption } from "./worker.js";
import { readHeadFile } from "./log-heads.js";
import { parseOptions, processIO, UsageError, type CommandIO, type Options, type OptionSpec } from "./args.js";
import { CONFIG_OPTION, withConfigFile } from "./config.js";
import { EXCHANGE_ADMIN_USAGE, exchangeInviteCommand, exchangePartiesCommand, exchangeRevokeContractCommand, parseDuration } from "./exchange-admin.js";

export const DEFAULT_PARTY_URL = `http://127.0.0.1:${DEFAULT_PARTY_PORT}`;

export const EXCHANGE_USAGE = `  exchange start [--port P] [--host H] [--db FILE] [--key-file FILE]
      [--key-passphrase-file FILE] [--tls-cert FILE --tls-key FILE] [--open-registration]
      [--public-log] [--job-timeout DURATION] [--require-contracts] [--admin-token-file FILE]
      [--log-level error|warn|info|debug] [--config FILE] [--cluster REDIS_URL --cluster-key FILE]
                 run the exchange (default port ${DEFAULT_EXCHANGE_PORT}, db .umbra/exchange.db) until
                 SIGINT / SIGTERM; logs (pino JSON) on stderr. Its identity key (which
                 signs the audit ledger) is in --key-file (default: the db's path with
                 .key, created mode 0600 on first start), sealed under a passphrase
                 when UMBRA_KEY_PASSPHRASE or --key-passphrase-file gives one; with
                 --tls-cert/--tls-key it serves HTTPS. A new party registers only
                 with an invitation (exchange invite); --open-registration admits
                 any name without one (development only: logged as a warning).
                 Its ledger is a transparency log (docs/transparency-log.md): every
                 answer carries its signed tree head; --public-log serves the head
                 and proofs (GET /v1/log/…) to anyone, for outside witnesses.
                 Jobs survive a restart of any node (docs/durability.md); a job with
                 no activity for --job-timeout (default 10m: room for a restart) fails,
                 naming the party it waits for. --require-contracts: every job must
                 cite a contract covering each of its datasets (docs/venue.md; without
                 it, only datasets sold in an active product need one). Its web console
                 is at URL/console/exchange/ (docs/console.md): it and the admin API
                 (/v1/admin/…) need the operator's admin token, kept in
                 --admin-token-file (default: exchange.admin-token beside the db,
                 created mode 0600 on first start); start prints the file's path and
                 the console's address, never the token. --port 0: any free port (the
                 "listening at URL" line on stdout names it, and says the exchange
                 is ready). --config FILE: the same options from a .toml or .json
                 file (keys named like the flags: port = 7300), flags override it
                 (docs/configuration.md). --cluster: its own roles' bulk work (the
                 join-aggregate match, its masked sums) runs on umbra worker processes
                 through that Redis (docs/scale.md)
${EXCHANGE_ADMIN_USAGE}`;

export const PARTY_USAGE = `  party start --name NAME [--exchange URL] [--exchange-key FINGERPRINT] [--port P] [--host H]
      [--db FILE] [--data DIR] [--key-file FILE] [--key-passphrase-file FILE] [--token-file FILE]
      [--tls-cert FILE --tls-key FILE [--allowed-host NAME[,NAME]]] [--invite CODE]
      [--log-level error|warn|info|debug] [--config FILE] [--cluster REDIS_URL --cluster-key FILE]
                 run a party agent (default exchange ${DEFAULT_EXCHANGE_URL}, port ${DEFAULT_PARTY_PORT},
                 db .umbra/NAME.db, data folder .) until SIGINT / SIGTERM. Its local
                 API needs the bearer token in --token-file (default: the db's path
                 with .token, created mode 0600 on first start; the other commands
                 read it with --token-file or UMBRA_TOKEN); it listens on loopback
                 unless --host is given with --tls-cert/--tls-key (then it answers
                 requests naming that address or an --allowed-host). The exchange's key
                 is pinned on first contact (or given with --exchange-key, the
                 fingerprint umbra exchange start prints); a later contact with
                 another key is refused. An https exchange with a private CA: set
                 NODE_EXTRA_CA_CERTS=ca.pem. Its first registration needs --invite CODE,
                 from the exchange's operator (umbra exchange invite); a registered
                 party restarts without it. Each party on one machine needs its own
                 --port (--port 0: any free one). It waits up to 60 s for the exchange
                 to answer; its "listening at URL" line on stdout says it is ready
                 (registered), and the next names its web console, URL/console/party/
                 (docs/console.md; sign in with the token file's token: umbra console
                 url --party prints the address with it). --config FILE as for
                 exchange start. --cluster: its jobs' bulk work (hash-and-blind, raise,
                 match, join-aggregate's HE) runs on umbra worker processes through
                 that Redis (docs/scale.md)
  party head [--party URL] [--token-file FILE] [--json]
                 the latest signed tree head of the exchange's log this party accepted
                 (JSON: size, root, at, signature); every answer from the exchange must
                 extend it. Save it to a file and give it to another party (party
                 check-head), a witness, or umbra audit verify --head FILE. Exits 1
                 when the party found the log inconsistent (with --json: the evidence)
  party check-head --head FILE [--party URL] [--token-file FILE] [--json]
                 check a head of the exchange's log learnt elsewhere (another party's,
                 a witness's) against this party's: the exchange must prove the two
                 are one history; a fork is refused as UMBRA_LOG_INCONSISTENT and kept
`;

/** The options every client of a party agent's API takes. */
export const PARTY_API_OPTIONS = { "--party": "string", "--token-file": "string" } as const;

/** A party agent's local API: its URL and bearer token. */
export interface PartyEndpoint {
  readonly url: string;
  readonly token: string;
}

/**
 * The party agent the command talks to: --party (default ${DEFAULT_PARTY_URL})
 * and its token — from --token-file, else UMBRA_TOKEN, else the one token
 * file in ./.umbra (where \`umbra party start\` writes it by default).
 */
export function partyOption(o: Options, usage: string): PartyEndpoint {
  const url = urlOption(o, "--party", DEFAULT_PARTY_URL, usage);
  const file = o.get("--token-file");
  if (file !== undefined) return { url, token: tokenFromFile(file) };
  const env = process.env["UMBRA_TOKEN"]?.trim();
  if (env) return { url, token: env };
  let found: string[] = [];
  try {
    found = readdirSync(".umbra").filter((f) => f.endsWith(".token"));
  } catch {
    // no .umbra folder here
  }
  if (found.length === 1) return { url, token: tokenFromFile(join(".umbra", found[0] as string)) };
  throw new UsageError(
    found.length > 1
      ? `the party agent's API needs its token and .umbra holds ${found.length} token files: give --token-file .umbra/NAME.token (or set UMBRA_TOKEN)`
      : "the party agent's API needs its token: give --token-file FILE (umbra party start printed it; by default .umbra/NAME.token beside its database) or set UMBRA_TOKEN",
    usage,
  );
}

/** A party agent's endpoint from its URL and its token file, as `--party URL --token-file FILE` give it. */
export function partyEndpoint(url: string, tokenFile: string): PartyEndpoint {
  return { url, token: tokenFromFile(tokenFile) };
}

function tokenFromFile(file: string): string {
  const text = readSecretFile(file, "API token file");
  if (text === undefined) throw new UmbraError("UMBRA_NOT_FOUND", `no token file at "${file}" (umbra party start creates it beside its database)`);
  return text.trim();
}

/** The key passphrase: --key-passphrase-file, else UMBRA_KEY_PASSPHRASE, else none. */
export function passphraseOption(o: Options): string | undefined {
  const file = o.get("--key-passphrase-file");
  if (file !== undefined) {
    // A secret file like the key it opens: this user's own, readable by nobody else.
    const text = readSecretFile(file, "passphrase file");
    if (text === undefined) throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the passphrase file "${file}"`);
    return text.replace(/\r?\n$/, "");
  }
  const env = process.env["UMBRA_KEY_PASSPHRASE"];
  return env === undefined || env === "" ? undefined : env;
}

/** --tls-cert and --tls-key, both or neither. */
function tlsOptions(o: Options, usage: string): { tls?: { certFile: string; keyFile: string } } {
  const cert = o.get("--tls-cert");
  const key = o.get("--tls-key");
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--tls-cert and --tls-key go together", usage);
  return cert !== undefined && key !== undefined ? { tls: { certFile: cert, keyFile: key } } : {};
}

/** The options of a node's key file and TLS. */
function keyAndTls(o: Options, usage: string): { keyFile?: string; keyPassphrase?: string; tls?: { certFile: string; keyFile: string } } {
  const keyFile = o.get("--key-file");
  const keyPassphrase = passphraseOption(o);
  return { ...(keyFile !== undefined ? { keyFile } : {}), ...(keyPassphrase !== undefined ? { keyPassphrase } : {}), ...tlsOptions(o, usage) };
}

const NODE_OPTIONS = { ...CONFIG_OPTION, "--log-level": "string", "--port": "string", "--host": "string", "--db": "string", "--key-file": "string", "--key-passphrase-file": "string", "--tls-cert": "string", "--tls-key": "string" } as const;

/** pino at --log-level (default info). */
function logLevelOption(o: Options, usage: string): { logger: object } {
  const v = o.get("--log-level") ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`, usage);
  return { logger: loggerAt(v as LogLevel) };
}

/** A port from 0 (any free one) to 65535. */
export function portOption(o: Options, usage: string): number | undefined {
  const v = o.get("--port");
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65_535) throw new UsageError("--port needs a port number from 0 to 65535", usage);
  return Number(v);
}

/** An http(s) URL with no trailing slash. */
export function urlOption(o: Options, name: string, fallback: string, usage: string): string {
  const v = o.get(name) ?? fallback;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`${name} needs an http:// URL`, usage);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UsageError(`${name} needs an http:// URL`, usage);
  return v.replace(/\/+$/, "");
}

/** Runs until the node closes; returns its exit code. */
async function untilClosed(node: { closed: Promise<void> }): Promise<number> {
  await node.closed;
  return 0;
}

export async function exchangeCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${EXCHANGE_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "invite") return exchangeInviteCommand(rest, io, usage);
  if (sub === "parties") return exchangePartiesCommand(rest, io, usage);
  if (sub === "revoke-contract") return exchangeRevokeContractCommand(rest, io, usage, passphraseOption);
  if (sub !== "start") throw new UsageError(`unknown exchange command "${sub}"`, usage);
  const spec: OptionSpec = { ...NODE_OPTIONS, "--open-registration": "flag", "--public-log": "flag", "--job-timeout": "string", "--require-contracts": "flag", "--admin-token-file": "string", ...CLUSTER_OPTIONS };
  const given = parseOptions(rest, spec, usage);
  if (given === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const o = withConfigFile(given, spec, usage);
  const port = portOption(o, usage);
  const host = o.get("--host");
  const db = o.get("--db");
  const open = { ...(o.has("--open-registration") ? { openRegistration: true } : {}), ...(o.has("--public-log") ? { publicLog: true } : {}), ...(o.has("--require-contracts") ? { requireContracts: true } : {}) };
  const timeout = o.get("--job-timeout");
  const jobTimeout = timeout !== undefined ? { jobTimeoutMs: parseDuration(timeout, usage, "--job-timeout", 30 * 86_400_000) } : {};
  const adminTokenFile = o.get("--admin-token-file");
  const pool = await clusterPoolOption(o, usage);
  const node = await startExchangeNode({ ...(pool ? { pool } : {}), ...(port !== undefined ? { port } : {}), ...(host ? { host } : {}), ...(db ? { db } : {}), ...(adminTokenFile !== undefined ? { adminTokenFile } : {}), ...keyAndTls(o, usage), ...open, ...jobTimeout, ...logLevelOption(o, usage), say: io.out });
  return untilClosed(node);
}

export async function partyCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${PARTY_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "head") {
    const o = parseOptions(rest, { ...PARTY_API_OPTIONS, "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const h = await partyJson<{ head: unknown; exchange: string | null; inconsistent: { reason: string }[] }>(partyOption(o, usage), "GET", "/v1/exchange/head");
    io.out(JSON.stringify(o.has("--json") ? h : h.head));
    if (h.inconsistent.length > 0) {
      io.err(`UMBRA_LOG_INCONSISTENT: this party found the exchange's log inconsistent (${h.inconsistent.map((e) => e.reason).join(", ")}): it takes nothing more from the exchange; see --json for the evidence`);
      return 1;
    }
    return 0;
  }
  if (sub === "check-head") {
    const o = parseOptions(rest, { ...PARTY_API_OPTIONS, "--head": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const head = readHeadFile(o.require("--head"));
    const r = await partyJson<{ consistent: boolean; held: { size: number }; other: { size: number } }>(partyOption(o, usage), "POST", "/v1/exchange/head/check", { head });
    io.out(o.has("--json") ? JSON.stringify(r) : `consistent: the head of size ${r.other.size} and this party's of size ${r.held.size} are one history of the exchange's log`);
    return 0;
  }
  if (sub !== "start") throw new UsageError(`unknown party command "${sub}"`, usage);
  const spec: OptionSpec = { ...NODE_OPTIONS, "--name": "string", "--exchange": "string", "--data": "string", "--token-file": "string", "--exchange-key": "string", "--invite": "string", "--allowed-host": "string", ...CLUSTER_OPTIONS };
  const given = parseOptions(rest, spec, usage);
  if (given === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const o = withConfigFile(given, spec, usage);
  const name = o.require("--name");
  if (!isNodeName(name) || name === "exchange") throw new UsageError("--name must be 1 to 64 of [A-Za-z0-9._-] (and not \"exchange\")", usage);
  const exchange = urlOption(o, "--exchange", DEFAULT_EXCHANGE_URL, usage);
  const port = portOption(o, usage);
  const host = o.get("--host");
  const db = o.get("--db");
  const data = o.get("--data");
  const tokenFile = o.get("--token-file");
  const exchangeKey = o.get("--exchange-key");
  const invite = o.get("--invite");
  if (invite !== undefined && !INVITATION_CODE.test(invite)) throw new UsageError("--invite needs the invitation code umbra exchange invite printed (inv_ and 43 characters of A-Z, a-z, 0-9, - and _)", usage);
  if (exchangeKey !== undefined && !/^([0-9a-f]{16}|[0-9a-f]{64})$/.test(exchangeKey)) throw new UsageError("--exchange-key needs the exchange's key fingerprint (16 hex digits, as umbra exchange start prints it) or its signing key (64 hex digits)", usage);
  const allowedHosts = o.list("--allowed-host");
  if (allowedHosts?.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})$/.test(h))) throw new UsageError("--allowed-host needs host names or addresses, comma-separated (the names clients put in the URL)", usage);
  const pool = await clusterPoolOption(o, usage);
  const node = await startPartyNode({
    ...(pool ? { pool } : {}),
    ...(exchangeKey !== undefined ? { exchangeKey } : {}),
    ...(allowedHosts !== undefined ? { allowedHosts } : {}),
    ...(invite !== undefined ? { invite } : {}),
    name,
    exchange,
    ...(port !== undefined ? { port } : {}),
    ...(host ? { host } : {}),
    ...(db ? { db } : {}),
    ...(data ? { data } : {}),
    ...(tokenFile ? { tokenFile } : {}),
    ...keyAndTls(o, usage),
    ...logLevelOption(o, usage),
    say: io.out,
  });
  return untilClosed(node);
}

// ------------------------------------------------------------ the party's API

/** An error answer from the party agent (or the exchange behind it), with the policy rule when refused. */
export class PartyApiError extends UmbraError {
  readonly status: number;
  readonly rule: string | undefined;
  constructor(status: number, code: string, message: string, rule?: string) {
    super(code.startsWith("UMBRA_") ? code : "UMBRA_PARTY", message);
    this.status = status;
    this.rule = rule;
  }
}

/** Calls the party agent's local API with its token; JSON in, the raw response out. */
export async function partyFetch(party: PartyEndpoint, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<Response> {
  let res: Response;
  const headers: Record<string, string> = { authorization: `Bearer ${party.token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  try {
    res = await fetch(party.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    throw new UmbraError("UMBRA_UNREACHABLE", `no party agent answers at ${party.url} (start one with "umbra party start", or give --party URL)`);
  }
  if (!res.ok) {
    const e = await errorOf(res, "UMBRA_PARTY", `the party agent answered ${res.status}`);
    throw new PartyApiError(res.status, e.code, e.message, e.rule);
  }
  return res;
}

export async function partyJson<T>(party: PartyEndpoint, method: string, path: string, body?: unknown): Promise<T> {
  return (await (await partyFetch(party, method, path, body)).json()) as T;
}
