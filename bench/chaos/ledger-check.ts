/**
 * The exchange's ledger after a chaos trial, read as a user reads it:
 * `umbra audit verify --db FILE` must pass (every hash, link and
 * signature), and `umbra audit show --db FILE --job ID` must hold each event
 * of the job once — one `job.submitted`; one ending entry (`job.result`,
 * `job.failed` or `job.cancelled`), and for a job that succeeded that one is
 * its `job.result`; at most one `accepted` and one `charged` step per
 * provider; no two `job.step` entries with the same digest (a message
 * relayed, and recorded, twice).
 */
import { umbra } from "./processes.js";

export interface LedgerLine {
  readonly seq: number;
  readonly kind: string;
  readonly body: Readonly<Record<string, unknown>>;
}

/** The lines of `umbra audit show`: SEQ  TIME  KIND  JOB  BODY. */
export function parseAuditShow(text: string): LedgerLine[] {
  const out: LedgerLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+) {2}\S+ {2}(\S+) {2}\S+ {2}(\{.*\})$/.exec(line);
    if (m) out.push({ seq: Number(m[1]), kind: m[2] as string, body: JSON.parse(m[3] as string) as Record<string, unknown> });
  }
  return out;
}

/** The duplicates in one job's entries ([] when each event is there once). */
export function duplicateEntries(entries: readonly LedgerLine[], succeeded: boolean): string[] {
  const problems: string[] = [];
  const count = (p: (e: LedgerLine) => boolean) => entries.filter(p).length;
  const submitted = count((e) => e.kind === "job.submitted");
  if (submitted !== 1) problems.push(`${submitted} job.submitted entries`);
  const ends = entries.filter((e) => e.kind === "job.result" || e.kind === "job.failed" || e.kind === "job.cancelled");
  if (ends.length > 1 || (succeeded && (ends.length !== 1 || ends[0]?.kind !== "job.result"))) {
    problems.push(`ending entries: ${ends.map((e) => `${e.kind} (seq ${e.seq})`).join(", ") || "none"}`);
  }
  for (const step of ["accepted", "charged"]) {
    const by = new Map<string, number>();
    for (const e of entries) if (e.kind === "job.step" && e.body["step"] === step) by.set(String(e.body["by"]), (by.get(String(e.body["by"])) ?? 0) + 1);
    for (const [party, n] of by) if (n > 1) problems.push(`${n} "${step}" steps by ${party}`);
  }
  const digests = new Map<string, number>();
  for (const e of entries) if (e.kind === "job.step" && typeof e.body["digest"] === "string") digests.set(e.body["digest"], (digests.get(e.body["digest"]) ?? 0) + 1);
  const twice = [...digests.values()].filter((n) => n > 1).length;
  if (twice > 0) problems.push(`${twice} job.step digests recorded more than once`);
  return problems;
}

export interface LedgerCheck {
  /** `umbra audit verify` passed. */
  readonly verified: boolean;
  /** What it printed (first line). */
  readonly verifyLine: string;
  /** The job's duplicate entries ([] when none). */
  readonly duplicates: readonly string[];
  /** The job's entries, for a failure's report. */
  readonly entries: readonly LedgerLine[];
}

export async function checkLedger(db: string, job: string, succeeded: boolean): Promise<LedgerCheck> {
  const verify = await umbra(["audit", "verify", "--db", db]);
  const show = await umbra(["audit", "show", "--db", db, "--job", job]);
  const entries = parseAuditShow(show.stdout);
  const duplicates = show.status === 0 ? duplicateEntries(entries, succeeded) : [`umbra audit show exited ${show.status}: ${show.stderr.trim()}`];
  return { verified: verify.status === 0, verifyLine: (verify.stdout + verify.stderr).trim().split("\n")[0] ?? "", duplicates, entries };
}
