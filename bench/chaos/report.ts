/**
 * The chaos run's output: one line per trial as it ends (with, for a
 * failure, the job's state and reason, what differs from the plaintext
 * answer, the ledger's problems and the tail of the victim's log), and the
 * table — protocol × victim: trials, succeeded, results exact, ledger clean,
 * killed mid-job, the median extra time over the undisturbed run.
 */
import { formatTable, median } from "../table.js";
import type { ProtocolRun } from "./run.js";
import type { TrialOutcome } from "./trial.js";

const secs = (s: number): string => `${s.toFixed(1)} s`;

/** One trial, as it ends: a line, and the details of a failure. */
export function describeTrial(t: TrialOutcome): string {
  const who = t.disturbance === "none" ? "undisturbed" : `${t.disturbance} #${t.trial}`;
  const head = `  ${t.protocol} × ${who}: ${t.ok ? "ok" : "FAILED"} — job ${t.job ?? "-"} ${t.state}${t.reason ? ` (${t.reason})` : ""} after ${secs(t.seconds)}`;
  if (t.ok) return head;
  const lines = [head];
  if (t.error) lines.push(`      harness: ${t.error}`);
  if (t.succeeded && t.resultNote) lines.push(`      result differs from the plaintext answer: ${t.resultNote}`);
  if (!t.ledgerVerified && t.job) lines.push("      umbra audit verify failed");
  for (const d of t.duplicates) lines.push(`      ledger: ${d}`);
  for (const { node, tail } of t.logTails ?? []) {
    lines.push(`      tail of ${node}'s log (request lines left out):`);
    lines.push(...tail.split("\n").map((l) => `        ${l}`));
  }
  if (t.keptIn) lines.push(`      data, databases and logs kept in ${t.keptIn}`);
  return lines.join("\n");
}

export interface TableRow {
  readonly protocol: string;
  readonly victim: string;
  readonly trials: number;
  readonly succeeded: number;
  readonly exact: number;
  readonly ledgerClean: number;
  readonly midJob: number;
  readonly undisturbedSeconds: number;
  /** Median over the succeeded trials of (trial − undisturbed) seconds; null when none succeeded. */
  readonly extraSeconds: number | null;
}

export function tableRows(runs: readonly ProtocolRun[]): TableRow[] {
  const rows: TableRow[] = [];
  for (const r of runs) {
    const victims = [...new Set(r.trials.map((t) => t.disturbance))];
    if (!r.undisturbed.ok) rows.push({ protocol: r.protocol, victim: "(undisturbed run failed)", trials: 0, succeeded: 0, exact: 0, ledgerClean: 0, midJob: 0, undisturbedSeconds: r.undisturbed.seconds, extraSeconds: null });
    for (const v of victims) {
      const ts = r.trials.filter((t) => t.disturbance === v);
      const ok = ts.filter((t) => t.succeeded);
      rows.push({
        protocol: r.protocol,
        victim: v,
        trials: ts.length,
        succeeded: ok.length,
        exact: ts.filter((t) => t.exact).length,
        ledgerClean: ts.filter((t) => t.ledgerVerified && t.duplicates.length === 0 && t.job !== undefined).length,
        midJob: ts.filter((t) => t.midJob === true).length,
        undisturbedSeconds: r.undisturbed.seconds,
        extraSeconds: ok.length > 0 ? median(ok.map((t) => t.seconds - r.undisturbed.seconds)) : null,
      });
    }
  }
  return rows;
}

export function formatChaosTable(rows: readonly TableRow[]): string {
  return formatTable(
    ["protocol", "victim", "trials", "succeeded", "results exact", "ledger clean", "mid-job", "undisturbed", "extra time (median)"],
    rows.map((r) => [
      r.protocol,
      r.victim,
      String(r.trials),
      String(r.succeeded),
      String(r.exact),
      String(r.ledgerClean),
      String(r.midJob),
      secs(r.undisturbedSeconds),
      r.extraSeconds === null ? "-" : `${r.extraSeconds >= 0 ? "+" : ""}${secs(r.extraSeconds)}`,
    ]),
  );
}
