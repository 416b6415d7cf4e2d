/**
 * psi-ot: results against the plaintext join and against ECDH psi on random
 * data (seeded); the provider's view; hostile messages refused with the
 * state unchanged; persistence mid-job; the job's limits.
 */
import { afterAll, describe, expect, it } from "vitest";
import { CryptoPool, InvalidPointError, keysFromTable } from "../engine/index.js";
import { TAG_BYTES } from "../engine/ot/index.js";
import { cuckooParams } from "../engine/psi/index.js";
import {
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  KeyLimitExceededError,
  ProtocolError,
  psiOtBuyer,
  psiOtProvider,
  runPsi,
  runPsiOt,
  stateFromBytes,
  stateToBytes,
  WrongJobError,
  WrongSenderError,
  WrongStepError,
  type ElementBatch,
  type OtBaseMessage,
  type OtMatrixChunk,
  type OtPsiHello,
  type OtPsiReveal,
  type ProtocolMessage,
  type PsiOtBuyerState,
  type PsiOtProviderState,
  type Step,
} from "../protocols/index.js";
import { compositeKeyTable, oracleIntersectionRows, randomKeys, rng, rowsOf, singleKeyTable, type Side } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 1, inlineBelow: 1_000_000 });
/** psi-ot's bulk stages on two workers whatever the size (inline runs are the role tests below, with no pool). */
const workers = new CryptoPool({ threads: 2, inlineBelow: 0 });
afterAll(() => Promise.all([pool.close(), workers.close()]));

interface Case {
  readonly name: string;
  readonly buyer: Side;
  readonly provider: Side;
}

function cases(): Case[] {
  const r = rng(14);
  const side = (keys: (string | null)[], value: string): Side => ({ table: singleKeyTable(keys, value, r), keys: ["k"] });
  const out: Case[] = [];
  for (const [nb, np] of [[0, 5], [1, 0], [37, 60], [400, 700], [3000, 1500]] as const) {
    out.push({ name: `random ${nb}×${np} with duplicates, nulls, unicode`, buyer: side(randomKeys(r, nb, Math.max(8, nb)), "v"), provider: side(randomKeys(r, np, Math.max(8, nb)), "spend") });
  }
  const same = randomKeys(r, 50, 30);
  out.push({ name: "identical sets", buyer: side(same, "v"), provider: side(same, "spend") });
  out.push({ name: "disjoint sets", buyer: side(["a1", "a2", "a2", null], "v"), provider: side(["b1", "b2", null], "spend") });
  out.push({ name: "both empty", buyer: side([], "v"), provider: side([], "spend") });
  out.push({ name: "only nulls and blanks", buyer: side([null, null, ""], "v"), provider: side([null, "", "  "], "spend") });
  const a = randomKeys(r, 300, 25, 0.05);
  const b = a.map(() => (r() < 0.05 ? null : Math.floor(r() * 4)));
  const a2 = randomKeys(r, 250, 25, 0.05);
  const b2 = a2.map(() => (r() < 0.05 ? null : Math.floor(r() * 4)));
  out.push({ name: "composite keys (string, int)", buyer: { table: compositeKeyTable(a, b, "v", r), keys: ["k1", "k2"] }, provider: { table: compositeKeyTable(a2, b2, "spend", r), keys: ["k1", "k2"] } });
  return out;
}

describe("runPsiOt against the plaintext join", () => {
  it.each(cases().map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const r = await runPsiOt({ buyer: c.buyer, provider: c.provider, pool: workers, chunkElements: 500, matrixColumns: 100 });
    const expected = oracleIntersectionRows(c.buyer, c.provider);
    expect(Array.from(r.matchedRows)).toEqual(expected);
    const all = rowsOf(c.buyer.table);
    expect(rowsOf(r.table)).toEqual(expected.map((i) => all[i]));
  });
});

describe("psi-ot and ECDH psi give the same rows", () => {
  it.each(cases().slice(2, 4).map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const [ot, ecdh] = await Promise.all([runPsiOt({ buyer: c.buyer, provider: c.provider, pool }), runPsi({ buyer: c.buyer, provider: c.provider, pool })]);
    expect(ot.matchedRows.length).toBeGreaterThan(0);
    expect(Array.from(ot.matchedRows)).toEqual(Array.from(ecdh.matchedRows));
    expect([ot.stats.buyerSetSize, ot.stats.providerSetSize]).toEqual([ecdh.stats.buyerSetSize, ecdh.stats.providerSetSize]);
  });
});

// ------------------------------------------------------------ leakage

