/**
 * engine/ot code, PRG, hash and KKRT extension: the code is deterministic
 * and its width meets the 2^-40 bound at every cuckoo table size (and
 * reproduces KKRT16's widths); every extended row satisfies
 * q_j = t_j ⊕ (C(r_j) ∧ s); the sender's F(j, r_j) equals the receiver's
 * tag j and F(j, x) for x ≠ r_j does not; the two BLAKE2b backends agree;
 * wrong-length matrices and out-of-range rows are refused.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  blake2bNode,
  closePairLog2,
  CODE_WIDTH,
  codeFailureLog2,
  codeKeys,
  columnsOf,
  CUCKOO_HASHES,
  CUCKOO_TABLE,
  encodeInto,
  extensionMessageBytes,
  extensionReceive,
  extensionReceiveRange,
  extensionSend,
  extensionSendRange,
  InvalidArgumentError,
  InvalidLengthError,
  loadBlake2b,
  itemDigests,
  oprfReceiverTags,
  oprfReceiverTagsFrom,
  oprfSenderEvaluate,
  oprfSenderTagsForItems,
  packStrings,
  placeColumns,
  prgInto,
  simpleHashQueries,
  TAG_BYTES,
} from "../engine/index.js";

const RB = CODE_WIDTH / 8;

function bitsOf(bytes: Uint8Array, i: number): number {
  return ((bytes[i >>> 3] as number) >>> (i & 7)) & 1;
}

/** One extension of m rows with random base keys, s and inputs (the base OTs replaced by their outputs). */
function extend(m: number) {
  const keys0 = randomBytes(CODE_WIDTH * 16);
  const keys1 = randomBytes(CODE_WIDTH * 16);
  const s = randomBytes(RB);
  const chosen = new Uint8Array(CODE_WIDTH * 16);
  for (let i = 0; i < CODE_WIDTH; i++) chosen.set((bitsOf(s, i) ? keys1 : keys0).subarray(i * 16, i * 16 + 16), i * 16);
  const ck = codeKeys(randomBytes(16));
  const inputs = randomBytes(m * 16);
  const codewords = new Uint8Array(m * RB);
  encodeInto(ck, inputs, codewords);
  const recv = extensionReceive(keys0, keys1, codewords, m);
  const q = extensionSend(chosen, s, recv.message, m);
  return { keys0, keys1, chosen, s, ck, inputs, codewords, recv, q };
}

describe("pseudorandom code", () => {
  it("is deterministic in its seed and differs between seeds", () => {
    const inputs = randomBytes(100 * 16);
    const enc = (seed: Uint8Array) => {
      const out = new Uint8Array(100 * RB);
      encodeInto(codeKeys(seed), inputs, out);
      return out;
    };
    const seed = randomBytes(16);
    expect([Buffer.compare(enc(seed), enc(Uint8Array.from(seed))), Buffer.compare(enc(seed), enc(randomBytes(16))) !== 0]).toEqual([0, true]);
  });

  it("writes the same codewords into an unaligned buffer as into an aligned one", () => {
    const keys = codeKeys(randomBytes(16));
    const inputs = randomBytes(5000 * 16);
    const aligned = new Uint8Array(5000 * RB);
    const unaligned = new Uint8Array(5000 * RB + 1).subarray(1);
    encodeInto(keys, inputs, aligned);
    encodeInto(keys, inputs, unaligned);
    expect(Buffer.compare(aligned, unaligned)).toBe(0);
  });

  it("w = 448 keeps every pair of a 2^24 PSI at distance ≥ 128 except with probability ≤ 2^-40", () => {
    const worst = Math.max(...CUCKOO_TABLE.map((p) => codeFailureLog2((CUCKOO_HASHES + p.stash) * p.n)));
    expect(worst).toBeLessThanOrEqual(-40);
  });

  it("the bound reproduces KKRT16's widths 424, 432, 440, 448, 448 (at KKRT16's own stash sizes)", () => {
    const kkrt16 = [
      { n: 2 ** 8, stash: 12 },
      { n: 2 ** 12, stash: 6 },
      { n: 2 ** 16, stash: 4 },
      { n: 2 ** 20, stash: 3 },
      { n: 2 ** 24, stash: 2 },
    ];
    const widths = kkrt16.map((p) => {
      let w = 128;
      while (Math.log2((CUCKOO_HASHES + p.stash) * p.n) + closePairLog2(w) > -40) w += 8;
      return w;
    });
    expect(widths).toEqual([424, 432, 440, 448, 448]);
  });
});

