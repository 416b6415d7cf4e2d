/**
 * The exchange's mailboxes: one queue of envelope frames per party, taken by
 * long polling. Parties only ever connect out to the exchange (hub and
 * spoke). A batch is returned as [u32 big-endian length][frame]... so a
 * poll carries several frames at once.
 *
 * Every queue is bounded (security finding 10). A protocol frame (`data`)
 * is queued only while its recipient's queued bytes, its job's bytes and
 * all queued bytes stay within {@link MailboxLimits}: {@link Mailboxes.offer}
 * says no otherwise and changes nothing, and the exchange answers the sender
 * 429. A job's bytes include what the exchange's own role of the job holds
 * but has not processed yet ({@link Mailboxes.hold}); the role's own frames
 * are queued within their recipient's cap ({@link Mailboxes.offerOwn}: the
 * exchange waits for room, or fails the job). Control messages
 * (job.start) have a small byte reserve of their own per recipient, so a
 * full data queue never keeps a job from starting or stopping; a job.stop is
 * always queued (at most one per job a party took part in, and each poll
 * takes everything queued). When a job ends its queued frames are released
 * ({@link Mailboxes.releaseJob}); a job.start its party never took goes with
 * them, and that party needs no job.stop.
 */
import { InvalidArgumentError, UmbraError } from "../../engine/errors.js";

interface Waiter {
  readonly resolve: (frames: Uint8Array[]) => void;
  readonly timer: NodeJS.Timeout;
}

/** What a queued frame is: a protocol frame, or a control message starting or stopping a job. */
export type FrameKind = "data" | "start" | "stop";

interface Queued {
  readonly frame: Uint8Array;
  readonly job: string | undefined;
  readonly kind: FrameKind;
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
  readonly #queues = new Map<string, Queued[]>();
  readonly #waiters = new Map<string, Waiter>();
  /** Protocol bytes queued per recipient, per job (queued and held), control bytes per recipient, and in all. */
  readonly #recipientBytes = new Map<string, number>();
  readonly #jobBytes = new Map<string, number>();
  readonly #controlBytes = new Map<string, number>();
  #totalBytes = 0;
  /** Callers waiting for room (the exchange's own deliveries), woken whenever bytes leave. */
  readonly #roomWaiters = new Set<() => void>();
  #closed = false;

  constructor(limits: Partial<MailboxLimits> = {}) {
    this.limits = mailboxLimits(limits);
  }

