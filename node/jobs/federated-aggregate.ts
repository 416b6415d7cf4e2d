/**
 * federated-aggregate as a node job: the job's parameters from its request,
 * the buyer's and each provider's role in their agents, and the exchange's
 * aggregator role. The protocol itself — its flow, threat model and what each
 * role learns — is protocols/federated-aggregate/ (index.ts).
 *
 * Parameters. The buyer's request names the provider datasets, in provider
 * order, and the computation (`params.aggregate`, node/policy.ts). The
 * exchange fills what the request leaves out ({@link federatedAggregateExchange}
 * `prepare` / `finalise`): the value bound (2^40), the scale (0),
 * minProviders (2), the row bound per provider (the largest registered row
 * count of the job's datasets) and k (the largest of the one asked for and
 * every dataset policy's minGroupSize). The filled request is recorded in the
 * ledger (its digest and shape) and sent to every party in job.start; every
 * role derives the protocol parameters — and so its HE context options — from
 * the job id and that request ({@link faParamsOf}), never from a message, and
 * the protocol refuses a key announced under other options.
 *
 * Keys. Provider i derives its pairwise masks from its mask key (node/identity
 * `maskKeyPair`) and the other providers' registered mask public keys, which
 * the exchange puts in job.start: no extra round. The buyer draws a fresh BFV
 * key set per job.
 *
 * Senders. The protocol's roles check the sender by role name; the
 * exchange's role names each frame's party as a role ("buyer", or
 * "provider-<i>" for the party that owns dataset i), so the protocol takes
 * the key set (step 1) only from the job's buyer and provider i's masked
 * vector (step 2) only from the party that owns dataset i; the buyer and
 * the providers hear only from the exchange.
 *
 * Failure. A provider that refuses (its own policy check) or fails, or never
 * sends its vector, fails the job: the exchange sends the sum to the buyer only
 * once all N vectors are in, and an incomplete sum would still carry
 * uncancelled masks. The buyer writes its result only after decrypting the
 * complete sum.
 */
import type { UniformSource } from "../../engine/dp/index.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { createHash } from "node:crypto";
import type { Table } from "apache-arrow";
import { withExactSums } from "./exact-sums.js";
import { FileFormat, formatFromPath, readTable, type CsvColumnType } from "../../engine/columns/index.js";
import { createHeScheme, loadSeal, selectCkksParameters, selectParameters } from "../../engine/he/index.js";
import { faBuyer, faBuyerResult, faCkksOptions, faExchange, faExchangeMissing, faHeOptions, faProvider, faResultTable, faSchemeOptions, ProtocolError, ProtocolId, providerRole, resolveFaParams, type FaBuyerState, type FaExchangeState, type FaResult, type FederatedAggregateParams, type ProtocolMessage } from "../../protocols/index.js";
import { RoleName, type Role } from "../../protocols/role.js";
import { NoMaskKeyError } from "../errors.js";
import { InvalidJobRequestError, type AggregateJobParams, type JobRequest } from "../policy.js";
import { canonicalJson } from "../store.js";
import { AGGREGATE_DEFAULT_MAX_ABS, checkedAggregate, finaliseK, maxAbsValueFromText, withK } from "./aggregate-job.js";
import type { NodeProtocol, PartyKeys } from "./protocol.js";

/** minProviders when a job declares none. */
export const AGGREGATE_DEFAULT_MIN_PROVIDERS = 2;

/** What a job's request says about the computation (params.aggregate), required. */
function aggregateOf(request: JobRequest): AggregateJobParams & { providerDatasets: readonly string[] } {
  const a = request.params.aggregate;
  if (request.protocol !== ProtocolId.FederatedAggregate || a === undefined || request.providerDatasets === undefined) {
    throw new InvalidJobRequestError([{ field: "params.aggregate", problem: "a federated-aggregate job names its providerDatasets and params.aggregate" }]);
  }
  return { ...a, providerDatasets: request.providerDatasets };
}

/**
 * The protocol parameters of job `job`, from its filled request: what every
 * role — buyer, providers, exchange — starts from.
 * @throws InvalidJobRequestError when the request is not a federated-aggregate job; ProtocolError when it was not filled by the exchange.
 */
export function faParamsOf(job: string, request: JobRequest): FederatedAggregateParams {
  const a = aggregateOf(request);
  const k = request.params.minGroupSize;
  if (a.maxAbsValue === undefined || a.maxRowsPerProvider === undefined || k === undefined) throw new ProtocolError("the job's parameters were not filled in by the exchange");
  const maxAbsValue = maxAbsValueFromText(a.maxAbsValue);
  if (maxAbsValue === undefined) throw new InvalidJobRequestError([{ field: "params.aggregate.maxAbsValue", problem: "must be a positive decimal" }]);
  return {
    job,
    providers: a.providerDatasets.length,
    minProviders: a.minProviders ?? AGGREGATE_DEFAULT_MIN_PROVIDERS,
    minGroupSize: k,
    aggregates: a.aggregates,
    // The parser requires a federated-aggregate groupBy's categories (only join-aggregate's has none).
    ...(a.groupBy ? { groupBy: { column: a.groupBy.column, categories: a.groupBy.categories ?? [] } } : {}),
    ...(a.histogram ? { histogram: a.histogram } : {}),
    maxAbsValue,
    scale: a.scale ?? 0,
    maxRowsPerProvider: a.maxRowsPerProvider,
    ...(a.approximate ? { approximate: true } : {}),
    ...(a.dp ? { dp: { rho: a.dp.rho } } : {}),
  };
}

