/**
 * The exchange's mailboxes: one queue of envelopes per party, kept in the
 * exchange's store (the relay table, node/store/durable.ts) so that nothing
 * queued is lost when the exchange stops. Parties only ever connect out to
 * the exchange (hub and spoke): a party long-polls for the envelopes queued
 * after the last one it has seen (a batch: [u64 delivery number][u32
 * length][envelope]...), and acknowledges, per job, the delivery number up to
 * which it has durably processed them; only then are they deleted. After a
 * restart of either side, what was not acknowledged is delivered again (the
 * recipient skips what it has processed, by the envelopes' sequence numbers).
 * The exchange's own role reads its envelopes from the same table.
 *
 * Every queue is bounded (security finding 10; durable-jobs issue). A
 * protocol envelope (`data`) is queued only while its recipient's
 * unacknowledged bytes, its job's bytes and all queued bytes stay within
 * {@link MailboxLimits}: the relay answers 429 otherwise and changes
 * nothing. Envelopes for the exchange's own role count against their job's
 * share and the total; the role's own envelopes against their recipient's
 * cap only ({@link Mailboxes.fitsRecipient}: the role waits for room, or fails
 * the job). Control messages (job.start) have a small byte reserve of their
 * own per recipient, so a full data queue never keeps a job from starting or
 * stopping; a job.stop is always queued (at most one per job a party took
 * part in). When a job ends its queued envelopes are released
 * ({@link Mailboxes.releaseJob}); a job.start its party never took goes with
 * them, and that party needs no job.stop.
 */
import { InvalidArgumentError, UmbraError } from "../../engine/errors.js";
import { decodeEnvelope, ENVELOPE_OVERHEAD_BYTES } from "../../protocols/envelope-codec.js";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../envelope.js";
import type { RelayInput, RelayKind, RelayUsage, Store } from "../store.js";

interface Waiter {
  readonly wake: () => void;
}

/** What a queued envelope is: a protocol frame, or a control message starting or stopping a job. */
export type FrameKind = RelayKind;

/** One envelope handed to its recipient, with its delivery number (what the recipient acknowledges). */
export interface Delivery {
  readonly id: number;
  readonly frame: Uint8Array;
}

/** The relay's writes inside one transaction (with whatever else the caller records there). */
export interface RelayWrites {
  /** Queues an envelope; its delivery number, or undefined when this envelope was taken before (nothing changes). */
  insert(row: RelayInput): number | undefined;
  /** Deletes one envelope the exchange's own role has processed. */
  remove(id: number): void;
  /** Deletes what `party` acknowledged of `job`. */
  ack(party: string, job: string, upTo: number): void;
  /** Deletes every envelope of `job` but its job.stops; returns what went. */
  release(job: string): RelayUsage[];
}

/** A change to the queues' bytes, counted once its transaction has committed. */
interface Change {
  readonly recipient: string;
  readonly job: string;
  readonly kind: RelayKind;
  readonly bytes: number;
  readonly sign: 1 | -1;
}
/** Largest bytes handed out in one poll (frames beyond it wait for the next). */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;

/** The byte caps of the mailboxes. */
export interface MailboxLimits {
  /** Protocol frames queued for one recipient (default 64 MiB). */
  readonly perRecipientBytes: number;
  /** Protocol frames of one job: queued for its parties, and held by the exchange's role of it (default 96 MiB). */
  readonly perJobBytes: number;
  /** Protocol frames queued and held in all (default 512 MiB). */
  readonly totalBytes: number;
  /** Control messages (job.start) queued for one recipient (default 1 MiB). */
  readonly controlBytesPerRecipient: number;
}

export const DEFAULT_MAILBOX_LIMITS: MailboxLimits = {
  perRecipientBytes: 64 * 1024 * 1024,
  perJobBytes: 96 * 1024 * 1024,
  totalBytes: 512 * 1024 * 1024,
  controlBytesPerRecipient: 1024 * 1024,
};

