/** Seeded generators, random test tables and plain-JS join oracles for the PSI family. */
import { Float64, Int32, Table, Utf8, vectorFromArray } from "apache-arrow";

/**
 * The test kit's seeded generators, uniform in [0, 1), so a failing test
 * replays with the same data. Two because tests pin data drawn from each:
 * `rng` (xorshift32) and `mulberry32`; a new test takes either.
 */

/** xorshift32 (Marsaglia); seed 0 is taken as 1. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** mulberry32 (Tommy Ettinger). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n bytes from a seeded generator, one draw per byte. */
export function randomBytesFrom(r: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256);
  return out;
}

const POOL = ["alice", "bob", "carol", "dave", "émile", "e\u0301mile", "Zoë", "李雷", "韩梅梅", "+86 138 0000 0001", "0", "x", "  padded  ", "padded", "🙂", ""];

/** Keys drawn from a pool with unicode, near-duplicates, empty strings, padding and nulls. */
export function randomKeys(r: () => number, n: number, universe: number, nullRate = 0.05): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    if (r() < nullRate) {
      out.push(null);
      continue;
    }
    const k = Math.floor(r() * universe);
    out.push(k < POOL.length ? (POOL[k] as string) : `key-${k}`);
  }
  return out;
}

export interface Side {
  readonly table: Table;
  readonly keys: string[];
}

export function singleKeyTable(keys: (string | null)[], valueName: string, r: () => number): Table {
  return new Table({ k: vectorFromArray(keys, new Utf8()), [valueName]: vectorFromArray(keys.map(() => Math.round(r() * 1e6) / 100), new Float64()) });
}

export function compositeKeyTable(a: (string | null)[], b: (number | null)[], valueName: string, r: () => number): Table {
  return new Table({
    k1: vectorFromArray(a, new Utf8()),
    k2: vectorFromArray(b, new Int32()),
    [valueName]: vectorFromArray(a.map(() => Math.round(r() * 1e4)), new Float64()),
  });
}

/** The oracle's normalisation: trim + NFC; null or empty never matches. Composite: JSON of the parts. */
export function oracleKey(table: Table, keys: readonly string[], row: number): string | null {
  const parts: string[] = [];
  for (const k of keys) {
    const v = table.getChild(k)?.get(row) as unknown;
    if (v === null || v === undefined) return null;
    const s = (typeof v === "bigint" || typeof v === "number" ? String(v) : String(v)).trim().normalize("NFC");
    if (s === "") return null;
    parts.push(s);
  }
  return keys.length === 1 ? (parts[0] as string) : JSON.stringify(parts);
}

/** Rows of the buyer whose key the provider has (SQL inner join semantics on the buyer's rows). */
export function oracleIntersectionRows(buyer: Side, provider: Side): number[] {
  const have = new Set<string>();
  for (let i = 0; i < provider.table.numRows; i++) {
    const k = oracleKey(provider.table, provider.keys, i);
    if (k !== null) have.add(k);
  }
  const rows: number[] = [];
  for (let i = 0; i < buyer.table.numRows; i++) {
    const k = oracleKey(buyer.table, buyer.keys, i);
    if (k !== null && have.has(k)) rows.push(i);
  }
  return rows;
}

/** COUNT(DISTINCT key) over the intersection. */
export function oracleCardinality(buyer: Side, provider: Side): number {
  const have = new Set<string>();
  for (let i = 0; i < provider.table.numRows; i++) {
    const k = oracleKey(provider.table, provider.keys, i);
    if (k !== null) have.add(k);
  }
  const seen = new Set<string>();
  for (let i = 0; i < buyer.table.numRows; i++) {
    const k = oracleKey(buyer.table, buyer.keys, i);
    if (k !== null && have.has(k)) seen.add(k);
  }
  return seen.size;
}

/** Rows as plain JSON-able objects. */
export function rowsOf(table: Table): Record<string, unknown>[] {
  return table.toArray().map((r) => JSON.parse(JSON.stringify((r as { toJSON(): unknown }).toJSON(), (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))) as Record<string, unknown>);
}
