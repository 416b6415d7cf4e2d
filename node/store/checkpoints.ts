/**
 * Checkpoints of role states. A role state is plain data (protocols/state.ts)
 * and can be large: a psi buyer of 10^6 keys holds ~100 MB of points, filled
 * chunk by chunk. Writing it whole after every step would write the job's
 * data once per chunk (quadratic). So a checkpoint splits the state: every
 * typed array of at least {@link PART_MIN_BYTES} becomes a numbered part,
 * stored in {@link PAGE_BYTES} pages with their SHA-256; the rest (small
 * fields, with each part's place) is the state's skeleton, in
 * protocol_state. Saving writes the skeleton and only the pages whose digest
 * differs from the one stored (read in the same transaction: a save that was
 * rolled back leaves nothing believed written). Hashing costs ~0.1 s per
 * 100 MB here.
 *
 * A checkpoint holds the role's secrets (its scalars, its HE keys): it lives
 * in the node's own store (an owner-only file) and is deleted when its job ends.
 */
import { createHash } from "node:crypto";
import { stateFromBytes, stateToBytes, type PersistableState } from "../../protocols/state.js";
import { InvalidStateError } from "../../protocols/errors.js";
import { blob, bytesOf } from "./checks.js";
import type { StoreContext } from "./context.js";

/** Typed arrays this large or larger are stored in pages. */
export const PART_MIN_BYTES = 64 * 1024;
/** Page size of a part. */
export const PAGE_BYTES = 1024 * 1024;

/**
 * A part's place in the skeleton: a Map, which no role state holds (states are
 * plain objects, arrays, strings, numbers, booleans and typed arrays), so no
 * field of a state can be mistaken for one, whatever its keys.
 */
type PartRef = Map<"part" | "type" | "bytes", number | string>;

type Typed = Exclude<NodeJS.TypedArray, never>;
const CTORS: Record<string, new (b: ArrayBuffer) => Typed> = {
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigUint64Array,
  BigInt64Array,
};

/** Rebuilds plain data (arrays and plain objects, as role states are), handing every other value to `leaf`. */
function mapLeaves(v: unknown, leaf: (x: unknown) => unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => mapLeaves(x, leaf));
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = mapLeaves(x, leaf);
    return o;
  }
  return leaf(v);
}

/** The state with every large typed array replaced by a reference to its part; the parts, as bytes, in order. */
function split(state: unknown): { skeleton: unknown; parts: Uint8Array[] } {
  const parts: Uint8Array[] = [];
  const skeleton = mapLeaves(state, (v) => {
    if (!ArrayBuffer.isView(v) || v instanceof DataView || v.byteLength < PART_MIN_BYTES || !(v.constructor.name in CTORS)) return v;
    parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    const ref: PartRef = new Map<"part" | "type" | "bytes", number | string>([
      ["part", parts.length - 1],
      ["type", v.constructor.name],
      ["bytes", v.byteLength],
    ]);
    return ref;
  });
  return { skeleton, parts };
}

/** The state again: every part's reference replaced by a typed array of its kind over `part(i, bytes)` (a fresh buffer). */
function join(skeleton: unknown, part: (i: number, bytes: number) => Uint8Array): unknown {
  return mapLeaves(skeleton, (v) => {
    if (!(v instanceof Map)) return v;
    const r = v as PartRef;
    const Ctor = CTORS[String(r.get("type"))];
    const i = r.get("part");
    const n = r.get("bytes");
    if (Ctor === undefined || typeof i !== "number" || typeof n !== "number" || !Number.isSafeInteger(n)) throw new InvalidStateError("persisted state names an unknown part");
    return new Ctor(part(i, n).buffer as ArrayBuffer);
  });
}

const digestOf = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();

export class Checkpoints {
  constructor(private readonly ctx: StoreContext) {}

  /** Saves a role state (inside the caller's transaction, when there is one): the skeleton, and the pages whose digest differs from the stored one. */
  save(job: string, role: string, state: PersistableState): void {
    const { skeleton, parts } = split(state);
    const put = this.ctx.sql("INSERT INTO state_pages (job, role, part, page, digest, bytes) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job, role, part, page) DO UPDATE SET digest = excluded.digest, bytes = excluded.bytes");
    const now = this.ctx.time();
    this.ctx.transaction(() => {
      // Read in the same transaction as the writes: what is stored, never what a rolled-back save meant to store.
      const before = this.#digests(job, role);
      parts.forEach((bytes, i) => {
        let pages = 0;
        for (let o = 0; o < bytes.length; pages++, o += PAGE_BYTES) {
          const page = bytes.subarray(o, Math.min(bytes.length, o + PAGE_BYTES));
          const d = digestOf(page);
          if (!before[i]?.[pages]?.equals(d)) put.run(job, role, i, pages, d, blob(page));
        }
        if ((before[i]?.length ?? 0) > pages) this.ctx.sql("DELETE FROM state_pages WHERE job = ? AND role = ? AND part = ? AND page >= ?").run(job, role, i, pages);
      });
      if (before.length > parts.length) this.ctx.sql("DELETE FROM state_pages WHERE job = ? AND role = ? AND part >= ?").run(job, role, parts.length);
      this.ctx
        .sql("INSERT INTO protocol_state (job_id, role, state, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (job_id, role) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at")
        .run(job, role, blob(stateToBytes(skeleton as PersistableState)), now);
    });
  }

  /** Loads a role state saved by {@link save}; undefined when there is none. */
  load<S extends PersistableState>(job: string, role: string, expect: { protocols: readonly string[]; role?: string }): S | undefined {
    const row = this.ctx.sql("SELECT state FROM protocol_state WHERE job_id = ? AND role = ?").get(job, role) as { state: Buffer } | undefined;
    if (row === undefined) return undefined;
    const skeleton = stateFromBytes<S>(bytesOf(row.state), expect);
    const pages = this.ctx.sql("SELECT part, page, digest, bytes FROM state_pages WHERE job = ? AND role = ? ORDER BY part, page").all(job, role) as { part: number; page: number; digest: Buffer; bytes: Buffer }[];
    const byPart = new Map<number, Buffer[]>();
    for (const p of pages) {
      if (!digestOf(p.bytes).equals(p.digest)) throw new InvalidStateError("a persisted state page is corrupt");
      const list = byPart.get(p.part) ?? [];
      if (list.length !== p.page) throw new InvalidStateError("a persisted state is missing a page");
      list.push(p.bytes);
      byPart.set(p.part, list);
    }
    return join(skeleton, (i, bytes) => {
      const out = new Uint8Array(bytes);
      let o = 0;
      for (const page of byPart.get(i) ?? []) {
        if (o + page.length > bytes) throw new InvalidStateError("a persisted state part has the wrong size");
        out.set(page, o);
        o += page.length;
      }
      if (o !== bytes) throw new InvalidStateError("a persisted state part has the wrong size");
      return out;
    }) as S;
  }

  /** Deletes a job's checkpoints (every role). */
  delete(job: string): void {
    this.ctx.sql("DELETE FROM state_pages WHERE job = ?").run(job);
    this.ctx.sql("DELETE FROM protocol_state WHERE job_id = ?").run(job);
  }

  /** The stored pages' digests, by part and page. */
  #digests(job: string, role: string): Buffer[][] {
    const out: Buffer[][] = [];
    for (const r of this.ctx.sql("SELECT part, page, digest FROM state_pages WHERE job = ? AND role = ? ORDER BY part, page").iterate(job, role) as IterableIterator<{ part: number; page: number; digest: Buffer }>) {
      (out[r.part] ??= [])[r.page] = r.digest;
    }
    return out;
  }
}