const utf8 = new TextEncoder();
const keyTable = (keys: (string | null)[]): Side => ({ table: singleKeyTable(keys, "v", rng(1)), keys: ["k"] });
const buyerKeys = Array.from({ length: 300 }, (_, i) => `buyer-secret-${i}`);
const providerSide = keyTable(Array.from({ length: 200 }, (_, i) => `buyer-secret-${i * 3}`));

/** What the provider receives in one run: each frame's kind, step, chunk, chunks and length. */
async function providerView(buyer: Side, job: string): Promise<{ shape: string[]; frames: Uint8Array[] }> {
  const frames: Uint8Array[] = [];
  await runPsiOt({ buyer, provider: providerSide, job, pool, matrixColumns: 64, tap: (from, _to, frame) => from === "buyer" && frames.push(frame) });
  const shape = frames.map((f) => {
    const m = decodeMessage(f);
    return `${m.kind} ${m.header.step} ${m.header.chunk}/${m.header.chunks} ${f.length}`;
  });
  return { shape, frames };
}

describe("leakage: the provider's view", () => {
  it("has the same messages and sizes for two buyer sets of equal size, one overlapping the provider's and one disjoint", async () => {
    const overlapping = keyTable([...buyerKeys, buyerKeys[0] as string, null]);
    const disjoint = keyTable([...buyerKeys.map((k) => `other-${k}`), null, null]);
    const a = await providerView(overlapping, "leak-a");
    const b = await providerView(disjoint, "leak-a");
    expect(a.shape).toEqual(b.shape);
    expect(a.shape.map((s) => s.split(" ")[0])).toEqual(["otPsiHello", "otBaseMessage", "otPsiReveal", ...Array(7).fill("otMatrixChunk")]);
    const hello = decodeMessage(a.frames[0] as Uint8Array) as OtPsiHello;
    expect(hello.setSize).toBe(300); // distinct keys, not 302 rows: no multiplicities, no nulls
    for (const frame of a.frames) for (const k of buyerKeys.slice(0, 50)) expect(Buffer.from(frame).includes(Buffer.from(utf8.encode(k)))).toBe(false);
    // u differs run to run for the same set (fresh base OTs): nothing in it is a function of the keys alone.
    const again = await providerView(overlapping, "leak-a");
    expect(Buffer.from(again.frames[3] as Uint8Array).equals(Buffer.from(a.frames[3] as Uint8Array))).toBe(false);
  });

  it("the buyer receives (3 + stash) tags per provider key, in an order unrelated to the provider's rows", async () => {
    const frames: Uint8Array[] = [];
    const buyer = keyTable(buyerKeys);
    await runPsiOt({ buyer, provider: providerSide, job: "leak-tags", pool, chunkElements: 1000, tap: (from, _to, frame) => from === "provider" && frames.push(frame) });
    const tags = frames.map((f) => decodeMessage(f)).filter((m): m is ElementBatch => m.kind === "elementBatch");
    expect(tags.reduce((n, b) => n + b.count, 0)).toBe(200 * (3 + cuckooParams(300).stash));
    expect(new Set(tags.map((b) => b.elementSize))).toEqual(new Set([TAG_BYTES]));
  });
});

// ----------------------------------------------------- hostile messages

const sent = (s: Step<unknown>): ProtocolMessage[] => s.messages.map((o) => o.message);
const wire = (m: ProtocolMessage): ProtocolMessage => decodeMessage(encodeMessage(m));
const buyerSide = keyTable([...buyerKeys, buyerKeys[0] as string, null]);

async function started(job = "hostile-job") {
  const params = { job, chunkElements: 300, matrixColumns: 100 };
  const b = await psiOtBuyer.start({ params, keys: keysFromTable(buyerSide.table, ["k"]) }, {});
  const p = await psiOtProvider.start({ params, keys: keysFromTable(providerSide.table, ["k"]) }, {});
  return { b, p };
}

/** Expects `fn` to throw `type`, and the state to be exactly as before. */
async function refused<S>(state: S, fn: () => Promise<unknown>, type: abstract new (...args: never[]) => Error): Promise<void> {
  const before = structuredClone(state);
  await expect(fn()).rejects.toBeInstanceOf(type);
  expect(state).toEqual(before);
}

const withBytes = <M extends ProtocolMessage>(m: M, field: keyof M, mutate: (b: Uint8Array) => void): M => {
  const b = Uint8Array.from(m[field] as Uint8Array);
  mutate(b);
  return { ...m, [field]: b };
};

