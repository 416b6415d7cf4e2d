/**
 * The exchange's admin API, for its operator's web console (docs/console.md):
 * an overview with counts and health, the parties (when each was last seen,
 * whether it polls now), the catalog, the jobs, the ledger in full, and the
 * transparency log's head and proofs.
 *
 * Every route needs the operator's admin token (`Authorization: Bearer
 * TOKEN`, compared in constant time; node/server/local-api.ts): a party's
 * signed request is not enough, and none is authenticated here — so no admin
 * answer carries the Umbra-Log-Head header meant for a party. It reads only:
 * nothing here changes the store or the ledger.
 */
import type { FastifyPluginAsync } from "fastify";
import { bytesToHex } from "@noble/hashes/utils.js";
import { Type } from "typebox";
import { fingerprint } from "../../../identity.js";
import { listEntries, type LedgerEntry } from "../../../ledger.js";
import { JobState } from "../../../store/types.js";
import { currentPool } from "../../../../engine/pool/index.js";
import { bearerTokenCheck, refuseUnauthenticated } from "../../local-api.js";
import { strictQueryValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";
import { consistencyAnswer, inclusionAnswer } from "./log.js";

/** The most jobs or ledger entries one answer holds, and how many jobs when no limit is given. */
export const MAX_ADMIN_PAGE = 1000;
export const DEFAULT_ADMIN_JOBS = 200;

const STATES = Object.values(JobState);
const SIZE = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const NoQuery = Type.Object({}, { additionalProperties: false });
const JobsQuery = Type.Object(
  { state: Type.Optional(Type.Unsafe<JobState>({ type: "string", enum: [...STATES] })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ADMIN_PAGE })) },
  { additionalProperties: false },
);
const LedgerQuery = Type.Object({ after: Type.Optional(SIZE), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ADMIN_PAGE })) }, { additionalProperties: false });
const InclusionQuery = Type.Object({ seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), size: Type.Optional(SIZE) }, { additionalProperties: false });
const ConsistencyQuery = Type.Object({ first: SIZE, second: Type.Optional(SIZE) }, { additionalProperties: false });

/** The admin routes; `adminToken` is the one every request must show. */
export const adminRoutes: FastifyPluginAsync<ExchangeServices & { readonly adminToken: string }> = async (app, { ctx, jobs, adminToken }) => {
  const { store, identity } = ctx;
  const tokenMatches = bearerTokenCheck(adminToken);
  // This plugin's routes only (an encapsulated context): before the body or the query is read.
  app.addHook("onRequest", async (req, reply) => {
    if (!tokenMatches(req.headers.authorization)) {
      return refuseUnauthenticated(reply, "umbra exchange admin", "the exchange's admin API needs the operator's admin token: send Authorization: Bearer TOKEN, TOKEN from the admin token file (umbra exchange start prints where it is)");
    }
    void reply.header("cache-control", "no-store");
    return undefined;
  });
  const opts = <Q>(querystring: Q) => ({ schema: { hide: true, querystring }, validatorCompiler: strictQueryValidator });

  app.get("/v1/admin/overview", opts(NoQuery), async () => {
    const counted = store.countJobsByState();
    const byState: Record<string, number> = Object.fromEntries(STATES.map((s) => [s, counted[s] ?? 0]));
    const mailboxes = ctx.mailboxes.sizes();
    // The exchange's roles use the given pool, else the process-wide one once a role has started it.
    const pool = ctx.options.pool ?? currentPool();
    return {
      exchange: { name: identity.name, fingerprint: fingerprint(identity.signing.publicKey), signingPublicKey: bytesToHex(identity.signing.publicKey) },
      counts: {
        parties: store.listParties().length,
        datasets: store.listDatasets().length,
        products: store.venue.listProducts().length,
        contracts: store.venue.listContracts().length,
        receipts: store.receipts.list().length,
        jobs: byState,
      },
      health: {
        mailboxes,
        queuedBytes: Object.values(mailboxes).reduce((n, m) => n + m.bytes, 0),
        inMemory: jobs.inMemory(),
        pool: pool !== undefined ? pool.stats() : null,
      },
      head: ctx.treeHead(),
    };
  });

  app.get("/v1/admin/parties", opts(NoQuery), async () => ({
    parties: store.listParties().map((p) => {
      const seen = ctx.lastSeen(p.name);
      return {
        name: p.name,
        fingerprint: fingerprint(p.signingPublicKey),
        signingPublicKey: bytesToHex(p.signingPublicKey),
        boxPublicKey: p.boxPublicKey !== null ? bytesToHex(p.boxPublicKey) : null,
        registeredAt: p.registeredAt,
        lastSeenAt: seen ?? null,
        online: ctx.online(p.name),
      };
    }),
  }));

  app.get("/v1/admin/catalog", opts(NoQuery), async () => ({
    datasets: store.listDatasets().map((d) => {
      const p = store.latestPolicy(d.id);
      return { id: d.id, owner: d.owner, name: d.name, schema: d.schema, rowCount: d.rowCount, contentHash: d.contentHash, policyVersion: p?.version ?? null, policy: p?.policy ?? null };
    }),
    products: store.venue.listProducts().map((p) => p.document),
  }));

  app.get("/v1/admin/jobs", opts(JobsQuery), async (req) => {
    const q = req.query as { state?: JobState; limit?: number };
    const rows = store.listJobs({ ...(q.state !== undefined ? { state: q.state } : {}), limit: q.limit ?? DEFAULT_ADMIN_JOBS, newestFirst: true });
    return { jobs: rows.map((j) => ({ id: j.id, protocol: j.protocol, buyer: j.buyer, providers: j.providers, state: j.state, reason: j.reason, createdAt: j.createdAt, updatedAt: j.updatedAt })) };
  });

  app.get("/v1/admin/ledger", opts(LedgerQuery), async (req) => {
    const q = req.query as { after?: number; limit?: number };
    const limit = q.limit ?? MAX_ADMIN_PAGE;
    const rows = listEntries(store, { ...(q.after !== undefined ? { afterSeq: q.after } : {}), limit: limit + 1 });
    const entries = rows.slice(0, limit);
    return { publicKey: bytesToHex(identity.signing.publicKey), entries, ...(rows.length > limit ? { next: (entries.at(-1) as LedgerEntry).seq } : {}) };
  });

  app.get("/v1/admin/log/head", opts(NoQuery), async () => ctx.treeHead());

  app.get("/v1/admin/log/inclusion", opts(InclusionQuery), async (req) => inclusionAnswer(ctx, req.query as { seq: number; size?: number }));

  app.get("/v1/admin/log/consistency", opts(ConsistencyQuery), async (req) => consistencyAnswer(ctx, req.query as { first: number; second?: number }));
};
