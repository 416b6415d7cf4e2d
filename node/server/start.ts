/**
 * Starting a node as a process: the exchange (`startExchangeNode`) or a party
 * (`startPartyNode`). Each creates its database folder, opens its store,
 * loads its identity from it (or generates one and persists it), builds the
 * Fastify application, listens, logs with pino (Fastify's logger, level info,
 * to stderr; request lines carry methods, paths and job ids, never keys or
 * values), and closes gracefully on SIGINT / SIGTERM: polling stopped,
 * Fastify closed, the store closed, the crypto pool closed, so the process
 * exits by itself.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { UmbraError } from "../../engine/errors.js";
import { closePool, type CryptoPool } from "../../engine/pool/index.js";
import { fingerprint, generateIdentity, identityFromJSON, publicIdentity, storedIdentityFrom, storedIdentityJSON, type NodeIdentity } from "../identity.js";
import { readKeyFile, writeKeyFile } from "../key-file.js";
import { isLoopbackAddress, isWildcardAddress, loadOrCreateTokenFile } from "./local-api.js";
import { openStore, type Store } from "../store.js";
import { ConnectionRefusedError } from "./client.js";
import { buildExchange } from "./exchange.js";
import { buildParty, type PartyAgent } from "./party.js";
import { consoleUrl } from "./console-assets.js";

export interface ExchangeNodeOptions {
  readonly port?: number;
  readonly host?: string;
  readonly db?: string;
  /** Default: pino at level info on stderr. `false`: no logs. */
  readonly logger?: boolean | object;
  /** Close on SIGINT / SIGTERM (default true). */
  readonly handleSignals?: boolean;
  /** Where the "listening" line goes (default stdout). */
  readonly say?: (line: string) => void;
  /** The identity key file (default: the database's path with .key for .db). Created, mode 0600, when absent. */
  readonly keyFile?: string;
  /** Seals a new key file, and opens a sealed one. */
  readonly keyPassphrase?: string;
  /** Serve HTTPS with this PEM certificate and key (files). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** The exchange: admit any new party name without an invitation (development only; logged as a warning). */
  readonly openRegistration?: boolean;
  /** The exchange: a job with no activity for this long fails (default 10 minutes). */
  readonly jobTimeoutMs?: number;
  /** The exchange: serve the log's signed head and proofs to anyone, for outside witnesses (default: registered parties only). */
  readonly publicLog?: boolean;
  /** The pool its jobs compute on (default: the process's; a ClusterPool for `--cluster`). Closed with the node. */
  readonly pool?: CryptoPool;
  /** The exchange: every job must cite a contract covering each of its datasets (docs/venue.md). */
  readonly requireContracts?: boolean;
  /** The exchange: the admin token's file (default {@link ADMIN_TOKEN_FILE} beside the database). Created, mode 0600, when absent. */
  readonly adminTokenFile?: string;
}

export interface PartyNodeOptions extends ExchangeNodeOptions {
  readonly name: string;
  readonly exchange?: string;
  readonly data?: string;
  /** The local API's token file (default: the database's path with .token for .db). Created, mode 0600, when absent. */
  readonly tokenFile?: string;
  /** The exchange's signing key or its fingerprint (default: pinned on first contact). */
  readonly exchangeKey?: string;
  /** Host names the local API answers to besides its loopback names (with a non-loopback --host: the names clients use). */
  readonly allowedHosts?: readonly string[];
  /** The invitation code for this party's first registration (umbra exchange invite). */
  readonly invite?: string;
  /** How long to wait for the exchange to answer at start (default 60 s), so both may be started at once. */
  readonly exchangeWaitMs?: number;
}