describe("hostile messages are refused and leave the state unchanged", () => {
  it("each role takes messages only from the other role of the job", async () => {
    const { b, p } = await started();
    const hello = sent(b)[0] as ProtocolMessage;
    await refused(p.state, () => psiOtProvider.receive(p.state, "exchange", hello, {}), WrongSenderError);
    const answer = sent(await psiOtProvider.receive(p.state, "buyer", hello, {}))[0] as ProtocolMessage;
    await refused(b.state, () => psiOtBuyer.receive(b.state, "buyer", answer, {}), WrongSenderError);
  });

  it("at the provider: wrong step, wrong job, over the key limit, identity and non-canonical points, wrong sizes, a bad reveal, matrix chunks out of order, truncated, replayed or extra", async () => {
    const { b, p } = await started();
    const [hello, base] = sent(b) as [OtPsiHello, OtBaseMessage];
    const give = (s: PsiOtProviderState, m: ProtocolMessage) => psiOtProvider.receive(s, "buyer", m, {});
    let s = p.state;
    await refused(s, () => give(s, base), WrongStepError); // base OT before the hello
    await refused(s, () => give(s, { ...hello, header: { ...hello.header, job: "other-job" } }), WrongJobError);
    await refused(s, () => give(s, { ...hello, header: { ...hello.header, protocol: "psi" } }), WrongJobError);
    await refused(s, () => give(s, { ...hello, codeWidth: 512 }), ProtocolError);
    await refused(s, () => give(s, { ...hello, chunkElements: 449 }), InvalidMessageError);
    const limited = await psiOtProvider.start({ params: { job: "hostile-job", maxPeerSetSize: 299 }, keys: keysFromTable(providerSide.table, ["k"]) }, {});
    await refused(limited.state, () => give(limited.state, hello), KeyLimitExceededError);
    s = (await give(s, wire(hello))).state;
    await refused(s, () => give(s, hello), WrongStepError); // replayed hello
    await refused(s, () => give(s, withBytes(base, "points", (x) => x.fill(0, 0, 32))), InvalidPointError); // C = identity
    await refused(s, () => give(s, withBytes(base, "points", (x) => x.fill(0xff, 32, 64))), InvalidPointError); // R not canonical
    await refused(s, () => give(s, { ...base, points: base.points.subarray(0, 32) }), InvalidMessageError);
    await refused(s, () => give(s, { ...base, count: 447 }), InvalidMessageError);
    const afterBase = await give(s, wire(base));
    s = afterBase.state;
    // The buyer takes steps 3 and 4 and answers with its reveal and u.
    const buyerStep = await psiOtBuyer.receive((await psiOtBuyer.receive(b.state, "provider", answerOf(await give(p.state, hello)), {})).state, "provider", wire(sent(afterBase)[0] as ProtocolMessage), {});
    const [reveal, ...chunks] = sent(buyerStep) as [OtPsiReveal, ...OtMatrixChunk[]];
    expect(chunks.length).toBe(5); // 448 columns, 100 a chunk
    await refused(s, () => give(s, chunks[0] as ProtocolMessage), WrongStepError); // u before the reveal
    await refused(s, () => give(s, withBytes(reveal, "nonce", (x) => x.set([(x[0] as number) ^ 1]))), ProtocolError);
    s = (await give(s, wire(reveal))).state;
    const c0 = chunks[0] as OtMatrixChunk;
    await refused(s, () => give(s, chunks[1] as OtMatrixChunk), WrongStepError); // chunk 1 before chunk 0
    await refused(s, () => give(s, { ...c0, data: c0.data.subarray(0, c0.data.length - 4 * 100), columns: 100 }), InvalidMessageError); // truncated
    await refused(s, () => give(s, { ...c0, columns: 99, data: c0.data.subarray(0, (c0.data.length / 100) * 99) }), InvalidMessageError); // fewer columns
    await refused(s, () => give(s, { ...c0, firstColumn: 1 }), InvalidMessageError);
    await refused(s, () => give(s, { ...c0, header: { ...c0.header, chunks: 6 } }), InvalidMessageError); // an extra chunk announced
    s = (await give(s, wire(c0))).state;
    await refused(s, () => give(s, c0), WrongStepError); // replayed chunk
    let last: Step<PsiOtProviderState> | undefined;
    for (const c of chunks.slice(1)) {
      last = await give(s, wire(c));
      s = last.state;
    }
    expect(psiOtProvider.done(s)).toBe(true);
    await refused(s, () => give(s, { ...c0, header: { ...c0.header, chunk: 5, chunks: 6 } }), WrongStepError); // extra chunk after the last
    expect(sent(last as Step<unknown>).length).toBe(Math.ceil((200 * (3 + cuckooParams(300).stash)) / 300));
    expect(() => decodeMessage(encodeMessage({ ...c0, columns: 448, data: new Uint8Array(4 * 1024 * 1024 + 448 * 4) }))).toThrow(InvalidMessageError);
    expect(() => decodeMessage(encodeMessage({ ...reveal, nonce: new Uint8Array(31) }))).toThrow(InvalidMessageError);
  });

  it("at the buyer: identity points, wrong counts, short, replayed, misnamed and extra tag chunks; then the right result", async () => {
    const { b, p } = await started("hostile-buyer");
    let ps = p.state;
    const toBuyer: ProtocolMessage[] = [];
    const pending = [...sent(b)];
    let bs = b.state;
    const give = (s: PsiOtBuyerState, m: ProtocolMessage) => psiOtBuyer.receive(s, "provider", m, {});
    // Play the provider on every buyer message; check each provider message at the buyer first.
    while (pending.length > 0) {
      const step = await psiOtProvider.receive(ps, "buyer", wire(pending.shift() as ProtocolMessage), {});
      ps = step.state;
      toBuyer.push(...sent(step));
      while (toBuyer.length > 0) {
        const m = toBuyer.shift() as ProtocolMessage;
        if (m.kind === "otBaseMessage") {
          await refused(bs, () => give(bs, withBytes(m, "points", (x) => x.fill(0, 64, 96))), InvalidPointError); // PK0_2 = identity
          await refused(bs, () => give(bs, { ...m, count: 447 }), InvalidMessageError);
        }
        if (m.kind === "elementBatch") {
          await refused(bs, () => give(bs, { ...m, count: m.count - 1, elements: m.elements.subarray(TAG_BYTES) }), InvalidMessageError);
          await refused(bs, () => give(bs, { ...m, elementSize: 32 }), InvalidMessageError);
          await refused(bs, () => give(bs, { ...m, header: { ...m.header, step: 6 } }), WrongStepError);
        }
        const next = await give(bs, wire(m));
        await refused(next.state, () => give(next.state, m), WrongStepError); // replay
        bs = next.state;
        pending.push(...sent(next));
      }
    }
    expect(psiOtBuyer.done(bs)).toBe(true);
    expect(Array.from(psiOtBuyer.result(bs).matchedRows)).toEqual(oracleIntersectionRows(buyerSide, providerSide));
  });
});

