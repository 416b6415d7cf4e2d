/**
 * psi / psi-cardinality: results against a plain JS join on random data;
 * what each role receives; hostile messages refused with the state unchanged.
 */
import { tableFromArrays } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { createGroup, CryptoPool, InvalidPointError, keysFromTable, type GroupId } from "../engine/index.js";
import {
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  MessageTooLargeError,
  psiBuyerDone,
  psiBuyerReceive,
  psiBuyerResult,
  psiBuyerStart,
  psiDst,
  psiProviderReceive,
  psiProviderStart,
  runPsi,
  WrongJobError,
  WrongStepError,
  type ElementBatch,
  type ProtocolMessage,
  type PsiContext,
  type PsiMode,
} from "../protocols/index.js";
import { compositeKeyTable, oracleCardinality, oracleIntersectionRows, randomKeys, rng, rowsOf, singleKeyTable, type Side } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
afterAll(() => pool.close());
const ctx: PsiContext = { pool };

interface Case {
  readonly name: string;
  readonly buyer: Side;
  readonly provider: Side;
}

function cases(): Case[] {
  const r = rng(7);
  const out: Case[] = [];
  for (let i = 0; i < 4; i++) {
    const nb = [0, 1, 37, 400][i] as number;
    const np = [5, 0, 60, 700][i] as number;
    out.push({
      name: `random ${nb}×${np}`,
      buyer: { table: singleKeyTable(randomKeys(r, nb, 60), "v", r), keys: ["k"] },
      provider: { table: singleKeyTable(randomKeys(r, np, 60), "spend", r), keys: ["k"] },
    });
  }
  const same = randomKeys(r, 50, 30);
  out.push({ name: "identical sets", buyer: { table: singleKeyTable(same, "v", r), keys: ["k"] }, provider: { table: singleKeyTable(same, "spend", r), keys: ["k"] } });
  out.push({
    name: "disjoint sets",
    buyer: { table: singleKeyTable(["a1", "a2", "a2", null], "v", r), keys: ["k"] },
    provider: { table: singleKeyTable(["b1", "b2", null], "spend", r), keys: ["k"] },
  });
  out.push({ name: "both empty", buyer: { table: singleKeyTable([], "v", r), keys: ["k"] }, provider: { table: singleKeyTable([], "spend", r), keys: ["k"] } });
  out.push({
    name: "only nulls",
    buyer: { table: singleKeyTable([null, null, ""], "v", r), keys: ["k"] },
    provider: { table: singleKeyTable([null, "", "  "], "spend", r), keys: ["k"] },
  });
  const a = randomKeys(r, 300, 25, 0.05);
  const b = a.map(() => (r() < 0.05 ? null : Math.floor(r() * 4)));
  const a2 = randomKeys(r, 250, 25, 0.05);
  const b2 = a2.map(() => (r() < 0.05 ? null : Math.floor(r() * 4)));
  out.push({ name: "composite keys (string, int)", buyer: { table: compositeKeyTable(a, b, "v", r), keys: ["k1", "k2"] }, provider: { table: compositeKeyTable(a2, b2, "spend", r), keys: ["k1", "k2"] } });
  return out;
}

describe.each([
  ["x25519", "intersection"],
  ["x25519", "cardinality"],
  ["ristretto255", "intersection"],
  ["ristretto255", "cardinality"],
] as [GroupId, PsiMode][])("runPsi on %s, mode %s, against the plaintext join", (group, mode) => {
  it.each(cases().map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const r = await runPsi({ buyer: c.buyer, provider: c.provider, mode, group, pool, chunkElements: 64 });
    if (mode === "intersection") {
      if (r.mode !== "intersection") throw new Error("wrong mode");
      const expected = oracleIntersectionRows(c.buyer, c.provider);
      expect(Array.from(r.matchedRows)).toEqual(expected);
      expect(rowsOf(r.table)).toEqual(expected.map((i) => rowsOf(c.buyer.table)[i]));
      expect(r.table.schema.fields.map((f) => f.name)).toEqual(c.buyer.table.schema.fields.map((f) => f.name));
    } else {
      if (r.mode !== "cardinality") throw new Error("wrong mode");
      expect(r.count).toBe(oracleCardinality(c.buyer, c.provider));
    }
  });
});

