/**
 * Where a cluster keeps things in Redis: the BullMQ queue of chunk tasks, and
 * per call (`run`, random) each chunk's sealed input and result, the list on
 * which workers report finished chunks, and a cancel flag. Everything but the
 * queue has a TTL, so an abandoned call leaves nothing behind for long.
 */
export const DEFAULT_QUEUE = "umbra-chunks";
/** BullMQ's key prefix for the queue. */
export const QUEUE_PREFIX = "umbra";

export const inputKey = (run: string, index: number): string => `umbra:chunk:${run}:${index}:in`;
export const resultKey = (run: string, index: number): string => `umbra:chunk:${run}:${index}:out`;
export const doneKey = (run: string): string => `umbra:chunk:${run}:done`;
export const cancelKey = (run: string): string => `umbra:chunk:${run}:cancel`;

/** A chunk task's BullMQ data: which call and which chunk (the bytes are at inputKey). */
export interface ChunkJobData {
  readonly run: string;
  readonly index: number;
  /** Seconds the result is kept (the call's TTL). */
  readonly ttl: number;
}

/** What a worker pushes on doneKey for a chunk: ok, or the typed error the chunk raised (no data in it). */
export type ChunkReport = { readonly i: number; readonly ok: true } | { readonly i: number; readonly ok: false; readonly error: { readonly code: string; readonly name: string; readonly message: string; readonly index?: number } };

const RUN = /^[0-9a-f]{32}$/;

export function isRun(s: unknown): s is string {
  return typeof s === "string" && RUN.test(s);
}

/** A job's data, checked: a worker never acts on data out of shape. */
export function checkJobData(d: unknown): ChunkJobData | undefined {
  if (typeof d !== "object" || d === null) return undefined;
  const { run, index, ttl } = d as Record<string, unknown>;
  if (!isRun(run) || !Number.isSafeInteger(index) || (index as number) < 0 || !Number.isSafeInteger(ttl) || (ttl as number) < 1 || (ttl as number) > 86_400) return undefined;
  return { run, index: index as number, ttl: ttl as number };
}

/** A report from the done list, checked (at most 4 KiB); undefined when out of shape. */
export function parseReport(raw: string): ChunkReport | undefined {
  if (raw.length > 4096) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!Number.isSafeInteger(r.i) || (r.i as number) < 0) return undefined;
  if (r.ok === true) return { i: r.i as number, ok: true };
  const e = r.error as Record<string, unknown> | undefined;
  if (r.ok !== false || typeof e !== "object" || e === null || typeof e.code !== "string" || typeof e.name !== "string" || typeof e.message !== "string") return undefined;
  const index = Number.isSafeInteger(e.index) ? { index: e.index as number } : {};
  return { i: r.i as number, ok: false, error: { code: e.code, name: e.name, message: e.message, ...index } };
}
