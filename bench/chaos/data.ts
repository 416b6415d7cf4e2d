/**
 * Seeded test data for the chaos harness: keys with unicode (CJK, emoji,
 * combining marks), spelled differently on each side (NFC or NFD, padded
 * with spaces) so matching goes through the node's key normalisation
 * (trim, NFC), duplicate rows, rows without a key; and the CSV text of a
 * file. Keys hold no comma, quote or line break, so a CSV field needs no
 * quoting.
 */
import { below, type Rng } from "./rng.js";

/** The normalisation every job here uses (the node's default): trim, NFC; empty is no key. */
export function normaliseKey(raw: string | null): string | null {
  if (raw === null) return null;
  const k = raw.trim().normalize("NFC");
  return k === "" ? null : k;
}

const STEMS = ["cust", "客户", "émile", "🙂", "Zoë", "Ωmega", "ʻokina", "Ärger"];

/** The canonical (NFC, unpadded) key of an identity number. */
export const canonicalKey = (id: number): string => `${STEMS[id % STEMS.length] as string}-${id}`;

/** One spelling of a key as a side writes it: NFD in about a third of rows, padded with spaces in about a tenth. */
export function spell(id: number, r: Rng): string {
  let k = canonicalKey(id);
  if (r() < 0.3) k = k.normalize("NFD");
  if (r() < 0.1) k = ` ${k}  `;
  return k;
}

/**
 * The identity numbers of a side's rows: `count` rows drawn from
 * [from, from + count), about `dupRate` of them repeating an earlier row's
 * identity, in a seeded order.
 */
export function ids(r: Rng, from: number, count: number, dupRate: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(i > 0 && r() < dupRate ? (out[below(r, i)] as number) : from + i);
  for (let i = out.length - 1; i > 0; i--) {
    const j = below(r, i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}

/** A CSV file's text: a header and one line per row; null is an empty field. */
export function csv(header: readonly string[], rows: readonly (readonly (string | number | null)[])[]): string {
  const lines = [header.join(",")];
  for (const row of rows) lines.push(row.map((v) => (v === null ? "" : String(v))).join(","));
  return lines.join("\n") + "\n";
}

/** A multiset of strings as a sorted array, to compare two of them exactly. */
export const sorted = (xs: Iterable<string>): string[] => [...xs].sort();
