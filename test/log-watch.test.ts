/**
 * A party's watch on the exchange's log (node/log/watch.ts), head by head:
 * what it accepts, what it keeps as evidence and refuses, and what it leaves
 * for a later answer — against heads signed with a real key over real trees.
 */
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../node/identity.js";
import { appendEntry, LedgerKind, listEntries } from "../node/ledger.js";
import { consistencyProofOf, currentTreeHead, inclusionProofOf, rootAt, signTreeHead, type SignedTreeHead } from "../node/log/head.js";
import { LogWatch } from "../node/log/watch.js";
import { ExchangeError } from "../node/server/client.js";
import { openStore, type Store } from "../node/store.js";

const exchange = generateIdentity("exchange");
const other = generateIdentity("exchange");

/** An exchange's ledger of n entries (its tree kept), and its signed head. */
function ledgerOf(n: number, salt = "a"): Store {
  const store = openStore(":memory:");
  for (let i = 0; i < n; i++) appendEntry(store, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: `p${salt}${i}` } });
  return store;
}

const headOf = (store: Store): SignedTreeHead => currentTreeHead(store, exchange.signing.secretKey, 1_700_000_000_000);
const header = (head: unknown, known: number | null, proof: unknown): string => Buffer.from(JSON.stringify({ head, known, proof })).toString("base64url");

function watcher(): { watch: LogWatch; party: Store; reasons: string[] } {
  const party = openStore(":memory:");
  const reasons: string[] = [];
  const watch = new LogWatch({ store: party, exchangeKey: () => exchange.signing.publicKey, onInconsistent: (r) => void reasons.push(r) });
  return { watch, party, reasons };
}

