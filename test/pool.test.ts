/**
 * The worker pool: same bytes as the calling thread, chunking and progress,
 * typed errors across the worker boundary with global indexes, bulk OPRF over
 * a column, and a script that uses the pool exits by itself.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGroup,
  CryptoPool,
  InvalidLengthError,
  InvalidPointError,
  InvalidScalarError,
  oprf,
  packStrings,
  PoolClosedError,
  type Group,
} from "../engine/index.js";
import { scalarToBytes } from "../engine/group/scalar.js";
import { toHex } from "./helpers/vectors.js";

const dst = new TextEncoder().encode("umbra-pool-test");
const keys = Array.from({ length: 3000 }, (_, i) => `customer-${i}-é`);
const messages = packStrings(keys);

describe.each([
  { group: "ristretto255" as const, backend: "libsodium" as const },
  { group: "x25519" as const, backend: "sodium-native" as const },
])("pool on $group/$backend", (choice) => {
  let pool: CryptoPool;
  let group: Group;
  beforeAll(async () => {
    pool = new CryptoPool({ threads: 2, chunkSize: 700, inlineBelow: 100 });
    group = await createGroup(choice);
  });
  afterAll(() => pool.close());

  it("hashes and multiplies in the workers with the same bytes as the calling thread", async () => {
    const a = group.randomScalar();
    const b = group.randomScalar();
    const progress: number[] = [];
    const blinded = await pool.hashToGroup(choice, messages, dst, a, { onProgress: (done, total) => progress.push(done / total) });
    expect(toHex(blinded)).toBe(toHex(group.hashToGroupBatch(messages, dst, a)));
    expect(progress.at(-1)).toBe(1);
    expect(progress.length).toBe(Math.ceil(keys.length / 700));
    const doubly = await pool.multiply(choice, b, blinded);
    const other = await pool.multiply(choice, a, await pool.hashToGroup(choice, messages, dst, b));
    expect(toHex(doubly)).toBe(toHex(other));
  });

  it("runs small batches on the calling thread with the same result", async () => {
    const small = packStrings(keys.slice(0, 10));
    const s = group.randomScalar();
    expect(toHex(await pool.hashToGroup(choice, small, dst, s))).toBe(toHex(group.hashToGroupBatch(small, dst, s)));
  });

  it("multiplies each point by its own scalar", async () => {
    const pts = await pool.hashToGroup(choice, messages, dst);
    const scalars = new Uint8Array(pts.length);
    for (let i = 0; i < keys.length; i++) scalars.set(scalarToBytes(BigInt(i + 1)), i * 32);
    const out = await pool.multiplyEach(choice, scalars, pts);
    for (const i of [0, 1, 1500, keys.length - 1]) {
      const expected = group.multiply(scalarToBytes(BigInt(i + 1)), group.decode(pts.subarray(i * 32, i * 32 + 32)));
      expect(toHex(out.subarray(i * 32, i * 32 + 32))).toBe(toHex(group.encode(expected)));
    }
  });

  it("returns a typed error with the global index of a bad element", async () => {
    const pts = await pool.hashToGroup(choice, messages, dst);
    pts.fill(0, 2100 * 32, 2101 * 32); // the identity, in the fourth chunk
    const err = await pool.multiply(choice, scalarToBytes(3n), pts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidPointError);
    expect((err as InvalidPointError).index).toBe(2100);
    expect((err as InvalidPointError).code).toBe("UMBRA_INVALID_POINT");
  });

  it("refuses bad scalars and lengths before any work", async () => {
    const pts = await pool.hashToGroup(choice, messages, dst);
    await expect(pool.multiply(choice, new Uint8Array(32), pts)).rejects.toBeInstanceOf(InvalidScalarError);
    expect(() => pool.multiply(choice, scalarToBytes(3n), pts.subarray(0, 33))).toThrow(InvalidLengthError);
  });
});

describe("bulk OPRF over a column", () => {
  const pool = new CryptoPool({ threads: 2, chunkSize: 500, inlineBelow: 50 });
  afterAll(() => pool.close());
  const { secretKey } = oprf.deriveKeyPair(new Uint8Array(32).fill(3), new TextEncoder().encode("product v1"));
  const column = packStrings(keys.slice(0, 1200));

  it("Evaluate over the column equals oprf.evaluate row by row", async () => {
    const out = await pool.oprfEvaluate(secretKey, column);
    expect(out.length).toBe(1200 * 64);
    for (const i of [0, 499, 500, 1199]) {
      expect(toHex(out.subarray(i * 64, i * 64 + 64))).toBe(toHex(oprf.evaluate(secretKey, new TextEncoder().encode(keys[i]))));
    }
  });

  it("Blind, BlindEvaluate, Finalize over the column give the same outputs", async () => {
    const group = await createGroup({ group: "ristretto255" });
    const blinds = new Uint8Array(1200 * 32);
    for (let i = 0; i < 1200; i++) blinds.set(group.randomScalar(), i * 32);
    const blinded = await pool.oprfBlind(column, blinds);
    const evaluated = await pool.multiply({ group: "ristretto255" }, secretKey, blinded);
    const finalized = await pool.oprfFinalize(column, blinds, evaluated);
    expect(toHex(finalized)).toBe(toHex(await pool.oprfEvaluate(secretKey, column)));
  });
});

describe("closing", () => {
  it("refuses work after close", async () => {
    const pool = new CryptoPool({ threads: 1, inlineBelow: 0 });
    await pool.hashToGroup({ group: "ristretto255" }, packStrings(["a"]), dst);
    await pool.close();
    expect(() => pool.hashToGroup({ group: "ristretto255" }, packStrings(["a"]), dst)).toThrow(PoolClosedError);
  });

  it("a script that uses the pool and closes it exits by itself", () => {
    const entry = fileURLToPath(new URL("../dist/engine/index.js", import.meta.url));
    const script = `
      import { CryptoPool, packStrings } from ${JSON.stringify(entry)};
      const pool = new CryptoPool({ threads: 2, inlineBelow: 0, chunkSize: 10 });
      const keys = packStrings(Array.from({ length: 100 }, (_, i) => "k" + i));
      const out = await pool.hashToGroup({ group: "x25519" }, keys, new TextEncoder().encode("t"));
      await pool.close();
      console.log(out.length);
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe("3200");
  });
});
