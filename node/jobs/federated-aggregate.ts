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
import { createHash } from "node:crypto";
import type { Table } from "apache-arrow";
import { withExactSums } from "./exact-sums.js";
import { FileFormat, formatFromPath, readTable, type CsvColumnType } from "../../engine/columns/index.js";
import { InvalidInputError } from "../../engine/errors.js";
import { createHeScheme, loadSeal, selectCkksParameters, selectParameters, type HeScheme } from "../../engine/he/index.js";
import {
  decodeMessage,
  encodeMessage,
  faBuyer,
  faBuyerResult,
  faCkksOptions,
  faExchange,
  faExchangeMissing,
  faHeOptions,
  faProvider,
  faResultTable,
  faSchemeOptions,
  ProtocolError,
  ProtocolId,
  providerRole,
  resolveFaParams,
  type FaBuyerState,
  type FaExchangeState,
  type FaProviderState,
  type FaResult,
  type FederatedAggregateParams,
  type ProtocolMessage,
} from "../../protocols/index.js";
import { providerIndex, RoleName, type Outgoing } from "../../protocols/role.js";
import { NoMaskKeyError, WrongSenderError } from "../errors.js";
import { InvalidJobRequestError, type AggregateJobParams, type JobRequest, type UsagePolicy } from "../policy.js";
import { canonicalJson } from "../store.js";
import type { ExchangeProtocol, ExchangeRole, MultiPartyJob, PartyKeys, RoleFrame } from "./exchange-roles.js";
import type { BuyerResult, PartyProtocol, RoleState, StepOutput } from "./roles.js";

/** The value bound when a job (or `umbra aggregate`) declares none: 2^40. */
export const AGGREGATE_DEFAULT_MAX_ABS = 2n ** 40n;
/** minProviders when a job declares none. */
export const AGGREGATE_DEFAULT_MIN_PROVIDERS = 2;

/** A declared value bound: an integer as a bigint (exact), a fraction as a number; undefined when it is not a positive decimal. */
export function maxAbsValueFromText(text: string): bigint | number | undefined {
  if (/^\d+$/.test(text)) {
    const v = BigInt(text);
    return v > 0n ? v : undefined;
  }
  if (/^(\d+\.\d*|\.\d+)$/.test(text)) {
    const v = Number(text);
    return Number.isFinite(v) && v > 0 ? v : undefined;
  }
  return undefined;
}

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
    minCount: k,
    aggregates: a.aggregates,
    // The parser requires a federated-aggregate groupBy's categories (only join-aggregate's has none).
    ...(a.groupBy ? { groupBy: { column: a.groupBy.column, categories: a.groupBy.categories ?? [] } } : {}),
    ...(a.histogram ? { histogram: a.histogram } : {}),
    maxAbsValue,
    scale: a.scale ?? 0,
    maxRowsPerProvider: a.maxRowsPerProvider,
    ...(a.approximate ? { approximate: true } : {}),
  };
}

type Computation = Pick<FederatedAggregateParams, "aggregates" | "groupBy" | "histogram" | "scale" | "approximate">;

/**
 * Reads a provider's table for a computation: only the columns it uses, and
 * from CSV the aggregated and histogram columns as int64 (scale 0, exact) or
 * float64 (a fixed-point scale, or approximate arithmetic).
 * Shared by `umbra aggregate` and the provider agent.
 */
export async function readAggregateInput(path: string, c: Computation): Promise<{ table: Table; columns: string[] }> {
  const valueColumns = [...new Set(c.aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])))];
  const numeric = [...new Set([...valueColumns, ...(c.histogram ? [c.histogram.column] : [])])];
  const columns = [...new Set([...(c.groupBy ? [c.groupBy.column] : []), ...numeric])];
  const type: CsvColumnType = (c.scale ?? 0) === 0 && c.approximate !== true ? "int64" : "float64";
  const columnTypes: Record<string, CsvColumnType> = {};
  for (const col of numeric) columnTypes[col] = type;
  const csv = formatFromPath(path) === FileFormat.Csv;
  const table = await readTable(path, { ...(columns.length > 0 ? { columns } : {}), ...(csv && numeric.length > 0 ? { columnTypes } : {}) });
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

// ------------------------------------------------------------------ party side

