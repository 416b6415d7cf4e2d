/**
 * The exchange's mailboxes: one queue of envelope frames per party, taken by
 * long polling. Parties only ever connect out to the exchange (hub and
 * spoke). A batch is returned as [u32 big-endian length][frame]... so a
 * poll carries several frames at once.
 */

interface Waiter {
  readonly resolve: (frames: Uint8Array[]) => void;
  readonly timer: NodeJS.Timeout;
}

/** Largest bytes handed out in one poll (frames beyond it wait for the next). */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;

export class Mailboxes {
  readonly #queues = new Map<string, Uint8Array[]>();
  readonly #waiters = new Map<string, Waiter>();
  #closed = false;

  put(party: string, frame: Uint8Array): void {
    const q = this.#queues.get(party) ?? [];
    q.push(frame);
    this.#queues.set(party, q);
    const w = this.#waiters.get(party);
    if (w) {
      this.#waiters.delete(party);
      clearTimeout(w.timer);
      w.resolve(this.#take(party));
    }
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

  pending(party: string): number {
    return this.#queues.get(party)?.length ?? 0;
  }

  /** Answers every open poll (empty) and refuses to wait from now on. */
  close(): void {
    this.#closed = true;
    for (const [party, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(this.#take(party));
    }
    this.#waiters.clear();
  }

  #take(party: string): Uint8Array[] {
    const q = this.#queues.get(party);
    if (!q || q.length === 0) return [];
    const out: Uint8Array[] = [];
    let bytes = 0;
    while (q.length > 0 && (out.length === 0 || bytes + (q[0]?.length ?? 0) <= MAX_BATCH_BYTES)) {
      const f = q.shift() as Uint8Array;
      bytes += f.length;
      out.push(f);
    }
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
