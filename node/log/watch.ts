/**
 * A party's watch on the exchange's log: it keeps every signed tree head it
 * accepted (node/store/log-rows.ts) and accepts a new one only with a proof
 * that it extends the latest.
 *
 * Every request a party's agent makes says how large a log it holds (the
 * Umbra-Log-Known header); every answer from the exchange carries the
 * exchange's current signed head and the consistency proof from that size
 * (Umbra-Log-Head, base64url JSON {head, known, proof}). {@link LogWatch.observe}
 * checks it before the answer is used:
 *
 * - the head must be signed by the exchange's pinned key, else the answer is
 *   refused (UMBRA_BAD_LOG_HEAD);
 * - a head of the size held must have the root held ("fork");
 * - a larger head must come with a proof from the size held that verifies
 *   ("rewritten" when it does not, "no-proof" when there is none);
 * - a smaller head, to a request that said the size held, means the log was
 *   cut short ("shrunk").
 *
 * Any of those is kept as evidence (both heads and the reason), logged, and
 * answered with LogInconsistentError (UMBRA_LOG_INCONSISTENT): from then on
 * the party takes nothing from the exchange — every answer is refused — so
 * a history shown to it can never be changed under it. An answer to a
 * request sent before the head held was accepted (answers may cross) is
 * checked against the head held at the size it was sent with, and otherwise
 * left for the next answer to move the head on.
 *
 * Heads learnt elsewhere — another party's, a witness's — are checked with
 * {@link LogWatch.compare}: the exchange is asked for the consistency proof
 * between the two, and a head it cannot join to the one held is a fork.
 */
import type { Store, StoredTreeHead } from "../store.js";
import { BadLogHeadError, LogInconsistentError } from "../errors.js";
import { entryLeafHash, type LedgerEntry } from "../ledger.js";
import { headsConsistent, parseProof, verifyTreeHead, type SignedTreeHead } from "./head.js";
import { verifyInclusion } from "./merkle.js";

/** The header every answer of the exchange to a party carries. */
export const LOG_HEAD_HEADER = "umbra-log-head";
/** The header every request of a party's agent carries: the size of the log it holds. */
export const LOG_KNOWN_HEADER = "umbra-log-known";
/** The longest Umbra-Log-Head a party reads (a head and a proof of 128 hashes fit with room). */
const MAX_HEADER_CHARS = 24 * 1024;

export type InconsistencyReason = "fork" | "rewritten" | "no-proof" | "shrunk" | "not-included";

export interface LogWatchOptions {
  readonly store: Store;
  /** The exchange's pinned signing key, once there is one (no head is accepted before). */
  readonly exchangeKey: () => Uint8Array | undefined;
  /** Where an inconsistency is reported (the agent's logger). */
  readonly onInconsistent?: (reason: InconsistencyReason) => void;
}

/**
 * Whether a request for a proof failed with the exchange's own answer that it
 * has none (400: the log is not that large, the entry is not in it) — a
 * verdict on its log — rather than with no answer at all (unreachable, timed
 * out, busy, a server error) or an answer whose head was refused, which are
 * none: those leave no evidence, so an honest exchange that is briefly down
 * never shuts a party out of it for good.
 */
function refusedProof(err: unknown): boolean {
  if (err instanceof LogInconsistentError || err instanceof BadLogHeadError) return false;
  return (err as { status?: unknown } | null)?.status === 400;
}

function plain(h: SignedTreeHead | StoredTreeHead): SignedTreeHead {
  return { size: h.size, root: h.root, at: h.at, signature: h.signature };
}

export class LogWatch {
  readonly #o: LogWatchOptions;

  constructor(o: LogWatchOptions) {
    this.#o = o;
  }

  /** The size of the log this party holds (sent with every request), or undefined before it holds a head. */
  knownSize(): number | undefined {
    return this.#o.store.log.latestHead()?.size;
  }

  /** The latest head accepted. */
  head(): SignedTreeHead | undefined {
    const h = this.#o.store.log.latestHead();
    return h === undefined ? undefined : plain(h);
  }

  /** Whether an inconsistency was found (then nothing is taken from the exchange). */
  inconsistent(): boolean {
    return this.#o.store.log.evidence().length > 0;
  }

  /** Throws LogInconsistentError when an inconsistency was found: nothing more is sent to the exchange or taken from it. */
  assertConsistent(): void {
    if (this.inconsistent()) throw new LogInconsistentError("found before");
  }

