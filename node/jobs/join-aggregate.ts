/**
 * join-aggregate as a node job: the job's parameters from its request, the
 * buyer's and the provider's roles in their agents, and the exchange's role
 * (the matcher and aggregator). The protocol itself — its flow (steps 1–14),
 * threat model and what each role learns — is protocols/join-aggregate/.
 *
 * Parameters. The buyer's request names its own dataset (a file in its data
 * folder, or a dataset it registered), the provider's dataset, the key
 * column(s) both hold, and the computation in `params.aggregate`
 * (node/policy.ts): the aggregates, an optional group-by column of the
 * buyer's, the value bound and scale, the most joined rows per total and the
 * group. The exchange fills what the request leaves out
 * ({@link joinAggregateExchange} `prepare` / `finalise`): the value bound
 * (2^40), the scale (0), maxJoinRows (2^32), the group (x25519) and k (the
 * larger of the one asked for and the dataset policy's minGroupSize); a
 * request of the older form (`mode` over `outputColumns`) becomes the same
 * computation. The filled request is recorded in the ledger (its shape and
 * digest) and sent to both parties in job.start; every role derives the
 * protocol parameters — and so its HE options — from the job id and that
 * request ({@link jaParamsOf}), never from a message; the job's limits
 * (JobSpec.limits, MultiPartyJob.limits: maxBuyerKeys) are applied on top
 * ({@link withLimits}) and each role enforces them on its own.
 *
 * Routes. The buyer and the provider send their exchange-bound messages
 * (steps 1, 10, 11, 12 and 6, 7, 8, 9) to the exchange, sealed to it; their
 * messages to each other (1, 2, 3 and 4, 5: the HE public key, the set sizes,
 * the blinded elements) go straight to the other party, sealed to it, and
 * the exchange relays them as they are ({@link joinAggregateExchange}
 * `directRoute`) — it sees their sizes and digests, which it records.
 *
 * Senders. Each role binds every step to the role that sends it
 * (protocols/join-aggregate, WrongSenderError): the exchange takes 1, 10,
 * 11, 12 only from the buyer and 6, 7, 8, 9 only from the provider; the buyer
 * takes 4, 5 only from the provider and 13, 14 only from the exchange; the
 * provider takes 1, 2, 3 only from the buyer. Here a frame's sender becomes a
 * role name: the job's buyer or provider at the exchange (any other party is
 * refused here), the peer or the exchange at a party.
 *
 * Differential privacy. A request's `params.aggregate.dp { rho }` becomes
 * the protocol's dp (protocols/join-aggregate/dp.ts: the provider and the
 * exchange each add a noise share under encryption; the buyer's rows per key
 * capped at `dp.maxRowsPerKey` (default 1: the noise grows with the cap, the
 * ρ charged does not), values clipped to ±maxAbsValue, k applied to noisy
 * counts; the ledger records the cap with the ρ);
 * its ρ is charged to the provider dataset's privacy budget at the exchange
 * and again by the provider (node/policy.ts spendPrivacy).
 *
 * Failure. A provider that refuses (its own policy check), fails or stays
 * silent fails the job: the exchange answers the buyer only once it has every
 * input, and the buyer writes its result only once it has decrypted every
 * released group.
 */
import { createHash } from "node:crypto";
import type { Table } from "apache-arrow";
import type { UniformSource } from "../../engine/dp/index.js";
import { withExactSums } from "./exact-sums.js";
import { FileFormat, formatFromPath, keysFromTableAsync, readTable, type CsvColumnType } from "../../engine/columns/index.js";
import { loadSeal, selectParameters } from "../../engine/he/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { groupLabelsAsync, JA_DP_DEFAULT_MAX_ROWS_PER_KEY, jaBuyer, jaExchange, jaHeOptions, jaProvider, jaResultTable, ProtocolError, ProtocolId, resolveJaParams, type AggregateSpec, type JaBuyerState, type JaContext, type JaExchangeState, type JaProviderState, type JaResult, type JoinAggregateParams } from "../../protocols/index.js";
import { JA_DEFAULT_MAX_JOIN_ROWS } from "../../protocols/join-aggregate/index.js";
import type { RoleName } from "../../protocols/role.js";
import { AggregateMode, InvalidJobRequestError, joinAggregateColumns, type AggregateJobParams, type AggregateJobSpec, type JobRequest, type JoinGroup } from "../policy.js";
import { canonicalJson } from "../store.js";
import type { NodeProtocol } from "./protocol.js";
import { AGGREGATE_DEFAULT_MAX_ABS, checkedAggregate, finaliseK, maxAbsValueFromText, withK } from "./aggregate-job.js";
import type { JobLimits, PartyRole } from "./protocol.js";