  /** Whether a protocol frame of `bytes` for `party` in `job` fits now. */
  fits(party: string, job: string, bytes: number): boolean {
    return (
      (this.#recipientBytes.get(party) ?? 0) + bytes <= this.limits.perRecipientBytes &&
      (this.#jobBytes.get(job) ?? 0) + bytes <= this.limits.perJobBytes &&
      this.#totalBytes + bytes <= this.limits.totalBytes
    );
  }

  /** Whether a frame of `bytes` fits `party`'s queue (its cap alone). */
  fitsRecipient(party: string, bytes: number): boolean {
    return (this.#recipientBytes.get(party) ?? 0) + bytes <= this.limits.perRecipientBytes;
  }

  /** Whether `bytes` more may be held for a job's exchange-side role. */
  canHold(job: string, bytes: number): boolean {
    return (this.#jobBytes.get(job) ?? 0) + bytes <= this.limits.perJobBytes && this.#totalBytes + bytes <= this.limits.totalBytes;
  }

  /** Queues a protocol frame when it fits (true); else changes nothing (false). */
  offer(party: string, job: string, frame: Uint8Array): boolean {
    if (!this.fits(party, job, frame.length)) return false;
    this.#enqueue(party, { frame, job, kind: "data" });
    return true;
  }

  /**
   * Queues a frame the exchange's own role sends, when it fits the
   * recipient's cap (true); else changes nothing (false). Only the
   * recipient's cap applies: the job's share and the total hold what the role
   * has not processed yet, which waits behind this very frame — making it
   * wait for them would deadlock the job. What the role may queue is still
   * bounded, by the recipients' caps.
   */
  offerOwn(party: string, job: string, frame: Uint8Array): boolean {
    if (!this.fitsRecipient(party, frame.length)) return false;
    this.#enqueue(party, { frame, job, kind: "data" });
    return true;
  }

  /** Room left in `party`'s control reserve, in bytes. */
  controlRoom(party: string): number {
    return this.limits.controlBytesPerRecipient - (this.#controlBytes.get(party) ?? 0);
  }

  /** Queues a job.start when it fits the recipient's control reserve (true); else changes nothing (false). */
  offerStart(party: string, job: string, frame: Uint8Array): boolean {
    if (frame.length > this.controlRoom(party)) return false;
    this.#enqueue(party, { frame, job, kind: "start" });
    return true;
  }

  /**
   * Queues a frame with no cap: a job.stop (kind "stop", at most one per job
   * and party), or a frame a test plants. Protocol frames go through offer.
   */
  put(party: string, frame: Uint8Array, meta: { readonly job?: string; readonly kind?: FrameKind } = {}): void {
    this.#enqueue(party, { frame, job: meta.job, kind: meta.kind ?? "stop" });
  }

  /** Counts `bytes` the exchange's role of `job` holds (not yet processed) against the job's and the total cap. */
  hold(job: string, bytes: number): void {
    add(this.#jobBytes, job, bytes);
    this.#totalBytes += bytes;
  }

  /** The role has processed (or dropped) what it held. */
  unhold(job: string, bytes: number): void {
    add(this.#jobBytes, job, -bytes);
    this.#totalBytes -= bytes;
    this.#wakeRoomWaiters();
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
   * Releases every frame still queued for `job` (its protocol frames and
   * control messages); returns the parties whose job.start was among them
   * (they never learned of the job).
   */
  releaseJob(job: string): Set<string> {
    const untakenStarts = new Set<string>();
    for (const [party, q] of this.#queues) {
      const keep: Queued[] = [];
      for (const item of q) {
        if (item.job !== job) keep.push(item);
        else {
          if (item.kind === "start") untakenStarts.add(party);
          this.#account(party, item, -1);
        }
      }
      if (keep.length === 0) this.#queues.delete(party);
      else this.#queues.set(party, keep);
    }
    this.#wakeRoomWaiters();
    return untakenStarts;
  }

  /** Waits up to `waitMs` for frames for `party`; resolves with what is queued (possibly none). */
  take(party: string, waitMs: number): Promise<Uint8Array[]> {
    const ready = this.#take(party);
    if (ready.length > 0 || waitMs <= 0 || this.#closed) return Promise.resolve(ready);
    // One poll per party at a time: a newer poll answers the older one empty.
    const previous = this.#waiters.get(party);
    if (previous) {
      clearTimeout(previous.timer);
      previous.resolve([]);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(party);
        resolve([]);
      }, waitMs);
      this.#waiters.set(party, { resolve, timer });
    });
  }

  /** Frames queued for `party`. */
  pending(party: string): number {
    return this.#queues.get(party)?.length ?? 0;
  }

  /** Bytes queued for `party` (protocol frames and control messages). */
  queuedBytes(party: string): number {
    return (this.#recipientBytes.get(party) ?? 0) + (this.#controlBytes.get(party) ?? 0);
  }

  /** Protocol bytes of `job`, queued and held. */
  jobBytes(job: string): number {
    return this.#jobBytes.get(job) ?? 0;
  }

  /** Every queue's frame count and bytes, by party (parties with nothing queued are left out). */
  sizes(): Record<string, { readonly frames: number; readonly bytes: number }> {
    const out: Record<string, { frames: number; bytes: number }> = {};
    for (const [party, q] of [...this.#queues].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out[party] = { frames: q.length, bytes: this.queuedBytes(party) };
    return out;
  }

  /** Answers every open poll (empty) and refuses to wait from now on. */
  close(): void {
    this.#closed = true;
    for (const [party, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(this.#take(party));
    }
    this.#waiters.clear();
    this.#wakeRoomWaiters();
  }

  #enqueue(party: string, item: Queued): void {
    const q = this.#queues.get(party) ?? [];
    q.push(item);
    this.#queues.set(party, q);
    this.#account(party, item, 1);
    const w = this.#waiters.get(party);
    if (w) {
      this.#waiters.delete(party);
      clearTimeout(w.timer);
      w.resolve(this.#take(party));
    }
  }

  #account(party: string, item: Queued, sign: 1 | -1): void {
    const n = sign * item.frame.length;
    if (item.kind === "data") {
      add(this.#recipientBytes, party, n);
      if (item.job !== undefined) add(this.#jobBytes, item.job, n);
      this.#totalBytes += n;
    } else add(this.#controlBytes, party, n);
  }

  #wakeRoomWaiters(): void {
    for (const wake of [...this.#roomWaiters]) wake();
  }

  #take(party: string): Uint8Array[] {
    const q = this.#queues.get(party);
    if (!q || q.length === 0) return [];
    const out: Uint8Array[] = [];
    let bytes = 0;
    while (q.length > 0 && (out.length === 0 || bytes + (q[0]?.frame.length ?? 0) <= MAX_BATCH_BYTES)) {
      const item = q.shift() as Queued;
      this.#account(party, item, -1);
      bytes += item.frame.length;
      out.push(item.frame);
    }
    if (q.length === 0) this.#queues.delete(party);
    if (out.length > 0) this.#wakeRoomWaiters();
    return out;
  }
}

/** Frames as one body: [u32 BE length][bytes]... */
export function packFrames(frames: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const f of frames) total += 4 + f.length;
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, o);
    out.set(f, o + 4);
    o += 4 + f.length;
  }
  return out;
}

export function unpackFrames(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let o = 0;
  while (o < body.length) {
    if (o + 4 > body.length) throw new Error("truncated frame batch");
    const n = dv.getUint32(o);
    if (o + 4 + n > body.length) throw new Error("truncated frame batch");
    out.push(body.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  return out;
}
