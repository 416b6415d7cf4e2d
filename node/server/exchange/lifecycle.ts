/**
 * The job lifecycle: the one place a job changes state. Each way a job moves
 * on — accepted, refused, succeeded, failed, cancelled, timed out — is one
 * method here that changes the job's state and appends its ledger entry in
 * one transaction and then, for a job that ended, frees what the exchange
 * held in memory for it and tells every party that still needs to hear that
 * it stopped. Routes and the exchange's roles call these; none of them
 * transitions a job or writes its ledger entry itself.
 *
 * Budgets count what was measured: at submission the exchange takes each
 * dataset's cost (a job, or the declared keys); a provider whose budget
 * counts keys reports the buyer's measured key count once its role knows it
 * ("charged"), and the difference goes back; a job ending before a provider
 * measured gives that provider's reservation back in full.
 *
 * Jobs that go silent (a party gone and not back) are failed by the sweeper,
 * so nobody waits forever. Activity is a job's last accepted relay, valid
 * event (one that changed something) or stored progress report, or its
 * role's answer: nothing a party can send without moving the job on keeps it
 * alive (finding 13).
 */
import { UmbraError } from "../../../engine/errors.js";
import { MailboxFullError } from "../mailbox.js";
import { LedgerKind, listEntries } from "../../ledger.js";
import { jobDatasets, refundPrivacy, settlesByKeys, type JobRequest } from "../../policy.js";
import type { JobRecord } from "../../store.js";
import { exchangeProtocolFor, type ExchangeProtocol, type ExchangeRole, type MultiPartyJob } from "../../jobs/exchange-roles.js";
import { jobLimitsOf } from "../../jobs/protocol.js";
import type { ExchangeContext } from "./context.js";
import { issueJobReceipt } from "../../venue/billing.js";

/** An open job with an exchange-side role, as the exchange holds it in memory (rebuilt from the store after a restart: {@link JobLifecycle.resumeOpen}). */
export interface RoleJob {
  readonly protocol: ExchangeProtocol;
  readonly job: MultiPartyJob;
  readonly accepted: Set<string>;
  started: boolean;
  role?: ExchangeRole;
  /** The delivery number of the last envelope of the role's input it has taken (it reads its input from the relay, in order). */
  cursor: number;
  /** The role's work, one envelope at a time. */
  chain: Promise<void>;
}

/** What a job took from one dataset's budget at submission, and whether its provider has reported the measured keys. */
export interface Reservation {
  readonly provider: string;
  readonly dataset: string;
  readonly reserved: number;
  /** The dataset's budget counts keys: the charge settles to the measured count. */
  readonly keys: boolean;
  readonly charged: boolean;
}

/** A party with no poll open and no request for this long is named as missing when its job times out. */
const ABSENT_AFTER_MS = 2_000;

/** A job's state is one of these while it may still change. */
const OPEN = ["submitted", "running"] as const;
const isOpen = (j: JobRecord): boolean => j.state === "submitted" || j.state === "running";

export class JobLifecycle {
  /** The jobs with an exchange-side role, by id (node/server/exchange/roles.ts runs them). */
  readonly roleJobs = new Map<string, RoleJob>();
  readonly #activity = new Map<string, number>();

  constructor(
    private readonly ctx: ExchangeContext,
    /** A job with no activity for this long is failed. */
    readonly timeoutMs: number,
  ) {}

