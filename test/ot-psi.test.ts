/**
 * The OT-extension PSI in one process (engine/ot/psi-local.ts) against the
 * plaintext oracle: the buyer's rows whose key is in the provider's Set, on
 * random data with duplicates and nulls, empty, disjoint and identical sets,
 * unicode keys, and sizes at the cuckoo table's edges.
 */
import { describe, expect, it } from "vitest";
import { otPsiLocal, packStrings, type OtPsiKeys } from "../engine/index.js";
import { mulberry32, randomKeys } from "./helpers/data.js";

function keys(values: readonly (string | null)[]): OtPsiKeys {
  const packed = packStrings(values.map((v) => v ?? ""));
  return { ...packed, valid: Uint8Array.from(values, (v) => (v === null ? 0 : 1)) };
}

function oracle(buyer: readonly (string | null)[], provider: readonly (string | null)[]): number[] {
  const set = new Set(provider.filter((v): v is string => v !== null));
  return buyer.flatMap((v, i) => (v !== null && set.has(v) ? [i] : []));
}

async function check(buyer: readonly (string | null)[], provider: readonly (string | null)[]): Promise<void> {
  const { rows } = await otPsiLocal(keys(buyer), keys(provider));
  expect(Array.from(rows)).toEqual(oracle(buyer, provider));
}

const range = (n: number, tag: string, from = 0) => Array.from({ length: n }, (_, i) => `${tag}-${from + i}`);

describe("otPsiLocal equals the plaintext intersection", () => {
  it("random keys with duplicates, nulls and unicode", async () => {
    const r = mulberry32(14);
    await check(randomKeys(r, 3000, 2500), randomKeys(r, 2000, 2500));
  });

  it("an empty buyer, an empty provider, both empty", async () => {
    await check([], range(100, "k"));
    await check(range(100, "k"), []);
    await check([], []);
  });

  it("disjoint sets", async () => {
    await check(range(1000, "a"), range(1000, "b"));
  });

  it("identical sets", async () => {
    await check(range(1500, "k"), range(1500, "k"));
  });

  it("unicode keys and near-duplicates", async () => {
    const buyer = ["émile", "e\u0301mile", "李雷", "韩梅梅", "🙂", "", "  padded  ", "padded", "Zoë", "zoë"];
    await check(buyer, ["e\u0301mile", "韩梅梅", "🙂", "", "padded", "Zoë"]);
  });

  it.each([1, 4095, 4096, 4097, 8192, 8193])("%i distinct buyer keys (a cuckoo table edge)", async (n) => {
    await check(range(n, "k"), range(n, "k", Math.floor(n / 2)));
  });

  it("20,000 × 15,000 keys", async () => {
    await check(range(20_000, "k"), range(15_000, "k", 12_000));
  });
});