describe("PRG and hash", () => {
  it("the PRG is AES-128-CTR: deterministic, and a prefix of a longer stream", () => {
    const k = randomBytes(16);
    const a = new Uint8Array(100);
    const b = new Uint8Array(1000);
    prgInto(k, a);
    prgInto(k, b);
    expect(Buffer.compare(a, b.subarray(0, 100))).toBe(0);
  });

  it("the PRG from an offset of k·16 bytes is the stream from byte k·16; other offsets are refused", () => {
    const k = randomBytes(16);
    const whole = new Uint8Array(5000);
    const part = new Uint8Array(1000);
    prgInto(k, whole);
    prgInto(k, part, 4000 - 16 * 7);
    expect([Buffer.compare(part, whole.subarray(4000 - 112, 5000 - 112)), (() => { try { prgInto(k, part, 8); return "ran"; } catch (e) { return (e as Error).name; } })()]).toEqual([0, "InvalidLengthError"]);
  });

  it("sodium-native and node:crypto BLAKE2b-512 agree", async () => {
    const fast = await loadBlake2b();
    let same = 0;
    for (let len = 0; len < 300; len += 7) {
      const input = randomBytes(len);
      const a = new Uint8Array(64);
      const b = new Uint8Array(64);
      fast(a, input);
      blake2bNode(b, input);
      if (Buffer.compare(a, b) === 0) same++;
    }
    expect(same).toBe(43);
  });
});

