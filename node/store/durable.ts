/**
 * The rows that make jobs durable (docs/durability.md): the exchange's relay
 * (every envelope kept until its recipient acknowledges it), envelope
 * sequence counters, a party's outbox, the per-sender watermarks that make a
 * redelivered envelope harmless, and the record a node rebuilds its role
 * from after a restart. Checkpoints of role states are node/store/checkpoints.ts.
 *
 * Every function here may run inside the caller's transaction: a step's new
 * state, its outgoing envelopes and its watermark commit together or not at all.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { blob, bytesOf, checkText } from "./checks.js";
import type { StoreContext } from "./context.js";

/** What a relayed envelope is: a protocol frame, or a control message starting or stopping a job. */
export type RelayKind = "data" | "start" | "stop";

export interface RelayInput {
  readonly recipient: string;
  readonly job: string;
  readonly sender: string;
  readonly sequence: number;
  readonly kind: RelayKind;
  readonly frame: Uint8Array;
}

export interface RelayRow extends RelayInput {
  /** The relay's delivery number: increasing in the order envelopes were taken. */
  readonly id: number;
}

/** Queued bytes by recipient, job and kind (the relay's caps are counted from these after a restart). */
export interface RelayUsage {
  /** The envelope's delivery number (absent in sums). */
  readonly id?: number;
  readonly recipient: string;
  readonly job: string;
  readonly kind: RelayKind;
  readonly bytes: number;
  /** How many envelopes (in sums). */
  readonly frames?: number;
}

export interface OutboxInput {
  readonly job: string;
  readonly kind: "frame" | "event";
  /** A frame's recipient, step and envelope sequence. */
  readonly recipient?: string;
  readonly step?: number;
  readonly sequence?: number;
  /** A frame's payload (sealed at each send), or an event's JSON. */
  readonly body: Uint8Array;
}

export interface OutboxRow extends OutboxInput {
  readonly id: number;
}

/** How a node rebuilds its role in an open job after a restart. */
export interface JobRun {
  readonly job: string;
  readonly role: string;
  /** How the job started (the job.start message, as JSON). */
  readonly start: unknown;
  /** The SHA-256 (hex) of the input file the role read, when it read one. */
  readonly inputHash: string | null;
  /** What the role reserved from a budget, as JSON. */
  readonly charge: unknown;
}

const checkSequence = (what: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return v;
};

interface RelaySqlRow {
  id: number;
  recipient: string;
  job: string;
  sender: string;
  sequence: number;
  kind: RelayKind;
  frame: Buffer;
}
const relayRow = (r: RelaySqlRow): RelayRow => ({ id: r.id, recipient: r.recipient, job: r.job, sender: r.sender, sequence: r.sequence, kind: r.kind, frame: bytesOf(r.frame) });

export class DurableRows {
  constructor(private readonly ctx: StoreContext) {}

  // ------------------------------------------------ the relay (exchange)