function answerOf(step: Step<unknown>): ProtocolMessage {
  return wire(sent(step)[0] as ProtocolMessage);
}

describe("persistence and limits", () => {
  it("both roles resume from persisted states between every step and finish with the right result", async () => {
    const { b, p } = await started("persisted");
    let bs: PsiOtBuyerState = b.state;
    let ps: PsiOtProviderState = p.state;
    const toProvider = [...sent(b)];
    const toBuyer: ProtocolMessage[] = [];
    while (toProvider.length + toBuyer.length > 0) {
      for (const m of toProvider.splice(0)) {
        const step = await psiOtProvider.receive(stateFromBytes<PsiOtProviderState>(stateToBytes(ps), { protocols: ["psi-ot"], role: "provider" }), "buyer", wire(m), {});
        ps = step.state;
        toBuyer.push(...sent(step));
      }
      for (const m of toBuyer.splice(0)) {
        const step = await psiOtBuyer.receive(stateFromBytes<PsiOtBuyerState>(stateToBytes(bs), { protocols: ["psi-ot"], role: "buyer" }), "provider", wire(m), {});
        bs = step.state;
        toProvider.push(...sent(step));
      }
    }
    expect(psiOtProvider.done(ps) && psiOtBuyer.done(bs)).toBe(true);
    expect(Array.from(psiOtBuyer.result(bs).matchedRows)).toEqual(oracleIntersectionRows(buyerSide, providerSide));
  });

  it("minIntersection: 100 matched distinct keys are released at 100 and withheld at 101", async () => {
    const at = await runPsiOt({ buyer: buyerSide, provider: providerSide, pool, minIntersection: 100 });
    expect(at.matchedRows.length).toBe(101); // buyer-secret-0 twice
    await expect(runPsiOt({ buyer: buyerSide, provider: providerSide, pool, minIntersection: 101 })).rejects.toMatchObject({ code: "UMBRA_BELOW_MINIMUM" });
  });
});