/** What a party's job spec carries for federated-aggregate. */
export interface FaJobInfo {
  readonly params: FederatedAggregateParams;
  /** The providers' party names, in provider order. */
  readonly providers: readonly string[];
  /** This party's provider index (providers only). */
  readonly index?: number;
}

function toExchange(messages: readonly Outgoing[]): Uint8Array[] {
  return messages.map((a) => {
    if (a.to !== RoleName.Exchange) throw new ProtocolError("a federated-aggregate party sends only to the exchange");
    return encodeMessage(a.message);
  });
}

/**
 * The buyer's and the providers' roles in their agents: the protocol's
 * `faBuyer` and `faProvider`, whose one counterpart is the exchange (the
 * agent has checked that a frame came from it).
 */
export const federatedAggregateParty: PartyProtocol = {
  // A provider reads only the columns the computation uses (the buyer brings no table).
  async readTable(spec, _role, path) {
    if (!spec.fa) throw new ProtocolError("a federated-aggregate job spec carries its parameters");
    return (await readAggregateInput(path, spec.fa.params)).table;
  },

  async start(spec, role, ctx): Promise<StepOutput> {
    const fa = spec.fa;
    if (!fa) throw new ProtocolError("a federated-aggregate job spec carries its parameters");
    if (role === "buyer") {
      ctx.onProgress?.("key set", 0, 1);
      const r = await faBuyer.start(fa.params, {});
      ctx.onProgress?.("key set", 1, 1);
      return { state: r.state, out: toExchange(r.messages), done: false };
    }
    if (fa.index === undefined || !ctx.mask) throw new ProtocolError("a federated-aggregate provider needs its index and the mask keys");
    ctx.onProgress?.("aggregate locally", 0, ctx.table.numRows);
    const r = await faProvider.start({ params: fa.params, input: { index: fa.index, table: ctx.table, boxKeyPair: ctx.mask.keyPair, peers: ctx.mask.peers } }, {});
    ctx.onProgress?.("aggregate locally", ctx.table.numRows, ctx.table.numRows);
    return { state: r.state, out: toExchange(r.messages), done: false };
  },

  async receive(_spec, role, state, frame, ctx): Promise<StepOutput> {
    const m = decodeMessage(frame);
    if (role === "buyer") {
      ctx.onProgress?.("decrypt", 0, 1);
      const r = await faBuyer.receive(state as FaBuyerState, RoleName.Exchange, m, {});
      ctx.onProgress?.("decrypt", 1, 1);
      return { state: r.state, out: toExchange(r.messages), done: faBuyer.done(r.state) };
    }
    ctx.onProgress?.("mask and encrypt", 0, 1);
    const r = await faProvider.receive(state as FaProviderState, RoleName.Exchange, m, {});
    ctx.onProgress?.("mask and encrypt", 1, 1);
    return { state: r.state, out: toExchange(r.messages), done: faProvider.done(r.state) };
  },

  result(spec, state: RoleState): BuyerResult {
    if (!spec.fa) throw new ProtocolError("a federated-aggregate job spec carries its parameters");
    const result = faBuyerResult(state as FaBuyerState);
    const table = faOutputTable(result, spec.fa.params);
    return { kind: "table", table, summary: { cells: table.numRows, suppressed: result.cells.filter((c) => c.suppressed).length } };
  },
};

// ------------------------------------------------------------------ exchange side

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * The role name a party's frame comes from: "buyer" for the job's buyer;
 * for a provider, "provider-<i>" where it owns dataset i — the i its vector
 * names when it owns that one (a party may own several). The protocol's
 * exchange role then refuses a step from the wrong role (WrongSenderError).
 */
function senderRole(job: MultiPartyJob, from: string, m: ProtocolMessage) {
  if (from === job.buyer) return RoleName.Buyer;
  if (m.kind === "aggregateCiphertext" && job.providers[m.party] === from) return providerRole(m.party);
  const i = job.providers.indexOf(from);
  if (i < 0) throw new WrongSenderError("a protocol message from a party that is not in this job");
  return providerRole(i);
}

/** The aggregator (the protocol's `faExchange`): sums the providers' masked vectors, sends the buyer the re-randomised total once all N are in. */
class FaExchangeRole implements ExchangeRole {
  #state: FaExchangeState;
  /** The job's HE scheme: BFV, or CKKS where the job declares approximate arithmetic. */
  readonly #he: HeScheme;
  readonly #job: MultiPartyJob;