  /** What the exchange holds in memory for open jobs (a health check, and the attack tests). */
  inMemory(): { readonly roleJobs: number; readonly activity: number } {
    return { roleJobs: this.roleJobs.size, activity: this.#activity.size };
  }

  /** Holds a newly submitted job with an exchange-side role. */
  addRoleJob(protocol: ExchangeProtocol, job: MultiPartyJob): RoleJob {
    const rj: RoleJob = { protocol, job, accepted: new Set(), started: false, cursor: 0, chain: Promise.resolve() };
    this.roleJobs.set(job.id, rj);
    return rj;
  }

  /**
   * After a restart: every open job goes on. Its activity counts from now
   * (the parties had no exchange to talk to), and a job with an
   * exchange-side role is held again as it was — who accepted is in the
   * ledger, whether it started is its state. Returns those jobs (the caller
   * resumes the started ones' roles). Run once, when the exchange is built.
   */
  resumeOpen(): RoleJob[] {
    const out: RoleJob[] = [];
    for (const j of this.ctx.store.listJobs({ state: [...OPEN] })) {
      this.touch(j.id);
      const protocol = exchangeProtocolFor(j.protocol);
      if (protocol === undefined) continue;
      const request = requestOf(j);
      const rj = this.addRoleJob(protocol, { id: j.id, request, buyer: j.buyer, providers: j.providers, limits: jobLimitsOf(request) });
      for (const e of listEntries(this.ctx.store, { job: j.id })) if (e.kind === LedgerKind.JobStep && e.body["step"] === "accepted") rj.accepted.add(String(e.body["by"]));
      rj.started = j.state === "running";
      out.push(rj);
    }
    return out;
  }

  /** Records activity on a job (see this file's header). */
  touch(id: string): void {
    this.#activity.set(id, this.ctx.now());
  }

  /** What the job took from each dataset, by provider, and whether that provider has reported. */
  reservations(j: JobRecord): Reservation[] {
    const entries = listEntries(this.ctx.store, { job: j.id });
    const submitted = entries.find((e) => e.kind === LedgerKind.JobSubmitted);
    if (submitted === undefined) return [];
    const request = requestOf(j);
    const cost = submitted.body["cost"];
    return jobDatasets(request).map((dataset, i) => {
      const provider = j.providers[i] as string;
      const reserved = Array.isArray(cost) ? Number(cost[i] ?? 0) : Number(cost ?? 0);
      const policy = this.ctx.loadPolicy(dataset);
      const keys = policy !== undefined && settlesByKeys(policy, request);
      const charged = entries.some((e) => e.kind === LedgerKind.JobStep && e.body["step"] === "charged" && e.body["by"] === provider);
      return { provider, dataset, reserved, keys, charged };
    });
  }

  // ------------------------------------------------ a job moves on

  /**
   * The exchange refused a submission: the job is recorded refused, with the
   * rule and the dataset whose policy refused it; nothing was charged and no
   * party heard of it.
   */
  refuseSubmission(job: { id: string; request: JobRequest; providers: string[] }, rule: string, dataset: string): void {
    const { store } = this.ctx;
    store.transaction(() => {
      store.createJob({ id: job.id, protocol: job.request.protocol, buyer: job.request.buyer, providers: job.providers, params: { request: job.request } as never });
      store.transitionJob(job.id, ["submitted"], "refused", rule);
      this.ctx.ledger(LedgerKind.JobRefused, { rule, by: "exchange", dataset }, job.id);
    });
  }

  /**
   * The provider of a two-party job accepted it: running, and the buyer's
   * job.start queued in the same transaction (`startBuyer`; false: no room,
   * nothing changes). Said again (its agent resent it after a restart): nothing changes.
   */
  acceptTwoParty(j: JobRecord, party: string, startBuyer: () => boolean): JobRecord {
    if (j.state !== "submitted") return j;
    const r = this.ctx.mailboxes.commit(() => {
      const x = this.ctx.store.transitionJob(j.id, ["submitted"], "running");
      this.ctx.ledger(LedgerKind.JobStep, { step: "accepted", by: party }, j.id);
      if (!startBuyer()) throw new MailboxFullError("the buyer's mailbox has no room for the job's start: the acceptance was not recorded; it is sent again");
      return x;
    });
    this.touch(j.id);
    return r;
  }

  /**
   * A provider of a job with an exchange-side role accepted it (once). When
   * it is the last to, the job runs and the buyer's job.start is queued in
   * the same transaction: `"start"` (the caller starts the role); otherwise
   * the job as it stands.
   */
  acceptWithRole(j: JobRecord, rj: RoleJob, party: string, startBuyer: () => boolean): { job: JobRecord; start: boolean } {
    if (j.state !== "submitted" || rj.accepted.has(party)) return { job: j, start: false };
    const last = rj.accepted.size + 1 >= rj.job.providers.length && !rj.started;
    const job = this.ctx.mailboxes.commit(() => {
      this.ctx.ledger(LedgerKind.JobStep, { step: "accepted", by: party }, j.id);
      if (!last) return j;
      const x = this.ctx.store.transitionJob(j.id, ["submitted"], "running");
      if (!startBuyer()) throw new MailboxFullError("the buyer's mailbox has no room for the job's start: the acceptance was not recorded; it is sent again");
      return x;
    });
    rj.accepted.add(party);
    this.touch(j.id);
    if (last) rj.started = true;
    return { job, start: last };
  }

  /**
   * A provider refused the job: refused, every dataset's charge back (nothing
   * ran, whatever the unit), its ρ too (nothing was released; a provider that
   * had accepted keeps its own copy's charge: it fails closed). The other providers (of a job with an
   * exchange-side role) may have accepted already: they stop, and nothing
   * reaches the buyer. The buyer's agent recorded the job when it submitted
   * it: it learns the job ends here.
   */
  refuse(j: JobRecord, rule: string, party: string): JobRecord {
    const { store } = this.ctx;
    const r = store.transaction(() => {
      const x = store.transitionJob(j.id, ["submitted"], "refused", rule);
      for (const res of this.reservations(j)) if (res.reserved > 0 && store.getBudget(res.dataset, j.buyer)) store.refundBudget(res.dataset, j.buyer, res.reserved);
      const spends = (j.params as { privacy?: { dataset: string; rho: string }[] } | null)?.privacy ?? [];
      const privacyRefunded = spends.map((p) => ({ dataset: p.dataset, rho: p.rho, spent: refundPrivacy(store, p.dataset, j.buyer, p.rho) }));
      // Nothing ran: the job its contracts reserved is theirs again (docs/venue.md).
      for (const c of (j.params as { request?: { contracts?: string[] } } | null)?.request?.contracts ?? []) store.venue.releaseJob(c);
      this.ctx.ledger(LedgerKind.JobRefused, { rule, by: "provider", party, ...(privacyRefunded.length > 0 ? { privacyRefunded } : {}) }, j.id);
      return x;
    });
    this.#end(j, "refused", [...j.providers.filter((p) => p !== party), j.buyer]);
    return r;
  }

  /**
   * The buyer reports its result's digest (the result itself is not the
   * exchange's to keep, finding 8): succeeded; the providers stop. A job
   * under contracts gets its one receipt in the same transaction, from the
   * units measured (`units`: the buyer's, checked; the providers' charged
   * entries) — docs/venue.md, "Receipts and statements".
   */
  succeed(j: JobRecord, digest: string, units: { readonly matchedRows?: number; readonly cells?: number } = {}): JobRecord {
    const r = this.ctx.store.transaction(() => {
      const x = this.ctx.store.transitionJob(j.id, ["running"], "succeeded", null);
      this.ctx.ledger(LedgerKind.JobResult, { digest }, j.id);
      issueJobReceipt(this.ctx.store, this.ctx.identity.signing, x, requestOf(j), units, this.ctx.now());
      return x;
    });
    this.#end(j, "succeeded", j.providers);
    return r;
  }

  /** The buyer cancels its job: every party stops. */
  cancel(j: JobRecord): JobRecord {
    const done = this.#close(j, "cancelled", "cancelled by the buyer", LedgerKind.JobCancelled, { by: "buyer" });
    this.#end(j, "cancelled", [j.buyer, ...j.providers]);
    return done;
  }

  /** A party of the job fails it: the others stop. */
  failedBy(j: JobRecord, party: string, reason: string): JobRecord {
    const r = this.#close(j, "failed", reason, LedgerKind.JobFailed, { reason, by: party });
    this.#end(j, "failed", [j.buyer, ...j.providers].filter((p) => p !== party));
    return r;
  }

  /** Fails a running or submitted job from the exchange's side: ledger, state, every party stopped. */
  fail(id: string, reason: string, extra: Record<string, unknown> = {}): void {
    const j = this.ctx.store.getJob(id);
    if (!j || !isOpen(j)) {
      this.#endRole(id);
      this.#activity.delete(id);
      return;
    }
    this.#close(j, "failed", reason, LedgerKind.JobFailed, { reason, by: this.ctx.identity.name, ...extra });
    this.#end(j, "failed", [j.buyer, ...j.providers]);
  }

  /** A provider whose budget counts keys reports the buyer's distinct keys as its role measured them (once): what was reserved beyond them goes back. */
  charge(j: JobRecord, mine: Reservation, units: number): void {
    const { store } = this.ctx;
    store.transaction(() => {
      // A report for a contract's price per key only (the budget does not count keys) gives nothing back.
      if (mine.keys && mine.reserved > units) store.refundBudget(mine.dataset, j.buyer, mine.reserved - units);
      this.ctx.ledger(LedgerKind.JobStep, { step: "charged", by: mine.provider, dataset: mine.dataset, units }, j.id);
    });
    this.touch(j.id);
  }

  /**
   * Fails every open job silent for longer than the timeout. A job with an
   * exchange-side role names who it still waits for: providers that never
   * accepted, or the parties whose messages the role lacks.
   */
  sweep(): void {
    const active = this.ctx.store.listJobs({ state: [...OPEN] });
    // Only active jobs keep an activity time (each ending deletes its own; this catches any left behind).
    const ids = new Set(active.map((j) => j.id));
    for (const id of this.#activity.keys()) if (!ids.has(id)) this.#activity.delete(id);
    for (const j of active) {
      const last = this.#activity.get(j.id) ?? j.updatedAt;
      if (this.ctx.now() - last <= this.timeoutMs) continue;
      const rj = this.roleJobs.get(j.id);
      // Who the job waits for: what its role lacks, or the providers that never accepted; else the parties gone quiet.
      const waitingFor = rj ? (rj.started ? [...(rj.role?.missing() ?? [])] : rj.job.providers.filter((p) => !rj.accepted.has(p))) : [];
      const gone = [j.buyer, ...j.providers].filter((p) => this.ctx.absent(p, ABSENT_AFTER_MS));
      const missing = waitingFor.length > 0 ? waitingFor : gone;
      const reason = missing.length > 0 ? "UMBRA_MISSING_PARTY" : "UMBRA_JOB_TIMEOUT";
      this.#endRole(j.id);
      try {
        this.#close(j, "failed", reason, LedgerKind.JobFailed, { reason, ...(missing.length > 0 ? { missing } : {}) });
      } catch (err) {
        this.ctx.log.warn({ job: j.id, code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not time out a job");
        continue;
      }
      this.#end(j, "failed", [j.buyer, ...j.providers]);
    }
  }

  /** Runs {@link sweep} on a timer (a quarter of the timeout, between 50 ms and 5 s); returns its stop. */
  startSweeper(): () => void {
    const timer = setInterval(() => this.sweep(), Math.min(5000, Math.max(50, Math.floor(this.timeoutMs / 4))));
    timer.unref();
    return () => clearInterval(timer);
  }

  // ------------------------------------------------ the shared steps

  /**
   * Ends a submitted or running job in `to`, in one transaction: its state,
   * the reservations no provider measured given back (a job ending before a
   * provider measured the buyer's keys evaluated none of them), and its
   * ledger entry. (Telling the parties and freeing memory is #end's, after it.)
   */
  #close(j: JobRecord, to: "failed" | "cancelled", reason: string, kind: LedgerKind, body: Record<string, unknown>): JobRecord {
    const { store } = this.ctx;
    return store.transaction(() => {
      const x = store.transitionJob(j.id, [...OPEN], to, reason);
      for (const r of this.reservations(j)) if (r.keys && !r.charged && r.reserved > 0 && store.getBudget(r.dataset, j.buyer)) store.refundBudget(r.dataset, j.buyer, r.reserved);
      this.ctx.ledger(kind, body, j.id);
      return x;
    });
  }

  /**
   * What the exchange keeps in memory for a job that has ended is freed here
   * (every way a job ends comes here, after its state changed): its role, its
   * activity time and its frames still queued. Then `notify` are told it
   * stopped — but a provider whose job.start was still queued never learned
   * of the job and needs no stop; the buyer always hears (its agent recorded
   * the job when it submitted it).
   */
  #end(j: JobRecord, reason: string, notify: readonly string[]): void {
    this.#endRole(j.id);
    this.#activity.delete(j.id);
    const untaken = this.ctx.mailboxes.releaseJob(j.id);
    for (const p of notify) if (p === j.buyer || !untaken.has(p)) this.ctx.sendStop(p, j.id, reason);
    // The stops took the job's last sequence numbers: what was kept to go on with it goes (red-team finding F16-1).
    this.ctx.store.transaction(() => {
      this.ctx.store.checkpoints.delete(j.id);
      this.ctx.store.durable.forgetJob(j.id);
    });
  }

  /** Frees a job's exchange-side role. */
  #endRole(id: string): void {
    const rj = this.roleJobs.get(id);
    if (!rj) return;
    this.roleJobs.delete(id);
    rj.role?.dispose();
  }
}

/** The request a job runs (as the exchange filled it and the ledger recorded it). */
export function requestOf(j: JobRecord): JobRequest {
  return (j.params as unknown as { request: JobRequest }).request;
}
