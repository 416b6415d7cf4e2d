/**
 * One chaos trial: a fresh venue (cluster.ts), one job submitted by the
 * buyer with `umbra job submit`, a disturbance while it runs, and the
 * checks once it ends.
 *
 * The disturbance is one of: none (the undisturbed run, whose duration sets
 * the window of the others); `kill -9` of the victim — the exchange, the
 * buyer or the first provider — at a moment drawn uniformly inside that
 * window (from the seeded generator), then the victim started again with the
 * same arguments (same database, data folder and port); or, for "network",
 * connections between a party and the exchange cut by its TCP proxy at
 * three such moments, each followed by an outage of up to two seconds.
 *
 * The checks: the job succeeded (within the deadline), its result
 * (`umbra job result`) equals the plaintext answer exactly, `umbra audit
 * verify` passes and the ledger holds each of the job's events once
 * (ledger-check.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTable } from "../../engine/columns/index.js";
import { BUYER, type ChaosCase } from "./case.js";
import { Cluster } from "./cluster.js";
import { checkLedger } from "./ledger-check.js";
import type { NodeProcess } from "./processes.js";
import { below, rngFor } from "./rng.js";

export const VICTIMS = ["exchange", "buyer", "provider", "network"] as const;
export type Victim = (typeof VICTIMS)[number];
/** What disturbs a trial: a victim, or nothing (the undisturbed run). */
export type Disturbance = Victim | "none";

const FINAL = ["succeeded", "failed", "refused", "cancelled"];
const NETWORK_CUTS = 3;
const MAX_OUTAGE_MS = 2_000;

export interface TrialPlan {
  readonly disturbance: Disturbance;
  /** The trial's number (1…) among its protocol × victim, for its seed label. */
  readonly trial: number;
  readonly seed: number;
  /** The undisturbed run's duration, seconds (0 for the undisturbed run itself). */
  readonly baselineSeconds: number;
  /** The part of the undisturbed duration the moments are drawn from, as fractions (default [0, 1]). */
  readonly window?: readonly [number, number];
  /** Kill the victim as soon as the buyer's agent reports the job running, instead of at a drawn moment (the test suite's trials: mid-job by condition, not by timing). */
  readonly killWhenRunning?: boolean;
  /** Give up on the job this long after it was submitted. */
  readonly deadlineSeconds: number;
  /** Keep the trial's folder (data, databases, logs) when it fails. */
  readonly keep?: boolean;
  readonly say: (line: string) => void;
}

export interface TrialOutcome {
  readonly protocol: string;
  readonly disturbance: Disturbance;
  readonly trial: number;
  readonly job: string | undefined;
  /** The job's last state and reason as the buyer's agent reported them. */
  readonly state: string;
  readonly reason: string | null;
  /** From submission to the end (or to the deadline), seconds. */
  readonly seconds: number;
  /** When the victim was killed (or the first cut), seconds after submission. */
  readonly disturbedAt?: number;
  /** The job had not ended when it was disturbed. */
  readonly midJob?: boolean;
  /** How long the victim took to listen again, seconds. */
  readonly restartSeconds?: number;
  /** Connections the proxies dropped (network). */
  readonly dropped?: number;
  readonly succeeded: boolean;
  readonly exact: boolean;
  /** What differs from the plaintext answer ("" when equal). */
  readonly resultNote: string;
  readonly ledgerVerified: boolean;
  readonly duplicates: readonly string[];
  /** A failure of the harness's own steps (a node that did not start, …). */
  readonly error?: string;
  /** On failure: the tail of the victim's log (the exchange's for the undisturbed run; each party's for network). */
  readonly logTails?: readonly { readonly node: string; readonly tail: string }[];
  /** The trial's folder, when kept. */
  readonly keptIn?: string;
  readonly ok: boolean;
}

interface JobView {
  readonly state: string;
  readonly reason: string | null;
  readonly progress?: unknown;
}

