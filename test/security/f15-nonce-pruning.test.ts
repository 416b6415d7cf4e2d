/**
 * Finding 15 (part, low): pruneNonces never ran — the exchange's nonce table
 * grew with every signed request and relayed envelope, for ever.
 *
 * Shown here, against an exchange on loopback whose clock the test moves on:
 * the scheduled pruning forgets request and envelope nonces older than the
 * skew window (plus a margin), and keeps the others; a replay of a request
 * or an envelope still inside the window is refused as a replay after a
 * prune, and one whose nonce was pruned is refused by its timestamp — so a
 * pruned nonce can never be replayed. A retention shorter than the window
 * is refused outright.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealEnvelope } from "../../node/envelope.js";
import { decodeEnvelope } from "../../protocols/envelope-codec.js";
import type { NodeIdentity } from "../../node/identity.js";
import { NONCE_RETENTION_MS, REQUEST_SKEW_MS, scheduleNoncePruning } from "../../node/server/auth.js";
import { openStore } from "../../node/store.js";
import { startExchange, waitUntil, type TestExchange } from "../helpers/nodes.js";
import { exchangeSnapshot, handJob, handParty, requestNonce, signedRequest } from "./kit.js";

let offset = 0;
const clock = () => Date.now() + offset;
let x: TestExchange;
let bank: NodeIdentity;
let telco: NodeIdentity;
let job: string;

beforeAll(async () => {
  x = await startExchange({ now: clock, noncePruneIntervalMs: 50 });
  bank = await handParty(x, "bank");
  telco = await handParty(x, "telco");
  job = await handJob(x, bank, telco);
});

afterAll(async () => {
  await x?.close();
});

describe("finding 15: nonces past the skew window are pruned, and none of them can be replayed", () => {
  it("requests: the old nonce goes, the recent one stays; the recent replay is a replay, the old one stale", async () => {
    const old = await signedRequest(x.url, bank, "GET", "/v1/datasets", { time: clock() - REQUEST_SKEW_MS + 2_000 });
    const recent = await signedRequest(x.url, bank, "GET", "/v1/datasets", { time: clock() });
    expect([old.status, recent.status]).toEqual([200, 200]);
    expect(x.store.nonceSeen("bank", requestNonce(old.signature))).toBe(true);
    // Time passes: the old request's timestamp falls out of the window (and its margin), the recent one's does not.
    offset += NONCE_RETENTION_MS - REQUEST_SKEW_MS + 5_000;
    await waitUntil(() => !x.store.nonceSeen("bank", requestNonce(old.signature)), "the scheduled prune");
    expect(x.store.nonceSeen("bank", requestNonce(recent.signature))).toBe(true);
    const before = exchangeSnapshot(x);
    const replayRecent = await signedRequest(x.url, bank, "GET", "/v1/datasets", { headers: recent.sent });
    expect(replayRecent.status).toBe(409);
    expect(replayRecent.body.error?.code).toBe("UMBRA_REPLAY");
    const replayOld = await signedRequest(x.url, bank, "GET", "/v1/datasets", { headers: old.sent });
    expect(replayOld.status).toBe(401);
    expect(replayOld.body.error?.code).toBe("UMBRA_STALE_MESSAGE");
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("envelopes: the same, for the relay's envelope nonces", async () => {
    const seal = (time: number, sequence: number) => sealEnvelope({ job, step: 1, sender: bank, recipient: "telco", sequence, payload: new Uint8Array(64), now: () => time });
    const oldEnv = seal(clock() - REQUEST_SKEW_MS + 2_000, 1);
    const recentEnv = seal(clock(), 2);
    const oldNonce = decodeEnvelope(oldEnv, 1 << 20).nonce;
    const recentNonce = decodeEnvelope(recentEnv, 1 << 20).nonce;
    for (const env of [oldEnv, recentEnv]) expect((await signedRequest(x.url, bank, "POST", "/v1/relay", { raw: env })).status).toBe(202);
    expect(x.store.nonceSeen("bank", oldNonce)).toBe(true);
    offset += NONCE_RETENTION_MS - REQUEST_SKEW_MS + 5_000;
    await waitUntil(() => !x.store.nonceSeen("bank", oldNonce), "the scheduled prune");
    expect(x.store.nonceSeen("bank", recentNonce)).toBe(true);
    const before = exchangeSnapshot(x);
    const again = await signedRequest(x.url, bank, "POST", "/v1/relay", { raw: recentEnv });
    expect(again.status).toBe(409);
    expect(again.body.error?.code).toBe("UMBRA_REPLAY");
    const stale = await signedRequest(x.url, bank, "POST", "/v1/relay", { raw: oldEnv });
    expect(stale.status).toBe(401);
    expect(stale.body.error?.code).toBe("UMBRA_STALE_MESSAGE");
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("a retention shorter than the skew window is refused; the party agent's store can be pruned the same way", () => {
    const store = openStore(":memory:");
    try {
      expect(() => scheduleNoncePruning(store, { retentionMs: REQUEST_SKEW_MS })).toThrow(expect.objectContaining({ code: "UMBRA_INVALID_ARGUMENT" }));
      const t = Date.now();
      store.rememberNonce("exchange", new Uint8Array(16).fill(1), t - NONCE_RETENTION_MS - 1);
      store.rememberNonce("exchange", new Uint8Array(16).fill(2), t - REQUEST_SKEW_MS);
      const p = scheduleNoncePruning(store, { now: () => t, everyMs: 60_000 });
      p.stop();
      expect(store.nonceSeen("exchange", new Uint8Array(16).fill(1))).toBe(false);
      expect(store.nonceSeen("exchange", new Uint8Array(16).fill(2))).toBe(true);
    } finally {
      store.close();
    }
  });
});