type Computation = Pick<FederatedAggregateParams, "aggregates" | "groupBy" | "histogram" | "scale" | "approximate">;

/**
 * Reads a provider's table for a computation: only the columns it uses, and
 * from CSV the aggregated and histogram columns as int64 (scale 0, exact) or
 * float64 (a fixed-point scale, or approximate arithmetic).
 * Shared by `umbra aggregate` and the provider agent.
 */
export async function readAggregateInput(path: string, c: Computation, read: { delimiter?: string | undefined } = {}): Promise<{ table: Table; columns: string[] }> {
  const valueColumns = [...new Set(c.aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])))];
  const numeric = [...new Set([...valueColumns, ...(c.histogram ? [c.histogram.column] : [])])];
  const columns = [...new Set([...(c.groupBy ? [c.groupBy.column] : []), ...numeric])];
  const type: CsvColumnType = (c.scale ?? 0) === 0 && c.approximate !== true ? "int64" : "float64";
  const columnTypes: Record<string, CsvColumnType> = {};
  for (const col of numeric) columnTypes[col] = type;
  const csv = formatFromPath(path) === FileFormat.Csv;
  const table = await readTable(path, {
    ...(columns.length > 0 ? { columns } : {}),
    ...(csv && numeric.length > 0 ? { columnTypes } : {}),
    ...(read.delimiter !== undefined ? { delimiter: read.delimiter } : {}),
  });
  return { table, columns };
}

/**
 * The buyer's result table (protocols/federated-aggregate/run.ts
 * `faResultTable`: one row per cell), with the sums as exact Int64 when the
 * scale is 0 and every sum fits (Float64 is exact only to 2^53).
 */
export function faOutputTable(result: FaResult, c: Pick<FederatedAggregateParams, "aggregates" | "groupBy" | "histogram">): Table {
  const table = faResultTable(result, c);
  // Approximate results are doubles with their bounds; exact Int64 sums apply to exact mode only.
  if (result.approximate || result.scale !== 0) return table;
  return withExactSums(table, c.aggregates, (column) => result.cells.map((cell) => cell.columns[column]?.sum ?? null));
}

// ------------------------------------------------------------------ the job


/** A role with the agent's progress reported around its start and each step (the protocol's steps are few and long). */
function reporting<S, I, C, R>(role: Role<S, I, C, R>, phases: { readonly start: string; readonly step: string; readonly startTotal?: number }, onProgress?: (phase: string, done: number, total: number) => void): Role<S, I, C, R> {
  if (!onProgress) return role;
  return {
    async start(init, ctx) {
      const total = phases.startTotal ?? 1;
      onProgress(phases.start, 0, total);
      const r = await role.start(init, ctx);
      onProgress(phases.start, total, total);
      return r;
    },
    async receive(state, from, message, ctx) {
      onProgress(phases.step, 0, 1);
      const r = await role.receive(state, from, message, ctx);
      onProgress(phases.step, 1, 1);
      return r;
    },
    done: (state) => role.done(state),
    result: (state) => role.result(state),
  };
}

/**
 * The role a frame from party `from` is for when the party plays several
 * (it owns several of the job's datasets): provider i's vector names i.
 */
function senderRole(candidates: readonly RoleName[], m: ProtocolMessage): RoleName {
  if (m.kind === "aggregateCiphertext") {
    const named = providerRole(m.party);
    if (candidates.includes(named)) return named;
  }
  return candidates[0] as RoleName;
}

/**
 * FOR TESTS ONLY: where an in-process provider draws its DP noise, by job
 * and provider index (unset: node:crypto's CSPRNG, as in every deployment).
 * Seeded noise protects nothing; this exists so a test through the node can
 * replay the noise each provider drew.
 */
export const faTestNoise: { source?: ((job: string, index: number) => UniformSource) | undefined } = {};

