/**
 * The exchange's own roles (node/jobs/exchange-roles.ts: federated-aggregate,
 * whose aggregator the exchange plays; join-aggregate, whose matcher and
 * aggregator it plays): started once every provider accepted, fed the
 * parties' envelopes one at a time, their answers sealed to the parties. A
 * role that refuses a message, or cannot start, fails the job (through the
 * job lifecycle).
 *
 * Durable (docs/durability.md): the role reads its input from the relay
 * table, in order; taking one envelope is one transaction — the role's new
 * state (a checkpoint), its answers queued for their recipients with their
 * ledger entries, the sender's watermark, and the input envelope deleted. A
 * restart resumes the role from its last checkpoint and reads on from the
 * first envelope not yet taken; an envelope taken before (at or below its
 * sender's watermark) is deleted unread.
 */
import { createHash } from "node:crypto";
import { UmbraError } from "../../../engine/errors.js";
import { getPool } from "../../../engine/pool/index.js";
import { openEnvelope, sealEnvelope } from "../../envelope.js";
import { LedgerKind } from "../../ledger.js";
import type { ExchangeRole, RoleFrame } from "../../jobs/exchange-roles.js";
import type { RelayRow } from "../../store.js";
import { MailboxFullError } from "../mailbox.js";
import { codeOf, type ExchangeContext } from "./context.js";
import type { JobLifecycle, RoleJob } from "./lifecycle.js";

/** A checkpoint's role name for the exchange's role. */
const ROLE = "exchange";

/** Envelopes in the relay table are opened when their role takes them, however long they waited (their sequence numbers stop replays). */
const NO_FRESHNESS_LIMIT = Number.MAX_SAFE_INTEGER;

export class RoleRunner {
  constructor(
    private readonly ctx: ExchangeContext,
    private readonly jobs: JobLifecycle,
    /** How long a role waits for room in a recipient's mailbox before the job fails. */
    private readonly deliveryWaitMs: number,
  ) {}

