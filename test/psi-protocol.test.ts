/**
 * psi / psi-cardinality: results against a plain JS join on random data;
 * what each role receives; hostile messages refused with the state unchanged.
 */
import { tableFromArrays } from "apache-arrow";
import { afterAll, describe, expect, it } from "vitest";
import { createGroup, CryptoPool, InvalidPointError, keysFromTable, type GroupId } from "../engine/index.js";
import {
  BelowMinimumError,
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  KeyLimitExceededError,
  MessageTooLargeError,
  psiBuyer,
  psiDst,
  psiProvider,
  runPsi,
  WrongJobError,
  WrongSenderError,
  WrongStepError,
  type ElementBatch,
  type ProtocolMessage,
  type PsiContext,
  type PsiHello,
  type PsiMode,
  type Step,
} from "../protocols/index.js";
import { InvalidArgumentError } from "../engine/errors.js";
import { compositeKeyTable, oracleCardinality, oracleIntersectionRows, randomKeys, rng, rowsOf, singleKeyTable, type Side } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 2, inlineBelow: 64 });
afterAll(() => pool.close());
const ctx: PsiContext = { pool };
/** The messages a step sends (every psi message goes to the other role). */
const sent = (s: Step<unknown>): ProtocolMessage[] => s.messages.map((o) => o.message);

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
    const b0 = await psiBuyer.start({ params: params, keys: bk }, ctx);
    const p0 = await psiProvider.start({ params: params, keys: pk }, ctx);
    let p = p0;
    const toBuyer: ProtocolMessage[] = [];
    for (const m of sent(b0)) {
      p = await psiProvider.receive(p.state, "buyer", decodeMessage(encodeMessage(m)), ctx);
      toBuyer.push(...sent(p));
    }
    // What the buyer would compute for its own rows, in its own order: H(x)^ab.
    const ab = await pool.multiply({ group: "x25519" }, p.state.secret, (sent(b0)[1] as ElementBatch).elements);
    const doubled = toBuyer.filter((m) => m.header.step === 5).map((m) => (m as ElementBatch).elements);
    const received = Buffer.concat(doubled.map((d) => Buffer.from(d)));
    expect(received.length).toBe(ab.length);
    expect(received.equals(Buffer.from(ab))).toBe(false); // not in the buyer's order
    let inPlace = 0;
    for (let i = 0; i < buyerKeys.length; i++) if (received.subarray(i * 32, i * 32 + 32).equals(Buffer.from(ab.subarray(i * 32, i * 32 + 32)))) inPlace++;
    expect(inPlace).toBeLessThan(10); // a uniform shuffle leaves about one in place
    let b = b0;
    for (const m of toBuyer) b = await psiBuyer.receive(b.state, "provider", decodeMessage(encodeMessage(m)), ctx);
    const result = psiBuyer.result(b.state);
    expect(result).toEqual({ mode: "cardinality", count: 100, providerSetSize: 200, buyerSetSize: 300 });
    expect(b.state.rowToDistinct.length).toBe(0); // the buyer does not even keep a row mapping
  });
});

// ----------------------------------------------------- hostile messages

