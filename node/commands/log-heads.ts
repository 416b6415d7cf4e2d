/**
 * Reading signed tree heads of the exchange's log from files, as the commands
 * that check them take them: a head {size, root, at, signature} as
 * `umbra party head` or `umbra audit head` prints it, the `--json` form of
 * `umbra party head` ({head, …}), or an array of either (heads gathered from
 * several parties).
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { parseTreeHead, type SignedTreeHead } from "../log/head.js";

const MAX_HEAD_FILE_BYTES = 1024 * 1024;

function headOf(v: unknown): SignedTreeHead | undefined {
  const inner = v !== null && typeof v === "object" && !Array.isArray(v) && "head" in v ? (v as { head: unknown }).head : v;
  return parseTreeHead(inner);
}

/** Every head in a file (one, or an array). */
export function readHeadsFile(file: string): SignedTreeHead[] {
  let text: string;
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_HEAD_FILE_BYTES) throw new UmbraError("UMBRA_BAD_LOG_HEAD", `"${basename(file)}" is larger than a file of log heads can be (1 MiB)`);
    text = bytes.toString("utf8");
  } catch (err) {
    if (err instanceof UmbraError) throw err;
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read "${basename(file)}": give the file a head was saved to (umbra party head > head.json)`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UmbraError("UMBRA_BAD_LOG_HEAD", `"${basename(file)}" is not JSON: save a head with umbra party head > head.json`);
  }
  const values = Array.isArray(v) ? v : [v];
  const heads = values.map(headOf);
  const bad = heads.findIndex((h) => h === undefined);
  if (bad >= 0 || heads.length === 0) {
    throw new UmbraError("UMBRA_BAD_LOG_HEAD", `"${basename(file)}"${Array.isArray(v) ? ` item ${bad}` : ""} is not a signed tree head: it needs exactly size, root (64 hex digits), at and signature (128 hex digits), as umbra party head prints`);
  }
  return heads as SignedTreeHead[];
}

/** The one head in a file. */
export function readHeadFile(file: string): SignedTreeHead {
  const heads = readHeadsFile(file);
  if (heads.length !== 1) throw new UmbraError("UMBRA_BAD_LOG_HEAD", `"${basename(file)}" holds ${heads.length} heads: give a file with one`);
  return heads[0] as SignedTreeHead;
}
