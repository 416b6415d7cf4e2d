/**
 * The party agent's routes the web console uses beyond the CLI's
 * (docs/console.md), all behind the local API's guard (Host and token):
 *
 *  - GET /v1/files: the data files in the data folder (names, sizes, times;
 *    never a row);
 *  - GET /v1/datasets/mine: this party's own registered datasets, from its
 *    store, with their policies, certificates and buyers' budgets;
 *  - POST /v1/datasets/check: registration's own steps (node/server/party-data.ts)
 *    up to the point it would call the exchange: registers nothing, changes
 *    nothing; a problem is a 400 naming the `file` or the policy field;
 *  - GET /v1/jobs/:id/stream: the job's view (as GET /v1/jobs/:id) as
 *    server-sent events, on every change, until it is final;
 *  - the result as a file and its preview (node/server/party-results.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { UmbraError } from "../../engine/errors.js";
import { BusyError } from "../errors.js";
import type { NodeIdentity } from "../identity.js";
import { InvalidDocumentError } from "../policy.js";
import { LocalDatasetCheckSchema } from "../schemas/routes.js";
import type { Store } from "../store.js";
import { JobState } from "../store/types.js";
import { ExchangeError } from "./client.js";
import type { DataFolder, PrepareStage } from "./party-data.js";
import { registerResultRoutes } from "./party-results.js";
import { documentBodyValidator, strictQueryValidator } from "./validation.js";

/** How often a stream looks at its job, and how many streams may be open at once. */
export const STREAM_POLL_MS = 500;
export const MAX_STREAMS = 16;

const FINAL: readonly string[] = [JobState.Succeeded, JobState.Failed, JobState.Refused, JobState.Cancelled];
const NoQuery = Type.Object({}, { additionalProperties: false });
const JobParams = Type.Object({ id: Type.String({ pattern: "^[A-Za-z0-9._:-]{1,128}$" }) });

export interface PartyConsoleDeps {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly data: DataFolder;
  /** A job as this party sees it (GET /v1/jobs/:id): throws the exchange's refusal for a job it is no party of. */
  readonly jobView: (id: string) => Promise<Record<string, unknown>>;
}

/** The check's answer to a problem: 400, its code and message, and the field that is wrong (`file`, or `policy.…`). */
function refuseCheck(reply: FastifyReply, err: UmbraError, field: string): FastifyReply {
  return reply.code(400).header("cache-control", "no-store").send({ error: { code: err.code, message: err.message, field } });
}

/** A policy problem's field, always under `policy` (the document's own checks name some fields without it). */
const policyField = (f: string): string => (f === "policy" || f.startsWith("policy.") || f.startsWith("policy[") ? f : `policy.${f}`);

/** Registers the routes; `close()` ends every open stream (the agent stops). */
export async function partyConsoleRoutes(app: FastifyInstance, d: PartyConsoleDeps): Promise<{ openStreams(): number; close(): void }> {
  const { store, identity, data } = d;

  app.get("/v1/files", { schema: { querystring: NoQuery }, validatorCompiler: strictQueryValidator }, async (_req, reply) => reply.header("cache-control", "no-store").send({ files: data.list() }));

  app.get("/v1/datasets/mine", { schema: { querystring: NoQuery }, validatorCompiler: strictQueryValidator }, async () => ({
    datasets: store.listDatasets({ owner: identity.name }).map((ds) => {
      const p = store.latestPolicy(ds.id);
      return {
        id: ds.id,
        name: ds.name,
        schema: (ds.schema as { name: string; type: string }[]).map((f) => ({ name: f.name, type: f.type })),
        rowCount: ds.rowCount,
        contentHash: ds.contentHash,
        policyVersion: p?.version ?? null,
        policy: p?.policy ?? null,
        certificateSeq: store.log.certificate(ds.id)?.seq ?? null,
        budgets: store.listBudgets(ds.id).map((b) => ({ buyer: b.buyer, remaining: b.remaining })),
      };
    }),
  }));

  app.post(
    "/v1/datasets/check",
    {
      bodyLimit: 64 * 1024,
      schema: { body: LocalDatasetCheckSchema },
      validatorCompiler: documentBodyValidator,
      // A body that fails its schema is answered like any other problem of the check.
      errorHandler: (err, _req, reply) => {
        if (err instanceof InvalidDocumentError) return refuseCheck(reply, err, policyField(err.field));
        if (err instanceof UmbraError) return refuseCheck(reply, err, "body");
        const status = (err as { statusCode?: number }).statusCode ?? 500;
        if (status >= 500) throw err;
        return reply.code(status).send({ error: { code: "UMBRA_BAD_REQUEST", message: (err as Error).message, field: "body" } });
      },
    },
    async (req, reply) => {
      const body = req.body as { file: string; policy: unknown };
      const stage: { now: PrepareStage } = { now: "file" };
      try {
        const at = data.locate(body.file);
        const { descriptor } = await data.prepare(at, body.policy, (s) => (stage.now = s));
        return reply.header("cache-control", "no-store").send({ ok: true, schema: descriptor.schema.map((f) => ({ name: f.name, type: f.type })), rowCount: descriptor.rowCount });
      } catch (err) {
        if (!(err instanceof UmbraError)) throw err;
        return refuseCheck(reply, err, stage.now === "policy" && err instanceof InvalidDocumentError ? policyField(err.field) : "file");
      }
    },
  );

  // ------------------------------------------------------------ job streams
  const streams = new Set<() => void>();
  let closing = false;

  app.get("/v1/jobs/:id/stream", { schema: { params: JobParams, querystring: NoQuery }, validatorCompiler: strictQueryValidator }, async (req: FastifyRequest, reply: FastifyReply) => {
    if (closing || streams.size >= MAX_STREAMS) throw new BusyError("job streams");
    const id = (req.params as { id: string }).id;
    const stop = new AbortController();
    const end = () => stop.abort();
    // The slot is held from now: a burst of requests cannot open more than MAX_STREAMS.
    streams.add(end);
    const res = reply.raw;
    // Heard from now: a client gone while the first view is fetched frees its slot too (a listener added later never hears it).
    res.on("close", end);
    try {
      // The first view before the stream starts: a job this party is no party of is the exchange's 404, as JSON.
      let view = await d.jobView(id);
      reply.hijack();
      if (stop.signal.aborted) {
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff", connection: "keep-alive" });
      const send = (v: Record<string, unknown>) => res.write(`event: job\ndata: ${JSON.stringify(v)}\n\n`);
      send(view);
      let last = JSON.stringify(view);
      while (!stop.signal.aborted && !FINAL.includes(String(view["state"]))) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, STREAM_POLL_MS);
          stop.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
        });
        if (stop.signal.aborted) break;
        try {
          view = await d.jobView(id);
        } catch (err) {
          // The exchange not answering now is asked again at the next tick; a refusal ends the stream.
          if (err instanceof ExchangeError && err.status < 500) {
            res.write(`event: error\ndata: ${JSON.stringify({ code: err.code })}\n\n`);
            break;
          }
          continue;
        }
        const now = JSON.stringify(view);
        if (now !== last) {
          send(view);
          last = now;
        }
      }
      res.end();
    } finally {
      streams.delete(end);
    }
  });

  registerResultRoutes(app, store);

  return {
    /** How many job streams are open now (a slot is held from the request until its stream ends). */
    openStreams: () => streams.size,
    close() {
      closing = true;
      for (const end of streams) end();
    },
  };
}