  private constructor(job: MultiPartyJob, state: FaExchangeState, he: HeScheme) {
    this.#job = job;
    this.#state = state;
    this.#he = he;
  }

  static async create(job: MultiPartyJob): Promise<FaExchangeRole> {
    const params = faParamsOf(job.id, job.request);
    if (job.providers.length !== params.providers) throw new ProtocolError("the job's providers do not match its datasets");
    const { state } = await faExchange.start(params, {});
    // One HE context for the job's every step (the protocol would build one per call otherwise).
    return new FaExchangeRole(job, state, await createHeScheme(faSchemeOptions(state)));
  }

  get done(): boolean {
    return faExchange.done(this.#state);
  }

  async receive(from: string, frame: Uint8Array): Promise<readonly RoleFrame[]> {
    if (this.#he.disposed) throw new ProtocolError("the job's aggregator role has ended");
    const m = decodeMessage(frame);
    const job = this.#job;
    const r = await faExchange.receive(this.#state, senderRole(job, from, m), m, { he: this.#he });
    this.#state = r.state;
    return r.messages.map((a) => {
      const i = providerIndex(a.to);
      const to = a.to === RoleName.Buyer ? job.buyer : i !== undefined ? job.providers[i] : undefined;
      if (to === undefined) throw new ProtocolError("the aggregator addressed a role the job does not have");
      return { to, frame: encodeMessage(a.message) };
    });
  }

  missing(): readonly string[] {
    if (this.#state.keyId === "") return [this.#job.buyer];
    return faExchangeMissing(this.#state).map((i) => this.#job.providers[i] as string);
  }

  dispose(): void {
    if (!this.#he.disposed) this.#he.dispose();
  }
}

/** The request with k set (a copy). */
function withK(request: JobRequest, k: number): JobRequest {
  return { ...request, params: { ...request.params, minGroupSize: k } };
}

/** federated-aggregate's entry in the exchange's registry (node/jobs/exchange-roles.ts). */
export const federatedAggregateExchange: ExchangeProtocol = {
  protocol: ProtocolId.FederatedAggregate,

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
    try {
      const resolved = resolveFaParams(faParamsOf("check", withK(out, 1)));
      const seal = await loadSeal();
      if (resolved.approximate) selectCkksParameters(seal, faCkksOptions(resolved));
      else selectParameters(seal, faHeOptions(resolved));
    } catch (err) {
      if (err instanceof InvalidInputError || err instanceof ProtocolError) throw new InvalidJobRequestError([{ field: "params.aggregate", problem: err.message }]);
      throw err;
    }
    return out;
  },

  finalise(request: JobRequest, policies: readonly UsagePolicy[]): JobRequest {
    return withK(request, Math.max(request.params.minGroupSize ?? 1, ...policies.map((p) => p.minGroupSize)));
  },

  ledgerParams(request) {
    const a = aggregateOf(request);
    return {
      providers: a.providerDatasets.length,
      minProviders: a.minProviders ?? AGGREGATE_DEFAULT_MIN_PROVIDERS,
      minCount: request.params.minGroupSize ?? null,
      aggregates: a.aggregates.map((x) => (x.fn === "count" ? "count" : `${x.fn}(${x.column})`)),
      groupBy: a.groupBy ? { column: a.groupBy.column, categories: a.groupBy.categories?.length ?? 0 } : null,
      histogram: a.histogram ? { column: a.histogram.column, bins: a.histogram.edges.length - 1 } : null,
      maxAbsValue: a.maxAbsValue ?? null,
      scale: a.scale ?? 0,
      maxRowsPerProvider: a.maxRowsPerProvider ?? null,
      approximate: a.approximate === true,
      // The whole filled computation (categories and edges included), for an auditor holding the request.
      digest: createHash("sha256").update(canonicalJson({ aggregate: request.params.aggregate, minGroupSize: request.params.minGroupSize ?? null })).digest("hex"),
    };
  },

  providerStart(_index: number, providers: readonly PartyKeys[]) {
    const keys = providers.map((p) => p.maskPublicKey);
    if (keys.some((k) => k === null)) throw new NoMaskKeyError();
    return { peerKeys: keys.map((k) => hex(k as Uint8Array)) };
  },

  start: (job) => FaExchangeRole.create(job),

  // Every message goes through the aggregator: the buyer's key to it, the providers' vectors to it.
  directRoute: () => false,
};
