/**
 * engine/pool's OT-PSI work (ot-task.ts, ot-work.ts): on the workers, in
 * several ranges, it gives the same bytes as the engine functions on this
 * thread — the digests, both sides' extensions (u and the receiver's tags;
 * q), the sender's tags (with q over a SharedArrayBuffer and copied into
 * one) — and a closed pool refuses it.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import {
  CODE_WIDTH,
  codeKeys,
  CryptoPool,
  encodeInto,
  extensionMessageBytes,
  extensionReceive,
  extensionSend,
  CUCKOO_HASHES,
  cuckooParams,
  itemDigests,
  loadBlake2b,
  oprfReceiverTags,
  oprfSenderTagsForItems,
  packStrings,
  PoolClosedError,
  sharedBytes,
} from "../engine/index.js";

const RB = CODE_WIDTH / 8;
const pool = new CryptoPool({ threads: 2, inlineBelow: 0 });
afterAll(() => pool.close());

const keys = packStrings(Array.from({ length: 70_000 }, (_, i) => (i % 7 === 0 ? `客户-${i}` : `customer-${i}`)));
const seed = randomBytes(16);

describe("the pool's OT-PSI work equals the engine's on this thread", () => {
  it("digests of 70,000 keys in ranges", async () => {
    const hash = await loadBlake2b();
    const params = cuckooParams(70_000);
    const here = itemDigests(hash, keys, seed, params.bins);
    const there = await pool.otItemDigests(keys, seed, params.bins);
    expect([Buffer.compare(there.blocks, here.blocks), Buffer.compare(Buffer.from(there.positions.buffer), Buffer.from(here.positions.buffer))]).toEqual([0, 0]);
  });

  it.each([1000, 4096, 70_001])("the receiver's extension of %i rows: u and the tags", async (m) => {
    const hash = await loadBlake2b();
    const keys0 = randomBytes(CODE_WIDTH * 16);
    const keys1 = randomBytes(CODE_WIDTH * 16);
    const ck = codeKeys(randomBytes(16));
    const inputs = randomBytes(m * 16);
    const codewords = new Uint8Array(m * RB);
    encodeInto(ck, inputs, codewords);
    const here = extensionReceive(keys0, keys1, codewords, m);
    const progress: number[] = [];
    const there = await pool.otExtensionReceive({ keys0, keys1, codeKeys: ck, inputs, m }, { onProgress: (done) => progress.push(done) });
    expect([Buffer.compare(there.message, here.message), Buffer.compare(there.tags, oprfReceiverTags(hash, here.rows, m)), progress.at(-1)]).toEqual([0, 0, m]);
  });

  it.each([1000, 70_001])("the sender's extension of %i rows: q, over a SharedArrayBuffer", async (m) => {
    const keys = randomBytes(CODE_WIDTH * 16);
    const secret = randomBytes(RB);
    const message = randomBytes(extensionMessageBytes(m));
    const there = await pool.otExtensionSend({ keys, secret, message, m });
    expect([there.buffer instanceof SharedArrayBuffer, Buffer.compare(there, extensionSend(keys, secret, message, m))]).toEqual([true, 0]);
  });

  it.each([
    ["over a SharedArrayBuffer", true],
    ["copied into one", false],
  ])("the sender's tags of 3,000 keys, q %s", async (_how, shared) => {
    const hash = await loadBlake2b();
    const params = { n: 1000, bins: 1200, stash: 3, rows: 1203 }; // with a stash, so its rows are covered too
    const some = packStrings(Array.from({ length: 3000 }, (_, i) => `k${i}`));
    const ck = codeKeys(randomBytes(16));
    const secret = randomBytes(RB);
    const q = shared ? sharedBytes(params.rows * RB) : new Uint8Array(params.rows * RB);
    q.set(randomBytes(params.rows * RB));
    const d = itemDigests(hash, some, seed, params.bins);
    const here = oprfSenderTagsForItems(hash, ck, q, params.rows, secret, d.blocks, d.positions, CUCKOO_HASHES, params.bins, params.stash);
    const there = await pool.otSenderTags({ keys: some, seed, params, codeKeys: ck, rows: q, secret });
    expect(Buffer.compare(there, here)).toBe(0);
  });

  it("a closed pool refuses the work", async () => {
    const closed = new CryptoPool({ threads: 1 });
    await closed.close();
    await expect(closed.otExtensionSend({ keys: new Uint8Array(CODE_WIDTH * 16), secret: new Uint8Array(RB), message: new Uint8Array(extensionMessageBytes(1)), m: 1 })).rejects.toBeInstanceOf(PoolClosedError);
  });
});
