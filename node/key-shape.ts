/**
 * Key shapes: a coarse class of what a key column's values look like —
 * plain digits, digits with separators (a formatted phone number), letters
 * and digits, or mixed — never a value. A provider records its key columns'
 * shapes in its dataset descriptor at registration; a buyer's agent compares
 * its own key columns' shapes, under the job's key normalisation, with them,
 * and warns when they clearly differ (the job would match little or nothing)
 * with the flag that fixes it.
 */
import { openBatches } from "../engine/columns/index.js";
import type { KeyNormalise } from "./job-request.js";
import { KeyShape } from "./schemas/dataset.js";

export { KEY_SHAPES, KeyShape } from "./schemas/dataset.js";

/** How many values of a column are looked at (the first ones). */
export const KEY_SHAPE_SAMPLE_ROWS = 10_000;
/** The share of the values one class must hold to be the column's (else it is mixed). */
const DOMINANT = 0.95;

/** One value's class, after the normalisation; undefined for an empty one. */
function classify(raw: string, n: KeyNormalise): KeyShape | undefined {
  let v = raw.trim().normalize("NFC");
  if (n.caseFold) v = v.toLowerCase();
  if (n.digitsOnly) v = v.replace(/[^0-9]/g, "");
  if (v === "") return undefined;
  if (/^[0-9]+$/.test(v)) return KeyShape.Digits;
  if (/^[0-9\s+\-().\/]+$/.test(v) && /[0-9]/.test(v)) return KeyShape.FormattedDigits;
  if (/^[\p{L}\p{N}]+$/u.test(v)) return KeyShape.Alphanumeric;
  return KeyShape.Mixed;
}

/** The shape of a column's values (the class nearly all hold, else mixed); undefined when none is non-empty. */
export function keyShapeOf(values: Iterable<unknown>, normalise: KeyNormalise = {}): KeyShape | undefined {
  const counts = new Map<KeyShape, number>();
  let total = 0;
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const c = classify(String(v), normalise);
    if (c === undefined) continue;
    counts.set(c, (counts.get(c) ?? 0) + 1);
    total++;
  }
  if (total === 0) return undefined;
  for (const [shape, n] of counts) if (n >= DOMINANT * total) return shape;
  return KeyShape.Mixed;
}

/** The shapes of `columns` of a file, from its first rows; a column absent from the file or with no value has none. */
export async function fileKeyShapes(path: string, columns: readonly string[], normalise: KeyNormalise = {}): Promise<Map<string, KeyShape>> {
  const out = new Map<string, KeyShape>();
  const source = await openBatches(path, { batchSize: KEY_SHAPE_SAMPLE_ROWS });
  for await (const batch of source.batches) {
    for (const c of columns) {
      const col = batch.getChild(c);
      if (col === null) continue;
      const shape = keyShapeOf(col.toArray() as Iterable<unknown>, normalise);
      if (shape !== undefined) out.set(c, shape);
    }
    break; // the first batch is the sample
  }
  return out;
}

const SAYS: Readonly<Record<KeyShape, string>> = {
  [KeyShape.Digits]: "are plain digits",
  [KeyShape.FormattedDigits]: "contain separators",
  [KeyShape.Alphanumeric]: "are letters and digits",
  [KeyShape.Mixed]: "are of mixed shapes",
};

/**
 * A warning when the provider's key column (its registered, raw shape) and
 * the buyer's (under the job's normalisation) clearly differ, with the fix;
 * undefined when they may well match.
 */
export function shapeWarning(column: string, provider: KeyShape, buyer: KeyShape, normalise: KeyNormalise = {}): string | undefined {
  // The provider's file goes through the same normalisation: digits with separators become digits.
  const theirs = normalise.digitsOnly && (provider === KeyShape.FormattedDigits || provider === KeyShape.Digits) ? KeyShape.Digits : provider;
  if (theirs === buyer || theirs === KeyShape.Mixed || buyer === KeyShape.Mixed) return undefined;
  const digitish = (s: KeyShape) => s === KeyShape.Digits || s === KeyShape.FormattedDigits;
  const fix = digitish(theirs) && digitish(buyer) ? "add --digits-only" : "check that --key names the same kind of column on both sides";
  return `the provider's ${column} keys ${SAYS[theirs]} and yours ${SAYS[buyer]}: ${fix}`;
}
