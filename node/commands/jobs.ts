/**
 * `umbra job submit|status|result|cancel`: a client of a party agent's local
 * API (default http://127.0.0.1:7301); `umbra dataset` is in datasets.ts. It
 * prints ids, states, counts, column names and policy rules, never a key or a
 * cell value (a result goes to the --out file).
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { writeTable } from "../../engine/columns/index.js";
import { UmbraError } from "../../engine/errors.js";
import { HE_MAX_SCALE } from "../../engine/he/index.js";
import { JA_DP_MAX_ROWS_PER_KEY, ProtocolId, type AggregateSpec } from "../../protocols/index.js";
import type { KeyNormalise } from "../job-request.js";
import { MAX_JOIN_ROWS } from "../policy.js";
import { checkOutput, count, maxAbsValueOption, minGroupSizeOption, parseOptions, processIO, takeRepeated, UsageError, type CommandIO } from "./args.js";
import { COMPUTATION_OPTIONS, dpRhoOption, parseAggList, parseComputation, type ComputationOptions } from "./aggregate.js";
import { table } from "./datasets.js";
import { PARTY_API_OPTIONS, PartyApiError, partyFetch, partyJson, partyOption, type PartyEndpoint } from "./node.js";

export const JOB_USAGE = `  job submit --protocol psi|psi-cardinality|lookup --input MY_FILE
      --provider-dataset ID --key COL[,COL] [--columns C1,C2] [--query-count N]
      [--digits-only] [--case-fold] [--wait] [--json] [--party URL] [--token-file FILE]
                 submit a job as the buyer: --input names your own file (in your
                 data folder, or a dataset you registered; a CSV file separated by
                 commas: no --delimiter on a node job), --provider-dataset the
                 provider's dataset (an ID from dataset list); --digits-only /
                 --case-fold: the key normalisation, which both sides apply to
                 their own file (as umbra psi's: without it "+44 20 7946 0001"
                 and "442079460001" do not match; a warning says when the key
                 shapes differ); --wait: show its
                 progress until it ends, then print its state (a status poll that
                 fails is asked again for up to 60 s)
  job submit --protocol federated-aggregate --provider-dataset ID --provider-dataset ID
      [--provider-dataset ID ...] --agg "count,sum(COL),avg(COL),var(COL),stddev(COL)"
      [--group-by COL --categories A,B,C] [--histogram COL:E0,E1,...,En]
      [--min-group-size K] [--min-providers N] [--max-abs-value X] [--scale S]
      [--max-rows-per-provider N] [--approximate] [--rho R | --epsilon E [--delta D]] [--query-count N] [--wait] [--party URL]
                 an aggregate across N >= 2 providers' datasets (--provider-dataset
                 once per provider); the exchange computes the sum of their
                 masked encrypted vectors, the buyer decrypts the totals; what is
                 not given the exchange fills: k the largest of --min-group-size
                 and every dataset policy's, --max-abs-value 2^40, --scale 0,
                 --max-rows-per-provider the largest registered row count; a
                 provider that refuses or drops out fails the job and nothing is
                 released; --rho R or --epsilon E (ρ from (E, D)-DP, D = --delta,
                 default 1e-6) adds differential privacy, as for umbra aggregate
  job submit --protocol join-aggregate --input MY_FILE --provider-dataset ID --key COL[,COL]
      --agg "count,sum(COL),avg(COL),var(COL),stddev(COL)" [--group-by MY_COL]
      [--min-group-size K] [--max-abs-value X] [--scale S] [--max-join-rows N]
      [--group x25519|ristretto255] [--digits-only] [--case-fold] [--rho R | --epsilon E [--delta D]
      [--max-rows-per-key N]] [--query-count N] [--wait] [--party URL]
                 a secure join of your own file (--input, in your data folder)
                 with a provider's dataset (--provider-dataset) on the key
                 column(s), and COUNT/SUM/AVG/VAR/STDDEV of the provider's
                 columns over the joined rows, per value of your --group-by
                 column; the exchange matches the blinded keys and aggregates
                 under the buyer's HE key; a group is released only with at
                 least k matched keys and k joined rows (the others are reported
                 as suppressed), k the larger of --min-group-size and the dataset
                 policy's; --max-abs-value default 2^40, --scale 0;
                 --max-join-rows bounds the joined rows of any one group
                 (default 2^32; smaller is faster, a group over it fails the job);
                 --rho R or --epsilon E (ρ from (E, D)-DP, D = --delta, default
                 1e-6) adds differential privacy (ρ-zCDP in all: the provider
                 and the exchange each add a noise share, your rows per key
                 capped at --max-rows-per-key N, default 1 (a larger cap keeps
                 more of your duplicate rows and adds more noise; the ledger
                 records it), k applied to the noisy counts;
                 docs/differential-privacy.md)
  job submit ... --contract ID [--contract ID ...]
                 (any protocol) run the job under a contract (docs/venue.md): one per
                 product whose datasets it touches; a dataset sold in an active
                 product runs only under one (refused: contract-required)
  job status ID [--json] [--party URL]
                 the job's state and, while it runs, each party's phase, %, rows/s
                 and the time left at that rate
  job list [--state submitted|running|succeeded|failed|refused|cancelled] [--limit N]
      [--json] [--party URL]
                 this party's jobs (bought or provided), newest first: id, protocol,
                 state, created, a one-line summary (the datasets, the result's
                 counts or why it ended)
  job result ID [--out FILE] [--json] [--party URL]
                 write the result (.arrow, .arrows, .csv by extension; for
                 federated-aggregate one row per cell, cells under k with
                 suppressed=true and nulls; for join-aggregate one row per
                 released group: the group column, count, sum_COL, avg_COL,
                 var_COL, stddev_COL), or print the count of a
                 psi-cardinality job
  job cancel ID [--json] [--party URL]

  --json (every job and dataset command): one JSON document on stdout
  instead of the text (a list: an array), for scripts.

  Every dataset and job command talks to a party agent's local API: --party URL
  (default http://127.0.0.1:7301) with its bearer token from --token-file FILE,
  else UMBRA_TOKEN, else the one .umbra/*.token file in this folder (umbra party
  start writes it beside its database, mode 0600).
`;

export interface JobView {
  readonly id: string;
  readonly protocol: string;
  readonly buyer: string;
  readonly providers: readonly string[];
  readonly state: string;
  readonly reason: string | null;
  readonly progress: unknown;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** The buyer's agent's warnings from when it was submitted (the key columns' shapes differ, with the fix). */
  readonly warnings?: readonly string[];
}