// ------------------------------------------------------------ leakage

const utf8 = new TextEncoder();
const buyerKeys = Array.from({ length: 300 }, (_, i) => `buyer-secret-${i}`);
const providerKeys = Array.from({ length: 200 }, (_, i) => `buyer-secret-${i * 3}`);
const buyer = { table: tableFromArrays({ k: [...buyerKeys, buyerKeys[0] as string, null] }), keys: ["k"] };
const provider = { table: tableFromArrays({ k: providerKeys }), keys: ["k"] };

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).includes(Buffer.from(needle));
}

describe("leakage", () => {
  it.each(["intersection", "cardinality"] as PsiMode[])("%s: the provider receives only the set size and blinded points", async (mode) => {
    const toProvider: Uint8Array[] = [];
    const job = `leak-${mode}`;
    await runPsi({ buyer, provider, mode, pool, job, chunkElements: 128, tap: (from, _to, frame) => from === "buyer" && toProvider.push(frame) });
    const group = await createGroup({ group: "x25519" });
    const unblinded = new Set(buyerKeys.map((k) => Buffer.from(group.encode(group.hashToGroup(utf8.encode(k), psiDst("x25519", job)))).toString("hex")));
    let elements = 0;
    for (const frame of toProvider) {
      for (const k of buyerKeys.slice(0, 50)) expect(contains(frame, utf8.encode(k))).toBe(false);
      const m = decodeMessage(frame);
      if (m.kind === "psiHello") {
        expect(m.setSize).toBe(buyerKeys.length); // distinct, not 302 rows: no multiplicities
        continue;
      }
      expect(m.kind).toBe("elementBatch");
      const b = m as ElementBatch;
      for (let i = 0; i < b.count; i++) {
        const e = b.elements.subarray(i * 32, i * 32 + 32);
        expect(() => group.decode(e)).not.toThrow();
        expect(unblinded.has(Buffer.from(e).toString("hex"))).toBe(false);
        elements++;
      }
    }
    expect(elements).toBe(buyerKeys.length);
  });

  it("cardinality: the doubly blinded elements come back shuffled and the result is only a count", async () => {
    const params = { job: "card-shuffle", mode: "cardinality" as const, chunkElements: 1000 };
    const bk = keysFromTable(buyer.table, ["k"]);
    const pk = keysFromTable(provider.table, ["k"]);
    const b0 = await psiBuyerStart(params, bk, ctx);
    const p0 = await psiProviderStart(params, pk, ctx);
    let p = p0;
    const toBuyer: ProtocolMessage[] = [];
    for (const m of b0.messages) {
      p = await psiProviderReceive(p.state, decodeMessage(encodeMessage(m)), ctx);
      toBuyer.push(...p.messages);
    }
    // What the buyer would compute for its own rows, in its own order: H(x)^ab.
    const ab = await pool.multiply({ group: "x25519" }, p.state.secret, (b0.messages[1] as ElementBatch).elements);
    const doubled = toBuyer.filter((m) => m.header.step === 5).map((m) => (m as ElementBatch).elements);
    const received = Buffer.concat(doubled.map((d) => Buffer.from(d)));
    expect(received.length).toBe(ab.length);
    expect(received.equals(Buffer.from(ab))).toBe(false); // not in the buyer's order
    let inPlace = 0;
    for (let i = 0; i < buyerKeys.length; i++) if (received.subarray(i * 32, i * 32 + 32).equals(Buffer.from(ab.subarray(i * 32, i * 32 + 32)))) inPlace++;
    expect(inPlace).toBeLessThan(10); // a uniform shuffle leaves about one in place
    let b = b0;
    for (const m of toBuyer) b = await psiBuyerReceive(b.state, decodeMessage(encodeMessage(m)), ctx);
    const result = psiBuyerResult(b.state);
    expect(result).toEqual({ mode: "cardinality", count: 100, providerSetSize: 200, buyerSetSize: 300 });
    expect(b.state.rowToDistinct.length).toBe(0); // the buyer does not even keep a row mapping
  });
});