/** A job's progress as "party phase done/total; …" (what each party was doing). */
function progressLine(v: JobView | undefined): string {
  const p = v?.progress;
  if (!p || typeof p !== "object") return "";
  return Object.entries(p as Record<string, { phase?: unknown; done?: unknown; total?: unknown } | null>)
    .filter(([, x]) => x && typeof x.phase === "string")
    .map(([party, x]) => `${party} ${String(x?.phase)} ${String(x?.done)}/${String(x?.total)}`)
    .join("; ");
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The job as the buyer's agent reports it, or undefined while it does not answer (killed, restarting, its exchange down). */
async function jobView(cluster: Cluster, token: string, job: string): Promise<JobView | undefined> {
  try {
    const res = await fetch(`${cluster.party(BUYER).url}/v1/jobs/${encodeURIComponent(job)}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return undefined;
    return (await res.json()) as JobView;
  } catch {
    return undefined;
  }
}

function victimNode(cluster: Cluster, c: ChaosCase, d: Disturbance): NodeProcess {
  if (d === "buyer") return cluster.party(BUYER);
  if (d === "provider") return cluster.party(c.providers[0] as string);
  return cluster.exchange;
}

/** The logs a failure shows: the victim's; for network, each party's (their side of the cut connections). */
function logTails(cluster: Cluster, c: ChaosCase, d: Disturbance): { node: string; tail: string }[] {
  const nodes = d === "network" ? [...cluster.parties.values()] : [victimNode(cluster, c, d)];
  return nodes.map((n) => ({ node: n.name, tail: n.tail(d === "network" ? 8 : 15) }));
}

/** The buyer's result: a table (from `job result --out`) or a count (printed), or what went wrong. */
async function fetchResult(cluster: Cluster, c: ChaosCase, job: string): Promise<{ value: Parameters<ChaosCase["compare"]>[0] } | { error: string }> {
  const out = join(cluster.root, "result.arrow");
  const r = await cluster.partyCli(BUYER, ["job", "result", job, ...(c.result === "table" ? ["--out", out] : [])]);
  if (r.status !== 0) return { error: `umbra job result exited ${r.status}: ${r.stderr.trim()}` };
  if (c.result === "table") return { value: await readTable(out) };
  const m = /intersection size: (\d+)/.exec(r.stdout);
  return m ? { value: Number(m[1]) } : { error: "umbra job result printed no intersection size" };
}

export async function runTrial(c: ChaosCase, plan: TrialPlan): Promise<TrialOutcome> {
  const d = plan.disturbance;
  const base = { protocol: c.protocol, disturbance: d, trial: plan.trial };
  const root = mkdtempSync(join(tmpdir(), `umbra-chaos-${c.protocol}-`));
  let cluster: Cluster | undefined;
  let outcome: TrialOutcome;
  try {
    cluster = await Cluster.start(c, root, d === "network");
    outcome = await runJob(cluster, c, plan);
  } catch (err) {
    const tails = cluster ? logTails(cluster, c, d) : [];
    outcome = { ...base, job: undefined, state: "-", reason: null, seconds: 0, succeeded: false, exact: false, resultNote: "", ledgerVerified: false, duplicates: [], error: err instanceof Error ? err.message : String(err), logTails: tails, ok: false };
  } finally {
    await cluster?.stop();
  }
  if (outcome.ok || !plan.keep) rmSync(root, { recursive: true, force: true });
  else outcome = { ...outcome, keptIn: root };
  return outcome;
}

interface Disturbed {
  disturbedAt?: number;
  midJob?: boolean;
  restartSeconds?: number;
}

/** Kills and restarts the victim, or cuts connections, at moments drawn in the window; `ended` tells whether the job has ended. */
async function disturb(cluster: Cluster, c: ChaosCase, plan: TrialPlan, t0: number, ended: () => boolean, running: () => boolean): Promise<Disturbed> {
  const d = plan.disturbance;
  // The moment(s), uniform in the window of the undisturbed run's duration.
  const r = rngFor(plan.seed, `${c.protocol}/${d}/${plan.trial}`);
  const [lo, hi] = plan.window ?? [0, 1];
  const moment = () => (lo + (hi - lo) * r()) * plan.baselineSeconds;
  let disturbedAt: number | undefined;
  let midJob: boolean | undefined;
  let restartSeconds: number | undefined;
  if (d === "exchange" || d === "buyer" || d === "provider") {
    if (plan.killWhenRunning === true) {
      while (!ended() && !running()) await wait(20);
      disturbedAt = (performance.now() - t0) / 1000;
    } else {
      disturbedAt = moment();
      await wait(Math.max(0, disturbedAt * 1000 - (performance.now() - t0)));
    }
    midJob = !ended();
    const victim = victimNode(cluster, c, d);
    await victim.kill();
    const tr = performance.now();
    await victim.start();
    restartSeconds = (performance.now() - tr) / 1000;
    plan.say(`    killed ${victim.name} at ${disturbedAt.toFixed(2)} s${midJob ? "" : " (the job had already ended)"}, listening again after ${restartSeconds.toFixed(2)} s`);
  } else if (d === "network") {
    const cuts = Array.from({ length: NETWORK_CUTS }, () => ({ at: moment(), party: [...cluster.proxies.keys()][below(r, cluster.proxies.size)] as string, outageMs: below(r, MAX_OUTAGE_MS + 1) })).sort((a, b) => a.at - b.at);
    disturbedAt = cuts[0]?.at;
    for (const cut of cuts) {
      await wait(Math.max(0, cut.at * 1000 - (performance.now() - t0)));
      if (midJob === undefined) midJob = !ended();
      cluster.proxies.get(cut.party)?.cut(cut.outageMs);
    }
    plan.say(`    cut ${cuts.map((x) => `${x.party} at ${x.at.toFixed(2)} s for ${(x.outageMs / 1000).toFixed(1)} s`).join(", ")}${midJob ? "" : " (the job had already ended)"}`);
  }
  return { ...(disturbedAt !== undefined ? { disturbedAt } : {}), ...(midJob !== undefined ? { midJob } : {}), ...(restartSeconds !== undefined ? { restartSeconds } : {}) };
}

async function runJob(cluster: Cluster, c: ChaosCase, plan: TrialPlan): Promise<TrialOutcome> {
  const d = plan.disturbance;
  const sub = await cluster.partyCli(BUYER, ["job", "submit", ...c.submit]);
  const job = /^job (\S+) (\w+)$/m.exec(sub.stdout)?.[1];
  if (sub.status !== 0 || job === undefined) throw new Error(`umbra job submit exited ${sub.status}: ${(sub.stderr || sub.stdout).trim()}`);
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const token = readFileSync(cluster.tokenFile(BUYER), "utf8").trim();

  let last: JobView | undefined;
  let ended = false;
  /** When the poll first saw the job ended, seconds after submission. */
  let endedAt: number | undefined;
  let abandoned = false;
  const poll = async (): Promise<void> => {
    while (!ended && !abandoned && elapsed() < plan.deadlineSeconds) {
      const v = await jobView(cluster, token, job);
      if (v) last = v;
      if (v && FINAL.includes(v.state)) {
        ended = true;
        endedAt = elapsed();
      } else await wait(200);
    }
  };
  const polling = poll();
  let disturbed: Disturbed;
  try {
    disturbed = await disturb(cluster, c, plan, t0, () => ended, () => last?.state === "running");
  } catch (err) {
    abandoned = true;
    await polling;
    throw err;
  }

  await polling;
  // The job's duration, not the disturbance's: a kill drawn after the job ended does not lengthen it.
  const seconds = endedAt ?? elapsed();
  const dropped = d === "network" ? [...cluster.proxies.values()].reduce((n, p) => n + p.dropped, 0) : undefined;
  let state = last?.state ?? "unknown";
  let reason = last?.reason ?? null;
  if (!ended) {
    const progress = progressLine(last);
    reason = `still ${state} ${plan.deadlineSeconds.toFixed(0)} s after submission (the deadline)${progress ? `; progress: ${progress}` : ""}${reason ? `; ${reason}` : ""}`;
    await cluster.partyCli(BUYER, ["job", "cancel", job]);
  }
  const succeeded = ended && state === "succeeded";
  let resultNote = "no result: the job did not succeed";
  if (succeeded) {
    const got = await fetchResult(cluster, c, job);
    resultNote = "error" in got ? got.error : c.compare(got.value);
  }
  if (!ended) state = `${state} (timed out)`;
  const ledger = await checkLedger(cluster.exchangeDb, job, succeeded);
  const ok = succeeded && resultNote === "" && ledger.verified && ledger.duplicates.length === 0;
  return {
    protocol: c.protocol,
    disturbance: d,
    trial: plan.trial,
    job,
    state,
    reason,
    seconds,
    ...disturbed,
    ...(dropped !== undefined ? { dropped } : {}),
    succeeded,
    exact: succeeded && resultNote === "",
    resultNote,
    ledgerVerified: ledger.verified,
    duplicates: ledger.verified ? ledger.duplicates : [ledger.verifyLine, ...ledger.duplicates],
    ...(ok ? {} : { logTails: logTails(cluster, c, d) }),
    ok,
  };
}
