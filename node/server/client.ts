/** A party's signed HTTP client to the exchange (Node's fetch). */
import type { NodeIdentity } from "../identity.js";
import { UmbraError } from "../../engine/errors.js";
import { signRequest } from "./auth.js";
import { LOG_HEAD_HEADER, LOG_KNOWN_HEADER } from "../log/watch.js";

/** An error answer from the exchange, with its code (and the policy rule when refused). */
export class ExchangeError extends UmbraError {
  readonly status: number;
  readonly rule: string | undefined;
  /** A 429's Retry-After, in ms, when it gave one. */
  readonly retryAfterMs: number | undefined;
  constructor(status: number, code: string, message: string, rule?: string, retryAfterMs?: number) {
    super(code.startsWith("UMBRA_") ? code : "UMBRA_EXCHANGE", message);
    this.status = status;
    this.rule = rule;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The exchange kept answering 429 (the recipient's mailbox, or the job's
 * share of the exchange's queues, stayed full) for longer than the client
 * waits to send one frame: the recipient is not taking its messages.
 */
export class RelayBusyError extends ExchangeError {
  constructor(waitedMs: number) {
    super(429, "UMBRA_RELAY_BUSY", `the exchange had no room for the message for ${Math.round(waitedMs / 1000)} s (the recipient is not taking its messages); the message was not sent`);
  }
}

/** Default longest time sendRaw keeps offering one frame to a full relay: 4 minutes, inside the envelope's 5-minute freshness window (the same envelope is sent again). */
export const DEFAULT_RELAY_MAX_WAIT_MS = 4 * 60 * 1000;

/** A Retry-After of whole seconds (0 to 60), in ms; undefined when absent or not of that form. */
function retryAfterOf(res: Response): number | undefined {
  const v = res.headers.get("retry-after");
  return v !== null && /^\d{1,2}$/.test(v.trim()) ? Math.min(60, Number(v.trim())) * 1000 : undefined;
}

export interface ExchangeClientOptions {
  /** How long sendRaw keeps sending a frame the exchange answers 429 before it gives up with RelayBusyError (default 4 minutes). */
  readonly relayMaxWaitMs?: number;
  /**
   * A party's watch on the exchange's log (node/log/watch.ts): every request
   * says the size held, and every answer's log head is checked before the
   * answer is used (an inconsistent one is refused with its error).
   */
  readonly logWatch?: { knownSize(): number | undefined; observe(header: string | null, o?: { readonly sent?: number | null; readonly required?: boolean }): void; assertConsistent(): void };
}

/** The `{ error: { code, message, rule? } }` body of a node's error answer, or the fallbacks when it has none. */
export async function errorOf(res: Response, fallbackCode: string, fallbackMessage: string): Promise<{ code: string; message: string; rule: string | undefined }> {
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string; rule?: string } };
    return { code: j.error?.code ?? fallbackCode, message: j.error?.message ?? fallbackMessage, rule: j.error?.rule };
  } catch {
    return { code: fallbackCode, message: fallbackMessage, rule: undefined };
  }
}

/** Whether fetch failed because the connection was closed or reset under the request (undici's socket errors). */
function connectionLost(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  const code = typeof cause?.code === "string" ? cause.code : "";
  return err instanceof TypeError && ["UND_ERR_SOCKET", "UND_ERR_CLOSED", "ECONNRESET", "EPIPE"].includes(code);
}

/** A request the exchange did not answer: a typed error (502, or 504 on the request's timeout) instead of fetch's TypeError. */
function unreachable(err: unknown): ExchangeError {
  if ((err as { name?: unknown } | null)?.name === "TimeoutError") return new ExchangeError(504, "UMBRA_EXCHANGE_TIMEOUT", "the exchange did not answer in time");
  if ((err as { cause?: { code?: unknown } } | null)?.cause?.code === "ECONNREFUSED") return new ConnectionRefusedError();
  return new ExchangeError(502, "UMBRA_EXCHANGE_UNREACHABLE", "the exchange could not be reached");
}

/** Nothing listens at the exchange's address (not started yet, or another port): the same code as any unreachable exchange. */
export class ConnectionRefusedError extends ExchangeError {
  constructor() {
    super(502, "UMBRA_EXCHANGE_UNREACHABLE", "the exchange could not be reached (nothing listens at its address)");
  }
}

/**
 * Whether an error is the exchange's passing unavailability — a 429 (no room
 * now), or a 5xx: unreachable, restarting, timed out — so that the same
 * read may be asked again. RelayBusyError is not: sendRaw waited it out
 * already.
 */
export function isTransient(err: unknown): boolean {
  return err instanceof ExchangeError && !(err instanceof RelayBusyError) && (err.status === 429 || err.status >= 500);
}

/** How long {@link untilAvailable} keeps asking by default: a minute (an exchange restarting after a crash is back well within it). */
export const DEFAULT_AVAILABLE_WITHIN_MS = 60_000;

/**
 * Runs `fn`, and runs it again while it fails with a transient error
 * ({@link isTransient}), waiting 250 ms and twice as long each time up to
 * 2 s (at least a 429's Retry-After), until `forMs` would pass; then the
 * last error is thrown. Any other error is thrown at once. For reads that
 * change nothing at the exchange (a GET sent twice does no harm).
 */
