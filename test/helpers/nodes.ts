/** Starts an exchange and parties in this process, on loopback with free ports. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CryptoPool } from "../../engine/index.js";
import { generateIdentity, type NodeIdentity } from "../../node/identity.js";
import { createInvitation } from "../../node/admission.js";
import { buildExchange, type ExchangeOptions } from "../../node/server/exchange.js";
import { buildParty, type PartyAgent } from "../../node/server/party.js";
import { openStore, type Store } from "../../node/store.js";
import { createSecretFile } from "../../node/secret-file.js";

export interface TestExchange {
  readonly url: string;
  readonly store: Store;
  readonly publicKey: Uint8Array;
  readonly identity: NodeIdentity;
  readonly app: Awaited<ReturnType<typeof buildExchange>>;
  close(): Promise<void>;
  /** Stops the server and starts it again on the same port with the same store and identity (what a restart keeps). */
  restart(): Promise<TestExchange>;
}

/** Each in-process exchange's store, by its URL: startParty invites a new party there as its operator would. */
const exchangeStores = new Map<string, Store>();

export async function startExchange(options: Omit<ExchangeOptions, "store" | "identity"> = {}, reuse?: { store: Store; identity: NodeIdentity; port: number }): Promise<TestExchange> {
  const store = reuse?.store ?? openStore(":memory:");
  const identity = reuse?.identity ?? generateIdentity("exchange");
  const app = await buildExchange({ store, identity, ...options });
  const url = await app.listen({ host: "127.0.0.1", port: reuse?.port ?? 0 });
  exchangeStores.set(url, store);
  const port = Number(new URL(url).port);
  return {
    url,
    store,
    publicKey: identity.signing.publicKey,
    identity,
    app,
    close: async () => {
      exchangeStores.delete(url);
      await app.close();
      store.close();
    },
    restart: async () => {
      await app.close();
      return startExchange(options, { store, identity, port });
    },
  };
}

/**
 * An invitation for `name` at an in-process exchange, made with the function
 * `umbra exchange invite` runs; undefined for a name registered there already
 * (it restarts without one) or an exchange this process did not start.
 */
export function inviteAt(exchangeUrl: string, name: string): string | undefined {
  const store = exchangeStores.get(exchangeUrl);
  if (store === undefined || store.getParty(name) !== undefined) return undefined;
  return createInvitation(store, { name }).code;
}

export interface TestParty {
  readonly name: string;
  readonly url: string;
  readonly dataDir: string;
  readonly store: Store;
  readonly agent: PartyAgent;
  readonly identity: NodeIdentity;
  close(): Promise<void>;
  /** Stops the agent and starts it again with the same store, identity and data folder (what a restart keeps; a new port). */
  restart(): Promise<TestParty>;
}

/** Each in-process party's API token, by its URL: api() sends it to that URL as a user's CLI would. */
const tokens = new Map<string, string>();

export async function startParty(name: string, exchangeUrl: string, pool: CryptoPool, reuse?: { store: Store; identity: NodeIdentity; dataDir: string }, options: { readonly orderPollMs?: number } = {}): Promise<TestParty> {
  const dataDir = reuse?.dataDir ?? mkdtempSync(join(tmpdir(), `umbra-${name}-`));
  const store = reuse?.store ?? openStore(":memory:");
  const identity = reuse?.identity ?? generateIdentity(name);
  const invite = inviteAt(exchangeUrl, name);
  const agent = await buildParty({ store, identity, exchangeUrl, dataDir, pool, ...(invite !== undefined ? { invite } : {}), ...options });
  const url = await agent.app.listen({ host: "127.0.0.1", port: 0 });
  tokens.set(url, agent.token);
  await agent.start();
  return {
    name,
    url,
    dataDir,
    store,
    agent,
    identity,
    close: async () => {
      await agent.stop();
      if (!reuse) store.close();
    },
    restart: async () => {
      await agent.stop();
      return startParty(name, exchangeUrl, pool, { store, identity, dataDir });
    },
  };
}

/** The headers a party's local API needs: its token (when `base` is an in-process party), and JSON's content type. */
export function partyHeaders(base: string, json = false): Record<string, string> {
  const token = tokens.get(base);
  return { ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...(json ? { "content-type": "application/json" } : {}) };
}

export async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(base + path, { method, headers: partyHeaders(base, body !== undefined), ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export async function waitForJob(base: string, id: string, timeoutMs = 60_000): Promise<{ state: string; reason: string | null }> {
  const t0 = Date.now();
  for (;;) {
    const r = await api<{ state: string; reason: string | null }>(base, "GET", `/v1/jobs/${id}`);
    if (["succeeded", "failed", "refused", "cancelled"].includes(r.body.state)) return r.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job still ${r.body.state}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** A token file (mode 0600) holding an in-process party's API token, for the CLI's --token-file. */
export function tokenFileOf(party: TestParty): string {
  const file = join(mkdtempSync(join(tmpdir(), `umbra-token-${party.name}-`)), `${party.name}.token`);
  createSecretFile(file, `${party.agent.token}\n`, "API token file");
  return file;
}

/** Waits until `check()` holds (polling every 20 ms); fails naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An exchange and party agents on loopback, the parties admitted as a user's would be. */
export interface TestNodes {
  readonly x: TestExchange;
  /** The parties by name, in the order given. */
  readonly parties: readonly TestParty[];
  /** Stops the parties (last first), then the exchange. */
  close(): Promise<void>;
}

/**
 * Starts an exchange (sharing `pool` when `exchangePool`, as join-aggregate
 * and federated-aggregate jobs want) and the named parties on `pool`.
 */
export async function startNodes(pool: CryptoPool, names: readonly string[], o: { readonly jobTimeoutMs?: number; readonly exchangePool?: boolean } = {}): Promise<TestNodes> {
  const x = await startExchange({ ...(o.jobTimeoutMs !== undefined ? { jobTimeoutMs: o.jobTimeoutMs } : {}), ...(o.exchangePool ? { pool } : {}) });
  const parties: TestParty[] = [];
  for (const name of names) parties.push(await startParty(name, x.url, pool));
  return {
    x,
    parties,
    close: async () => {
      for (const p of [...parties].reverse()) await p.close().catch(() => undefined);
      await x.close();
    },
  };
}