/** The group a job blinds its keys in when it names none. */
export const JOIN_AGGREGATE_DEFAULT_GROUP: JoinGroup = "x25519";

// ------------------------------------------------------------------ parameters

/** A join-aggregate request's computation (params.aggregate). @throws InvalidJobRequestError when the request has none. */
function computationOf(request: JobRequest): AggregateJobParams {
  const a = request.params.aggregate;
  if (request.protocol !== ProtocolId.JoinAggregate || a === undefined || request.providerDataset === undefined || request.buyerDataset === undefined) {
    throw new InvalidJobRequestError([{ field: "params.aggregate", problem: "a join-aggregate job names buyerDataset, providerDataset, its key columns and params.aggregate" }]);
  }
  return a;
}

/**
 * The computation of an older-form request (`mode` over `outputColumns`):
 * count, or the mode's function of every output column.
 */
function fromMode(request: JobRequest): AggregateJobParams | undefined {
  const mode = request.params.mode;
  if (mode === undefined) return undefined;
  if (mode === AggregateMode.Count) return { aggregates: [{ fn: "count" }] };
  if (mode !== AggregateMode.Sum && mode !== AggregateMode.Avg && mode !== AggregateMode.Var) {
    throw new InvalidJobRequestError([{ field: "params.mode", problem: `protocol join-aggregate offers count, sum, avg, var` }]);
  }
  const columns = request.params.outputColumns ?? [];
  return { aggregates: columns.map((column): AggregateJobSpec => ({ fn: mode, column })) };
}

/** The request with params.aggregate filled in (the older form turned into it) and the defaults set; k is set by `finalise`. */
function filled(request: JobRequest): JobRequest {
  const a = request.params.aggregate ?? fromMode(request);
  if (a === undefined) throw new InvalidJobRequestError([{ field: "params.aggregate", problem: "is required" }]);
  const aggregate: AggregateJobParams = {
    ...a,
    maxAbsValue: a.maxAbsValue ?? AGGREGATE_DEFAULT_MAX_ABS.toString(),
    scale: a.scale ?? 0,
    maxJoinRows: a.maxJoinRows ?? JA_DEFAULT_MAX_JOIN_ROWS,
    group: a.group ?? JOIN_AGGREGATE_DEFAULT_GROUP,
  };
  const { mode: _mode, ...params } = request.params;
  return { ...request, params: { ...params, aggregate, outputColumns: joinAggregateColumns(aggregate) } };
}

/**
 * The protocol parameters of job `job`, from its filled request: what every
 * role — buyer, provider, exchange — starts from. The request's output
 * columns (what the provider's policy was checked against) must be exactly
 * the columns the aggregates read.
 * @throws InvalidJobRequestError when the request is not a join-aggregate job; ProtocolError when it was not filled by the exchange.
 */
export function jaParamsOf(job: string, request: JobRequest): JoinAggregateParams {
  const a = computationOf(request);
  const k = request.params.minGroupSize;
  if (a.maxAbsValue === undefined || a.scale === undefined || a.maxJoinRows === undefined || a.group === undefined || k === undefined) {
    throw new ProtocolError("the job's parameters were not filled in by the exchange");
  }
  const reads = joinAggregateColumns(a);
  const out = request.params.outputColumns ?? [];
  if (out.length !== reads.length || !reads.every((c) => out.includes(c))) throw new ProtocolError("the job's output columns are not the columns its aggregates read");
  const maxAbsValue = maxAbsValueFromText(a.maxAbsValue);
  if (maxAbsValue === undefined) throw new InvalidJobRequestError([{ field: "params.aggregate.maxAbsValue", problem: "must be a positive decimal" }]);
  return {
    job,
    aggregates: a.aggregates,
    grouped: a.groupBy !== undefined,
    minGroupSize: k,
    maxAbsValue,
    scale: a.scale,
    maxJoinRows: a.maxJoinRows,
    group: a.group,
    ...(a.dp ? { dp: { rho: a.dp.rho, ...(a.dp.maxRowsPerKey !== undefined ? { maxRowsPerKey: a.dp.maxRowsPerKey } : {}) } } : {}),
  };
}

