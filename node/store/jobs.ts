/**
 * Jobs along the job graph, their steps (a message's size and digest, never
 * its bytes), the persisted protocol states and the results: their SQL and
 * row mapping, called by the open store (`node/store/sqlite.ts`).
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { blob, bytesOf, canonicalJson, checkBytes, checkCount, checkDigest, checkId, checkKey, checkName, checkText, checkToken, jsonText, parseJson } from "./checks.js";
import type { StoreContext } from "./context.js";
import { AlreadyExistsError, InvalidTransitionError, NotFoundError } from "./errors.js";
import {
  JOB_TRANSITIONS,
  JobState,
  StepDirection,
  type JobFilter,
  type JobInput,
  type JobRecord,
  type ResultInput,
  type ResultRecord,
  type StepInput,
  type StepRecord,
} from "./types.js";

interface JobRow {
  id: string;
  protocol: string;
  buyer: string;
  providers: string;
  params: string;
  state: string;
  reason: string | null;
  progress: string | null;
  created_at: number;
  updated_at: number;
}
interface StepRow {
  job_id: string;
  seq: number;
  step: string;
  direction: string;
  size: number;
  digest: string;
  at: number;
}
interface ResultRow {
  job_id: string;
  digest: string;
  salt: Buffer | null;
  bytes: Buffer | null;
  path: string | null;
  size: number;
  created_at: number;
  released_at: number | null;
}

const jobFromRow = (r: JobRow): JobRecord => ({
  id: r.id,
  protocol: r.protocol,
  buyer: r.buyer,
  providers: parseJson(r.providers) as string[],
  params: parseJson(r.params),
  state: r.state as JobState,
  reason: r.reason,
  progress: r.progress === null ? null : parseJson(r.progress),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const stepFromRow = (r: StepRow): StepRecord => ({
  jobId: r.job_id,
  seq: r.seq,
  step: r.step,
  direction: r.direction as StepDirection,
  size: r.size,
  digest: r.digest,
  at: r.at,
});
const resultFromRow = (r: ResultRow): ResultRecord => ({
  jobId: r.job_id,
  digest: r.digest,
  salt: r.salt === null || r.salt === undefined ? null : bytesOf(r.salt),
  bytes: r.bytes === null ? null : bytesOf(r.bytes),
  path: r.path,
  size: r.size,
  createdAt: r.created_at,
  releasedAt: r.released_at,
});

const STATES = new Set<string>(Object.values(JobState));
const DIRECTIONS = new Set<string>(Object.values(StepDirection));

function checkState(what: string, v: unknown): JobState {
  if (typeof v !== "string" || !STATES.has(v)) throw new InvalidArgumentError(`${what} is not a job state`);
  return v as JobState;
}

export function createJob(ctx: StoreContext, job: JobInput): JobRecord {
  const id = checkId("job id", job.id);
  const protocol = checkToken("protocol", job.protocol);
  const buyer = checkName("buyer", job.buyer);
  if (!Array.isArray(job.providers) || job.providers.length === 0 || job.providers.length > 256) {
    throw new InvalidArgumentError("providers must be a list of 1 to 256 party names");
  }
  const providers = job.providers.map((p) => checkName("provider", p));
  const params = jsonText("job params", job.params);
  const now = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM jobs WHERE id = ?").get(id) !== undefined) throw new AlreadyExistsError("a job with this id");
    ctx.sql(
      `INSERT INTO jobs (id, protocol, buyer, providers, params, state, reason, progress, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'submitted', NULL, NULL, ?, ?)`,
    ).run(id, protocol, buyer, canonicalJson(providers), params, now, now);
    return getJob(ctx, id) as JobRecord;
  });
}

export function getJob(ctx: StoreContext, id: string): JobRecord | undefined {
  const row = ctx.sql("SELECT * FROM jobs WHERE id = ?").get(id) as JobRow | undefined;
  return row === undefined ? undefined : jobFromRow(row);
}

/** How many jobs are in each state (states with none are absent): one query, for health pages. */
export function countJobsByState(ctx: StoreContext): Record<string, number> {
  const rows = ctx.sql("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").all() as { state: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

export function listJobs(ctx: StoreContext, filter: JobFilter = {}): JobRecord[] {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (filter.state !== undefined) {
    const states = (typeof filter.state === "string" ? [filter.state] : [...filter.state]).map((s) => checkState("job state", s));
    if (states.length === 0) return [];
    where.push(`state IN (${states.map(() => "?").join(", ")})`);
    args.push(...states);
  }
  if (filter.buyer !== undefined) {
    where.push("buyer = ?");
    args.push(filter.buyer);
  }
  let sql = `SELECT * FROM jobs${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY ${filter.newestFirst === true ? "created_at DESC, id DESC" : "created_at, id"}`;
  if (filter.limit !== undefined) {
    sql += " LIMIT ?";
    args.push(checkCount("limit", filter.limit));
  }
  return (ctx.sql(sql).all(...args) as JobRow[]).map(jobFromRow);
}

export function transitionJob(ctx: StoreContext, id: string, from: readonly JobState[], to: JobState, reason?: string | null, progress?: unknown): JobRecord {
  if (!Array.isArray(from) || from.length === 0) throw new InvalidArgumentError("from must list at least one job state");
  from.forEach((s) => checkState("from state", s));
  checkState("to state", to);
  const reasonText = reason == null ? null : checkText("reason", reason);
  const progressText = progress === undefined ? undefined : progress === null ? null : jsonText("job progress", progress);
  const now = ctx.time();
  return ctx.transaction(() => {
    const row = ctx.sql("SELECT state FROM jobs WHERE id = ?").get(id) as { state: JobState } | undefined;
    if (row === undefined) throw new NotFoundError("job");
    const current = row.state;
    if (!from.includes(current)) {
      throw new InvalidTransitionError(current, to, `the job is ${current}, not ${from.join(" or ")}`);
    }
    if (!JOB_TRANSITIONS[current].includes(to)) throw new InvalidTransitionError(current, to);
    const sql =
      progressText === undefined
        ? "UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state = ?"
        : "UPDATE jobs SET state = ?, reason = ?, updated_at = ?, progress = ? WHERE id = ? AND state = ?";
    const args = progressText === undefined ? [to, reasonText, now, id, current] : [to, reasonText, now, progressText, id, current];
    ctx.sql(sql).run(...args);
    return getJob(ctx, id) as JobRecord;
  });
}

export function setJobProgress(ctx: StoreContext, id: string, progress: unknown): JobRecord {
  const text = progress === null ? null : jsonText("job progress", progress);
  const now = ctx.time();
  return ctx.transaction(() => {
    const row = ctx.sql("SELECT state FROM jobs WHERE id = ?").get(id) as { state: JobState } | undefined;
    if (row === undefined) throw new NotFoundError("job");
    if (JOB_TRANSITIONS[row.state].length === 0) throw new InvalidTransitionError(row.state, row.state, `the job is ${row.state}: its progress is final`);
    ctx.sql("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?").run(text, now, id);
    return getJob(ctx, id) as JobRecord;
  });
}

export function recordStep(ctx: StoreContext, jobId: string, step: StepInput): StepRecord {
  const name = checkToken("step", step.step);
  if (typeof step.direction !== "string" || !DIRECTIONS.has(step.direction)) throw new InvalidArgumentError("step direction must be in or out");
  const size = checkCount("step size", step.size);
  const digest = checkDigest("step digest", step.digest);
  const at = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
    const { s } = ctx.sql("SELECT coalesce(max(seq), 0) AS s FROM steps WHERE job_id = ?").get(jobId) as { s: number };
    ctx.sql("INSERT INTO steps (job_id, seq, step, direction, size, digest, at) VALUES (?, ?, ?, ?, ?, ?, ?)").run(jobId, s + 1, name, step.direction, size, digest, at);
    return { jobId, seq: s + 1, step: name, direction: step.direction, size, digest, at };
  });
}