describe("IKNP extension with the KKRT code", () => {
  it.each([1, 33, 1000])("every row of %i satisfies q_j = t_j ⊕ (C(r_j) ∧ s)", (m) => {
    const { s, codewords, recv, q } = extend(m);
    let ok = 0;
    for (let j = 0; j < m; j++) {
      let row = true;
      for (let b = 0; b < RB; b++) {
        const expected = (recv.rows[j * RB + b] as number) ^ ((codewords[j * RB + b] as number) & (s[b] as number));
        if (q[j * RB + b] !== expected) row = false;
      }
      if (row) ok++;
    }
    expect(ok).toBe(m);
  });

  it("the sender's F(j, r_j) is the receiver's tag j; F(j, x) for another x is not", async () => {
    const hash = await loadBlake2b();
    const m = 300;
    const { s, ck, inputs, recv, q } = extend(m);
    const receiver = oprfReceiverTags(hash, recv.rows, m);
    const rowOf = Uint32Array.from({ length: 2 * m }, (_, k) => k % m);
    const queries = new Uint8Array(2 * m * 16);
    queries.set(inputs, 0);
    queries.set(randomBytes(m * 16), m * 16);
    const sender = oprfSenderEvaluate(hash, ck, q, m, s, rowOf, queries);
    let same = 0;
    let different = 0;
    for (let j = 0; j < m; j++) {
      const r = receiver.subarray(j * TAG_BYTES, (j + 1) * TAG_BYTES);
      if (Buffer.compare(r, sender.subarray(j * TAG_BYTES, (j + 1) * TAG_BYTES)) === 0) same++;
      if (Buffer.compare(r, sender.subarray((m + j) * TAG_BYTES, (m + j + 1) * TAG_BYTES)) !== 0) different++;
    }
    expect([same, different]).toEqual([m, m]);
  });

  it("extension by ranges of rows gives the whole extension's rows and u", () => {
    const m = 1000;
    const { keys0, keys1, chosen, s, codewords, recv, q } = extend(m);
    const u = new Uint8Array(recv.message.length);
    const rows = new Uint8Array(m * RB);
    const qRows = new Uint8Array(m * RB);
    for (const [first, end] of [[0, 384], [384, 512], [512, 1000]] as const) {
      const part = extensionReceiveRange(keys0, keys1, codewords.subarray(first * RB, end * RB), first, end - first);
      placeColumns(u, m, part.message, first, end - first);
      rows.set(part.rows, first * RB);
      extensionSendRange(chosen, s, columnsOf(recv.message, m, first, end - first), first, end - first, CODE_WIDTH, qRows.subarray(first * RB, end * RB));
    }
    expect([Buffer.compare(u, recv.message), Buffer.compare(rows, recv.rows), Buffer.compare(qRows, q)]).toEqual([0, 0, 0]);
  });

  it("a range of rows must start at a multiple of 128", () => {
    const { keys0, keys1, codewords } = extend(256);
    expect(() => extensionReceiveRange(keys0, keys1, codewords.subarray(0, 128 * RB), 64, 128)).toThrow(InvalidArgumentError);
  });

  it("the tags are deterministic in the rows", async () => {
    const hash = await loadBlake2b();
    const rows = randomBytes(10 * RB);
    expect(Buffer.compare(oprfReceiverTags(hash, rows, 10), oprfReceiverTags(hash, Uint8Array.from(rows), 10))).toBe(0);
  });

  it("tags of a run of rows (oprfReceiverTagsFrom) are those rows' tags", async () => {
    const hash = await loadBlake2b();
    const rows = randomBytes(100 * RB);
    const all = oprfReceiverTags(hash, rows, 100);
    const parts = [oprfReceiverTagsFrom(hash, rows.subarray(0, 37 * RB), 0), oprfReceiverTagsFrom(hash, rows.subarray(37 * RB), 37)];
    expect(Buffer.compare(Buffer.concat(parts), all)).toBe(0);
  });

  it("the sender's tags per element (oprfSenderTagsForItems) are oprfSenderEvaluate's on the simple-hashing queries", async () => {
    const hash = await loadBlake2b();
    const params = { n: 300, bins: 360, stash: 12, rows: 372 }; // a stash, so its rows are covered too
    const { s, ck, q } = extend(params.rows);
    const keys = packStrings(Array.from({ length: 500 }, (_, i) => `key-${i}`));
    const d = itemDigests(hash, keys, randomBytes(16), params.bins);
    const queries = simpleHashQueries(d, params);
    const expected = oprfSenderEvaluate(hash, ck, q, params.rows, s, queries.rowOf, queries.inputs);
    const got = oprfSenderTagsForItems(hash, ck, q, params.rows, s, d.blocks, d.positions, CUCKOO_HASHES, params.bins, params.stash);
    expect([got.length, Buffer.compare(got, expected)]).toEqual([500 * (CUCKOO_HASHES + params.stash) * TAG_BYTES, 0]);
  });

  describe("hostile input", () => {
    const m = 100;
    const { chosen, s, ck, recv, q } = extend(m);
    it.each([
      ["truncated", recv.message.subarray(0, recv.message.length - 4)],
      ["one row too many", new Uint8Array(extensionMessageBytes(m + 32))],
      ["empty", new Uint8Array(0)],
    ])("a %s matrix u is refused", (_what, message) => {
      expect(() => extensionSend(chosen, s, message, m)).toThrow(InvalidLengthError);
    });

    it("a wrong number of base-OT keys is refused", () => {
      expect(() => extensionSend(chosen.subarray(16), s, recv.message, m)).toThrow(InvalidLengthError);
    });

    it("an element position or a stash past the matrix is refused", async () => {
      const hash = await loadBlake2b();
      const block = new Uint8Array(16);
      const refusals = [
        () => oprfSenderTagsForItems(hash, ck, q, m, s, block, Uint32Array.of(0, 1, m), 3, m - 2, 2),
        () => oprfSenderTagsForItems(hash, ck, q, m, s, block, Uint32Array.of(0, 1, 2), 3, m - 1, 2),
      ];
      expect(refusals.map((f) => (() => { try { f(); return "ran"; } catch (e) { return (e as Error).name; } })())).toEqual(["InvalidArgumentError", "InvalidArgumentError"]);
    });

    it("a query naming a row past the matrix is refused", async () => {
      const hash = await loadBlake2b();
      expect(() => oprfSenderEvaluate(hash, ck, q, m, s, Uint32Array.of(m), new Uint8Array(16))).toThrow(InvalidArgumentError);
    });
  });
});
