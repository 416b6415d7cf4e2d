/**
 * `umbra exchange start` and `umbra party start`: run a node in this process
 * until SIGINT / SIGTERM. Also the party agent's local HTTP API as the other
 * node commands (dataset, job) call it.
 */
import { UmbraError } from "../../engine/errors.js";
import { isNodeName } from "../identity.js";
import { DEFAULT_EXCHANGE_URL, DEFAULT_PARTY_PORT, DEFAULT_EXCHANGE_PORT, startExchangeNode, startPartyNode } from "../server/start.js";
import { errorOf } from "../server/client.js";
import { parseOptions, processIO, UsageError, type CommandIO, type Options, type OptionSpec } from "./args.js";

export const DEFAULT_PARTY_URL = `http://127.0.0.1:${DEFAULT_PARTY_PORT}`;

export const EXCHANGE_USAGE = `  exchange start [--port P] [--host H] [--db FILE]
                 run the exchange (default port ${DEFAULT_EXCHANGE_PORT}, db .umbra/exchange.db) until
                 SIGINT / SIGTERM; logs (pino JSON) on stderr
`;

export const PARTY_USAGE = `  party start --name NAME [--exchange URL] [--port P] [--host H] [--db FILE] [--data DIR]
                 run a party agent (default exchange ${DEFAULT_EXCHANGE_URL}, port ${DEFAULT_PARTY_PORT},
                 db .umbra/NAME.db, data folder .) until SIGINT / SIGTERM
`;

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
  if (sub !== "start") throw new UsageError(`unknown exchange command "${sub}"`, usage);
  const o = parseOptions(rest, { "--port": "string", "--host": "string", "--db": "string" }, usage);
  if (o === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const port = portOption(o, usage);
  const host = o.get("--host");
  const db = o.get("--db");
  const node = await startExchangeNode({ ...(port !== undefined ? { port } : {}), ...(host ? { host } : {}), ...(db ? { db } : {}), say: io.out });
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
  if (sub !== "start") throw new UsageError(`unknown party command "${sub}"`, usage);
  const spec: OptionSpec = { "--name": "string", "--exchange": "string", "--port": "string", "--host": "string", "--db": "string", "--data": "string" };
  const o = parseOptions(rest, spec, usage);
  if (o === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const name = o.require("--name");
  if (!isNodeName(name) || name === "exchange") throw new UsageError("--name must be 1 to 64 of [A-Za-z0-9._-] (and not \"exchange\")", usage);
  const exchange = urlOption(o, "--exchange", DEFAULT_EXCHANGE_URL, usage);
  const port = portOption(o, usage);
  const host = o.get("--host");
  const db = o.get("--db");
  const data = o.get("--data");
  const node = await startPartyNode({ name, exchange, ...(port !== undefined ? { port } : {}), ...(host ? { host } : {}), ...(db ? { db } : {}), ...(data ? { data } : {}), say: io.out });
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

/** Calls the party agent's local API; JSON in, the raw response out. */
export async function partyFetch(base: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(base + path, {
      method,
      ...(body !== undefined ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw new UmbraError("UMBRA_UNREACHABLE", `no party agent answers at ${base} (start one with "umbra party start", or give --party URL)`);
  }
  if (!res.ok) {
    const e = await errorOf(res, "UMBRA_PARTY", `the party agent answered ${res.status}`);
    throw new PartyApiError(res.status, e.code, e.message, e.rule);
  }
  return res;
}

export async function partyJson<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  return (await (await partyFetch(base, method, path, body)).json()) as T;
}