export interface RunningNode {
  readonly role: "exchange" | "party";
  readonly name: string;
  readonly url: string;
  readonly store: Store;
  readonly identity: NodeIdentity;
  /** Resolves when the node has closed (after close(), or a signal). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_EXCHANGE_PORT = 7300;
export const DEFAULT_PARTY_PORT = 7301;
export const DEFAULT_EXCHANGE_URL = `http://127.0.0.1:${DEFAULT_EXCHANGE_PORT}`;
export const EXCHANGE_NAME = "exchange";
/** The exchange's admin token file's name, in its database's folder (docs/console.md). */
export const ADMIN_TOKEN_FILE = "exchange.admin-token";

/** Where the exchange whose database is `db` keeps its admin token by default. */
export function defaultAdminTokenFile(db: string): string {
  return join(dirname(resolve(db)), ADMIN_TOKEN_FILE);
}

const defaultLogger = { level: "info", stream: process.stderr };


/** A file beside the database: its path with `.db` replaced by (or, without it, followed by) `ext`. */
export function besideDb(db: string, ext: string): string {
  return resolve(db).replace(/\.db$/, "") + ext;
}

/**
 * The node's identity: the secret keys from its key file, checked against
 * the public identity its database records. On a first start both are
 * created; a database from before key files (its identity record holding the
 * secret keys) has them moved into a new key file and scrubbed from the
 * database. Refused: a key file of another name or other keys than the
 * database's, and a database whose key file is missing (a new key would be a
 * new identity, and the exchange would not know it).
 */
export function loadIdentity(store: Store, name: string, keyFile: string, passphrase?: string, say: (line: string) => void = () => undefined): NodeIdentity {
  const stored = store.getIdentity();
  const recorded = stored === undefined ? undefined : storedIdentityFrom(stored);
  if (recorded !== undefined && recorded.name !== name) throw new UmbraError("UMBRA_IDENTITY_MISMATCH", `the database holds the identity of another node ("${recorded.name}"); use another --db`);
  let id = readKeyFile(keyFile, passphrase);
  if (id === undefined) {
    if (recorded !== undefined && !recorded.secret) {
      throw new UmbraError("UMBRA_KEY_FILE_MISSING", `the key file "${keyFile}" of this database's node is missing; restore it from your backup (give --key-file if it lives elsewhere)`);
    }
    id = recorded !== undefined && stored !== undefined ? identityFromJSON(stored) : generateIdentity(name);
    writeKeyFile(keyFile, id, passphrase);
    say(recorded !== undefined ? `moved the identity's secret keys out of the database into the key file ${keyFile} (mode 0600)` : `created the identity key file ${keyFile} (mode 0600${passphrase !== undefined ? ", sealed with the passphrase" : ""}); back it up: it is the node's identity`);
  }
  if (id.name !== name) throw new UmbraError("UMBRA_IDENTITY_MISMATCH", `the key file "${keyFile}" holds the identity of another node ("${id.name}")`);
  const pub = publicIdentity(id);
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (recorded !== undefined && (!same(recorded.signingPublicKey, pub.signingPublicKey) || !same(recorded.boxPublicKey, pub.boxPublicKey))) {
    throw new UmbraError("UMBRA_IDENTITY_MISMATCH", `the key file "${keyFile}" holds other keys (fingerprint ${fingerprint(pub.signingPublicKey)}) than this database's node (${fingerprint(recorded.signingPublicKey)})`);
  }
  if (recorded === undefined || recorded.secret) store.replaceIdentity(storedIdentityJSON(pub));
  return id;
}

function tlsOption(o: ExchangeNodeOptions): { key: Buffer; cert: Buffer } | undefined {
  if (!o.tls) return undefined;
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch {
      throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the TLS ${what} file "${file}"`);
    }
  };
  return { cert: read(o.tls.certFile, "certificate"), key: read(o.tls.keyFile, "key") };
}

function openNodeStore(db: string): Store {
  const path = resolve(db);
  mkdirSync(dirname(path), { recursive: true });
  return openStore(path);
}

/** Closes once, on the first SIGINT or SIGTERM. */
function onSignals(close: () => Promise<void>): () => void {
  const handler = () => {
    void close();
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** The log levels a node takes (--log-level): pino's, from the quietest. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** pino at `level` on stderr. */
export function loggerAt(level: LogLevel): object {
  return { level, stream: process.stderr };
}

/** The port is taken (or not ours to take): said with the flag that fixes it. */
export class PortUnavailableError extends UmbraError {
  readonly port: number;
  constructor(role: string, host: string, port: number, inUse: boolean) {
    super(
      inUse ? "UMBRA_PORT_IN_USE" : "UMBRA_PORT_FORBIDDEN",
      inUse
        ? `port ${port} on ${host} is in use (another exchange or party agent?): start this ${role} with --port N, or --port 0 for any free port (the listening line names the one chosen)`
        : `this user may not listen on port ${port} on ${host}: start this ${role} with --port N (1024 or above), or --port 0 for any free port`,
    );
    this.port = port;
  }
}

async function listen(app: FastifyInstance, host: string, port: number, https: boolean, role: string): Promise<string> {
  try {
    await app.listen({ host, port });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "EADDRINUSE" || code === "EACCES") throw new PortUnavailableError(role, host, port, code === "EADDRINUSE");
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") throw new UmbraError("UMBRA_BAD_HOST", `cannot listen on ${host}: no interface of this machine has that address (give --host with one of its addresses, or leave it out for 127.0.0.1)`);
    throw err;
  }
  const addr = app.server.address();
  const actual = typeof addr === "object" && addr !== null ? addr.port : port;
  const h = host.includes(":") ? `[${host}]` : host;
  return `${https ? "https" : "http"}://${h}:${actual}`;
}

function closer(steps: () => Promise<void>, unhook: { off?: () => void }): { close: () => Promise<void>; closed: Promise<void> } {
  let resolveClosed: () => void = () => undefined;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let running: Promise<void> | undefined;
  const close = () => {
    running ??= (async () => {
      unhook.off?.();
      try {
        await steps();
      } finally {
        resolveClosed();
      }
    })();
    return running;
  };
  return { close, closed };
}

export async function startExchangeNode(o: ExchangeNodeOptions = {}): Promise<RunningNode> {
  const port = o.port ?? DEFAULT_EXCHANGE_PORT;
  const host = o.host ?? "127.0.0.1";
  const db = o.db ?? ".umbra/exchange.db";
  const store = openNodeStore(db);
  let app: FastifyInstance | undefined;
  try {
    const keyFile = o.keyFile ?? besideDb(db, ".key");
    const identity = loadIdentity(store, EXCHANGE_NAME, keyFile, o.keyPassphrase, o.say ?? console.log);
    const https = tlsOption(o);
    const adminTokenFile = o.adminTokenFile !== undefined ? resolve(o.adminTokenFile) : defaultAdminTokenFile(db);
    const admin = loadOrCreateTokenFile(adminTokenFile, "admin token file");
    app = await buildExchange({ store, identity, adminToken: admin.token, logger: o.logger ?? defaultLogger, ...(https ? { https } : {}), ...(o.openRegistration === true ? { openRegistration: true } : {}), ...(o.publicLog === true ? { publicLog: true } : {}), ...(o.jobTimeoutMs !== undefined ? { jobTimeoutMs: o.jobTimeoutMs } : {}), ...(o.requireContracts === true ? { requireContracts: true } : {}), ...(o.pool ? { pool: o.pool } : {}) });
    const url = await listen(app, host, port, https !== undefined, "exchange");
    if (!https && !isLoopbackAddress(host)) app.log.warn("the exchange listens beyond loopback over plain http: give --tls-cert and --tls-key, or put it behind a TLS proxy");
    const unhook: { off?: () => void } = {};
    const a = app;
    const { close, closed } = closer(async () => {
      a.log.info("closing");
      await a.close();
      store.close();
      await o.pool?.close();
      await closePool();
    }, unhook);
    if (o.handleSignals !== false) unhook.off = onSignals(close);
    const say = o.say ?? console.log;
    say(`exchange "${identity.name}" listening at ${url} (db ${store.path}, key fingerprint ${fingerprint(identity.signing.publicKey)})`);
    // The token itself is never printed: `umbra console url --exchange` reads it from the file for the operator's own terminal.
    say(`console at ${consoleUrl(url, "exchange")} (sign in with the admin token in ${adminTokenFile}${admin.created ? ", created now, mode 0600" : ""}; umbra console url --exchange prints the address with it)`);
    return { role: "exchange", name: identity.name, url, store, identity, closed, close };
  } catch (err) {
    await app?.close().catch(() => undefined);
    store.close();
    throw err;
  }
}

/** Starts the agent (registers with the exchange), asking again while the exchange does not answer, for up to `forMs`. */
async function startWhenExchangeAnswers(agent: PartyAgent, forMs: number): Promise<void> {
  const until = Date.now() + forMs;
  for (let delay = 250; ; delay = Math.min(2_000, delay * 2)) {
    try {
      await agent.start();
      return;
    } catch (err) {
      if (!(err instanceof ConnectionRefusedError) || Date.now() + delay > until) {
        if (err instanceof ConnectionRefusedError) {
          throw new UmbraError("UMBRA_EXCHANGE_UNREACHABLE", `no exchange answered at ${agent.client.url} for ${Math.round(forMs / 1000)} s: start it first (umbra exchange start), or give --exchange URL`);
        }
        throw err;
      }
      agent.app.log.info("waiting for the exchange to answer");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export async function startPartyNode(o: PartyNodeOptions): Promise<RunningNode> {
  const port = o.port ?? DEFAULT_PARTY_PORT;
  const host = o.host ?? "127.0.0.1";
  const https = tlsOption(o);
  // The local API reads results and changes policies: beyond loopback only over TLS (the token would cross the network in clear).
  if (!isLoopbackAddress(host) && !https) {
    throw new UmbraError("UMBRA_INSECURE_LISTEN", `a party agent's API listens beyond loopback (--host ${host}) only over TLS: give --tls-cert and --tls-key`);
  }
  const db = o.db ?? `.umbra/${o.name}.db`;
  const store = openNodeStore(db);
  let agent: PartyAgent | undefined;
  try {
    const say = o.say ?? console.log;
    const identity = loadIdentity(store, o.name, o.keyFile ?? besideDb(db, ".key"), o.keyPassphrase, say);
    const tokenFile = o.tokenFile ?? besideDb(db, ".token");
    const { token, created } = loadOrCreateTokenFile(tokenFile);
    if (created) say(`created the API token file ${tokenFile} (mode 0600): the CLI reads it with --token-file`);
    const dataDir = resolve(o.data ?? ".");
    agent = await buildParty({
      store,
      identity,
      exchangeUrl: o.exchange ?? DEFAULT_EXCHANGE_URL,
      dataDir,
      logger: o.logger ?? defaultLogger,
      apiToken: token,
      ...(o.exchangeKey !== undefined ? { exchangeKey: o.exchangeKey } : {}),
      ...(o.invite !== undefined ? { invite: o.invite } : {}),
      // The names requests may give in Host beyond the loopback ones: those given, and the listen address
      // itself unless it is a wildcard (0.0.0.0 and :: name no machine).
      allowedHosts: [...(o.allowedHosts ?? []), ...(isLoopbackAddress(host) || isWildcardAddress(host) ? [] : [host])],
      ...(https ? { https } : {}),
      ...(o.pool ? { pool: o.pool } : {}),
    });
    const url = await listen(agent.app, host, port, https !== undefined, "party agent");
    await startWhenExchangeAnswers(agent, o.exchangeWaitMs ?? 60_000);
    const unhook: { off?: () => void } = {};
    const a = agent;
    const { close, closed } = closer(async () => {
      a.app.log.info("closing");
      await a.stop();
      store.close();
      await o.pool?.close();
      await closePool();
    }, unhook);
    if (o.handleSignals !== false) unhook.off = onSignals(close);
    const pin = agent.exchangePin;
    const pinned = pin ? `, exchange key ${pin.fingerprint} ${pin.how === "first-use" ? "pinned on first use" : pin.how === "configured" ? "as given" : "as pinned"}` : "";
    say(`party "${identity.name}" listening at ${url} (exchange ${agent.client.url}${pinned}, data ${dataDir}, db ${store.path}, token file ${tokenFile})`);
    say(`console at ${consoleUrl(url, "party")} (sign in with the token in ${tokenFile}; umbra console url --party prints the address with it)`);
    return { role: "party", name: identity.name, url, store, identity, closed, close };
  } catch (err) {
    await agent?.stop().catch(() => undefined);
    store.close();
    await o.pool?.close();
    await closePool();
    throw err;
  }
}
