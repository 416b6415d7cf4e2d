/**
 * The party agent's GET /v1/jobs: the jobs this party takes part in (as
 * buyer or provider), newest first, as its own store recorded them — so a
 * lost job id is found again. Each with a one-line summary: its role, the
 * datasets it names, and its result's counts or the reason it ended (never a
 * key or a value). `umbra job list` prints it.
 */
import type { FastifyInstance } from "fastify";
import { Type, type Static } from "typebox";
import { jobDatasets, type JobRequest } from "../job-request.js";
import type { Store } from "../store.js";
import { JobState } from "../store/types.js";

const STATES = Object.values(JobState);

/** The query: a state to keep, and how many jobs at most (default 100). */
export const JobListQuerySchema = Type.Object(
  {
    state: Type.Optional(Type.Unsafe<JobState>({ type: "string", enum: [...STATES], description: `one of ${STATES.join(", ")}` })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: "the most jobs listed (default 100)" })),
  },
  { additionalProperties: false },
);

const JobListItemSchema = Type.Object(
  {
    id: Type.String(),
    protocol: Type.String(),
    role: Type.Unsafe<"buyer" | "provider">({ type: "string", enum: ["buyer", "provider"] }),
    state: Type.String(),
    createdAt: Type.Integer(),
    updatedAt: Type.Integer(),
    summary: Type.String(),
  },
  { additionalProperties: false },
);
export type JobListItem = Static<typeof JobListItemSchema>;
export const JobListSchema = Type.Object({ jobs: Type.Array(JobListItemSchema) }, { additionalProperties: false });

/** A job's counts ("rows 12", "count 990") or why it ended. */
function outcome(state: string, reason: string | null, progress: unknown): string {
  if (reason !== null) return `${state}: ${reason}`;
  if (state === "succeeded" && progress !== null && typeof progress === "object") {
    const counts = Object.entries(progress as Record<string, unknown>).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${String(v)}`);
    if (counts.length > 0) return counts.join(", ");
  }
  return state;
}

export function registerJobList(app: FastifyInstance, store: Store, me: string): void {
  app.get("/v1/jobs", { schema: { querystring: JobListQuerySchema, response: { 200: JobListSchema } } }, async (req) => {
    const q = req.query as Static<typeof JobListQuerySchema>;
    const all = store.listJobs(q.state !== undefined ? { state: q.state } : {});
    const newest = all.reverse().slice(0, q.limit ?? 100);
    return {
      jobs: newest.map((j) => {
        const request = (j.params as { request?: JobRequest } | null)?.request;
        const role = j.buyer === me ? "buyer" : "provider";
        // A provider's list names its own datasets only: not its co-providers' (a multi-provider job) nor the buyer's file.
        const datasets = request ? jobDatasets(request).filter((d) => role === "buyer" || store.getDataset(d) !== undefined).join(", ") : "";
        const input = role === "buyer" && request?.buyerDataset !== undefined ? `${request.buyerDataset} with ` : "";
        const summary = `${role}: ${input}${datasets || "(no dataset)"}; ${outcome(j.state, j.reason, j.progress)}`;
        return { id: j.id, protocol: j.protocol, role, state: j.state, createdAt: j.createdAt, updatedAt: j.updatedAt, summary };
      }),
    };
  });
}
