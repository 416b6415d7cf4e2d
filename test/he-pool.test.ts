/**
 * HE encryption and addition in the worker pool: the same exact sums as on
 * the calling thread, typed errors across the boundary. Key generation, the
 * check of a received public key and the decryption of block sums also run
 * on a worker (a node's main thread builds no SEAL context).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bfvFixture } from "./helpers/he.js";
import { CryptoPool, InvalidKeyError, ValueOutOfRangeError, type HeContext, type HeContextOptions, type HeKeyBytes } from "../engine/index.js";

const options: HeContextOptions = { maxAbsValue: 1n << 40n, maxRows: 64, maxLength: 20_000 };
let ctx: HeContext;
let keys: HeKeyBytes;
const pool = new CryptoPool({ threads: 2, inlineBelow: 0 });

const he = bfvFixture(options, { galois: false });
beforeAll(() => void ({ ctx, keys } = he));
afterAll(() => pool.close());

function column(n: number, seed: number): BigInt64Array {
  const out = new BigInt64Array(n);
  let s = BigInt(seed);
  for (let i = 0; i < n; i++) {
    s = (s * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    out[i] = (s % (1n << 41n)) - (1n << 40n);
  }
  out[0] = 1n << 40n;
  out[1] = -(1n << 40n);
  out[2] = 0n;
  return out;
}

describe("HE in the pool", () => {
  it("encrypts a column across workers; sums decrypt exactly", async () => {
    const a = column(3 * 4096 + 5, 1);
    const b = column(3 * 4096 + 5, 2);
    const progress: number[] = [];
    const ca = await pool.heEncrypt(options, keys.publicKey, a, { onProgress: (d) => progress.push(d) });
    const cb = await pool.heEncrypt(options, keys.publicKey, b);
    expect(progress.at(-1)).toBe(a.length);
    const sum = await pool.heAdd(options, [ca, cb]);
    const got = ctx.decryptSums(sum, keys.secretKey);
    expect(got).toEqual(Array.from(a, (v, i) => v + (b[i] as bigint)));
    expect(ctx.inspect(ca).length).toBe(a.length);
  });

  it("a value out of range comes back as a typed error from the worker", async () => {
    const bad = column(5000, 3);
    bad[4500] = (1n << 40n) + 1n;
    await expect(pool.heEncrypt(options, keys.publicKey, bad)).rejects.toBeInstanceOf(ValueOutOfRangeError);
  });

  it("per block, the sum of a column's slots decrypted on a worker equals the sum of decryptSums' slots", async () => {
    const a = column(2 * 4096 + 7, 4);
    const ct = ctx.encryptColumn(a, keys.publicKey);
    const slots = ctx.decryptSums(ct, keys.secretKey);
    const M = ctx.params.crtModulus;
    const centred = (t: bigint): bigint => {
      const r = ((t % M) + M) % M;
      return r > M / 2n ? r - M : r;
    };
    const expected = [0, 1, 2].map((b) => centred(slots.slice(b * 4096, (b + 1) * 4096).reduce((x, y) => x + y, 0n)));
    expect((await pool.heDecryptBlockSums(options, ct, keys.secretKey)).map(centred)).toEqual(expected);
  });

  it("keys made on a worker decrypt what their public key encrypted", async () => {
    const made = await pool.heGenerateKeys(options, { galois: false });
    expect(ctx.decryptSums(ctx.encryptColumn(BigInt64Array.of(5n, -7n), made.publicKey), made.secretKey)).toEqual([5n, -7n]);
  });

  it("a malformed public key is refused on a worker with a typed error", async () => {
    await expect(pool.heCheckPublicKey(options, keys.publicKey.slice(0, keys.publicKey.length - 100))).rejects.toBeInstanceOf(InvalidKeyError);
  });
});
