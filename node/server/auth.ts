/**
 * Signed requests between nodes. A party signs every request it sends the
 * exchange: Ed25519 over
 *
 *   "umbra.v1.request\n" METHOD "\n" PATH?QUERY "\n" TIMESTAMP_MS "\n" hex(SHA-256(body))
 *
 * carried in the headers x-umbra-party, x-umbra-time and x-umbra-signature.
 * The exchange checks the party is registered, the time is within the skew
 * window, the signature, and that the signature was not seen before (replay).
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../../engine/errors.js";
import { ed25519Sign, ed25519Verify, type NodeIdentity } from "../identity.js";
import { DEFAULT_MAX_SKEW_MS } from "../envelope.js";
import { BadSignatureError, ReplayError, StaleMessageError, UnknownSenderError } from "../errors.js";
import type { Store } from "../store.js";

export const AUTH_HEADERS = { party: "x-umbra-party", time: "x-umbra-time", signature: "x-umbra-signature" } as const;
export const REQUEST_SKEW_MS = 5 * 60 * 1000;

/**
 * How long a remembered nonce is kept past its timestamp: the wider of the
 * request skew window and the envelopes' (node/envelope.ts), plus a minute
 * for a clock that steps back. A nonce older than that can never be
 * replayed: its timestamp alone is refused (UMBRA_STALE_MESSAGE). Requests
 * and envelopes share the store's nonce table, so one retention covers both;
 * an opener's maxSkewMs must not exceed the skew window it was derived from.
 */
export const NONCE_RETENTION_MS = Math.max(REQUEST_SKEW_MS, DEFAULT_MAX_SKEW_MS) + 60_000;

export interface NoncePruning {
  /** Prunes now; returns how many nonces were forgotten. */
  prune(): number;
  stop(): void;
}

/**
 * Forgets nonces older than {@link NONCE_RETENTION_MS} every `everyMs`
 * (default a minute), and once at once; for the exchange and the party
 * agent alike. A retention shorter than NONCE_RETENTION_MS is refused (it
 * would let a replay inside the skew window through). The timer does not
 * keep the process alive; a failed prune is reported to `onError` and
 * retried at the next tick.
 */
export function scheduleNoncePruning(
  store: Pick<Store, "pruneNonces">,
  o: { readonly now?: () => number; readonly everyMs?: number; readonly retentionMs?: number; readonly onError?: (err: unknown) => void } = {},
): NoncePruning {
  const retention = o.retentionMs ?? NONCE_RETENTION_MS;
  if (!Number.isSafeInteger(retention) || retention < NONCE_RETENTION_MS) throw new InvalidArgumentError("nonce retention must be at least the skew window");
  const every = o.everyMs ?? 60_000;
  if (!Number.isSafeInteger(every) || every <= 0) throw new InvalidArgumentError("the nonce pruning interval must be a positive whole number of ms");
  const now = o.now ?? Date.now;
  const prune = (): number => store.pruneNonces(retention, Math.floor(now()));
  const tick = () => {
    try {
      prune();
    } catch (err) {
      o.onError?.(err);
    }
  };
  tick();
  const timer = setInterval(tick, every);
  timer.unref();
  return { prune, stop: () => clearInterval(timer) };
}

function signedBytes(method: string, path: string, time: number, body: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(body).digest("hex");
  return new TextEncoder().encode(`umbra.v1.request\n${method.toUpperCase()}\n${path}\n${time}\n${digest}`);
}

/** The headers that authenticate a request from `id`. */
export function signRequest(id: NodeIdentity, method: string, path: string, body: Uint8Array, now = Date.now()): Record<string, string> {
  const time = Math.floor(now);
  const sig = ed25519Sign(id.signing.secretKey, signedBytes(method, path, time, body));
  return { [AUTH_HEADERS.party]: id.name, [AUTH_HEADERS.time]: String(time), [AUTH_HEADERS.signature]: Buffer.from(sig).toString("hex") };
}

export interface VerifyRequestContext {
  lookup(name: string): Uint8Array | undefined;
  /** Remembers a signature; returns false when it was seen already. */
  remember(name: string, nonce: Uint8Array, time: number): boolean;
  readonly now?: () => number;
}

/** Checks a request's signature headers; returns the authenticated party name. */
export function verifyRequest(
  headers: Record<string, string | string[] | undefined>,
  method: string,
  path: string,
  body: Uint8Array,
  ctx: VerifyRequestContext,
): string {
  const one = (h: string): string | undefined => {
    const v = headers[h];
    return Array.isArray(v) ? undefined : v;
  };
  const name = one(AUTH_HEADERS.party);
  const timeText = one(AUTH_HEADERS.time);
  const sigHex = one(AUTH_HEADERS.signature);
  if (!name || !timeText || !sigHex || !/^\d{1,16}$/.test(timeText) || !/^[0-9a-f]{128}$/.test(sigHex)) throw new BadSignatureError();
  const key = ctx.lookup(name);
  if (!key) throw new UnknownSenderError();
  const time = Number(timeText);
  const now = (ctx.now ?? Date.now)();
  if (Math.abs(now - time) > REQUEST_SKEW_MS) throw new StaleMessageError(now > time ? "old" : "future");
  const sig = Uint8Array.from(Buffer.from(sigHex, "hex"));
  if (!ed25519Verify(key, signedBytes(method, path, time, body), sig)) throw new BadSignatureError();
  if (!ctx.remember(name, sig.subarray(0, 32), time)) throw new ReplayError();
  return name;
}
