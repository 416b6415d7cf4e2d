/** A job as its parties see it over the exchange's API. */
import { NotFoundError } from "../../errors.js";
import type { JobRecord, Store } from "../../store.js";

/** The JSON schema of {@link jobView}, for route `response` schemas. */
export const jobViewSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    protocol: { type: "string" },
    buyer: { type: "string" },
    providers: { type: "array", items: { type: "string" } },
    state: { type: "string" },
    reason: { type: ["string", "null"] },
    progress: {},
    createdAt: { type: "number" },
    updatedAt: { type: "number" },
  },
} as const;

/**
 * A job as a party of it sees it. Progress is each party's phase and counts:
 * the buyer sees every party's (a provider's counts are its own set's, whose
 * size the catalog shows the buyer), a provider only its own — another
 * party's counts could tell it what it must not learn (how many matched,
 * another provider's rows).
 */
export function jobView(j: JobRecord, viewer?: string): Record<string, unknown> {
  let progress = j.progress;
  if (viewer !== undefined && viewer !== j.buyer) {
    const own = progress !== null && typeof progress === "object" && !Array.isArray(progress) ? (progress as Record<string, unknown>)[viewer] : undefined;
    progress = own === undefined ? null : ({ [viewer]: own } as never);
  }
  return { id: j.id, protocol: j.protocol, buyer: j.buyer, providers: j.providers, state: j.state, reason: j.reason, progress, createdAt: j.createdAt, updatedAt: j.updatedAt };
}

/** A job of which `party` is the buyer or a provider; any other job is answered as one that does not exist. */
export function jobOf(store: Store, id: string, party: string | undefined): JobRecord {
  const j = store.getJob(id);
  if (!j || party === undefined || (j.buyer !== party && !j.providers.includes(party))) throw new NotFoundError("no such job");
  return j;
}