export const FINAL_STATES: readonly string[] = ["succeeded", "failed", "refused", "cancelled"];

/** The id and, when given, the options after it: `job status ID [--party URL]`. */
function idAndOptions(args: readonly string[]): [string | undefined, readonly string[]] {
  const [first, ...rest] = args;
  if (first === undefined || first.startsWith("-")) return [undefined, args];
  return [first, rest];
}

function requireId(id: string | undefined, usage: string): string {
  if (id === undefined) throw new UsageError("the job ID is required", usage);
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(id)) throw new UsageError("a job ID is 1 to 128 of [A-Za-z0-9._:-]", usage);
  return id;
}

// ------------------------------------------------------------------- job

export interface SubmitInput {
  readonly protocol: string;
  /** The buyer's own file (in its data folder) or a dataset it registered. */
  readonly input: string;
  /** The provider's dataset. */
  readonly providerDataset: string;
  readonly keys: readonly string[];
  readonly columns?: readonly string[];
  readonly queryCount?: number;
  /** The key normalisation both sides apply (--digits-only, --case-fold). */
  readonly normalise?: KeyNormalise;
  /** The contracts the job runs under (docs/venue.md). */
  readonly contracts?: readonly string[];
}

/** The request's contracts: only when some are given. */
const contractsField = (c: readonly string[] | undefined): Record<string, unknown> => (c !== undefined && c.length > 0 ? { contracts: c } : {});

/** The request's params.normalise: only when a flag is on. */
const normaliseParam = (n: KeyNormalise | undefined): Record<string, unknown> => (n && (n.digitsOnly || n.caseFold) ? { normalise: n } : {});

export async function submitJob(party: PartyEndpoint, s: SubmitInput): Promise<JobView> {
  const params: Record<string, unknown> = { keyColumns: s.keys, ...normaliseParam(s.normalise) };
  if (s.columns) params["outputColumns"] = s.columns;
  if (s.queryCount !== undefined) params["queryCount"] = s.queryCount;
  return partyJson<JobView>(party, "POST", "/v1/jobs", { protocol: s.protocol, buyerDataset: s.input, providerDataset: s.providerDataset, params, ...contractsField(s.contracts) });
}

export interface AggregateSubmitInput {
  /** The provider datasets, in provider order. */
  readonly providerDatasets: readonly string[];
  readonly computation: ComputationOptions;
  readonly maxRowsPerProvider?: number;
  readonly queryCount?: number;
  readonly contracts?: readonly string[];
}

