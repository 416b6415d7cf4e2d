/**
 * The party agent's side of the durable relay (docs/durability.md).
 *
 * Outbox: what a committed step sends — envelopes and job events — is in
 * the store before anything leaves (node/store/durable.ts). Each job's rows
 * go out in order, one at a time, after the commit; a row is deleted once
 * the exchange has it. An envelope is sealed afresh at each attempt (a fresh
 * timestamp and nonce, the same sequence number: the exchange recognises
 * one it took before and does not take it twice). Busy (429), unreachable or
 * failing (5xx) exchanges are waited out with growing pauses — a row is
 * never dropped for that; an answer that refuses the row for good (the job
 * is not running any more, say) drops it, logged.
 *
 * Acknowledgements: once the step an envelope caused has committed, its
 * delivery number is acknowledged, per job, in batches; the exchange then
 * deletes what was acknowledged. A lost acknowledgement only means the
 * envelope comes again after a restart, and is skipped by its sequence.
 */
import type { FastifyBaseLogger } from "fastify";
import { UmbraError } from "../../engine/errors.js";
import { sealEnvelope, type SenderKeys } from "../envelope.js";
import type { NodeIdentity } from "../identity.js";
import type { OutboxRow, Store } from "../store.js";
import { ExchangeError, type ExchangeClient } from "./client.js";
import { MAX_ACKS } from "../schemas/routes.js";

/** Longest pause between two attempts to send an outbox row. */
const MAX_PAUSE_MS = 5_000;

/** Whether an error means "try again later" (nothing was taken): the exchange busy, unreachable or failing. */
function transient(err: unknown): boolean {
  if (!(err instanceof ExchangeError)) return !(err instanceof UmbraError);
  return err.status === 429 || err.status >= 500;
}

export interface OutboxOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly client: ExchangeClient;
  readonly log: FastifyBaseLogger;
  readonly senderKeys: (name: string) => Promise<SenderKeys | undefined>;
  readonly exchange: () => { readonly name: string; readonly keys: SenderKeys | undefined };
}

export class PartyOutbox {
  readonly #o: OutboxOptions;
  /** Jobs whose rows are being sent, and whether more were added meanwhile. */
  readonly #sending = new Map<string, { again: boolean; done: Promise<void> }>();
  /** Acknowledgements not yet sent: job -> highest delivery number processed. */
  readonly #acks = new Map<string, number>();
  #acking: Promise<void> | undefined;
  #stopped = false;
  readonly #stopping = new AbortController();

  constructor(o: OutboxOptions) {
    this.#o = o;
  }

  /** Sends `job`'s outbox rows (now, or after the rows being sent). */
  kick(job: string): void {
    if (this.#stopped) return;
    const s = this.#sending.get(job);
    if (s) {
      s.again = true;
      return;
    }
    const entry = { again: false, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          await this.#drain(job);
        } while (entry.again && !this.#stopped);
      } finally {
        this.#sending.delete(job);
      }
    })();
    this.#sending.set(job, entry);
  }

  /** Sends every job's outbox rows (at start: what a step committed before a stop). */
  kickAll(): void {
    for (const job of this.#o.store.durable.outboxJobs()) this.kick(job);
  }

  /** The step that consumed delivery `id` of `job` has committed: acknowledge it (batched). */
  ack(job: string, id: number): void {
    if ((this.#acks.get(job) ?? 0) < id) this.#acks.set(job, id);
    this.#scheduleAcks();
  }

  #scheduleAcks(): void {
    if (this.#acking !== undefined || this.#stopped) return;
    this.#acking = this.#flushAcks().finally(() => {
      this.#acking = undefined;
      if (this.#acks.size > 0) this.#scheduleAcks();
    });
  }

  /** Stops sending (rows stay in the store for the next start) and waits for the sends in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    await Promise.allSettled([...[...this.#sending.values()].map((s) => s.done), this.#acking]);
  }

  async #flushAcks(): Promise<void> {
    // Let the steps finishing now add theirs to this batch.
    await new Promise((r) => setImmediate(r));
    for (let pause = 250; this.#acks.size > 0 && !this.#stopped; pause = Math.min(MAX_PAUSE_MS, pause * 2)) {
      const batch = [...this.#acks].slice(0, MAX_ACKS).map(([job, upTo]) => ({ job, upTo }));
      try {
        await this.#o.client.json("POST", "/v1/mailbox/ack", { acks: batch });
      } catch (err) {
        if (!transient(err)) {
          this.#o.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "the exchange refused an acknowledgement; its envelopes come again after a restart and are skipped");
        } else {
          await this.#pause(pause);
          continue;
        }
      }
      for (const a of batch) if (this.#acks.get(a.job) === a.upTo) this.#acks.delete(a.job);
    }
  }

  async #drain(job: string): Promise<void> {
    const { store } = this.#o;
    for (let row = store.durable.outboxFirst(job); row !== undefined && !this.#stopped; row = store.durable.outboxFirst(job)) {
      await this.#send(row);
      store.durable.outboxDelete(row.id);
    }
  }

  /** Sends one row until the exchange has it, or refuses it for good (then it is dropped, logged). */
  async #send(row: OutboxRow): Promise<void> {
    for (let pause = 250; !this.#stopped; pause = Math.min(MAX_PAUSE_MS, pause * 2)) {
      try {
        if (row.kind === "event") await this.#o.client.json("POST", `/v1/jobs/${row.job}/events`, JSON.parse(new TextDecoder().decode(row.body)));
        else await this.#o.client.sendRaw("/v1/relay", await this.#seal(row));
        return;
      } catch (err) {
        if (this.#stopped) return;
        const code = err instanceof UmbraError ? err.code : "UMBRA_INTERNAL";
        if (!transient(err)) {
          this.#o.log.warn({ job: row.job, code }, `the exchange refused this party's ${row.kind === "event" ? "job event" : "envelope"}; dropped`);
          return;
        }
        this.#o.log.debug({ job: row.job, code }, "the exchange did not take an outbox row; sending it again");
        await this.#pause(pause);
      }
    }
  }

  async #seal(row: OutboxRow): Promise<Uint8Array> {
    const x = this.#o.exchange();
    const to = row.recipient as string;
    const keys = to === x.name ? x.keys : await this.#o.senderKeys(to);
    if (!keys) throw new ExchangeError(503, "UMBRA_UNKNOWN_SENDER", "the other party's box key could not be fetched yet");
    return sealEnvelope({ job: row.job, step: row.step as number, sender: this.#o.identity, recipient: to, sequence: row.sequence as number, payload: row.body, encryptTo: keys.boxPublicKey });
  }

  #pause(ms: number): Promise<void> {
    const signal = this.#stopping.signal;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