// ----------------------------------------------------- hostile messages

async function started(mode: PsiMode = "intersection") {
  const params = { job: "hostile-job", mode, chunkElements: 100 };
  const b = await psiBuyerStart(params, keysFromTable(buyer.table, ["k"]), ctx);
  const p = await psiProviderStart(params, keysFromTable(provider.table, ["k"]), ctx);
  return { params, b, p };
}

function withElements(m: ElementBatch, mutate: (e: Uint8Array) => void): ElementBatch {
  const elements = Uint8Array.from(m.elements);
  mutate(elements);
  return { ...m, elements };
}

/** Expects `fn` to throw `type`, and the state to be exactly as before. */
async function refused<S>(state: S, fn: () => Promise<unknown>, type: abstract new (...args: never[]) => Error): Promise<void> {
  const before = structuredClone(state);
  await expect(fn()).rejects.toBeInstanceOf(type);
  expect(state).toEqual(before);
}

describe("hostile messages are refused and leave the state unchanged", () => {
  it("at the provider: identity, non-canonical, wrong length, wrong step, replay, wrong job, oversized", async () => {
    const { b, p } = await started();
    const hello = b.messages[0] as ProtocolMessage;
    const chunk0 = b.messages[1] as ElementBatch;
    // Before the hello, an element batch is the wrong step.
    await refused(p.state, () => psiProviderReceive(p.state, chunk0, ctx), WrongStepError);
    const afterHello = await psiProviderReceive(p.state, hello, ctx);
    const s = afterHello.state;
    await refused(s, () => psiProviderReceive(s, hello, ctx), WrongStepError); // replayed hello
    await refused(s, () => psiProviderReceive(s, withElements(chunk0, (e) => e.fill(0, 64, 96)), ctx), InvalidPointError); // identity
    await refused(s, () => psiProviderReceive(s, withElements(chunk0, (e) => e.fill(0xff, 0, 32)), ctx), InvalidPointError); // non-canonical
    await refused(s, () => psiProviderReceive(s, { ...chunk0, count: 99, elements: chunk0.elements.subarray(0, 99 * 32) }, ctx), InvalidMessageError); // short chunk
    await refused(s, () => psiProviderReceive(s, { ...chunk0, header: { ...chunk0.header, job: "other-job" } }, ctx), WrongJobError);
    await refused(s, () => psiProviderReceive(s, { ...chunk0, header: { ...chunk0.header, protocol: "psi-cardinality" } }, ctx), WrongJobError);
    await refused(s, () => psiProviderReceive(s, b.messages[2] as ProtocolMessage, ctx), WrongStepError); // chunk 1 before chunk 0
    // An oversized batch: more elements than the chunk may hold, consistently encoded.
    const big = new Uint8Array(101 * 32);
    big.set(chunk0.elements);
    big.set(chunk0.elements.subarray(0, 32), 100 * 32);
    await refused(s, () => psiProviderReceive(s, { ...chunk0, count: 101, elements: big }, ctx), InvalidMessageError);
    expect(() => decodeMessage(encodeMessage({ ...chunk0, count: 70_000, elements: new Uint8Array(70_000 * 32) }))).toThrow(InvalidMessageError);
    // The index of the bad element is reported.
    const err = await psiProviderReceive(s, withElements(chunk0, (e) => e.fill(0, 64, 96)), ctx).catch((e: unknown) => e);
    expect((err as InvalidPointError).index).toBe(2);
    // Wire-level: a frame whose length field lies, and an oversized frame.
    const frame = encodeMessage(chunk0);
    expect(() => decodeMessage(frame.subarray(0, frame.length - 5))).toThrow(InvalidMessageError);
    expect(() => decodeMessage(new Uint8Array(9 * 1024 * 1024))).toThrow(MessageTooLargeError);
    const lying = encodeMessage({ ...chunk0, count: 101 });
    expect(() => decodeMessage(lying)).toThrow(InvalidMessageError);
    // After all that, the genuine chunk is accepted; replaying it is refused.
    const ok = await psiProviderReceive(s, chunk0, ctx);
    await refused(ok.state, () => psiProviderReceive(ok.state, chunk0, ctx), WrongStepError);
  });

  it("at the buyer: bad points, wrong steps and replays are refused, and the job still completes correctly", async () => {
    const { b, p } = await started();
    let prov = p;
    const toBuyer: ProtocolMessage[] = [];
    for (const m of b.messages) {
      prov = await psiProviderReceive(prov.state, m, ctx);
      toBuyer.push(...prov.messages);
    }
    let state = b.state;
    for (const m of toBuyer) {
      if (m.kind === "elementBatch") {
        const e = m as ElementBatch;
        await refused(state, () => psiBuyerReceive(state, withElements(e, (x) => x.fill(0, 0, 32)), ctx), InvalidPointError);
        await refused(state, () => psiBuyerReceive(state, withElements(e, (x) => x.fill(0xff, 32, 64)), ctx), InvalidPointError);
        await refused(state, () => psiBuyerReceive(state, { ...e, header: { ...e.header, step: e.header.step === 4 ? 5 : 4 } }, ctx), WrongStepError);
      }
      state = (await psiBuyerReceive(state, m, ctx)).state;
      await refused(state, () => psiBuyerReceive(state, m, ctx), WrongStepError); // replay
    }
    expect(psiBuyerDone(state)).toBe(true);
    const result = psiBuyerResult(state);
    expect(result.mode === "intersection" && Array.from(result.matchedRows)).toEqual(oracleIntersectionRows(buyer, provider));
  });

  it("refuses a peer that announces another mode or group", async () => {
    const { b, p } = await started("intersection");
    const hello = b.messages[0] as ProtocolMessage & { mode: string };
    await expect(psiProviderReceive(p.state, { ...hello, mode: "cardinality" } as ProtocolMessage, ctx)).rejects.toThrow(/mode/);
    await expect(psiProviderReceive(p.state, { ...hello, group: "ristretto255" } as ProtocolMessage, ctx)).rejects.toThrow(/group/);
  });
});