/** Submits a federated-aggregate job (the request's params.aggregate from the parsed options). */
export async function submitAggregateJob(party: PartyEndpoint, s: AggregateSubmitInput): Promise<JobView> {
  const c = s.computation;
  const aggregate: Record<string, unknown> = { aggregates: c.aggregates };
  if (c.groupBy) aggregate["groupBy"] = c.groupBy;
  if (c.histogram) aggregate["histogram"] = c.histogram;
  if (c.minProviders !== undefined) aggregate["minProviders"] = c.minProviders;
  if (c.maxAbsValue) aggregate["maxAbsValue"] = c.maxAbsValue.text;
  if (c.scale !== undefined) aggregate["scale"] = c.scale;
  if (c.approximate) aggregate["approximate"] = true;
  if (c.rho !== undefined) aggregate["dp"] = { rho: c.rho };
  if (s.maxRowsPerProvider !== undefined) aggregate["maxRowsPerProvider"] = s.maxRowsPerProvider;
  const params: Record<string, unknown> = { aggregate };
  if (c.minGroupSize !== undefined) params["minGroupSize"] = c.minGroupSize;
  if (s.queryCount !== undefined) params["queryCount"] = s.queryCount;
  return partyJson<JobView>(party, "POST", "/v1/jobs", { protocol: "federated-aggregate", providerDatasets: s.providerDatasets, params, ...contractsField(s.contracts) });
}

export interface JoinAggregateSubmitInput {
  /** The buyer's own file (in its data folder) or a dataset it registered. */
  readonly input: string;
  /** The provider's dataset. */
  readonly providerDataset: string;
  readonly keys: readonly string[];
  readonly aggregates: readonly AggregateSpec[];
  /** A column of the buyer's file. */
  readonly groupBy?: string;
  readonly minGroupSize?: number;
  /** The value bound as a positive decimal ("100000", "2.5"). */
  readonly maxAbsValue?: string;
  readonly scale?: number;
  /** The most joined rows any one total may include. */
  readonly maxJoinRows?: number;
  readonly group?: "x25519" | "ristretto255";
  /** Differential privacy: ρ-zCDP in all, "num/den" (protocols/join-aggregate/dp.ts). */
  readonly rho?: string;
  /** With rho: the cap on the buyer's rows per key (default 1). */
  readonly maxRowsPerKey?: number;
  readonly queryCount?: number;
  /** The key normalisation both sides apply (--digits-only, --case-fold). */
  readonly normalise?: KeyNormalise;
  readonly contracts?: readonly string[];
}

/** Submits a join-aggregate job (the request's params.aggregate; what is left out the exchange fills). */
export async function submitJoinAggregateJob(party: PartyEndpoint, s: JoinAggregateSubmitInput): Promise<JobView> {
  const aggregate: Record<string, unknown> = { aggregates: s.aggregates };
  if (s.groupBy !== undefined) aggregate["groupBy"] = { column: s.groupBy };
  if (s.maxAbsValue !== undefined) aggregate["maxAbsValue"] = s.maxAbsValue;
  if (s.scale !== undefined) aggregate["scale"] = s.scale;
  if (s.maxJoinRows !== undefined) aggregate["maxJoinRows"] = s.maxJoinRows;
  if (s.group !== undefined) aggregate["group"] = s.group;
  if (s.rho !== undefined) aggregate["dp"] = { rho: s.rho, ...(s.maxRowsPerKey !== undefined ? { maxRowsPerKey: s.maxRowsPerKey } : {}) };
  const params: Record<string, unknown> = { keyColumns: s.keys, aggregate, ...normaliseParam(s.normalise) };
  if (s.minGroupSize !== undefined) params["minGroupSize"] = s.minGroupSize;
  if (s.queryCount !== undefined) params["queryCount"] = s.queryCount;
  return partyJson<JobView>(party, "POST", "/v1/jobs", { protocol: "join-aggregate", buyerDataset: s.input, providerDataset: s.providerDataset, params, ...contractsField(s.contracts) });
}

export async function jobStatus(party: PartyEndpoint, id: string): Promise<JobView> {
  return partyJson<JobView>(party, "GET", `/v1/jobs/${encodeURIComponent(id)}`);
}

/** A running job's progress as one line: each party's phase, percentage and counts. */
export function describeProgress(j: JobView): string {
  const p = j.progress;
  if (!p || typeof p !== "object" || FINAL_STATES.includes(j.state)) return j.state;
  const parts: string[] = [];
  for (const [party, v] of Object.entries(p as Record<string, unknown>)) {
    const x = v as { phase?: unknown; done?: unknown; total?: unknown } | null;
    if (x && typeof x.phase === "string" && typeof x.done === "number" && typeof x.total === "number") {
      const pct = x.total > 0 ? Math.floor((100 * x.done) / x.total) : 100;
      parts.push(`${party} ${x.phase} ${pct}% (${count(x.done)}/${count(x.total)})`);
    }
  }
  return parts.length > 0 ? `${j.state} — ${parts.join("; ")}` : j.state;
}

