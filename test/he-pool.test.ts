/** HE encryption and addition in the worker pool: the same exact sums as on the calling thread, typed errors across the boundary. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHeContext, CryptoPool, ValueOutOfRangeError, type HeContext, type HeContextOptions, type HeKeyBytes } from "../engine/index.js";

const options: HeContextOptions = { maxAbsValue: 1n << 40n, maxRows: 64, maxLength: 20_000 };
let ctx: HeContext;
let keys: HeKeyBytes;
const pool = new CryptoPool({ threads: 2, inlineBelow: 0 });

beforeAll(async () => {
  ctx = await createHeContext(options);
  keys = ctx.generateKeys({ galois: false });
});
afterAll(async () => {
  ctx.dispose();
  await pool.close();
});

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
});