async function started(mode: PsiMode = "intersection") {
  const params = { job: "hostile-job", mode, chunkElements: 100 };
  const b = await psiBuyer.start({ params: params, keys: keysFromTable(buyer.table, ["k"]) }, ctx);
  const p = await psiProvider.start({ params: params, keys: keysFromTable(provider.table, ["k"]) }, ctx);
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
  it("each role takes messages only from the other role of the job", async () => {
    const { b, p } = await started();
    const hello = sent(b)[0] as ProtocolMessage;
    await refused(p.state, () => psiProvider.receive(p.state, "exchange", hello, ctx), WrongSenderError);
    await refused(p.state, () => psiProvider.receive(p.state, "provider", hello, ctx), WrongSenderError);
    const answer = sent(await psiProvider.receive(p.state, "buyer", hello, ctx))[0] as ProtocolMessage;
    await refused(b.state, () => psiBuyer.receive(b.state, "buyer", answer, ctx), WrongSenderError);
    expect(sent(b).length).toBe(b.messages.filter((o) => o.to === "provider").length);
  });

  it("at the provider: identity, non-canonical, wrong length, wrong step, replay, wrong job, oversized", async () => {
    const { b, p } = await started();
    const hello = sent(b)[0] as ProtocolMessage;
    const chunk0 = sent(b)[1] as ElementBatch;
    // Before the hello, an element batch is the wrong step.
    await refused(p.state, () => psiProvider.receive(p.state, "buyer", chunk0, ctx), WrongStepError);
    const afterHello = await psiProvider.receive(p.state, "buyer", hello, ctx);
    const s = afterHello.state;
    await refused(s, () => psiProvider.receive(s, "buyer", hello, ctx), WrongStepError); // replayed hello
    await refused(s, () => psiProvider.receive(s, "buyer", withElements(chunk0, (e) => e.fill(0, 64, 96)), ctx), InvalidPointError); // identity
    await refused(s, () => psiProvider.receive(s, "buyer", withElements(chunk0, (e) => e.fill(0xff, 0, 32)), ctx), InvalidPointError); // non-canonical
    await refused(s, () => psiProvider.receive(s, "buyer", { ...chunk0, count: 99, elements: chunk0.elements.subarray(0, 99 * 32) }, ctx), InvalidMessageError); // short chunk
    await refused(s, () => psiProvider.receive(s, "buyer", { ...chunk0, header: { ...chunk0.header, job: "other-job" } }, ctx), WrongJobError);
    await refused(s, () => psiProvider.receive(s, "buyer", { ...chunk0, header: { ...chunk0.header, protocol: "psi-cardinality" } }, ctx), WrongJobError);
    await refused(s, () => psiProvider.receive(s, "buyer", sent(b)[2] as ProtocolMessage, ctx), WrongStepError); // chunk 1 before chunk 0
    // An oversized batch: more elements than the chunk may hold, consistently encoded.
    const big = new Uint8Array(101 * 32);
    big.set(chunk0.elements);
    big.set(chunk0.elements.subarray(0, 32), 100 * 32);
    await refused(s, () => psiProvider.receive(s, "buyer", { ...chunk0, count: 101, elements: big }, ctx), InvalidMessageError);
    expect(() => decodeMessage(encodeMessage({ ...chunk0, count: 70_000, elements: new Uint8Array(70_000 * 32) }))).toThrow(InvalidMessageError);
    // The index of the bad element is reported.
    const err = await psiProvider.receive(s, "buyer", withElements(chunk0, (e) => e.fill(0, 64, 96)), ctx).catch((e: unknown) => e);
    expect((err as InvalidPointError).index).toBe(2);
    // Wire-level: a frame whose length field lies, and an oversized frame.
    const frame = encodeMessage(chunk0);
    expect(() => decodeMessage(frame.subarray(0, frame.length - 5))).toThrow(InvalidMessageError);
    expect(() => decodeMessage(new Uint8Array(9 * 1024 * 1024))).toThrow(MessageTooLargeError);
    const lying = encodeMessage({ ...chunk0, count: 101 });
    expect(() => decodeMessage(lying)).toThrow(InvalidMessageError);
    // After all that, the genuine chunk is accepted; replaying it is refused.
    const ok = await psiProvider.receive(s, "buyer", chunk0, ctx);
    await refused(ok.state, () => psiProvider.receive(ok.state, "buyer", chunk0, ctx), WrongStepError);
  });

  it("at the buyer: bad points, wrong steps and replays are refused, and the job still completes correctly", async () => {
    const { b, p } = await started();
    let prov = p;
    const toBuyer: ProtocolMessage[] = [];
    for (const m of sent(b)) {
      prov = await psiProvider.receive(prov.state, "buyer", m, ctx);
      toBuyer.push(...sent(prov));
    }
    let state = b.state;
    for (const m of toBuyer) {
      if (m.kind === "elementBatch") {
        const e = m as ElementBatch;
        await refused(state, () => psiBuyer.receive(state, "provider", withElements(e, (x) => x.fill(0, 0, 32)), ctx), InvalidPointError);
        await refused(state, () => psiBuyer.receive(state, "provider", withElements(e, (x) => x.fill(0xff, 32, 64)), ctx), InvalidPointError);
        await refused(state, () => psiBuyer.receive(state, "provider", { ...e, header: { ...e.header, step: e.header.step === 4 ? 5 : 4 } }, ctx), WrongStepError);
      }
      state = (await psiBuyer.receive(state, "provider", m, ctx)).state;
      await refused(state, () => psiBuyer.receive(state, "provider", m, ctx), WrongStepError); // replay
    }
    expect(psiBuyer.done(state)).toBe(true);
    const result = psiBuyer.result(state);
    expect(result.mode === "intersection" && Array.from(result.matchedRows)).toEqual(oracleIntersectionRows(buyer, provider));
  });

  it("refuses a peer that announces another mode or group", async () => {
    const { b, p } = await started("intersection");
    const hello = sent(b)[0] as ProtocolMessage & { mode: string };
    await expect(psiProvider.receive(p.state, "buyer", { ...hello, mode: "cardinality" } as ProtocolMessage, ctx)).rejects.toThrow(/mode/);
    await expect(psiProvider.receive(p.state, "buyer", { ...hello, group: "ristretto255" } as ProtocolMessage, ctx)).rejects.toThrow(/group/);
  });
});