/** A job as `job list` shows it (the party agent's GET /v1/jobs). */
export interface JobListEntry {
  readonly id: string;
  readonly protocol: string;
  readonly role: "buyer" | "provider";
  readonly state: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly summary: string;
}

const JOB_STATES: readonly string[] = ["submitted", "running", ...FINAL_STATES];

/** Seconds as "42 s", "3 min 5 s", "1 h 2 min". */
function duration(s: number): string {
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** Where a party's agent logs a failed step's detail (its file, column and line: never shown to the other parties). */
const IN_THE_LOG = "the agent of the party whose file it is logs which file, column and line (\"job step failed\")";

/**
 * What a buyer can do about a job that failed on a data error, by its code:
 * the job's reason is the code alone (a provider's file is not described to
 * the buyer), so the hint names the flags and where the detail is.
 */
const FAILURE_HINTS: Readonly<Record<string, string>> = {
  UMBRA_MISSING_COLUMN: `a column the job names (--key, --agg, --group-by) is not in a file: check them against your file's header (a CSV separated by ";" is read as one column: save it with commas); ${IN_THE_LOG}`,
  UMBRA_MALFORMED_CSV: `a CSV file could not be read as the job needs it: a number with decimals in an aggregated column needs --scale N (the decimal digits to keep); ${IN_THE_LOG}`,
  UMBRA_VALUE_OUT_OF_RANGE: `a value of an aggregated column is beyond --max-abs-value: raise the bound (every |value| must be within it); ${IN_THE_LOG}`,
  UMBRA_NOT_FOUND: "a file or dataset was not found: --input names a file in your party's data folder (the folder its agent was started with, --data), --provider-dataset an ID from umbra dataset list",
};

/** The hint for a failed job's reason, if its code has one. */
export function failureHint(j: JobView): string | undefined {
  return j.state === "failed" && j.reason ? FAILURE_HINTS[j.reason] : undefined;
}

/**
 * A job's status for a person: its parties, its state and, while it runs,
 * each party's phase, percentage, throughput (rows/s, averaged since the job
 * was created) and the time it would still take at that rate.
 */
export function describeStatus(j: JobView, now: number): string {
  const lines = [`job ${j.id}`, `  protocol: ${j.protocol}`, `  buyer: ${j.buyer}`, `  providers: ${j.providers.join(", ")}`, `  state: ${j.state}`];
  if (j.reason) lines.push(`  reason: ${j.reason}`);
  const hint = failureHint(j);
  if (hint !== undefined) lines.push(`  what to do: ${hint}`);
  for (const w of j.warnings ?? []) lines.push(`  warning: ${w}`);
  const p = j.progress;
  if (p && typeof p === "object") {
    // A job that ended ran until its last update, not until now.
    const elapsed = Math.max(0.001, ((FINAL_STATES.includes(j.state) ? j.updatedAt : now) - j.createdAt) / 1000);
    for (const [who, v] of Object.entries(p as Record<string, unknown>)) {
      const x = v as { phase?: unknown; done?: unknown; total?: unknown } | number | null;
      if (typeof x === "number") lines.push(`  ${who}: ${count(x)}`);
      else if (x && typeof x.phase === "string" && typeof x.done === "number" && typeof x.total === "number") {
        const pct = x.total > 0 ? Math.floor((100 * x.done) / x.total) : 100;
        const rate = x.done / elapsed;
        const eta = rate > 0 && x.done < x.total ? `, about ${duration((x.total - x.done) / rate)} left` : "";
        lines.push(`  ${who}: ${x.phase} ${pct}% (${count(x.done)} of ${count(x.total)} rows, ${count(Math.round(rate))} rows/s${eta})`);
      }
    }
  }
  lines.push(`  created: ${new Date(j.createdAt).toISOString()}`, `  updated: ${new Date(j.updatedAt).toISOString()}`);
  return lines.join("\n");
}

/** The folder an output file goes into must exist (checked before any work, so nothing is lost for a typo). */
function checkOutputFolder(out: string): void {
  const dir = dirname(resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UmbraError("UMBRA_UNWRITABLE_FILE", `cannot write "${out}": the folder "${dirname(out)}" does not exist (create it, or give --out a path in an existing folder)`);
}

/** `waitForJob` gave up: the party agent did not answer the job's status (or answered with a server error) for the whole retry window. */
export class JobStatusUnavailableError extends UmbraError {
  /** The code of the last failed poll. */
  readonly lastCode: string;
  constructor(lastCode: string, forMs: number) {
    super("UMBRA_JOB_STATUS_UNAVAILABLE", `the party agent gave no job status for ${(forMs / 1000).toFixed(0)} s (last: ${lastCode}); the job may still be running: ask again with "umbra job status"`);
    this.lastCode = lastCode;
  }
}

/** How `waitForJob` treats a poll that fails for a passing reason (the agent unreachable, or a 5xx answer). */
export interface StatusRetry {
  /** Give up once no poll has succeeded for this long (default 60 s). */
  readonly forMs?: number;
  /** The first wait before polling again (default 250 ms), doubled after each failure up to maxDelayMs (default 5 s). */
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Told of each failed poll: its code and the wait before the next. */
  readonly onRetry?: (code: string, delayMs: number) => void;
}

/** A failed poll worth repeating: the agent did not answer, or answered with a server error (its own or the exchange's behind it). */
function transientPollError(err: unknown): string | undefined {
  if (err instanceof PartyApiError) return err.status >= 500 ? err.code : undefined;
  return err instanceof UmbraError && err.code === "UMBRA_UNREACHABLE" ? err.code : undefined;
}

/**
 * Polls until the job is in a final state; `onChange` sees each new state or
 * progress line (progress at most once a second, and a tick every 5 s). A
 * poll that fails for a passing reason (see {@link StatusRetry}) is repeated
 * with a growing wait; once none has succeeded for `retry.forMs`, this gives
 * up with {@link JobStatusUnavailableError}. Any other failure (a 4xx answer)
 * ends it at once.
 */
export async function waitForJob(
  party: PartyEndpoint,
  id: string,
  onChange: (j: JobView, elapsedMs: number) => void = () => undefined,
  intervalMs = 150,
  retry: StatusRetry = {},
): Promise<JobView> {
  const t0 = performance.now();
  const forMs = retry.forMs ?? 60_000;
  const firstDelay = retry.firstDelayMs ?? 250;
  const maxDelay = retry.maxDelayMs ?? 5_000;
  let lastState = "";
  let lastLine = "";
  let lastShown = -Infinity;
  let lastOk = t0;
  let delay = firstDelay;
  for (;;) {
    let j: JobView;
    try {
      j = await jobStatus(party, id);
    } catch (err) {
      const code = transientPollError(err);
      if (code === undefined) throw err;
      const failingFor = performance.now() - lastOk;
      if (failingFor >= forMs) throw new JobStatusUnavailableError(code, failingFor);
      const wait = Math.min(delay, forMs - failingFor);
      retry.onRetry?.(code, wait);
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(maxDelay, delay * 2);
      continue;
    }
    lastOk = performance.now();
    delay = firstDelay;
    const elapsed = performance.now() - t0;
    const line = describeProgress(j);
    if (j.state !== lastState || (line !== lastLine && elapsed - lastShown >= 1_000) || elapsed - lastShown >= 5_000) {
      lastState = j.state;
      lastLine = line;
      lastShown = elapsed;
      onChange(j, elapsed);
    }
    if (FINAL_STATES.includes(j.state)) return j;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The result bytes of a job: an Arrow IPC stream, or JSON {count}. */
/** A job's result as its buyer's agent serves it, with the salted digest the exchange recorded and its salt (to open it). */
export type JobResult = { readonly digest: string; readonly salt: string } & (
  | { readonly kind: "table"; readonly bytes: Uint8Array }
  | { readonly kind: "count"; readonly count: number; readonly bytes: Uint8Array }
  | { readonly kind: "withheld"; readonly minIntersection: number; readonly bytes: Uint8Array }
);

/** The result of a job: an Arrow IPC stream, JSON {count}, or JSON {withheld} (below the job's minimum intersection). */
export async function jobResult(party: PartyEndpoint, id: string): Promise<JobResult> {
  const res = await partyFetch(party, "GET", `/v1/jobs/${encodeURIComponent(id)}/result`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const commitment = { digest: res.headers.get("x-umbra-digest") ?? "", salt: res.headers.get("x-umbra-digest-salt") ?? "" };
  if (bytes[0] === 0x7b /* { */) {
    const j = JSON.parse(new TextDecoder().decode(bytes)) as { count?: unknown; withheld?: { minIntersection?: unknown } };
    if (typeof j.count === "number") return { kind: "count", count: j.count, bytes, ...commitment };
    if (j.withheld !== undefined) return { kind: "withheld", minIntersection: Number(j.withheld.minIntersection), bytes, ...commitment };
  }
  return { kind: "table", bytes, ...commitment };
}

/**
 * Why the agent has no result for a job: it has not succeeded (its state and
 * reason, and what to run), or this party is not its buyer; `err` as it is
 * when the job itself is unknown.
 */
async function whyNoResult(party: PartyEndpoint, id: string, err: PartyApiError): Promise<UmbraError> {
  let j: JobView;
  try {
    j = await jobStatus(party, id);
  } catch {
    return new PartyApiError(err.status, err.code, `no job ${id} at this party (umbra job list shows its jobs)`);
  }
  if (j.state === "succeeded") return new PartyApiError(err.status, err.code, `job ${id} has no result at this party: only its buyer's agent holds one`);
  const what = FINAL_STATES.includes(j.state) ? `${j.state}${j.reason ? ` (${j.reason})` : ""}, so it has no result` : `is ${j.state}: its result comes when it succeeds (umbra job status ${id} follows it)`;
  return new PartyApiError(err.status, err.code, `job ${id} ${what}${FINAL_STATES.includes(j.state) ? `; umbra job status ${id} shows each party's last phase` : ""}`);
}

/** One line about a job in a final state. */
export function describeFinal(j: JobView): string {
  if (j.state === "refused") return `refused: ${j.reason ?? "refused"}`;
  const summary = j.progress && typeof j.progress === "object" ? Object.entries(j.progress as Record<string, unknown>).map(([k, v]) => `${k} ${typeof v === "number" ? count(v) : String(v)}`).join(", ") : "";
  if (j.state === "succeeded") return `job ${j.id} succeeded${summary ? `: ${summary}` : ""}`;
  const hint = failureHint(j);
  return `job ${j.id} ${j.state}${j.reason ? `: ${j.reason}` : ""}${hint !== undefined ? `\n  what to do: ${hint}` : ""}`;
}

export async function jobCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${JOB_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  switch (sub) {
    case "submit": {
      // --provider-dataset may repeat (federated-aggregate: one per provider).
      const { values: providerDatasets, rest: afterDatasets } = takeRepeated(rest, "--provider-dataset", usage);
      // --contract may repeat too (one per product the job touches).
      const { values: contracts, rest: others } = takeRepeated(afterDatasets, "--contract", usage);
      const o = parseOptions(
        others,
        {
          "--protocol": "string",
          "--input": "string",
          "--provider-dataset": "string",
          "--key": "string",
          "--columns": "string",
          "--query-count": "string",
          ...COMPUTATION_OPTIONS,
          "--max-rows-per-provider": "string",
          "--max-join-rows": "string",
          "--max-rows-per-key": "string",
          "--group": "string",
          "--digits-only": "flag",
          "--case-fold": "flag",
          "--wait": "flag",
          "--json": "flag",
          ...PARTY_API_OPTIONS,
        },
        usage,
      );
      if (o === undefined) return (io.out(usage.trimEnd()), 0);
      const protocol = o.require("--protocol");
      const protocols: readonly string[] = Object.values(ProtocolId);
      if (!protocols.includes(protocol)) throw new UsageError(`--protocol must be one of ${protocols.join(", ")}`, usage);
      const queryCount = o.integer("--query-count");
      const party = partyOption(o, usage);
      const misplaced = (names: readonly string[], why: string) => {
        const given = names.find((n) => o.has(n));
        if (given !== undefined) throw new UsageError(`${given} ${why}`, usage);
      };
      /** The one provider dataset of a two-party job. */
      const oneProviderDataset = (why: string): string => {
        if (providerDatasets.length === 0) throw new UsageError("--provider-dataset (the provider's dataset ID, from dataset list) is required", usage);
        if (providerDatasets.length > 1) throw new UsageError(`--provider-dataset is given twice (${why})`, usage);
        return providerDatasets[0] as string;
      };
      const input = () => o.require("--input", "(your own file, in your data folder) is required");
      let submit: () => Promise<JobView>;
      if (protocol === "join-aggregate") {
        misplaced(["--columns"], "does not apply to join-aggregate (the provider columns are the ones --agg reads)");
        misplaced(["--categories", "--histogram", "--min-providers", "--max-rows-per-provider", "--approximate"], "applies to federated-aggregate only");
        const providerDataset = oneProviderDataset("join-aggregate joins one provider dataset");
        const rho = dpRhoOption(o, usage);
        const maxRowsPerKey = o.integer("--max-rows-per-key", JA_DP_MAX_ROWS_PER_KEY);
        if (maxRowsPerKey !== undefined && rho === undefined) throw new UsageError("--max-rows-per-key applies with --rho or --epsilon only", usage);
        if (maxRowsPerKey !== undefined && maxRowsPerKey < 1) throw new UsageError(`--max-rows-per-key needs an integer in [1, ${JA_DP_MAX_ROWS_PER_KEY}]`, usage);
        const groupBy = o.get("--group-by")?.trim();
        if (groupBy === "") throw new UsageError("--group-by needs a column name", usage);
        const minGroupSize = minGroupSizeOption(o, usage);
        const maxAbsValue = maxAbsValueOption(o, usage);
        const scale = o.integer("--scale", HE_MAX_SCALE);
        const maxJoinRows = o.integer("--max-join-rows", MAX_JOIN_ROWS);
        if (maxJoinRows !== undefined && maxJoinRows < 1) throw new UsageError("--max-join-rows needs an integer of at least 1", usage);
        const group = o.get("--group");
        if (group !== undefined && group !== "x25519" && group !== "ristretto255") throw new UsageError("--group must be x25519 or ristretto255", usage);
        const job: JoinAggregateSubmitInput = {
          input: input(),
          providerDataset,
          keys: o.requireList("--key"),
          aggregates: parseAggList(o.require("--agg"), usage),
          ...(groupBy !== undefined ? { groupBy } : {}),
          ...(minGroupSize !== undefined ? { minGroupSize } : {}),
          ...(maxAbsValue !== undefined ? { maxAbsValue: maxAbsValue.text } : {}),
          ...(scale !== undefined ? { scale } : {}),
          ...(maxJoinRows !== undefined ? { maxJoinRows } : {}),
          ...(group !== undefined ? { group } : {}),
          ...(rho !== undefined ? { rho } : {}),
          ...(maxRowsPerKey !== undefined ? { maxRowsPerKey } : {}),
          ...(queryCount !== undefined ? { queryCount } : {}),
          normalise: o.keyOptions(),
          contracts,
        };
        submit = () => submitJoinAggregateJob(party, job);
      } else if (protocol === "federated-aggregate") {
        misplaced(["--max-join-rows", "--group", "--max-rows-per-key"], "applies to join-aggregate only");
        misplaced(["--input", "--key", "--columns", "--digits-only", "--case-fold"], "does not apply to federated-aggregate (the buyer brings no file: name each provider's dataset with --provider-dataset)");
        if (providerDatasets.length < 2) throw new UsageError(`federated-aggregate needs at least two --provider-dataset entries, one per provider (got ${providerDatasets.length})`, usage);
        if (new Set(providerDatasets).size !== providerDatasets.length) throw new UsageError("--provider-dataset names a dataset twice", usage);
        const computation = parseComputation(o, providerDatasets.length, usage);
        const maxRows = o.integer("--max-rows-per-provider");
        if (maxRows !== undefined && maxRows < 1) throw new UsageError("--max-rows-per-provider needs an integer of at least 1", usage);
        submit = () => submitAggregateJob(party, { providerDatasets, computation, ...(maxRows !== undefined ? { maxRowsPerProvider: maxRows } : {}), ...(queryCount !== undefined ? { queryCount } : {}), contracts });
      } else {
        misplaced(["--max-join-rows", "--group", "--max-rows-per-key"], "applies to join-aggregate only");
        misplaced([...Object.keys(COMPUTATION_OPTIONS), "--max-rows-per-provider"], "applies to federated-aggregate and join-aggregate only");
        const providerDataset = oneProviderDataset(`a ${protocol} job has one provider`);
        const columns = o.list("--columns");
        if (protocol === "lookup" && !columns) throw new UsageError("a lookup job needs --columns", usage);
        const job: SubmitInput = {
          protocol,
          input: input(),
          providerDataset,
          keys: o.requireList("--key"),
          ...(columns ? { columns } : {}),
          ...(queryCount !== undefined ? { queryCount } : {}),
          normalise: o.keyOptions(),
          contracts,
        };
        submit = () => submitJob(party, job);
      }
      const json = o.has("--json");
      let job: JobView;
      try {
        job = await submit();
      } catch (err) {
        if (err instanceof PartyApiError && err.rule) {
          if (json) io.out(JSON.stringify({ state: "refused", rule: err.rule, reason: err.message }));
          io.err(`refused: ${err.rule} (${err.message})`);
          return 1;
        }
        throw err;
      }
      for (const w of job.warnings ?? []) io.err(`warning: ${w}`);
      if (!o.has("--wait")) return (io.out(json ? JSON.stringify(job) : `job ${job.id} ${job.state}`), 0);
      if (!json) io.out(`job ${job.id} ${job.state}`);
      const done = await waitForJob(party, job.id, (j, ms) => io.err(`  ${describeProgress(j)} (${(ms / 1000).toFixed(1)} s)`), undefined, {
        onRetry: (code, ms) => io.err(`  no status from the party agent (${code}); asking again in ${(ms / 1000).toFixed(1)} s`),
      });
      if (json) io.out(JSON.stringify(done));
      else (done.state === "succeeded" ? io.out : io.err)(describeFinal(done));
      return done.state === "succeeded" ? 0 : 1;
    }
    case "status": {
      const [id, more] = idAndOptions(rest);
      const o = parseOptions(more, { "--json": "flag", ...PARTY_API_OPTIONS }, usage);
      if (o === undefined) return (io.out(usage.trimEnd()), 0);
      const party = partyOption(o, usage);
      const j = await jobStatus(party, requireId(id, usage));
      if (o.has("--json")) return (io.out(JSON.stringify(j)), 0);
      io.out(describeStatus(j, Date.now()));
      return 0;
    }
    case "list": {
      if (rest[0] !== undefined && !rest[0].startsWith("-")) throw new UsageError(`unexpected argument "${rest[0]}"`, usage);
      const o = parseOptions(rest, { "--state": "string", "--limit": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
      if (o === undefined) return (io.out(usage.trimEnd()), 0);
      const state = o.get("--state");
      if (state !== undefined && !JOB_STATES.includes(state)) throw new UsageError(`--state must be one of ${JOB_STATES.join(", ")}`, usage);
      const limit = o.integer("--limit", 10_000);
      if (limit !== undefined && limit < 1) throw new UsageError("--limit needs an integer from 1 to 10000", usage);
      const party = partyOption(o, usage);
      const query = new URLSearchParams({ ...(state !== undefined ? { state } : {}), ...(limit !== undefined ? { limit: String(limit) } : {}) }).toString();
      const { jobs } = await partyJson<{ jobs: JobListEntry[] }>(party, "GET", `/v1/jobs${query ? `?${query}` : ""}`);
      if (o.has("--json")) return (io.out(JSON.stringify(jobs)), 0);
      if (jobs.length === 0) return (io.out(state !== undefined ? `no ${state} jobs` : "no jobs"), 0);
      for (const l of table(["id", "protocol", "state", "created", "summary"], jobs.map((x) => [x.id, x.protocol, x.state, new Date(x.createdAt).toISOString().replace(/\.\d+Z$/, "Z"), x.summary]))) io.out(l);
      return 0;
    }
    case "result": {
      const [id, more] = idAndOptions(rest);
      const o = parseOptions(more, { "--out": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
      if (o === undefined) return (io.out(usage.trimEnd()), 0);
      const party = partyOption(o, usage);
      const json = o.has("--json");
      const out = o.get("--out");
      // The output path is checked before the result is fetched: fetching releases it.
      if (out !== undefined) {
        checkOutput(out, [], usage);
        checkOutputFolder(out);
      }
      const jobId = requireId(id, usage);
      const r = await jobResult(party, jobId).catch(async (err: unknown) => {
        throw err instanceof PartyApiError && err.status === 404 ? await whyNoResult(party, jobId, err) : err;
      });
      if (r.kind === "withheld") {
        if (json) io.out(JSON.stringify({ job: jobId, kind: "withheld", minIntersection: r.minIntersection }));
        io.err(`withheld: fewer than ${r.minIntersection} distinct keys matched (the job's minimum intersection); nothing is released`);
        return 1;
      }
      if (r.kind === "count") {
        io.out(json ? JSON.stringify({ job: jobId, kind: "count", count: r.count }) : `intersection size: ${r.count}`);
        return 0;
      }
      if (out === undefined) throw new UsageError("--out FILE is required for a job whose result is a table", usage);
      const t = tableFromIPC(r.bytes);
      await writeTable(out, t);
      io.out(json ? JSON.stringify({ job: jobId, kind: "table", rows: t.numRows, out }) : `rows written: ${count(t.numRows)} to ${out}`);
      return 0;
    }
    case "cancel": {
      const [id, more] = idAndOptions(rest);
      const o = parseOptions(more, { "--json": "flag", ...PARTY_API_OPTIONS }, usage);
      if (o === undefined) return (io.out(usage.trimEnd()), 0);
      const party = partyOption(o, usage);
      const j = await partyJson<JobView>(party, "POST", `/v1/jobs/${encodeURIComponent(requireId(id, usage))}/cancel`);
      io.out(o.has("--json") ? JSON.stringify(j) : `job ${j.id} ${j.state}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown job command "${sub}"`, usage);
  }
}