/** The protocol parameters with the job's limits applied (join-aggregate takes maxBuyerKeys; each role enforces it). */
export function withLimits(params: JoinAggregateParams, limits: JobLimits | undefined): JoinAggregateParams {
  return limits?.maxBuyerKeys !== undefined ? { ...params, maxBuyerKeys: limits.maxBuyerKeys } : params;
}

/**
 * Reads a party's table for a job: the key columns and the buyer's group-by
 * column, or the provider's key and aggregated columns (from CSV as int64 at
 * scale 0, else float64).
 * @throws MissingColumnError when the file lacks one.
 */
export async function readJoinAggregateInput(path: string, role: PartyRole, c: { readonly keyColumns: readonly string[]; readonly aggregates: readonly AggregateSpec[]; readonly groupBy?: string; readonly scale?: number }): Promise<Table> {
  if (role === "buyer") return readTable(path, { columns: [...new Set([...c.keyColumns, ...(c.groupBy !== undefined ? [c.groupBy] : [])])] });
  const values = [...new Set(c.aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])))];
  const type: CsvColumnType = (c.scale ?? 0) === 0 ? "int64" : "float64";
  const columnTypes: Record<string, CsvColumnType> = {};
  for (const col of values) columnTypes[col] = type;
  const csv = formatFromPath(path) === FileFormat.Csv;
  return readTable(path, { columns: [...new Set([...c.keyColumns, ...values])], ...(csv && values.length > 0 ? { columnTypes } : {}) });
}

/**
 * The buyer's result table (protocols/join-aggregate/run.ts `jaResultTable`:
 * one row per released group, the same columns), with the sums as exact
 * Int64 when the scale is 0 and every sum fits (Float64 is exact only to 2^53).
 */
export function jaOutputTable(result: JaResult, c: { readonly aggregates: readonly AggregateSpec[]; readonly groupBy?: string }): Table {
  const table = jaResultTable(result, { aggregates: c.aggregates, buyer: c.groupBy !== undefined ? { groupBy: c.groupBy } : {} });
  if (result.scale !== 0) return table;
  return withExactSums(table, c.aggregates, (column) => result.groups.map((g) => g.columns[column]?.sum ?? null));
}

// ------------------------------------------------------------------ the job

/** The buyer's group-by column, when it groups. */
const groupByOf = (request: JobRequest): string | undefined => computationOf(request).groupBy?.column;

/** The protocol's context: the pool and the pool's HE context for the job's options (made once per pool, shared by its jobs and its workers' host side). */
async function jaContext(pool: CryptoPool, params: JoinAggregateParams, onProgress?: (phase: string, done: number, total: number) => void): Promise<JaContext> {
  const he = await pool.heContext(jaHeOptions(resolveJaParams(params)));
  return { pool, he, ...(onProgress ? { onProgress } : {}) };
}

/**
 * Who the exchange's role waits for, in the order the flow depends on them:
 * the buyer until its own messages (key, hello, weights) are in; then the
 * provider, which answers the buyer's blinded set (hello, counts,
 * statistics, the buyer's elements raised: all in once the last of these
 * is); then the buyer again, which raises the provider's elements.
 */
function missing(state: unknown): readonly RoleName[] {
  const s = state as JaExchangeState;
  if (s.finished) return [];
  if (!s.keyReceived || !s.buyerHello || s.weightsReceived < s.buyerSetSize) return ["buyer"];
  if (!s.providerHello || s.countsReceived < s.providerSetSize || s.buyerDoubledReceived < s.buyerSetSize) return ["provider"];
  return ["buyer"];
}

/**
 * FOR TESTS ONLY: where an in-process provider or exchange draws its DP
 * noise share, by job (unset: node:crypto's CSPRNG, as in every
 * deployment). Seeded noise protects nothing; this exists so a test through
 * the node can replay the noise.
 */
export const jaTestNoise: { source?: ((job: string, role: "provider" | "exchange") => UniformSource) | undefined } = {};

const withTestNoise = (ctx: JaContext, job: string, role: "provider" | "exchange"): JaContext => (jaTestNoise.source ? { ...ctx, noise: jaTestNoise.source(job, role) } : ctx);