  /** Queues an envelope; undefined (nothing changed) when this sender's envelope of that sequence to that recipient is queued or was already. */
  relayInsert(f: RelayInput): number | undefined {
    checkText("recipient", f.recipient, 64);
    checkText("job", f.job, 128);
    checkSequence("sequence", f.sequence);
    if (this.relayed(f.job, f.sender, f.recipient, f.sequence)) return undefined;
    const info = this.ctx
      .sql("INSERT INTO relay (recipient, job, sender, sequence, kind, frame, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(f.recipient, f.job, f.sender, f.sequence, f.kind, blob(f.frame), this.ctx.time());
    // Protocol envelopes may be sent again (a party's outbox after a restart); control messages are the exchange's own, queued once.
    if (f.kind === "data") {
      this.ctx
        .sql("INSERT INTO relay_taken (job, sender, recipient, sequence) VALUES (?, ?, ?, ?) ON CONFLICT (job, sender, recipient) DO UPDATE SET sequence = max(sequence, excluded.sequence)")
        .run(f.job, f.sender, f.recipient, f.sequence);
    }
    return Number(info.lastInsertRowid);
  }

  /** Whether the relay has taken this envelope (queued now, or queued and acknowledged before). */
  relayed(job: string, sender: string, recipient: string, sequence: number): boolean {
    const w = this.ctx.sql("SELECT sequence FROM relay_taken WHERE job = ? AND sender = ? AND recipient = ?").get(job, sender, recipient) as { sequence: number } | undefined;
    return w !== undefined && sequence <= w.sequence;
  }

  /** The envelopes queued for `recipient` after delivery number `after`, in order, up to about `maxBytes` (at least one). */
  relayAfter(recipient: string, after: number, maxBytes: number): RelayRow[] {
    const out: RelayRow[] = [];
    let bytes = 0;
    for (const r of this.ctx.sql("SELECT * FROM relay WHERE recipient = ? AND id > ? ORDER BY id").iterate(recipient, after) as IterableIterator<RelaySqlRow>) {
      if (out.length > 0 && bytes + r.frame.length > maxBytes) break;
      out.push(relayRow(r));
      bytes += r.frame.length;
    }
    return out;
  }

  /** The next envelope of `job` queued for `recipient` after delivery number `after` (the exchange's own role reads its input so). */
  relayNext(recipient: string, job: string, after: number): RelayRow | undefined {
    const r = this.ctx.sql("SELECT * FROM relay WHERE recipient = ? AND job = ? AND id > ? ORDER BY id LIMIT 1").get(recipient, job, after) as RelaySqlRow | undefined;
    return r === undefined ? undefined : relayRow(r);
  }

  /** Deletes what `recipient` acknowledged of `job` (delivery numbers up to `upTo`); returns what went, for the caps. */
  relayAck(recipient: string, job: string, upTo: number): RelayUsage[] {
    const gone = this.ctx.sql("SELECT recipient, job, kind, length(frame) AS bytes FROM relay WHERE recipient = ? AND job = ? AND id <= ?").all(recipient, job, upTo) as RelayUsage[];
    if (gone.length > 0) this.ctx.sql("DELETE FROM relay WHERE recipient = ? AND job = ? AND id <= ?").run(recipient, job, upTo);
    return gone;
  }

  /** Deletes one queued envelope (the exchange's role processed it); returns what went. */
  relayDelete(id: number): RelayUsage | undefined {
    const r = this.ctx.sql("SELECT recipient, job, kind, length(frame) AS bytes FROM relay WHERE id = ?").get(id) as RelayUsage | undefined;
    if (r !== undefined) this.ctx.sql("DELETE FROM relay WHERE id = ?").run(id);
    return r;
  }

  /** Deletes every envelope of `job` but its job.stops (the job ended); returns what went. */
  relayReleaseJob(job: string): RelayUsage[] {
    const gone = this.ctx.sql("SELECT id, recipient, job, kind, length(frame) AS bytes FROM relay WHERE job = ? AND kind <> 'stop'").all(job) as RelayUsage[];
    if (gone.length > 0) this.ctx.sql("DELETE FROM relay WHERE job = ? AND kind <> 'stop'").run(job);
    this.ctx.sql("DELETE FROM relay_taken WHERE job = ?").run(job);
    return gone;
  }

  /** Queued bytes by recipient, job and kind. */
  relayUsage(): RelayUsage[] {
    return this.ctx.sql("SELECT recipient, job, kind, sum(length(frame)) AS bytes, count(*) AS frames FROM relay GROUP BY recipient, job, kind").all() as RelayUsage[];
  }

  /** The highest delivery number queued now (0: none). */
  relayLastId(): number {
    return (this.ctx.sql("SELECT max(id) AS id FROM relay").get() as { id: number | null }).id ?? 0;
  }

  // ------------------------------------------------ sequences

  /** Takes `sender`'s next envelope sequence number in `job` (durably: never handed out twice). */
  takeSequence(job: string, sender: string): number {
    const row = this.ctx.sql("INSERT INTO sequences (job, sender, next) VALUES (?, ?, 1) ON CONFLICT (job, sender) DO UPDATE SET next = next + 1 RETURNING next").get(job, sender) as { next: number };
    return row.next - 1;
  }

  // ------------------------------------------------ the outbox (party)

  outboxPut(row: OutboxInput): number {
    const info = this.ctx
      .sql("INSERT INTO outbox (job, kind, recipient, step, sequence, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(row.job, row.kind, row.recipient ?? null, row.step ?? null, row.sequence ?? null, blob(row.body), this.ctx.time());
    return Number(info.lastInsertRowid);
  }

  /** The oldest outbox row of `job`. */
  outboxFirst(job: string): OutboxRow | undefined {
    const r = this.ctx.sql("SELECT * FROM outbox WHERE job = ? ORDER BY id LIMIT 1").get(job) as
      | { id: number; job: string; kind: "frame" | "event"; recipient: string | null; step: number | null; sequence: number | null; body: Buffer }
      | undefined;
    if (r === undefined) return undefined;
    return { id: r.id, job: r.job, kind: r.kind, body: bytesOf(r.body), ...(r.recipient !== null ? { recipient: r.recipient } : {}), ...(r.step !== null ? { step: r.step } : {}), ...(r.sequence !== null ? { sequence: r.sequence } : {}) };
  }

  /** Jobs with something in the outbox. */
  outboxJobs(): string[] {
    return (this.ctx.sql("SELECT DISTINCT job FROM outbox ORDER BY job").all() as { job: string }[]).map((r) => r.job);
  }

  outboxDelete(id: number): void {
    this.ctx.sql("DELETE FROM outbox WHERE id = ?").run(id);
  }

  /** Drops a job's frames from the outbox, keeping its events (the job ended: its frames have nowhere to go; its last events must still reach the exchange). */
  outboxDropFrames(job: string): void {
    this.ctx.sql("DELETE FROM outbox WHERE job = ? AND kind = 'frame'").run(job);
  }

  // ------------------------------------------------ watermarks

  /** The highest sequence processed from `sender` in `job` (-1: none). */
  processed(job: string, sender: string): number {
    const r = this.ctx.sql("SELECT sequence FROM inbound WHERE job = ? AND sender = ?").get(job, sender) as { sequence: number } | undefined;
    return r?.sequence ?? -1;
  }

  markProcessed(job: string, sender: string, sequence: number): void {
    checkSequence("sequence", sequence);
    this.ctx.sql("INSERT INTO inbound (job, sender, sequence) VALUES (?, ?, ?) ON CONFLICT (job, sender) DO UPDATE SET sequence = max(sequence, excluded.sequence)").run(job, sender, sequence);
  }

  // ------------------------------------------------ runs

  putRun(run: JobRun): void {
    this.ctx
      .sql("INSERT INTO job_runs (job, role, start, input_hash, charge, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job) DO UPDATE SET role = excluded.role, start = excluded.start, input_hash = excluded.input_hash, charge = excluded.charge, updated_at = excluded.updated_at")
      .run(run.job, run.role, JSON.stringify(run.start), run.inputHash, run.charge === undefined || run.charge === null ? null : JSON.stringify(run.charge), this.ctx.time());
  }

  getRun(job: string): JobRun | undefined {
    const r = this.ctx.sql("SELECT * FROM job_runs WHERE job = ?").get(job) as { job: string; role: string; start: string; input_hash: string | null; charge: string | null } | undefined;
    return r === undefined ? undefined : { job: r.job, role: r.role, start: JSON.parse(r.start) as unknown, inputHash: r.input_hash, charge: r.charge === null ? null : (JSON.parse(r.charge) as unknown) };
  }

  listRuns(): JobRun[] {
    return (this.ctx.sql("SELECT job FROM job_runs ORDER BY updated_at, job").all() as { job: string }[]).map((r) => this.getRun(r.job) as JobRun);
  }

  /**
   * Forgets the rows kept to go on with `job` once it has ended here — its
   * run, watermarks and sequence counter, its outbox's envelopes (its events
   * stay until sent). Its checkpoints are Checkpoints.delete's. The exchange
   * calls it once the job's stops are queued (they take its last numbers).
   */
  forgetJob(job: string): void {
    this.ctx.sql("DELETE FROM job_runs WHERE job = ?").run(job);
    this.ctx.sql("DELETE FROM inbound WHERE job = ?").run(job);
    this.ctx.sql("DELETE FROM sequences WHERE job = ?").run(job);
    this.outboxDropFrames(job);
  }
}
