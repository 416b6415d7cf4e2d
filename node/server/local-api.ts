/**
 * The guard of a party agent's local API: it reads result rows, registers
 * datasets and changes their policies, so every request must show
 *
 *  - a Host header naming this machine (loopback names, or the names the
 *    agent was told to answer to): a web page that rebinds its own DNS name
 *    to 127.0.0.1 sends its own name and is refused, so a browser on this
 *    machine cannot be turned against the agent;
 *  - the agent's bearer token (`Authorization: Bearer TOKEN`), compared in
 *    constant time. The token lives in a secret file (mode 0600, beside the
 *    agent's database by default) that the CLI reads; anyone who can read
 *    that file acts as the party's owner.
 *
 * Nothing is answered before both checks pass — the OpenAPI document
 * included — except the web console's static pages and assets, which hold no
 * data and need the Host check alone (the page then asks for the token).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { UmbraError } from "../../engine/errors.js";
import { createSecretFile, readSecretFile } from "../secret-file.js";

export const LocalApiCode = {
  Unauthenticated: "UMBRA_UNAUTHENTICATED",
  ForbiddenHost: "UMBRA_FORBIDDEN_HOST",
} as const;

/** Host names that always mean this machine. */
export const LOOPBACK_HOSTS: readonly string[] = Object.freeze(["127.0.0.1", "localhost", "::1"]);

const TOKEN = /^[A-Za-z0-9_-]{32,128}$/;

/** A fresh API token: 32 random bytes, base64url (43 characters). */
export function generateApiToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Whether a listen address is a loopback one (127.0.0.0/8, ::1, localhost). */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || h === "::ffff:127.0.0.1";
}

/** Whether a listen address is a wildcard (every interface): it names no machine, so it is never an allowed Host. */
export function isWildcardAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "0.0.0.0" || h === "::" || h === "0:0:0:0:0:0:0:0";
}

/**
 * The token in a token file, created (mode 0600) with a fresh token when the
 * file does not exist. `what` names the file in errors (the party agent's API
 * token file, the exchange's admin token file).
 */
export function loadOrCreateTokenFile(path: string, what = "API token file"): { token: string; created: boolean } {
  const existing = readSecretFile(path, what);
  if (existing !== undefined) {
    const token = existing.trim();
    if (!TOKEN.test(token)) throw new UmbraError("UMBRA_INVALID_TOKEN", `the ${what} "${path}" does not hold a token (32 to 128 of [A-Za-z0-9_-]); delete it and restart the node to make a new one`);
    return { token, created: false };
  }
  const token = generateApiToken();
  createSecretFile(path, `${token}\n`, what);
  return { token, created: true };
}

/** The host name of a Host header (no port, no brackets, lower case), or undefined when malformed. */
export function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header.length === 0 || header.length > 255) return undefined;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.exec(header);
  if (!m) return undefined;
  return (m[1] as string).replace(/^\[|\]$/g, "").toLowerCase();
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

/** Throws unless `token` is one a token file may hold (32 to 128 of [A-Za-z0-9_-]). */
export function checkTokenFormat(token: string, what = "the API token"): void {
  if (!TOKEN.test(token)) throw new UmbraError("UMBRA_INVALID_TOKEN", `${what} must be 32 to 128 of [A-Za-z0-9_-]`);
}

/**
 * A check of `Authorization: Bearer TOKEN` against `token`: the digests are
 * compared, in constant time whatever the length of what was sent. Shared by
 * the party agent's local API and the exchange's admin API.
 */
export function bearerTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const want = digest(token);
  return (auth) => {
    const m = typeof auth === "string" ? /^Bearer ([A-Za-z0-9_-]{1,256})$/.exec(auth) : null;
    return m !== null && timingSafeEqual(digest(m[1] as string), want);
  };
}

/** Answers 401 UMBRA_UNAUTHENTICATED (with a WWW-Authenticate challenge for `realm`). */
export function refuseUnauthenticated(reply: FastifyReply, realm: string, message: string): FastifyReply {
  void reply.header("www-authenticate", `Bearer realm="${realm}"`);
  return refuse(reply, 401, LocalApiCode.Unauthenticated, message);
}

function refuse(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header("cache-control", "no-store").send({ error: { code, message } });
}

/**
 * Installs the guard on every route of `app` (an onRequest hook: it runs
 * before the body is read). `allowedHosts` adds names to the loopback ones.
 * `hostOnly` names the requests that need the Host check alone: the
 * console's static pages and assets (node/server/console-assets.ts), which
 * hold no data; every other route needs the token too.
 */
export function guardLocalApi(app: FastifyInstance, o: { readonly token: string; readonly allowedHosts?: readonly string[]; readonly hostOnly?: (req: FastifyRequest) => boolean }): void {
  checkTokenFormat(o.token);
  const hosts = new Set([...LOOPBACK_HOSTS, ...(o.allowedHosts ?? []).map((h) => h.replace(/^\[|\]$/g, "").toLowerCase()).filter((h) => !isWildcardAddress(h))]);
  const tokenMatches = bearerTokenCheck(o.token);
  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    const host = hostName(req.headers.host);
    if (host === undefined || !hosts.has(host)) {
      return refuse(reply, 403, LocalApiCode.ForbiddenHost, "the Host header does not name this agent (only its loopback names and the hosts it was started with are served)");
    }
    if (o.hostOnly?.(req) === true) return undefined;
    if (!tokenMatches(req.headers.authorization)) {
      return refuseUnauthenticated(reply, "umbra party agent", "the party agent's API needs its token: send Authorization: Bearer TOKEN, TOKEN from the agent's token file (umbra party start prints where it is)");
    }
    return undefined;
  });
}