  /**
   * Puts a started job's role to work: once every provider has accepted (the
   * buyer's job.start is queued), or after a restart — from its last
   * checkpoint, or from the start when it had taken nothing — then it takes
   * its input as it comes.
   */
  run(rj: RoleJob): void {
    const { job } = rj;
    const ready = (async () => {
      // Let the buyer's job.start go out before the role's setup takes the event loop.
      await new Promise((r) => setImmediate(r));
      if (this.jobs.roleJobs.get(job.id) !== rj) return; // ended meanwhile
      let role: ExchangeRole;
      try {
        const resources = { pool: () => this.ctx.options.pool ?? getPool() };
        const saved = this.ctx.store.checkpoints.load(job.id, ROLE, { protocols: [rj.protocol.protocol], role: "exchange" });
        role = saved === undefined ? await rj.protocol.start(job, resources) : await rj.protocol.resume(job, resources, saved);
      } catch (err) {
        this.#fail(job.id, err);
        return;
      }
      if (this.ctx.closing || this.jobs.roleJobs.get(job.id) !== rj) role.dispose(); // the job ended while the role started
      else {
        rj.role = role;
        this.jobs.touch(job.id);
      }
    })();
    rj.chain = rj.chain.then(() => ready).then(() => this.#drain(rj));
  }

  /** An envelope for the role was queued: it takes it in turn. */
  wake(rj: RoleJob): void {
    rj.chain = rj.chain.then(() => this.#drain(rj));
  }

  /** Takes the role's queued input, one envelope at a time, until none is left (or the job ended). */
  async #drain(rj: RoleJob): Promise<void> {
    const { store, identity } = this.ctx;
    for (;;) {
      if (this.ctx.closing || this.jobs.roleJobs.get(rj.job.id) !== rj || !rj.role) return;
      const row = store.durable.relayNext(identity.name, rj.job.id, rj.cursor);
      if (row === undefined) return;
      rj.cursor = row.id;
      try {
        await this.#take(rj, rj.role, row);
      } catch (err) {
        if (this.ctx.closing) return;
        this.ctx.log.warn({ job: rj.job.id, code: codeOf(err) }, "the exchange's role refused a message");
        this.#fail(rj.job.id, err);
        return;
      }
    }
  }

  /** One input envelope: opened, fed to the role, and everything it changed committed at once. */
  async #take(rj: RoleJob, role: ExchangeRole, row: RelayRow): Promise<void> {
    const { store, identity, mailboxes } = this.ctx;
    const id = rj.job.id;
    const env = openEnvelope(row.frame, {
      self: identity,
      lookupSender: (name) => {
        const p = store.getParty(name);
        return p && p.boxPublicKey ? { signingPublicKey: p.signingPublicKey, boxPublicKey: p.boxPublicKey } : undefined;
      },
      // The relay checked freshness and nonce when it took the envelope; here its sequence stops a replay.
      replay: { seen: () => false, remember: () => undefined },
      maxSkewMs: NO_FRESHNESS_LIMIT,
    });
    if (env.sequence <= store.durable.processed(id, env.sender)) {
      mailboxes.commit((relay) => relay.remove(row.id));
      return;
    }
    const frames = await role.receive(env.sender, env.payload);
    const sealed = this.#seal(id, frames);
    if (!(await this.#room(rj, sealed))) return;
    mailboxes.commit((relay) => {
      store.checkpoints.save(id, ROLE, role.state as never);
      for (const s of sealed) {
        const digest = createHash("sha256").update(s.envelope).digest("hex");
        store.recordStep(id, { step: `step-${s.step}`, direction: "out", size: s.envelope.length, digest });
        this.ctx.ledger(LedgerKind.JobStep, { step: s.step, from: identity.name, to: s.to, size: s.envelope.length, digest }, id);
        relay.insert({ recipient: s.to, job: id, sender: identity.name, sequence: s.sequence, kind: "data", frame: s.envelope });
      }
      store.durable.markProcessed(id, env.sender, env.sequence);
      relay.remove(row.id);
    });
    if (this.jobs.roleJobs.get(id) === rj) this.jobs.touch(id);
  }

  /** Seals the role's messages to their parties, with sequence numbers taken now (a number taken for a step that never commits is skipped, harmlessly). */
  #seal(id: string, frames: readonly RoleFrame[]): { to: string; step: number; sequence: number; envelope: Uint8Array }[] {
    const { store, identity } = this.ctx;
    return frames.map(({ to, step, frame }) => {
      const party = store.getParty(to);
      if (!party?.boxPublicKey) throw new UmbraError("UMBRA_UNKNOWN_SENDER", "a party of the job has no box key");
      const sequence = this.ctx.nextSequence(id);
      return { to, step, sequence, envelope: sealEnvelope({ job: id, step, sender: identity, recipient: to, sequence, payload: frame, encryptTo: party.boxPublicKey, now: this.ctx.now }) };
    });
  }

  /**
   * Waits until every recipient's queue has room for what the role sends it
   * (only the recipient's cap: the job's share holds the role's unprocessed
   * input, which waits behind these). Meanwhile the role takes no further
   * envelope of this job, so the job's inbound relays fill its share and
   * their senders are answered 429. When the wait runs out the job fails
   * cleanly (UMBRA_MAILBOX_FULL); false when the job ended meanwhile.
   */
  async #room(rj: RoleJob, sealed: readonly { to: string; envelope: Uint8Array }[]): Promise<boolean> {
    const { mailboxes } = this.ctx;
    const ended = () => this.ctx.closing || this.jobs.roleJobs.get(rj.job.id) !== rj;
    const need = new Map<string, number>();
    for (const s of sealed) need.set(s.to, (need.get(s.to) ?? 0) + s.envelope.length);
    const fits = () => [...need].every(([to, bytes]) => mailboxes.fitsRecipient(to, Math.min(bytes, mailboxes.limits.perRecipientBytes)));
    const deadline = Date.now() + this.deliveryWaitMs;
    while (!ended() && !fits()) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await mailboxes.waitForRoom(() => ended() || fits(), left))) {
        if (ended()) break;
        throw new MailboxFullError("a party of the job has not taken the exchange's messages in time: the job cannot go on");
      }
    }
    return !ended();
  }

  #fail(job: string, err: unknown): void {
    try {
      this.jobs.fail(job, codeOf(err));
    } catch (e) {
      this.ctx.log.warn({ job, code: codeOf(e) }, "could not fail a job");
    }
  }
}