export function listSteps(ctx: StoreContext, jobId: string): StepRecord[] {
  return (ctx.sql("SELECT * FROM steps WHERE job_id = ? ORDER BY seq").all(jobId) as StepRow[]).map(stepFromRow);
}

export function saveState(ctx: StoreContext, jobId: string, role: string, state: Uint8Array): void {
  checkToken("role", role);
  checkBytes("protocol state", state, 1, 1 << 30);
  const now = ctx.time();
  ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
    ctx.sql(
      "INSERT INTO protocol_state (job_id, role, state, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (job_id, role) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    ).run(jobId, role, blob(state), now);
  });
}

export function loadState(ctx: StoreContext, jobId: string, role: string): Uint8Array | undefined {
  const row = ctx.sql("SELECT state FROM protocol_state WHERE job_id = ? AND role = ?").get(jobId, role) as { state: Buffer } | undefined;
  return row === undefined ? undefined : bytesOf(row.state);
}

export function deleteState(ctx: StoreContext, jobId: string, role?: string): number {
  const info =
    role === undefined
      ? ctx.sql("DELETE FROM protocol_state WHERE job_id = ?").run(jobId)
      : ctx.sql("DELETE FROM protocol_state WHERE job_id = ? AND role = ?").run(jobId, role);
  return info.changes;
}

export function putResult(ctx: StoreContext, jobId: string, result: ResultInput): ResultRecord {
  const digest = checkDigest("result digest", result.digest);
  let bytes: Uint8Array | null = null;
  let path: string | null = null;
  let size: number;
  if (result.bytes !== undefined) {
    if (result.path !== undefined) throw new InvalidArgumentError("a result has bytes or a path, not both");
    bytes = checkBytes("result bytes", result.bytes, 0, 1 << 30);
    size = bytes.length;
  } else {
    path = checkText("result path", result.path, 4096);
    size = checkCount("result size", result.size);
  }
  const salt = result.salt === undefined ? null : checkKey("result salt", result.salt, 32);
  const now = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM jobs WHERE id = ?").get(jobId) === undefined) throw new NotFoundError("job");
    if (ctx.sql("SELECT 1 FROM results WHERE job_id = ?").get(jobId) !== undefined) throw new AlreadyExistsError("a result for this job");
    ctx.sql("INSERT INTO results (job_id, digest, salt, bytes, path, size, created_at, released_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)").run(
      jobId,
      digest,
      salt === null ? null : blob(salt),
      bytes === null ? null : blob(bytes),
      path,
      size,
      now,
    );
    return getResult(ctx, jobId) as ResultRecord;
  });
}

export function getResult(ctx: StoreContext, jobId: string): ResultRecord | undefined {
  const row = ctx.sql("SELECT * FROM results WHERE job_id = ?").get(jobId) as ResultRow | undefined;
  return row === undefined ? undefined : resultFromRow(row);
}

export function releaseResult(ctx: StoreContext, jobId: string): ResultRecord {
  const now = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM results WHERE job_id = ?").get(jobId) === undefined) throw new NotFoundError("result");
    ctx.sql("UPDATE results SET released_at = ? WHERE job_id = ? AND released_at IS NULL").run(now, jobId);
    return getResult(ctx, jobId) as ResultRecord;
  });
}
