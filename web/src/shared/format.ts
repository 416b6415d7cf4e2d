/** Formatting and the job status arithmetic of node/commands/jobs.ts describeStatus. */
export const FINAL_STATES: readonly string[] = ["succeeded", "failed", "refused", "cancelled"];

export function num(n: number, locale: string): string {
  return n.toLocaleString(locale);
}

export function time(ms: number | string | null | undefined, locale: string): string {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toLocaleString(locale);
}

/** A duration in seconds as "1 h 2 min", "3 min 4 s", "5 s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

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
  readonly warnings?: readonly string[];
  /** Not in the contract: shown when a server adds it (which party failed or refused the job). */
  readonly by?: string;
}

export interface PartyProgress {
  readonly who: string;
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  readonly pct: number;
  /** Rows per second, averaged since the job was created. */
  readonly rate: number;
  /** Seconds left at that rate, when it is still running. */
  readonly eta: number | undefined;
}

/** Each party's progress as describeStatus computes it: a job that ended ran until its last update, not until now. */
export function progressOf(j: JobView, now: number): { rows: PartyProgress[]; counts: { who: string; n: number }[] } {
  const rows: PartyProgress[] = [];
  const counts: { who: string; n: number }[] = [];
  const p = j.progress;
  if (!p || typeof p !== "object") return { rows, counts };
  const elapsed = Math.max(0.001, ((FINAL_STATES.includes(j.state) ? j.updatedAt : now) - j.createdAt) / 1000);
  for (const [who, v] of Object.entries(p as Record<string, unknown>)) {
    const x = v as { phase?: unknown; done?: unknown; total?: unknown } | number | null;
    if (typeof x === "number") counts.push({ who, n: x });
    else if (x && typeof x.phase === "string" && typeof x.done === "number" && typeof x.total === "number") {
      const pct = x.total > 0 ? Math.floor((100 * x.done) / x.total) : 100;
      const rate = x.done / elapsed;
      rows.push({ who, phase: x.phase, done: x.done, total: x.total, pct, rate, eta: rate > 0 && x.done < x.total ? (x.total - x.done) / rate : undefined });
    }
  }
  return { rows, counts };
}

/** The policy rule a refusal names: a refused job's reason is the rule itself, a message "policy denied (RULE): …" names it. */
export function ruleOf(reason: string | null): string | undefined {
  if (reason === null) return undefined;
  const m = /policy denied \(([a-z-]+)\)/.exec(reason);
  if (m) return m[1];
  return /^[a-z]+(?:-[a-z]+)+$/.test(reason) ? reason : undefined;
}

/** The UMBRA_ code in a reason, if any. */
export function codeOf(reason: string | null): string | undefined {
  return reason === null ? undefined : (/UMBRA_[A-Z_]+/.exec(reason)?.[0] ?? undefined);
}