/** join-aggregate as a node job: the buyer's and the provider's roles in their agents, the exchange's (matcher and aggregator) in the exchange. */
export const joinAggregateJob: NodeProtocol = {
  protocol: ProtocolId.JoinAggregate,

  parties: (job) =>
    new Map<RoleName, string>([
      ["buyer", job.buyer],
      ["provider", job.providers[0] ?? ""],
      ["exchange", job.exchange],
    ]),

  async readTable(spec, party, path) {
    const params = jaParamsOf(spec.id, spec.request);
    const groupBy = groupByOf(spec.request);
    return readJoinAggregateInput(path, party, { keyColumns: spec.keyColumns, aggregates: params.aggregates, ...(groupBy !== undefined ? { groupBy } : {}), scale: params.scale ?? 0 });
  },

  async player(spec, party, r) {
    const params = withLimits(jaParamsOf(spec.id, spec.request), spec.limits);
    const ctx = await jaContext(r.pool, params, r.onProgress);
    const keys = await keysFromTableAsync(r.table, spec.keyColumns, { ...spec.normalise, source: `${party} dataset` });
    if (party === "buyer") {
      const groupBy = groupByOf(spec.request);
      const groups = groupBy !== undefined ? await groupLabelsAsync(r.table, groupBy) : undefined;
      return { name: "buyer", role: jaBuyer, init: { params, keys, ...(groups ? { groups, groupColumn: groupBy as string } : {}) }, ctx };
    }
    return { name: "provider", role: jaProvider, init: { params, keys, table: r.table }, ctx: withTestNoise(ctx, spec.id, "provider") };
  },

  result(spec, state) {
    const params = jaParamsOf(spec.id, spec.request);
    const groupBy = groupByOf(spec.request);
    const result = jaBuyer.result(state as JaBuyerState);
    const table = jaOutputTable(result, { aggregates: params.aggregates, ...(groupBy !== undefined ? { groupBy } : {}) });
    return { kind: "table", table, summary: { groups: table.numRows, suppressed: result.suppressed } };
  },

  buyerKeysSeen(state) {
    const s = state as JaProviderState;
    return s.buyerHello ? s.peerSetSize : undefined;
  },

  exchange: {
    async prepare(request) {
      const out = filled(request);
      // The protocol's own checks (aggregates, bounds) and HE parameters for the declared range; k does not enter them.
      await checkedAggregate(async () => selectParameters(await loadSeal(), jaHeOptions(resolveJaParams(jaParamsOf("check", withK(out, 1))))));
      return out;
    },

    finalise: finaliseK,

    ledgerParams(request) {
      const a = computationOf(request);
      return {
        keyColumns: [...request.params.keyColumns],
        ...(request.params.normalise ? { normalise: { ...request.params.normalise } } : {}),
        aggregates: a.aggregates.map((x) => (x.fn === "count" ? "count" : `${x.fn}(${x.column})`)),
        groupBy: a.groupBy?.column ?? null,
        minGroupSize: request.params.minGroupSize ?? null,
        maxAbsValue: a.maxAbsValue ?? null,
        scale: a.scale ?? 0,
        maxJoinRows: a.maxJoinRows ?? null,
        group: a.group ?? null,
        dp: a.dp ? { rho: a.dp.rho, maxRowsPerKey: a.dp.maxRowsPerKey ?? JA_DP_DEFAULT_MAX_ROWS_PER_KEY } : null,
        // The whole filled computation, for an auditor holding the request.
        digest: createHash("sha256")
          .update(canonicalJson({ keyColumns: request.params.keyColumns, aggregate: a, outputColumns: request.params.outputColumns ?? [], minGroupSize: request.params.minGroupSize ?? null }))
          .digest("hex"),
      };
    },

    // Nothing beyond the request: the provider's HE and blinding keys are fresh per job.
    providerStart: () => ({}),

    async player(job, resources) {
      if (job.providers.length !== 1) throw new ProtocolError("a join-aggregate job has one provider");
      const params = withLimits(jaParamsOf(job.id, job.request), job.limits);
      // One HE context for the job's every step (the pool's, for the job's options).
      return { name: "exchange", role: jaExchange, init: { params }, ctx: withTestNoise(await jaContext(resources.pool(), params), job.id, "exchange") };
    },

    missing,

    // The buyer and the provider exchange the key, their set sizes and their blinded sets
    // straight (sealed to each other; the exchange relays them as they are).
    directRoute: (from, to) => (from === "buyer" && to === "provider") || (from === "provider" && to === "buyer"),
  },
};