describe("persistence", () => {
  it("a buyer and a provider resume from persisted states mid-job and finish with the right result", async () => {
    const { stateFromBytes, stateToBytes } = await import("../protocols/index.js");
    const params = { job: "resume-job", mode: "intersection" as const, chunkElements: 50 };
    const b0 = await psiBuyer.start({ params: params, keys: keysFromTable(buyer.table, ["k"]) }, ctx);
    let p = await psiProvider.start({ params: params, keys: keysFromTable(provider.table, ["k"]) }, ctx);
    const toBuyer: ProtocolMessage[] = [];
    for (const [i, m] of sent(b0).entries()) {
      // The provider "restarts" after every message.
      const restored = stateFromBytes<typeof p.state>(stateToBytes(p.state), { protocols: ["psi"], role: "provider" });
      p = await psiProvider.receive(restored, "buyer", m, ctx);
      toBuyer.push(...sent(p));
      if (i === 2) expect(() => stateFromBytes(stateToBytes(p.state), { protocols: ["psi"], role: "buyer" })).toThrow(/not a psi buyer state/);
    }
    let state = b0.state;
    for (const m of toBuyer) {
      state = stateFromBytes<typeof state>(stateToBytes(state), { protocols: ["psi"], role: "buyer" });
      state = (await psiBuyer.receive(state, "provider", m, ctx)).state;
    }
    const result = psiBuyer.result(state);
    expect(result.mode === "intersection" && Array.from(result.matchedRows)).toEqual(oracleIntersectionRows(buyer, provider));
    expect(() => stateFromBytes(new Uint8Array([1, 2, 3, 4, 5]), { protocols: ["psi"], role: "buyer" })).toThrow(/not a persisted protocol state/);
  });
});

// ------------------------------------------------------- job limits

const keyTable = (keys: readonly (string | null)[]) => tableFromArrays({ k: [...keys] });

/** Bytes held in a state's typed arrays (and arrays of them). */
function heldBytes(state: object): number {
  let n = 0;
  for (const v of Object.values(state)) {
    if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (Array.isArray(v)) for (const x of v) if (ArrayBuffer.isView(x)) n += x.byteLength;
  }
  return n;
}

/** The cases above and a few overlaps just around a threshold of 5 (duplicates and nulls on both sides). */
function thresholdCases(): Case[] {
  const r = rng(8);
  const around = (shared: number): Case => {
    const common = Array.from({ length: shared }, (_, i) => `shared-${i}`);
    return {
      name: `${shared} shared keys`,
      buyer: { table: singleKeyTable([...common, ...common.slice(0, 2), null, ...randomKeys(r, 30, 1000).map((k) => (k === null ? null : `b-${k}`))], "v", r), keys: ["k"] },
      provider: { table: singleKeyTable([null, ...common, ...common.slice(0, 1), ...randomKeys(r, 40, 1000).map((k) => (k === null ? null : `p-${k}`))], "spend", r), keys: ["k"] },
    };
  };
  return [...cases(), around(1), around(4), around(5)];
}