  #fail(held: SignedTreeHead, offered: SignedTreeHead | LedgerEntry, reason: InconsistencyReason): never {
    this.#o.store.log.recordEvidence({ held: JSON.stringify(held), offered: JSON.stringify(offered), reason });
    this.#o.onInconsistent?.(reason);
    throw new LogInconsistentError(reason);
  }

  /**
   * Checks the log head an answer carries (the header's value, or null when
   * the answer has none) before the answer is used. Throws
   * LogInconsistentError (evidence kept) or BadLogHeadError; returns when
   * the answer may be used.
   */
  observe(header: string | null, o: { readonly sent?: number | null; readonly required?: boolean } = {}): void {
    this.assertConsistent();
    const key = this.#o.exchangeKey();
    if (key === undefined) return;
    // An exchange that leaves out the head, or answers another size than the one the request said it holds, would
    // never be checked (its heads ignored as answers that crossed): refused, as a head that is not there.
    if (header === null) {
      if (o.required === true) throw new BadLogHeadError("answer without its log head");
      return;
    }
    if (header.length > MAX_HEADER_CHARS) throw new BadLogHeadError("log head");
    let v: { head?: unknown; known?: unknown; proof?: unknown };
    try {
      v = JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as typeof v;
    } catch {
      throw new BadLogHeadError("log head");
    }
    if (v === null || typeof v !== "object") throw new BadLogHeadError("log head");
    const head = verifyTreeHead(v.head, key);
    if (head === undefined) throw new BadLogHeadError("log head");
    const known = v.known;
    if (known !== null && (typeof known !== "number" || !Number.isSafeInteger(known) || known < 0)) throw new BadLogHeadError("log head");
    if (o.sent !== undefined && known !== o.sent) throw new BadLogHeadError("log head answering another size than the request said");
    const proof = v.proof === null ? null : parseProof(v.proof);
    if (proof === undefined) throw new BadLogHeadError("consistency proof");
    this.#accept(head, known, proof);
  }

  #accept(head: SignedTreeHead, known: number | null, proof: Uint8Array[] | null): void {
    const store = this.#o.store;
    const heldRow = store.log.latestHead();
    // The first head: taken as the key was, on first contact; every later one must extend it.
    if (heldRow === undefined) return store.log.putHead(head);
    const held = plain(heldRow);
    if (head.size === held.size) {
      if (head.root !== held.root) this.#fail(held, head, "fork");
      return;
    }
    if (known === held.size && head.size < held.size) this.#fail(held, head, "shrunk");
    const same = store.log.headAt(head.size);
    if (same !== undefined && same.root !== head.root) this.#fail(plain(same), head, "fork");
    if (known === held.size) {
      if (proof === null) this.#fail(held, head, "no-proof");
      if (!headsConsistent(held, head, proof)) this.#fail(held, head, "rewritten");
      store.log.putHead(head);
      return;
    }
    // An answer to a request sent when this party held another size (answers cross): checked against that head when it extends it.
    if (known !== null && head.size > held.size && proof !== null) {
      const then = store.log.headAt(known);
      if (then !== undefined && !headsConsistent(plain(then), head, proof)) this.#fail(plain(then), head, "rewritten");
    }
  }

  /**
   * Compares a head learnt elsewhere (another party's, a witness's) with the
   * one held, given `proofBetween(first, second)` from the exchange (hex
   * hashes; it throws when the exchange cannot give one, which counts as no
   * proof). Returns the head held when the two are consistent; throws
   * LogInconsistentError (evidence kept) when they are not.
   */
  async compare(value: unknown, proofBetween: (first: number, second: number) => Promise<unknown>): Promise<{ readonly held: SignedTreeHead; readonly other: SignedTreeHead }> {
    const key = this.#o.exchangeKey();
    if (key === undefined) throw new BadLogHeadError("log head (no exchange is pinned yet)");
    const other = verifyTreeHead(value, key);
    if (other === undefined) throw new BadLogHeadError("log head");
    const heldRow = this.#o.store.log.latestHead();
    if (heldRow === undefined) throw new BadLogHeadError("log head (this party holds none yet)");
    const held = plain(heldRow);
    if (other.size === held.size) {
      if (other.root !== held.root) this.#fail(held, other, "fork");
      return { held, other };
    }
    const [first, second] = other.size < held.size ? [other.size, held.size] : [held.size, other.size];
    let proof: Uint8Array[] | undefined;
    try {
      proof = parseProof(await proofBetween(first, second));
    } catch (err) {
      if (!refusedProof(err)) throw err;
      this.#fail(held, other, "no-proof");
    }
    if (proof === undefined) throw new BadLogHeadError("consistency proof");
    if (!headsConsistent(held, other, proof)) this.#fail(held, other, "fork");
    return { held, other };
  }

  /**
   * Checks that a signed ledger entry the exchange gave this party (a job's
   * job.submitted record) is in the log as this party holds it: `refresh()`
   * is called when the head held does not reach the entry yet (an answer to a
   * request that says the size held moves it on), then `proofOf(seq, size)`
   * is asked for the entry's audit path in the head held. An entry whose
   * proof fails is an inconsistency (evidence kept; LogInconsistentError); a
   * head that still does not reach it is BadLogHeadError (no evidence).
   */
  async checkIncluded(entry: LedgerEntry, proofOf: (seq: number, size: number) => Promise<unknown>, refresh: () => Promise<void>): Promise<void> {
    if (this.inconsistent()) throw new LogInconsistentError("found before");
    let held = this.head();
    if (held === undefined || held.size < entry.seq) {
      await refresh();
      held = this.head();
    }
    // No head reaching the entry yet (the exchange gave none): no verdict on the log, but no job either.
    if (held === undefined || held.size < entry.seq) throw new BadLogHeadError("log head reaching the job's record");
    let proof: Uint8Array[] | undefined;
    try {
      proof = parseProof(await proofOf(entry.seq, held.size));
    } catch (err) {
      if (!refusedProof(err)) throw err;
      this.#fail(held, entry, "not-included");
    }
    if (proof === undefined) throw new BadLogHeadError("inclusion proof");
    if (!verifyInclusion(entryLeafHash(entry), entry.seq - 1, held.size, proof, new Uint8Array(Buffer.from(held.root, "hex")))) this.#fail(held, entry, "not-included");
  }
}