describe("persistence", () => {
  it("a buyer and a provider resume from persisted states mid-job and finish with the right result", async () => {
    const { stateFromBytes, stateToBytes } = await import("../protocols/index.js");
    const params = { job: "resume-job", mode: "intersection" as const, chunkElements: 50 };
    const b0 = await psiBuyerStart(params, keysFromTable(buyer.table, ["k"]), ctx);
    let p = await psiProviderStart(params, keysFromTable(provider.table, ["k"]), ctx);
    const toBuyer: ProtocolMessage[] = [];
    for (const [i, m] of b0.messages.entries()) {
      // The provider "restarts" after every message.
      const restored = stateFromBytes<typeof p.state>(stateToBytes(p.state), { protocols: ["psi"], role: "provider" });
      p = await psiProviderReceive(restored, m, ctx);
      toBuyer.push(...p.messages);
      if (i === 2) expect(() => stateFromBytes(stateToBytes(p.state), { protocols: ["psi"], role: "buyer" })).toThrow(/not a psi buyer state/);
    }
    let state = b0.state;
    for (const m of toBuyer) {
      state = stateFromBytes<typeof state>(stateToBytes(state), { protocols: ["psi"], role: "buyer" });
      state = (await psiBuyerReceive(state, m, ctx)).state;
    }
    const result = psiBuyerResult(state);
    expect(result.mode === "intersection" && Array.from(result.matchedRows)).toEqual(oracleIntersectionRows(buyer, provider));
    expect(() => stateFromBytes(new Uint8Array([1, 2, 3, 4, 5]), { protocols: ["psi"], role: "buyer" })).toThrow(/not a persisted protocol state/);
  });
});
