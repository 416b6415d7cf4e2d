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
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { UmbraError } from "../../engine/errors.js";
import { closePool } from "../../engine/pool/index.js";
import { generateIdentity, identityFromJSON, identityToJSON, type NodeIdentity } from "../identity.js";
import { openStore, type Store } from "../store.js";
import { buildExchange } from "./exchange.js";
import { buildParty, type PartyAgent } from "./party.js";

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
}

export interface PartyNodeOptions extends ExchangeNodeOptions {
  readonly name: string;
  readonly exchange?: string;
  readonly data?: string;
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

const defaultLogger = { level: "info", stream: process.stderr };

/** The store's identity, or a new one persisted in it; a stored identity of another name is refused. */
export function loadIdentity(store: Store, name: string): NodeIdentity {
  const stored = store.getIdentity();
  if (stored !== undefined) {
    const id = identityFromJSON(stored);
    if (id.name !== name) throw new UmbraError("UMBRA_IDENTITY_MISMATCH", `the database holds the identity of another node ("${id.name}"); use another --db`);
    return id;
  }
  const id = generateIdentity(name);
  store.putIdentity(JSON.stringify(identityToJSON(id)));
  return id;
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

async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const addr = app.server.address();
  const actual = typeof addr === "object" && addr !== null ? addr.port : port;
  const h = host.includes(":") ? `[${host}]` : host;
  return `http://${h}:${actual}`;
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
  const store = openNodeStore(o.db ?? ".umbra/exchange.db");
  let app: FastifyInstance | undefined;
  try {
    const identity = loadIdentity(store, EXCHANGE_NAME);
    app = await buildExchange({ store, identity, logger: o.logger ?? defaultLogger });
    const url = await listen(app, host, port);
    const unhook: { off?: () => void } = {};
    const a = app;
    const { close, closed } = closer(async () => {
      a.log.info("closing");
      await a.close();
      store.close();
      await closePool();
    }, unhook);
    if (o.handleSignals !== false) unhook.off = onSignals(close);
    (o.say ?? console.log)(`exchange "${identity.name}" listening at ${url} (db ${store.path})`);
    return { role: "exchange", name: identity.name, url, store, identity, closed, close };
  } catch (err) {
    await app?.close().catch(() => undefined);
    store.close();
    throw err;
  }
}

export async function startPartyNode(o: PartyNodeOptions): Promise<RunningNode> {
  const port = o.port ?? DEFAULT_PARTY_PORT;
  const host = o.host ?? "127.0.0.1";
  const store = openNodeStore(o.db ?? `.umbra/${o.name}.db`);
  let agent: PartyAgent | undefined;
  try {
    const identity = loadIdentity(store, o.name);
    const dataDir = resolve(o.data ?? ".");
    agent = await buildParty({ store, identity, exchangeUrl: o.exchange ?? DEFAULT_EXCHANGE_URL, dataDir, logger: o.logger ?? defaultLogger });
    const url = await listen(agent.app, host, port);
    await agent.start();
    const unhook: { off?: () => void } = {};
    const a = agent;
    const { close, closed } = closer(async () => {
      a.app.log.info("closing");
      await a.stop();
      store.close();
      await closePool();
    }, unhook);
    if (o.handleSignals !== false) unhook.off = onSignals(close);
    (o.say ?? console.log)(`party "${identity.name}" listening at ${url} (exchange ${agent.client.url}, data ${dataDir}, db ${store.path})`);
    return { role: "party", name: identity.name, url, store, identity, closed, close };
  } catch (err) {
    await agent?.stop().catch(() => undefined);
    store.close();
    await closePool();
    throw err;
  }
}
