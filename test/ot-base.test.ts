/**
 * engine/ot/base-ot: Naor–Pinkas random OT over ristretto255. The receiver's
 * key equals the sender's key of its choice and not the other, on both
 * backends (which agree byte for byte from the same randomness); hostile
 * messages (wrong lengths, non-canonical or identity points, PK0 = C) are
 * refused with typed errors.
 */
import { describe, expect, it } from "vitest";
import {
  BackendId,
  baseOtReceiverRespond,
  baseOtSenderFinish,
  baseOtSenderStart,
  createGroup,
  GroupId,
  InvalidArgumentError,
  InvalidLengthError,
  InvalidPointError,
  OT_KEY_BYTES,
  type Group,
} from "../engine/index.js";
import { mulberry32, randomBytesFrom } from "./helpers/data.js";

const seeded = (seed: number) => {
  const r = mulberry32(seed);
  return (n: number) => randomBytesFrom(r, n);
};

function key(keys: Uint8Array, i: number): Uint8Array {
  return keys.subarray(i * OT_KEY_BYTES, (i + 1) * OT_KEY_BYTES);
}

async function run(group: Group, count: number, seed: number) {
  const rng = seeded(seed);
  const choices = rng((count + 7) >>> 3);
  const start = baseOtSenderStart(group, count, rng);
  const reply = baseOtReceiverRespond(group, count, choices, start.message, rng);
  const keys = baseOtSenderFinish(group, start.state, reply.message);
  return { choices, reply, keys, start };
}

describe("Naor–Pinkas base OT", () => {
  it.each([
    [BackendId.Libsodium, 512],
    [BackendId.Noble, 128],
  ])("on %s, %i OTs: the receiver holds the chosen key and not the other", async (backend, count) => {
    const group = await createGroup({ group: GroupId.Ristretto255, backend });
    const { choices, reply, keys } = await run(group, count, 1);
    let ok = 0;
    for (let i = 0; i < count; i++) {
      const sigma = ((choices[i >>> 3] as number) >>> (i & 7)) & 1;
      const chosen = key(sigma ? keys.keys1 : keys.keys0, i);
      const other = key(sigma ? keys.keys0 : keys.keys1, i);
      if (Buffer.compare(key(reply.keys, i), chosen) === 0 && Buffer.compare(key(reply.keys, i), other) !== 0) ok++;
    }
    expect(ok).toBe(count);
  });

  it("both backends give the same keys from the same randomness", async () => {
    const a = await run(await createGroup({ group: GroupId.Ristretto255, backend: BackendId.Libsodium }), 16, 7);
    const b = await run(await createGroup({ group: GroupId.Ristretto255, backend: BackendId.Noble }), 16, 7);
    expect([a.keys.keys0, a.keys.keys1, a.reply.keys]).toEqual([b.keys.keys0, b.keys.keys1, b.reply.keys]);
  });

  describe("hostile messages", async () => {
    const group = await createGroup({ group: GroupId.Ristretto255 });
    const count = 8;
    const honest = await run(group, count, 3);
    const choices = new Uint8Array(1);

    it("a truncated sender message is refused", () => {
      expect(() => baseOtReceiverRespond(group, count, choices, honest.start.message.subarray(0, 63))).toThrow(InvalidLengthError);
    });

    it("an identity C is refused", () => {
      const m = Uint8Array.from(honest.start.message);
      m.fill(0, 0, 32);
      expect(() => baseOtReceiverRespond(group, count, choices, m)).toThrow(InvalidPointError);
    });

    it("a non-canonical R is refused", () => {
      const m = Uint8Array.from(honest.start.message);
      m.fill(0xff, 32, 64);
      expect(() => baseOtReceiverRespond(group, count, choices, m)).toThrow(InvalidPointError);
    });

    it("a receiver message of the wrong length is refused", () => {
      expect(() => baseOtSenderFinish(group, honest.start.state, honest.reply.message.subarray(0, count * 32 - 1))).toThrow(InvalidLengthError);
    });

    it.each([
      ["the identity", (m: Uint8Array) => m.fill(0, 5 * 32, 6 * 32)],
      ["a non-canonical encoding", (m: Uint8Array) => m.fill(0xff, 5 * 32, 6 * 32)],
      ["C itself (PK1 would be the identity)", (m: Uint8Array) => m.set(honest.start.message.subarray(0, 32), 5 * 32)],
    ])("PK0 = %s is refused, naming the OT", (_what, tamper) => {
      const m = Uint8Array.from(honest.reply.message);
      tamper(m);
      let err: unknown;
      try {
        baseOtSenderFinish(group, honest.start.state, m);
      } catch (e) {
        err = e;
      }
      expect(err instanceof InvalidPointError && err.index === 5).toBe(true);
    });

    it("a count outside [1, 4096] is refused", () => {
      expect(() => baseOtSenderStart(group, 0)).toThrow(InvalidArgumentError);
    });
  });
});
