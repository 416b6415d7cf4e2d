/** A party's signed HTTP client to the exchange (Node's fetch). */
import type { NodeIdentity } from "../identity.js";
import { UmbraError } from "../../engine/errors.js";
import { signRequest } from "./auth.js";

/** An error answer from the exchange, with its code (and the policy rule when refused). */
export class ExchangeError extends UmbraError {
  readonly status: number;
  readonly rule: string | undefined;
  constructor(status: number, code: string, message: string, rule?: string) {
    super(code.startsWith("UMBRA_") ? code : "UMBRA_EXCHANGE", message);
    this.status = status;
    this.rule = rule;
  }
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

export class ExchangeClient {
  readonly url: string;
  readonly #id: NodeIdentity;

  constructor(url: string, id: NodeIdentity) {
    this.url = url.replace(/\/+$/, "");
    this.#id = id;
  }

  async #request(method: string, path: string, body?: unknown, raw?: Uint8Array, timeoutMs = 120_000, signal?: AbortSignal): Promise<Response> {
    const bytes = raw ?? (body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body)));
    const headers: Record<string, string> = { ...signRequest(this.#id, method, path, bytes) };
    if (bytes.length > 0) headers["content-type"] = raw ? "application/octet-stream" : "application/json";
    const res = await fetch(this.url + path, { method, headers, ...(bytes.length > 0 ? { body: bytes } : {}), signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      const e = await errorOf(res, "UMBRA_EXCHANGE", `exchange answered ${res.status}`);
      throw new ExchangeError(res.status, e.code, e.message, e.rule);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.#request(method, path, body)).json()) as T;
  }

  async binary(method: string, path: string, raw?: Uint8Array, timeoutMs?: number, signal?: AbortSignal): Promise<Uint8Array> {
    return new Uint8Array(await (await this.#request(method, path, undefined, raw, timeoutMs, signal)).arrayBuffer());
  }

  async sendRaw(path: string, raw: Uint8Array): Promise<void> {
    await this.#request("POST", path, undefined, raw);
  }
}