/** A frame the mailboxes have no room for: its sender should wait and send it again (nothing was queued). */
export class MailboxFullError extends UmbraError {
  /** Seconds to wait before sending again (the Retry-After answer). */
  readonly retryAfterSeconds: number;
  constructor(message = "the recipient's mailbox is full: nothing was queued; send it again after a pause", retryAfterSeconds = 1) {
    super("UMBRA_MAILBOX_FULL", message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Checks limits: each a whole number of bytes, data caps at least `minFrameBytes` (a largest frame must fit an empty queue). */
export function mailboxLimits(given: Partial<MailboxLimits> = {}, minFrameBytes = 0): MailboxLimits {
  const l = { ...DEFAULT_MAILBOX_LIMITS, ...given };
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`mailbox limit ${k} must be a positive whole number of bytes`);
  }
  if (l.perRecipientBytes < minFrameBytes || l.perJobBytes < minFrameBytes || l.totalBytes < minFrameBytes) {
    throw new InvalidArgumentError(`mailbox data limits must be at least ${minFrameBytes} bytes (a largest envelope)`);
  }
  return l;
}

const add = (m: Map<string, number>, k: string, n: number): void => {
  const v = (m.get(k) ?? 0) + n;
  if (v <= 0) m.delete(k);
  else m.set(k, v);
};

export class Mailboxes {
  readonly limits: MailboxLimits;
  readonly #store: Store;
  /** The exchange's own name: envelopes to it are its role's input (held: the job's share and the total, not a recipient cap). */
  readonly #self: string;
  readonly #waiters = new Map<string, Waiter>();
  /** Protocol bytes queued per recipient, per job (queued and held), control bytes per recipient, and in all. */
  readonly #recipientBytes = new Map<string, number>();
  readonly #jobBytes = new Map<string, number>();
  readonly #controlBytes = new Map<string, number>();
  readonly #frames = new Map<string, number>();
  #totalBytes = 0;
  /** The highest delivery number handed to each party since the exchange started (a job.start above it was never taken). */
  readonly #delivered = new Map<string, number>();
  /** Callers waiting for room (the exchange's own deliveries), woken whenever bytes leave. */
  readonly #roomWaiters = new Set<() => void>();
  /** The last delivery number queued before this process started. */
  readonly #firstId: number;
  /** The changes of the commit under way (undefined outside one). */
  #pending: Change[] | undefined;
  #closed = false;

  constructor(store: Store, self: string, limits: Partial<MailboxLimits> = {}) {
    this.limits = mailboxLimits(limits);
    this.#store = store;
    this.#self = self;
    // What is queued from before a restart counts as it did; none of it was handed out by this process.
    for (const u of store.durable.relayUsage()) this.#account(u.recipient, u.job, u.kind, u.bytes, u.frames ?? 0);
    this.#firstId = store.durable.relayLastId();
  }

  /** Whether a protocol frame of `bytes` for `party` in `job` fits now. */
  fits(party: string, job: string, bytes: number): boolean {
    return this.fitsRecipient(party, bytes) && this.canHold(job, bytes);
  }