/** federated-aggregate as a node job: the buyer's and every provider's roles in their agents, the aggregator in the exchange. */
export const federatedAggregateJob: NodeProtocol = {
  protocol: ProtocolId.FederatedAggregate,

  parties: (job) =>
    new Map<RoleName, string>([
      [RoleName.Buyer, job.buyer],
      [RoleName.Exchange, job.exchange],
      ...job.providers.map((p, i): [RoleName, string] => [providerRole(i), p]),
    ]),

  // The provider's mask key pair and the other providers' registered mask keys (from job.start).
  resources: ["mask"],

  // A provider reads only the columns the computation uses (the buyer brings no table).
  async readTable(spec, _party, path) {
    return (await readAggregateInput(path, faParamsOf(spec.id, spec.request))).table;
  },

  async player(spec, party, r) {
    const params = faParamsOf(spec.id, spec.request);
    if (party === "buyer") return { name: RoleName.Buyer, role: reporting(faBuyer, { start: "key set", step: "decrypt" }, r.onProgress), init: params, ctx: {} };
    const index = spec.providerIndex;
    if (index === undefined || !r.mask) throw new ProtocolError("a federated-aggregate provider needs its index and the mask keys");
    return {
      name: providerRole(index),
      role: reporting(faProvider, { start: "aggregate locally", step: "mask and encrypt", startTotal: r.table.numRows }, r.onProgress),
      init: { params, input: { index, table: r.table, boxKeyPair: r.mask.keyPair, peers: r.mask.peers } },
      ctx: faTestNoise.source ? { noise: faTestNoise.source(spec.id, index) } : {},
    };
  },

  result(spec, state) {
    const result = faBuyerResult(state as FaBuyerState);
    const table = faOutputTable(result, faParamsOf(spec.id, spec.request));
    return { kind: "table", table, summary: { cells: table.numRows, suppressed: result.cells.filter((c) => c.suppressed).length } };
  },

  exchange: {
    async prepare(request, datasets) {
      const a = aggregateOf(request);
      const largest = Math.max(1, ...datasets.map((d) => d.rowCount));
      if (a.maxRowsPerProvider !== undefined && a.maxRowsPerProvider < largest) {
        throw new InvalidJobRequestError([{ field: "params.aggregate.maxRowsPerProvider", problem: "is below the registered row count of a dataset of the job" }]);
      }
      const filled: AggregateJobParams = {
        ...request.params.aggregate,
        aggregates: a.aggregates,
        minProviders: a.minProviders ?? AGGREGATE_DEFAULT_MIN_PROVIDERS,
        maxAbsValue: a.maxAbsValue ?? AGGREGATE_DEFAULT_MAX_ABS.toString(),
        scale: a.scale ?? 0,
        maxRowsPerProvider: a.maxRowsPerProvider ?? largest,
      };
      const out: JobRequest = { ...request, params: { ...request.params, aggregate: filled } };
      // The protocol's own checks (vector size, providers, bounds) and HE parameters for the
      // declared range; k does not enter them.
      await checkedAggregate(async () => {
        const resolved = resolveFaParams(faParamsOf("check", withK(out, 1)));
        const seal = await loadSeal();
        if (resolved.approximate) selectCkksParameters(seal, faCkksOptions(resolved));
        else selectParameters(seal, faHeOptions(resolved));
      });
      return out;
    },

    finalise: finaliseK,

    ledgerParams(request) {
      const a = aggregateOf(request);
      return {
        providers: a.providerDatasets.length,
        minProviders: a.minProviders ?? AGGREGATE_DEFAULT_MIN_PROVIDERS,
        minGroupSize: request.params.minGroupSize ?? null,
        aggregates: a.aggregates.map((x) => (x.fn === "count" ? "count" : `${x.fn}(${x.column})`)),
        groupBy: a.groupBy ? { column: a.groupBy.column, categories: a.groupBy.categories?.length ?? 0 } : null,
        histogram: a.histogram ? { column: a.histogram.column, bins: a.histogram.edges.length - 1 } : null,
        maxAbsValue: a.maxAbsValue ?? null,
        scale: a.scale ?? 0,
        maxRowsPerProvider: a.maxRowsPerProvider ?? null,
        approximate: a.approximate === true,
        dp: a.dp ? { rho: a.dp.rho } : null,
        // The whole filled computation (categories and edges included), for an auditor holding the request.
        digest: createHash("sha256").update(canonicalJson({ aggregate: request.params.aggregate, minGroupSize: request.params.minGroupSize ?? null })).digest("hex"),
      };
    },

    providerStart(_index: number, providers: readonly PartyKeys[]) {
      const keys = providers.map((p) => p.maskPublicKey);
      if (keys.some((k) => k === null)) throw new NoMaskKeyError();
      return { peerKeys: keys.map((k) => bytesToHex(k as Uint8Array)) };
    },

    async player(job) {
      const params = faParamsOf(job.id, job.request);
      if (job.providers.length !== params.providers) throw new ProtocolError("the job's providers do not match its datasets");
      // One HE scheme for the job's every step (the protocol would build one per call otherwise), freed with the role.
      const he = await createHeScheme(faSchemeOptions(resolveFaParams(params)));
      return { name: RoleName.Exchange, role: faExchange, init: params, ctx: { he }, senderRole, dispose: () => he.dispose() };
    },

    missing(state) {
      const s = state as FaExchangeState;
      if (s.keyId === "") return [RoleName.Buyer];
      return faExchangeMissing(s).map(providerRole);
    },

    // Every message goes through the aggregator: the buyer's key to it, the providers' vectors to it.
    directRoute: () => false,
  },
};
