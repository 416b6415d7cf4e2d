/**
 * The console's API client: every call sends `Authorization: Bearer TOKEN`
 * (the token kept in this tab's sessionStorage); an error answer becomes an
 * ApiError carrying the server's code, message and (POST /v1/datasets/check)
 * the field it names. A 401 signs the tab out.
 */
const TOKEN_KEY = "umbra.console.token";

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
  window.dispatchEvent(new Event("umbra:token"));
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("umbra:token"));
}

/**
 * Moves a token given as `#token=…` in the address to sessionStorage and
 * removes it from the address bar (history.replaceState): the part after `#`
 * never leaves the browser, and now not its history either. A token that is
 * not a valid escape is not taken, and is removed all the same.
 */
export function takeTokenFromAddress(): void {
  const m = /^#token=([^&]+)(?:&(.*))?$/.exec(location.hash);
  if (m === null) return;
  let token: string | undefined;
  try {
    token = decodeURIComponent(m[1] as string);
  } catch {
    // Not a valid escape: no token is taken (the page asks for one), and it still leaves the address bar.
  }
  if (token !== undefined) setToken(token);
  history.replaceState(null, "", location.pathname + location.search + (m[2] !== undefined ? `#${m[2]}` : "#/"));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** The policy (or contract) rule a refusal names, as the server's error says it. */
    readonly rule?: string,
  ) {
    super(message);
  }
}

export interface FieldIssue {
  readonly field: string;
  readonly problem: string;
}

/**
 * The fields a refusal names, each with its problem: the `field` the server
 * gives (POST /v1/datasets/check), else every field its message lists — a
 * document refused by the node's checks says "invalid product: prices.perJob:
 * must be …; protocols[0]: …", a body "invalid request body: purpose: …".
 * Empty when it names none.
 */
export function fieldIssues(e: ApiError): FieldIssue[] {
  if (e.field !== undefined) return [{ field: e.field, problem: e.message }];
  const m = /^invalid [a-z -]+: ([\s\S]+)$/.exec(e.message);
  if (m === null) return [];
  const out: FieldIssue[] = [];
  for (const part of (m[1] as string).split("; ")) {
    const p = /^([A-Za-z_][\w]*(?:\[\d+\]|\.[\w"]+)*): ([\s\S]+)$/.exec(part);
    if (p === null) {
      // A problem that held "; " itself: it belongs to the field before.
      const last = out.pop();
      if (last === undefined) return [];
      out.push({ field: last.field, problem: `${last.problem}; ${part}` });
    } else out.push({ field: p[1] as string, problem: p[2] as string });
  }
  return out;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText;
  let field: string | undefined;
  let rule: string | undefined;
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string; field?: string; rule?: string }; code?: string; message?: string };
    const e = j.error ?? j;
    if (typeof e.code === "string") code = e.code;
    if (typeof e.message === "string") message = e.message;
    if (j.error && typeof j.error.field === "string") field = j.error.field;
    if (j.error && typeof j.error.rule === "string") rule = j.error.rule;
  } catch {
    /* not JSON */
  }
  if (res.status === 401) clearToken();
  return new ApiError(res.status, code, message, field, rule);
}

/** A fetch with the token; throws ApiError for an answer that is not 2xx, and for a network failure. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers, cache: "no-store" });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "UMBRA_UNREACHABLE", "the server did not answer");
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function api<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method, ...(signal !== undefined ? { signal } : {}) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const res = await request(path, init);
  return (await res.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>("GET", path, undefined, signal);
export const post = <T>(path: string, body: unknown = {}) => api<T>("POST", path, body);

/** Downloads a file that needs the token: fetched, then saved from a Blob (a plain link cannot send the header). */
export async function download(path: string, fallbackName: string): Promise<void> {
  const res = await request(path);
  const blob = await res.blob();
  const cd = res.headers.get("content-disposition") ?? "";
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  const name = m ? decodeURIComponent(m[1] as string) : fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