  /** Whether a frame of `bytes` fits `party`'s queue (its cap alone). */
  fitsRecipient(party: string, bytes: number): boolean {
    return (this.#recipientBytes.get(party) ?? 0) + bytes <= this.limits.perRecipientBytes;
  }

  /** Whether `bytes` more may be queued in `job` (its share and the total). */
  canHold(job: string, bytes: number): boolean {
    return (this.#jobBytes.get(job) ?? 0) + bytes <= this.limits.perJobBytes && this.#totalBytes + bytes <= this.limits.totalBytes;
  }

  /** Room left in `party`'s control reserve, in bytes. */
  controlRoom(party: string): number {
    return this.limits.controlBytesPerRecipient - (this.#controlBytes.get(party) ?? 0);
  }

  /**
   * Runs `fn` in one store transaction with the relay's writes (the caller
   * checked room first); the caps count them, and polls are woken, once the
   * outermost commit has committed — a commit inside another one joins it
   * (and a write inside one that rolls back is never counted). Every
   * transaction that queues an envelope runs through here. Returns what `fn` returns.
   */
  commit<T>(fn: (relay: RelayWrites) => T): T {
    if (this.#pending !== undefined) return this.#store.transaction(() => fn(this.#writes));
    const pending: Change[] = [];
    this.#pending = pending;
    let out: T;
    try {
      out = this.#store.transaction(() => fn(this.#writes));
    } finally {
      this.#pending = undefined;
    }
    const woken = new Set<string>();
    for (const c of pending) {
      this.#account(c.recipient, c.job, c.kind, c.sign * c.bytes, c.sign);
      if (c.sign === 1) woken.add(c.recipient);
    }
    for (const p of woken) this.#wake(p);
    if (pending.some((c) => c.sign === -1)) this.#wakeRoomWaiters();
    return out;
  }

  /** The relay's writes, each noting its change for the commit it runs in. */
  readonly #writes: RelayWrites = {
    insert: (row) => {
      const id = this.#store.durable.relayInsert(row);
      if (id !== undefined) this.#pending?.push({ recipient: row.recipient, job: row.job, kind: row.kind, bytes: row.frame.length, sign: 1 });
      return id;
    },
    remove: (id) => this.#removed([this.#store.durable.relayDelete(id)]),
    ack: (party, job, upTo) => this.#removed(this.#store.durable.relayAck(party, job, upTo)),
    release: (job) => this.#removed(this.#store.durable.relayReleaseJob(job)),
  };

  #removed(gone: readonly (RelayUsage | undefined)[]): RelayUsage[] {
    const out = gone.filter((u): u is RelayUsage => u !== undefined);
    for (const u of out) this.#pending?.push({ recipient: u.recipient, job: u.job, kind: u.kind, bytes: u.bytes, sign: -1 });
    return out;
  }

  /** Queues one envelope (a test plants one so; the exchange's own go through {@link commit}). Its job, sender and sequence are read from it. */
  put(party: string, frame: Uint8Array, meta: { readonly kind?: FrameKind } = {}): number | undefined {
    const e = decodeEnvelope(frame, DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES);
    return this.commit((r) => r.insert({ recipient: party, job: e.job, sender: e.sender, sequence: e.sequence, kind: meta.kind ?? (e.step === 0 ? "start" : "data"), frame }));
  }

  /** `party` has durably processed `job`'s envelopes up to delivery number `upTo`: they are deleted. */
  ack(party: string, job: string, upTo: number): void {
    this.commit((r) => r.ack(party, job, upTo));
  }

  /**
   * Waits until `check()` holds, re-checking whenever bytes leave a queue;
   * resolves false after `timeoutMs` or when the mailboxes close.
   */
  waitForRoom(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#roomWaiters.delete(wake);
        resolve(ok);
      };
      const wake = () => {
        if (this.#closed) done(false);
        else if (check()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#roomWaiters.add(wake);
    });
  }

  /**
   * Releases every envelope still queued for `job` but its job.stops;
   * returns the parties whose job.start was among them, never handed out
   * (they never learned of the job).
   */
  releaseJob(job: string): Set<string> {
    const untakenStarts = new Set<string>();
    // A start queued before a restart may have been handed out then: its party hears the stop.
    for (const u of this.commit((r) => r.release(job))) {
      const id = u.id ?? 0;
      if (u.kind === "start" && id > this.#firstId && id > (this.#delivered.get(u.recipient) ?? 0)) untakenStarts.add(u.recipient);
    }
    return untakenStarts;
  }

  /** Waits up to `waitMs` for envelopes for `party` after delivery number `after`; resolves with what is queued (possibly none). */
  async take(party: string, after: number, waitMs: number): Promise<Delivery[]> {
    const ready = this.#take(party, after);
    if (ready.length > 0 || waitMs <= 0 || this.#closed) return ready;
    // One poll per party at a time: a newer poll answers the older one empty.
    this.#waiters.get(party)?.wake();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => finish(), waitMs);
      const finish = () => {
        clearTimeout(timer);
        if (this.#waiters.get(party) === w) this.#waiters.delete(party);
        resolve();
      };
      const w: Waiter = { wake: finish };
      this.#waiters.set(party, w);
    });
    return this.#closed ? [] : this.#take(party, after);
  }

  /** Whether `party` has a poll open now. */
  polling(party: string): boolean {
    return this.#waiters.has(party);
  }

  /** Envelopes queued for `party`. */
  pending(party: string): number {
    return this.#frames.get(party) ?? 0;
  }

  /** Bytes queued for `party` (protocol frames and control messages). */
  queuedBytes(party: string): number {
    return (this.#recipientBytes.get(party) ?? 0) + (this.#controlBytes.get(party) ?? 0);
  }

  /** Protocol bytes of `job`, queued and held. */
  jobBytes(job: string): number {
    return this.#jobBytes.get(job) ?? 0;
  }

  /** Every queue's envelope count and bytes, by party (parties with nothing queued are left out). */
  sizes(): Record<string, { readonly frames: number; readonly bytes: number }> {
    const out: Record<string, { frames: number; bytes: number }> = {};
    for (const [party, n] of [...this.#frames].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) if (n > 0) out[party] = { frames: n, bytes: this.queuedBytes(party) };
    return out;
  }

  /** Answers every open poll (empty) and refuses to wait from now on. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#waiters.values()]) w.wake();
    this.#waiters.clear();
    this.#wakeRoomWaiters();
  }

  #take(party: string, after: number): Delivery[] {
    const rows = this.#store.durable.relayAfter(party, after, MAX_BATCH_BYTES);
    if (rows.length === 0) return [];
    const last = rows[rows.length - 1]?.id ?? 0;
    if (last > (this.#delivered.get(party) ?? 0)) this.#delivered.set(party, last);
    return rows.map((r) => ({ id: r.id, frame: r.frame }));
  }

  #account(recipient: string, job: string, kind: RelayKind, bytes: number, frames: number): void {
    add(this.#frames, recipient, frames);
    if (kind !== "data") {
      add(this.#controlBytes, recipient, bytes);
      return;
    }
    if (recipient !== this.#self) add(this.#recipientBytes, recipient, bytes);
    add(this.#jobBytes, job, bytes);
    this.#totalBytes += bytes;
  }

  #wake(party: string): void {
    const w = this.#waiters.get(party);
    if (w) {
      this.#waiters.delete(party);
      w.wake();
    }
  }

  #wakeRoomWaiters(): void {
    for (const wake of [...this.#roomWaiters]) wake();
  }
}

/** Deliveries as one body: [u64 BE delivery number][u32 BE length][bytes]... */
export function packDeliveries(deliveries: readonly Delivery[]): Buffer {
  let total = 0;
  for (const d of deliveries) total += 12 + d.frame.length;
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const d of deliveries) {
    out.writeBigUInt64BE(BigInt(d.id), o);
    out.writeUInt32BE(d.frame.length, o + 8);
    out.set(d.frame, o + 12);
    o += 12 + d.frame.length;
  }
  return out;
}

/** Reads a poll's body (strictly: a truncated batch, or a delivery number past 2^53, is refused). */
export function unpackDeliveries(body: Uint8Array): Delivery[] {
  const out: Delivery[] = [];
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let o = 0;
  while (o < body.length) {
    if (o + 12 > body.length) throw new UmbraError("UMBRA_INVALID_MESSAGE", "truncated mailbox batch");
    const id = dv.getBigUint64(o);
    const n = dv.getUint32(o + 8);
    if (id > BigInt(Number.MAX_SAFE_INTEGER) || o + 12 + n > body.length) throw new UmbraError("UMBRA_INVALID_MESSAGE", "truncated mailbox batch");
    out.push({ id: Number(id), frame: body.subarray(o + 12, o + 12 + n) });
    o += 12 + n;
  }
  return out;
}
