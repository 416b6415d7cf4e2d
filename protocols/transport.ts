/**
 * The in-memory transport: every message is encoded with protobuf on the way
 * out and decoded (strictly) on the way in, exactly as it would be between
 * two processes, and the bytes each side sends are counted.
 */
import { decodeMessage, encodeMessage, type ProtocolMessage } from "./codec.js";

export interface TransportStats {
  /** Bytes and messages sent by each role, by role name. */
  readonly bytesSent: Record<string, number>;
  readonly messagesSent: Record<string, number>;
}

/** A pair of in-memory queues between named roles, serialising every message. */
export class MemoryTransport {
  readonly #queues = new Map<string, { from: string; frame: Uint8Array }[]>();
  readonly #bytes: Record<string, number> = {};
  readonly #messages: Record<string, number> = {};
  /** Observers see every encoded frame (tests use it to inspect what a role receives). */
  readonly #taps: ((from: string, to: string, frame: Uint8Array) => void)[] = [];

  /** Encodes and queues messages from `from` to `to`. */
  send(from: string, to: string, messages: readonly ProtocolMessage[]): void {
    let q = this.#queues.get(to);
    if (!q) {
      q = [];
      this.#queues.set(to, q);
    }
    for (const m of messages) {
      const frame = encodeMessage(m);
      this.#bytes[from] = (this.#bytes[from] ?? 0) + frame.length;
      this.#messages[from] = (this.#messages[from] ?? 0) + 1;
      for (const tap of this.#taps) tap(from, to, frame);
      q.push({ from, frame });
    }
  }

  /** Takes and decodes the next message for `to`, if any. */
  receive(to: string): ProtocolMessage | undefined {
    return this.receiveFrom(to)?.message;
  }

  /** Takes and decodes the next message for `to`, with the role that sent it. */
  receiveFrom(to: string): { readonly from: string; readonly message: ProtocolMessage } | undefined {
    const next = this.#queues.get(to)?.shift();
    return next === undefined ? undefined : { from: next.from, message: decodeMessage(next.frame) };
  }

  pending(to: string): number {
    return this.#queues.get(to)?.length ?? 0;
  }

  tap(fn: (from: string, to: string, frame: Uint8Array) => void): void {
    this.#taps.push(fn);
  }

  stats(): TransportStats {
    return { bytesSent: { ...this.#bytes }, messagesSent: { ...this.#messages } };
  }
}
