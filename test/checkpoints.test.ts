/**
 * Checkpoints of role states (node/store/checkpoints.ts): a state round-trips
 * with every typed array kind, large arrays in pages; a save after a step
 * writes only the pages that changed (a chunk filled in place), so a job's
 * checkpoints cost what its data is, not its data times its steps; a corrupt
 * page is refused with a typed error.
 */
import { describe, expect, it } from "vitest";
import { PAGE_BYTES, PART_MIN_BYTES } from "../node/store/checkpoints.js";
import { openStore, type Store } from "../node/store.js";

const job = "job-1";
function storeWithJob(): Store {
  const s = openStore(":memory:");
  s.createJob({ id: job, protocol: "psi", buyer: "b", providers: ["p"], params: {} });
  return s;
}

/** Rows written to state_pages by `fn`, counted with SQLite's own change counter. */
function pagesWritten(store: Store, fn: () => void): number {
  const db = (store as unknown as { durable: { ctx: { db: { prepare(s: string): { get(): { n: number } } } } } }).durable.ctx.db;
  const before = db.prepare("SELECT total_changes() AS n").get().n;
  fn();
  return db.prepare("SELECT total_changes() AS n").get().n - before - 1; // the skeleton's row
}

describe("checkpoints", () => {
  it("round-trip a state with every typed array kind, small ones inline and large ones in pages", () => {
    const store = storeWithJob();
    const big = new Uint8Array(3 * PAGE_BYTES + 17).map((_, i) => i % 251);
    const state = {
      protocol: "psi",
      version: 1,
      role: "buyer",
      n: 3,
      names: ["a", "ü"],
      small: new Int32Array([1, -2, 3]),
      big,
      nested: { f: new Float64Array(PART_MIN_BYTES / 8).fill(0.5), b: new BigInt64Array([-1n, 2n]) },
      view: big.subarray(10, 10 + PART_MIN_BYTES),
    };
    store.checkpoints.save(job, "party", state);
    const back = store.checkpoints.load<typeof state>(job, "party", { protocols: ["psi"] }) as typeof state;
    const same = (a: ArrayBufferView, b: ArrayBufferView) => a.constructor === b.constructor && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    expect({ ...back, big: 0, nested: 0, view: 0 }).toEqual({ ...state, big: 0, nested: 0, view: 0 });
    expect([same(back.big, big), same(back.view, state.view), same(back.nested.f, state.nested.f), same(back.nested.b, state.nested.b)]).toEqual([true, true, true, true]);
    expect(store.checkpoints.load(job, "other", { protocols: ["psi"] })).toBeUndefined();
    expect(() => store.checkpoints.load(job, "party", { protocols: ["lookup"] })).toThrow(expect.objectContaining({ code: "UMBRA_INVALID_STATE" }));
    store.close();
  });

  it("write only the pages that changed since the last save", () => {
    const store = storeWithJob();
    const buf = new Uint8Array(8 * PAGE_BYTES);
    const state = (received: number) => ({ protocol: "psi", version: 1, role: "buyer", received, buf });
    expect(pagesWritten(store, () => store.checkpoints.save(job, "party", state(0)))).toBe(8);
    buf.fill(7, 2 * PAGE_BYTES, 2 * PAGE_BYTES + 100); // one chunk arrives, filled in place
    expect(pagesWritten(store, () => store.checkpoints.save(job, "party", state(1)))).toBe(1);
    expect(pagesWritten(store, () => store.checkpoints.save(job, "party", state(1)))).toBe(0);
    expect(store.checkpoints.load<ReturnType<typeof state>>(job, "party", { protocols: ["psi"] })?.buf[2 * PAGE_BYTES]).toBe(7);
    store.checkpoints.delete(job);
    expect(store.checkpoints.load(job, "party", { protocols: ["psi"] })).toBeUndefined();
    store.close();
  });

  it("keep a field shaped like a part's reference as the field it is (the reference is out of band)", () => {
    const store = storeWithJob();
    const state = { protocol: "psi", version: 1, role: "buyer", lookalike: { part: 0, type: "Uint8Array", bytes: 3 }, "\u0000umbra.part": 0, big: new Uint8Array(PART_MIN_BYTES) };
    store.checkpoints.save(job, "party", state);
    const back = store.checkpoints.load<typeof state>(job, "party", { protocols: ["psi"] }) as typeof state;
    expect({ lookalike: back.lookalike, marker: back["\u0000umbra.part"], big: back.big.length }).toEqual({ lookalike: { part: 0, type: "Uint8Array", bytes: 3 }, marker: 0, big: PART_MIN_BYTES });
    store.close();
  });

  it("refuse a corrupt page with a typed error", () => {
    const store = storeWithJob();
    const state = { protocol: "psi", version: 1, role: "buyer", buf: new Uint8Array(PAGE_BYTES) };
    store.checkpoints.save(job, "party", state);
    const db = (store as unknown as { durable: { ctx: { db: { prepare(s: string): { run(): unknown } } } } }).durable.ctx.db;
    db.prepare("UPDATE state_pages SET bytes = zeroblob(10)").run();
    expect(() => store.checkpoints.load(job, "party", { protocols: ["psi"] })).toThrow(expect.objectContaining({ code: "UMBRA_INVALID_STATE" }));
    store.close();
  });
});