describe("minIntersection: the buyer's role withholds a result with fewer matched distinct keys", () => {
  describe.each(["intersection", "cardinality"] as PsiMode[])("mode %s, random data against the plaintext join with the rule applied", (mode) => {
    const T = 5;
    it.each(thresholdCases().map((c) => [c.name, c] as const))("%s", async (_name, c) => {
      const run = runPsi({ buyer: c.buyer, provider: c.provider, mode, pool, chunkElements: 64, minIntersection: T });
      const matched = oracleCardinality(c.buyer, c.provider);
      if (matched < T) {
        await expect(run).rejects.toBeInstanceOf(BelowMinimumError);
        return;
      }
      const r = await run;
      if (r.mode === "intersection") expect(Array.from(r.matchedRows)).toEqual(oracleIntersectionRows(c.buyer, c.provider));
      else expect(r.count).toBe(matched);
    });
  });

  it("the cases above cover both sides of the threshold", () => {
    const matched = thresholdCases().map((c) => oracleCardinality(c.buyer, c.provider));
    expect(matched.some((m) => m === 0)).toBe(true);
    expect(matched.some((m) => m > 0 && m < 5)).toBe(true);
    expect(matched.some((m) => m >= 5)).toBe(true);
  });

  // The attack: a psi on one shared key released that key's row against minIntersection 20.
  const probe = { table: keyTable(["target", ...Array.from({ length: 30 }, (_, i) => `nobody-${i}`), "target"]), keys: ["k"] };
  const target = { table: keyTable(["target", ...Array.from({ length: 50 }, (_, i) => `theirs-${i}`)]), keys: ["k"] };

  it("psi with 1 shared key against minIntersection 20: refused with BelowMinimumError naming the threshold, not the count", async () => {
    const err = await runPsi({ buyer: probe, provider: target, pool, minIntersection: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BelowMinimumError);
    expect(err).toMatchObject({ code: "UMBRA_BELOW_MINIMUM", threshold: 20, rule: "minIntersection" });
    expect((err as Error).message).toBe("result withheld: fewer than 20 distinct keys matched (the job's minIntersection is 20)");
  });

  it("psi-cardinality with count 1 against k = 10 (minIntersection 10): refused", async () => {
    await expect(runPsi({ buyer: probe, provider: target, mode: "cardinality", pool, minIntersection: 10 })).rejects.toMatchObject({ code: "UMBRA_BELOW_MINIMUM", threshold: 10 });
  });

  it("an empty intersection is refused under a threshold above 1 (else a one-key query would learn membership from refused vs. released)", async () => {
    const none = { table: keyTable(["nobody"]), keys: ["k"] };
    await expect(runPsi({ buyer: none, provider: target, mode: "cardinality", pool, minIntersection: 2 })).rejects.toBeInstanceOf(BelowMinimumError);
    await expect(runPsi({ buyer: none, provider: target, pool, minIntersection: 2 })).rejects.toBeInstanceOf(BelowMinimumError);
    // The default (1) withholds nothing: an empty result says what a refusal would.
    const r = await runPsi({ buyer: none, provider: target, mode: "cardinality", pool });
    expect(r.mode === "cardinality" && r.count).toBe(0);
  });

  it("exactly minIntersection matched distinct keys are released (duplicated buyer rows count once)", async () => {
    const buyer3 = { table: keyTable(["theirs-1", "theirs-2", "theirs-2", "theirs-3", "nobody", null]), keys: ["k"] };
    const r = await runPsi({ buyer: buyer3, provider: target, pool, minIntersection: 3 });
    expect(r.mode === "intersection" && Array.from(r.matchedRows)).toEqual([0, 1, 2, 3]);
    await expect(runPsi({ buyer: buyer3, provider: target, pool, minIntersection: 4 })).rejects.toBeInstanceOf(BelowMinimumError);
  });

  it("the refusal leaves the buyer's state unchanged, and minIntersection must be a positive integer", async () => {
    const params = { job: "min-state", mode: "intersection" as const, minIntersection: 20 };
    const b0 = await psiBuyer.start({ params: params, keys: keysFromTable(probe.table, ["k"]) }, ctx);
    let p = await psiProvider.start({ params: params, keys: keysFromTable(target.table, ["k"]) }, ctx);
    let b = b0.state;
    for (const m of sent(b0)) {
      p = await psiProvider.receive(p.state, "buyer", m, ctx);
      for (const r of sent(p)) b = (await psiBuyer.receive(b, "provider", r, ctx)).state;
    }
    expect(psiBuyer.done(b)).toBe(true);
    const before = structuredClone(b);
    expect(() => psiBuyer.result(b)).toThrow(BelowMinimumError);
    expect(b).toEqual(before);
    for (const bad of [0, -1, 1.5]) await expect(psiBuyer.start({ params: { ...params, minIntersection: bad }, keys: keysFromTable(probe.table, ["k"]) }, ctx)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe("maxBuyerKeys: the provider refuses a buyer announcing more distinct keys", () => {
  const many = { table: keyTable(Array.from({ length: 160 }, (_, i) => `buyer-secret-${i}`)), keys: ["k"] };

  it("a buyer with 160 keys against maxBuyerKeys 100: the provider refuses the hello, the buyer gets a refusal and no provider element", async () => {
    const toBuyer: ProtocolMessage[] = [];
    const err = await runPsi({ buyer: many, provider, pool, maxBuyerKeys: 100, tap: (from, _to, frame) => from === "provider" && toBuyer.push(decodeMessage(frame)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyLimitExceededError);
    expect(err).toMatchObject({ code: "UMBRA_KEY_LIMIT_EXCEEDED", announced: 160, limit: 100 });
    expect(toBuyer.map((m) => m.kind)).toEqual(["refusal"]);
    expect(toBuyer[0]).toMatchObject({ code: "UMBRA_KEY_LIMIT_EXCEEDED" });
  });

  it.each(["intersection", "cardinality"] as PsiMode[])("%s: refused at the hello with the state unchanged; at the limit every chunk must hold what the hello announced", async (mode) => {
    const params = { job: `max-keys-${mode}`, mode, chunkElements: 64 };
    const atLimit = { table: keyTable(Array.from({ length: 100 }, (_, i) => `buyer-secret-${i}`)), keys: ["k"] };
    const b = await psiBuyer.start({ params: params, keys: keysFromTable(atLimit.table, ["k"]) }, ctx);
    const p = await psiProvider.start({ params: { ...params, maxPeerSetSize: 100 }, keys: keysFromTable(provider.table, ["k"]) }, ctx);
    const hello = sent(b)[0] as PsiHello;
    await refused(p.state, () => psiProvider.receive(p.state, "buyer", { ...hello, setSize: 101 }, ctx), KeyLimitExceededError);
    const s1 = (await psiProvider.receive(p.state, "buyer", hello, ctx)).state;
    const chunk0 = sent(b)[1] as ElementBatch;
    const chunk1 = sent(b)[2] as ElementBatch;
    // A last chunk with one element more than announced, or a chunk past the last: refused.
    const s2 = (await psiProvider.receive(s1, "buyer", chunk0, ctx)).state;
    const extra = new Uint8Array((chunk1.count + 1) * 32);
    extra.set(chunk1.elements);
    extra.set(chunk1.elements.subarray(0, 32), chunk1.count * 32);
    await refused(s2, () => psiProvider.receive(s2, "buyer", { ...chunk1, count: chunk1.count + 1, elements: extra }, ctx), InvalidMessageError);
    const s3 = (await psiProvider.receive(s2, "buyer", chunk1, ctx)).state;
    await refused(s3, () => psiProvider.receive(s3, "buyer", { ...chunk1, header: { ...chunk1.header, chunk: 2, chunks: 3 } }, ctx), WrongStepError);
    expect(s3.received).toBe(100);
  });
});

describe("memory follows the bytes received, not a peer's announcement", () => {
  it("the buyer, told of a 10^8-key provider set, allocates nothing for it until elements arrive", async () => {
    const { b, p } = await started();
    const first = await psiProvider.receive(p.state, "buyer", sent(b)[0] as ProtocolMessage, ctx);
    const hello = sent(first)[0] as PsiHello;
    const s = (await psiBuyer.receive(b.state, "provider", { ...hello, setSize: 100_000_000 }, ctx)).state;
    expect(s.peerSetSize).toBe(100_000_000);
    expect(s.peerElements.byteLength).toBe(0);
    expect(heldBytes(s)).toBeLessThan(64 * 1024);
  });

  it("the cardinality provider, told of a 10^8-key buyer set, allocates nothing for it until elements arrive", async () => {
    const { b, p } = await started("cardinality");
    const hello = sent(b)[0] as PsiHello;
    const s = (await psiProvider.receive(p.state, "buyer", { ...hello, setSize: 100_000_000 }, ctx)).state;
    expect(s.peerSetSize).toBe(100_000_000);
    expect(s.doubled.byteLength).toBe(0);
    expect(heldBytes(s)).toBeLessThan(64 * 1024);
  });
});