describe("a party's watch on the exchange's log", () => {
  it("takes the first head, then each that a proof shows to extend it; an answer without a head changes nothing", () => {
    const x = ledgerOf(3);
    const { watch, party } = watcher();
    watch.observe(null);
    expect(watch.knownSize()).toBeUndefined();
    watch.observe(header(headOf(x), null, null));
    expect(watch.head()).toEqual(headOf(x));
    for (let i = 0; i < 6; i++) appendEntry(x, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: `q${i}` } });
    watch.observe(header(headOf(x), 3, consistencyProofOf(x, 3, 9)));
    expect(watch.knownSize()).toBe(9);
    expect(party.log.evidence()).toEqual([]);
  });

  it("the same size with another root is a fork: evidence kept, refused, and every later answer refused", () => {
    const a = ledgerOf(4, "a");
    const b = ledgerOf(4, "b");
    const { watch, party, reasons } = watcher();
    watch.observe(header(headOf(a), null, null));
    expect(() => watch.observe(header(headOf(b), 4, []))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(reasons).toEqual(["fork"]);
    expect(party.log.evidence().map((e) => [e.reason, JSON.parse(e.held), JSON.parse(e.offered)])).toEqual([["fork", headOf(a), headOf(b)]]);
    // Even the head it held before, and an answer with no head at all: nothing more is taken.
    expect(() => watch.observe(header(headOf(a), 4, []))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(() => watch.observe(null)).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(watch.head()).toEqual(headOf(a));
    expect(party.log.evidence()).toHaveLength(1);
  });

  it("a larger head whose proof fails (a history rewritten under it) is refused as rewritten", () => {
    const a = ledgerOf(5, "a");
    const { watch, reasons } = watcher();
    watch.observe(header(headOf(a), null, null));
    const b = ledgerOf(8, "b");
    expect(() => watch.observe(header(headOf(b), 5, consistencyProofOf(b, 5, 8)))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(reasons).toEqual(["rewritten"]);
    expect(watch.knownSize()).toBe(5);
  });

  it("a larger head without a proof from the size held is refused as no-proof; a smaller one as shrunk", () => {
    const a = ledgerOf(5);
    const first = watcher();
    first.watch.observe(header(headOf(a), null, null));
    appendEntry(a, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: "late" } });
    expect(() => first.watch.observe(header(headOf(a), 5, null))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(first.reasons).toEqual(["no-proof"]);

    const second = watcher();
    second.watch.observe(header(headOf(a), null, null));
    const cut = ledgerOf(4);
    expect(() => second.watch.observe(header(headOf(cut), 6, null))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(second.reasons).toEqual(["shrunk"]);
  });

  it("an answer to a request sent with an older size is checked against that size's head, and otherwise left for the next", () => {
    const x = ledgerOf(3);
    const { watch, party } = watcher();
    watch.observe(header(headOf(x), null, null));
    const at3 = headOf(x);
    for (let i = 0; i < 3; i++) appendEntry(x, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: `r${i}` } });
    const at6 = headOf(x);
    watch.observe(header(at6, 3, consistencyProofOf(x, 3, 6)));
    // An answer that crossed: sent holding 3, now 6 is held; an older head (4) and one of 6 are fine.
    appendEntry(x, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: "s" } });
    const at4 = signTreeHead(exchange.signing.secretKey, { size: 4, root: rootAt(x, 4), at: 1 });
    watch.observe(header(at4, 3, consistencyProofOf(x, 3, 4)));
    watch.observe(header(at6, 3, consistencyProofOf(x, 3, 6)));
    // A larger head in a crossed answer with a proof from 3 that holds: not taken (6 is held), not evidence.
    watch.observe(header(headOf(x), 3, consistencyProofOf(x, 3, 7)));
    expect(watch.knownSize()).toBe(6);
    // One whose proof from 3 fails is evidence.
    const y = ledgerOf(7, "y");
    expect(() => watch.observe(header(headOf(y), 3, consistencyProofOf(y, 3, 7)))).toThrow(expect.objectContaining({ code: "UMBRA_LOG_INCONSISTENT" }));
    expect(party.log.evidence().map((e) => e.reason)).toEqual(["rewritten"]);
    expect(at3.size).toBe(3);
  });

  it("refuses a head not signed by the pinned key, or malformed, without keeping evidence", () => {
    const x = ledgerOf(2);
    const { watch, party } = watcher();
    watch.observe(header(headOf(x), null, null));
    const forged = currentTreeHead(x, other.signing.secretKey, 1);
    for (const bad of [header(forged, 2, []), header({ ...headOf(x), extra: 1 }, 2, []), header(headOf(x), 2, ["zz"]), header(headOf(x), -1, []), "%%%", "x".repeat(30_000)]) {
      expect(() => watch.observe(bad)).toThrow(expect.objectContaining({ code: "UMBRA_BAD_LOG_HEAD" }));
    }
    expect(party.log.evidence()).toEqual([]);
    expect(watch.knownSize()).toBe(2);
  });

  it("checks a job's record by its inclusion proof in the head held", async () => {
    const x = ledgerOf(5);
    const { watch, party } = watcher();
    watch.observe(header(headOf(x), null, null));
    const entries = listEntries(x);
    const entry = entries[2];
    if (entry === undefined) throw new Error("no entry");
    await watch.checkIncluded(entry, async (seq, size) => inclusionProofOf(x, seq, size), async () => undefined);
    // A record beyond the head held, and no answer moving it on: refused, but no verdict on the log.
    const later = listEntries(x)[4];
    if (later === undefined) throw new Error("no entry");
    const early = watcher();
    early.watch.observe(header(signTreeHead(exchange.signing.secretKey, { size: 3, root: rootAt(x, 3), at: 1 }), null, null));
    await expect(early.watch.checkIncluded(later, async (seq, size) => inclusionProofOf(x, seq, size), async () => undefined)).rejects.toMatchObject({ code: "UMBRA_BAD_LOG_HEAD" });
    expect(early.party.log.evidence()).toEqual([]);
    // The same seq signed with another body (the exchange's key, another history): not in the log held.
    const forgedStore = ledgerOf(5, "z");
    const forged = listEntries(forgedStore)[2];
    if (forged === undefined) throw new Error("no entry");
    await expect(watch.checkIncluded(forged, async (seq, size) => inclusionProofOf(x, seq, size), async () => undefined)).rejects.toMatchObject({ code: "UMBRA_LOG_INCONSISTENT" });
    expect(party.log.evidence().map((e) => e.reason)).toEqual(["not-included"]);
  });

  it("compares a head learnt elsewhere: one history passes, a fork is kept and refused", async () => {
    const x = ledgerOf(4);
    const { watch, party } = watcher();
    watch.observe(header(headOf(x), null, null));
    const mine = headOf(x);
    for (let i = 0; i < 4; i++) appendEntry(x, exchange.signing, { kind: LedgerKind.PartyRegistered, body: { name: `t${i}` } });
    const theirs = headOf(x);
    await expect(watch.compare(theirs, async (f, s) => consistencyProofOf(x, f, s))).resolves.toEqual({ held: mine, other: theirs });
    const fork = ledgerOf(8, "f");
    await expect(watch.compare(headOf(fork), async (f, s) => consistencyProofOf(x, f, s))).rejects.toMatchObject({ code: "UMBRA_LOG_INCONSISTENT" });
    // No answer from the exchange (unreachable, busy): no verdict, no evidence.
    await expect(watch.compare(headOf(fork), async () => {
      throw new ExchangeError(502, "UMBRA_EXCHANGE_UNREACHABLE", "the exchange could not be reached");
    })).rejects.toMatchObject({ code: "UMBRA_EXCHANGE_UNREACHABLE" });
    expect(party.log.evidence().map((e) => e.reason)).toEqual(["fork"]);
    // Its answer that it has no proof (400: the log is not that large): kept.
    await expect(watch.compare(headOf(fork), async () => {
      throw new ExchangeError(400, "UMBRA_BAD_REQUEST", "the log is not that large");
    })).rejects.toMatchObject({ code: "UMBRA_LOG_INCONSISTENT" });
    expect(party.log.evidence().map((e) => e.reason)).toEqual(["fork", "no-proof"]);
  });
});
