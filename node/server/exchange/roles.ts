/**
 * The exchange's own roles (node/jobs/exchange-roles.ts: federated-aggregate,
 * whose aggregator the exchange plays; join-aggregate, whose matcher and
 * aggregator it plays): started once every provider accepted, fed the
 * parties' frames one at a time, their answers sealed to the parties. A role
 * that refuses a message, or cannot start, fails the job (through the job
 * lifecycle).
 */
import { createHash } from "node:crypto";
import { UmbraError } from "../../../engine/errors.js";
import { getPool } from "../../../engine/pool/index.js";
import { sealEnvelope } from "../../envelope.js";
import { LedgerKind } from "../../ledger.js";
import type { ExchangeRole, RoleFrame } from "../../jobs/exchange-roles.js";
import { ControlType } from "../control.js";
import { MailboxFullError } from "../mailbox.js";
import { codeOf, type ExchangeContext } from "./context.js";
import type { JobLifecycle, RoleJob } from "./lifecycle.js";

export class RoleRunner {
  constructor(
    private readonly ctx: ExchangeContext,
    private readonly jobs: JobLifecycle,
    /** How long a role waits for room in a recipient's mailbox before the job fails. */
    private readonly deliveryWaitMs: number,
  ) {}

  /**
   * Seals the role's messages to their parties and records each step. The
   * exchange's own messages are never dropped and never grow a recipient's
   * queue past its cap: a recipient whose mailbox is full is waited for, up
   * to deliveryWaitMs (only the recipient's cap: the job's share holds the
   * role's unprocessed input, which waits behind this message). Meanwhile
   * the role takes no further message of this job, so the job's inbound
   * relays fill its share and their senders are answered 429. When the wait
   * runs out the job fails cleanly (UMBRA_MAILBOX_FULL); when the job ends
   * meanwhile nothing more is sent.
   */
  async #deliver(rj: RoleJob, frames: readonly RoleFrame[]): Promise<void> {
    const { store, identity, mailboxes } = this.ctx;
    const id = rj.job.id;
    const ended = () => this.ctx.closing || this.jobs.roleJobs.get(id) !== rj;
    for (const { to, step, frame } of frames) {
      const party = store.getParty(to);
      if (!party?.boxPublicKey) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "a party of the job has no box key");
      const env = sealEnvelope({ job: id, step, sender: identity, recipient: to, sequence: this.ctx.nextSequence(), payload: frame, encryptTo: party.boxPublicKey, now: this.ctx.now });
      const deadline = Date.now() + this.deliveryWaitMs;
      while (!ended() && !mailboxes.fitsRecipient(to, env.length)) {
        const left = deadline - Date.now();
        if (left <= 0 || !(await mailboxes.waitForRoom(() => ended() || mailboxes.fitsRecipient(to, env.length), left))) {
          if (ended()) break;
          throw new MailboxFullError("a party of the job has not taken the exchange's messages in time: the job cannot go on");
        }
      }
      if (ended()) return;
      const digest = createHash("sha256").update(env).digest("hex");
      store.transaction(() => {
        store.recordStep(id, { step: `step-${step}`, direction: "out", size: env.length, digest });
        this.ctx.ledger(LedgerKind.JobStep, { step, from: identity.name, to, size: env.length, digest }, id);
      });
      mailboxes.offerOwn(to, id, env); // fits: checked above, with no wait since
    }
  }

  /**
   * Feeds one protocol frame to a job's role, in order; a refusal fails the
   * job. The frame's bytes count against the job's share of the queues
   * (held) until the role has taken it.
   */
  receive(rj: RoleJob, from: string, payload: Uint8Array, held: number): void {
    const id = rj.job.id;
    rj.chain = rj.chain.then(async () => {
      try {
        if (this.jobs.roleJobs.get(id) !== rj || !rj.role) return; // ended meanwhile
        await this.#deliver(rj, await rj.role.receive(from, payload));
        if (this.jobs.roleJobs.get(id) === rj) this.jobs.touch(id);
      } catch (err) {
        if (this.ctx.closing) return;
        this.ctx.log.warn({ job: id, code: codeOf(err) }, "the exchange's role refused a message");
        try {
          this.jobs.fail(id, codeOf(err));
        } catch (e) {
          this.ctx.log.warn({ job: id, code: codeOf(e) }, "could not fail a job");
        }
      } finally {
        this.ctx.mailboxes.unhold(id, held);
      }
    });
  }

  /**
   * Every provider has accepted: start the buyer and the exchange's role side
   * by side (each may take seconds, e.g. an HE context). The role's messages
   * wait in its chain until it is up; if it cannot start, the job fails.
   */
  start(rj: RoleJob): void {
    const { job } = rj;
    const { identity } = this.ctx;
    if (!this.ctx.sendStart(job.buyer, { type: ControlType.Start, job: job.id, role: "buyer", request: job.request, counterpart: identity.name, providers: job.providers, record: this.ctx.submittedRecord(job.id) })) {
      this.jobs.fail(job.id, "UMBRA_MAILBOX_FULL");
      return;
    }
    const ready = (async () => {
      // Let the buyer's job.start go out before the role's setup takes the event loop.
      await new Promise((r) => setImmediate(r));
      if (this.jobs.roleJobs.get(job.id) !== rj) return; // ended meanwhile
      let role: ExchangeRole;
      try {
        role = await rj.protocol.start(job, { pool: () => this.ctx.options.pool ?? getPool() });
      } catch (err) {
        this.jobs.fail(job.id, codeOf(err));
        return;
      }
      if (this.ctx.closing || this.jobs.roleJobs.get(job.id) !== rj) role.dispose(); // the job ended while the role started
      else {
        rj.role = role;
        this.jobs.touch(job.id);
      }
    })();
    rj.chain = rj.chain.then(() => ready);
  }
}