export async function untilAvailable<T>(fn: () => Promise<T>, forMs = DEFAULT_AVAILABLE_WITHIN_MS): Promise<T> {
  let waited = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err)) throw err;
      const delay = Math.max((err as ExchangeError).retryAfterMs ?? 0, Math.min(250 * 2 ** attempt, 2000));
      if (waited + delay > forMs) throw err;
      await new Promise((r) => setTimeout(r, delay));
      waited += delay;
    }
  }
}

/** The requests whose answers the exchange gives before it authenticates a party: they carry no log head. */
const UNSIGNED_ANSWERS: ReadonlySet<string> = new Set(["GET /v1/identity", "POST /v1/parties"]);

export class ExchangeClient {
  readonly url: string;
  readonly #id: NodeIdentity;

  readonly #relayMaxWaitMs: number;
  readonly #logWatch: ExchangeClientOptions["logWatch"];

  constructor(url: string, id: NodeIdentity, options: ExchangeClientOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    this.#id = id;
    this.#relayMaxWaitMs = options.relayMaxWaitMs ?? DEFAULT_RELAY_MAX_WAIT_MS;
    this.#logWatch = options.logWatch;
  }

  async #request(method: string, path: string, body?: unknown, raw?: Uint8Array, timeoutMs = 120_000, signal?: AbortSignal): Promise<Response> {
    // A party that found the exchange's log inconsistent sends it nothing more.
    this.#logWatch?.assertConsistent();
    const bytes = raw ?? (body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body)));
    // The size of the log this request says it holds: the answer must say it answers that (node/log/watch.ts).
    let sentKnown: number | null = null;
    const send = (): Promise<Response> => {
      // Signed afresh for every attempt: the exchange refuses a signature it has seen.
      const headers: Record<string, string> = { ...signRequest(this.#id, method, path, bytes) };
      const known = this.#logWatch?.knownSize();
      sentKnown = known ?? null;
      if (known !== undefined) headers[LOG_KNOWN_HEADER] = String(known);
      if (bytes.length > 0) headers["content-type"] = raw ? "application/octet-stream" : "application/json";
      return fetch(this.url + path, { method, headers, ...(bytes.length > 0 ? { body: bytes } : {}), signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs) });
    };
    let res: Response;
    try {
      res = await send();
    } catch (err) {
      if (signal?.aborted) throw err;
      // A pooled keep-alive connection the exchange closed while this process could not notice (its event loop
      // busy past the exchange's keepAliveTimeout) fails the request it carries. A GET changes nothing: sent once more,
      // on a new connection. Anything else, or a second failure, is the exchange's unavailability, typed.
      if (!(method === "GET" && connectionLost(err))) throw unreachable(err);
      try {
        res = await send();
      } catch (again) {
        if (signal?.aborted) throw again;
        throw unreachable(again);
      }
    }
    // The log head the answer carries, checked before anything of the answer is used.
    if (this.#logWatch !== undefined) {
      try {
        // Every successful answer to a signed request carries a head; only the two made before this party is known (its
        // exchange's identity, its registration) may have none.
        const required = res.ok && !UNSIGNED_ANSWERS.has(`${method} ${path}`);
        this.#logWatch.observe(res.headers.get(LOG_HEAD_HEADER), { sent: sentKnown, required });
      } catch (err) {
        await res.body?.cancel().catch(() => undefined);
        throw err;
      }
    }
    if (!res.ok) {
      const e = await errorOf(res, "UMBRA_EXCHANGE", `exchange answered ${res.status}`);
      throw new ExchangeError(res.status, e.code, e.message, e.rule, res.status === 429 ? retryAfterOf(res) : undefined);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.#request(method, path, body)).json()) as T;
  }

  async binary(method: string, path: string, raw?: Uint8Array, timeoutMs?: number, signal?: AbortSignal): Promise<Uint8Array> {
    return new Uint8Array(await (await this.#request(method, path, undefined, raw, timeoutMs, signal)).arrayBuffer());
  }

  /**
   * POSTs raw bytes (an envelope to the relay). A 429 (no room at the
   * exchange; it queued nothing) is waited out and the same bytes sent again
   * — never dropped: each wait at least the answer's Retry-After (1 s when
   * it gives none) and growing from 250 ms to 5 s — until the frame is taken,
   * another error comes, or the waits would pass the client's relayMaxWaitMs
   * (RelayBusyError, code UMBRA_RELAY_BUSY).
   */
  async sendRaw(path: string, raw: Uint8Array): Promise<void> {
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#request("POST", path, undefined, raw);
        return;
      } catch (err) {
        if (!(err instanceof ExchangeError) || err.status !== 429 || err instanceof RelayBusyError) throw err;
        const delay = Math.max(err.retryAfterMs ?? 1000, Math.min(250 * 2 ** attempt, 5000));
        if (waited + delay > this.#relayMaxWaitMs) throw new RelayBusyError(waited);
        await new Promise((r) => setTimeout(r, delay));
        waited += delay;
      }
    }
  }
}
