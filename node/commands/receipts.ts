/**
 * `umbra receipt list|show|verify` and `umbra statement` (docs/venue.md,
 * "Receipts and statements"): a party's receipts through its agent's local
 * API (list, show — the bundle its agent checked — and save), a receipt
 * checked offline with only the exchange's public key, and a statement —
 * a party's own via its agent, or any party's for the exchange's operator
 * from the exchange's database — written as CSV or Arrow by extension.
 * Prints ids, amounts and units, never data.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { FileFormat, formatFromPath } from "../../engine/columns/index.js";
import { openStore } from "../store.js";
import { ReceiptRefusedError, verifyReceiptBundle, type Receipt } from "../venue/receipt.js";
import { statementOf, writeStatement, type Statement } from "../venue/statement.js";
import { parseOptions, processIO, UsageError, type CommandIO } from "./args.js";
import { checkJsonOut } from "./certificate.js";
import { PARTY_API_OPTIONS, partyJson, partyOption } from "./node.js";

export const RECEIPTS_USAGE = `  receipt list [--job ID] [--json] [--party URL] [--token-file FILE]
                 your receipts, as buyer or provider: what each job under contracts
                 cost (price × units, exact minor units) and each provider's share
  receipt show ID [--out FILE] [--json] [--party URL] [--token-file FILE]
                 one receipt with its place in the exchange's signed log, checked by
                 your agent; --out saves it (JSON) for receipt verify
  receipt verify FILE --exchange-key HEX [--json]
                 check a saved receipt offline with only the exchange's public key:
                 its arithmetic, the exchange's signature, its ledger entry and the
                 inclusion proof. Exit 0 when it verifies, 1 when not
  statement --from DATE --to DATE --out FILE.csv|.arrow [--json] [--party URL] [--token-file FILE]
  statement --db EXCHANGE_DB --for NAME --from DATE --to DATE --out FILE.csv|.arrow [--json]
                 every receipt issued in [from, to) where the party paid (buyer) or
                 earned (its share as a provider), one row each, and the totals per
                 currency; the second form is the operator's, from the exchange's database
`;

const usage = `Usage:\n${RECEIPTS_USAGE}`;

interface Listed {
  id: string;
  job: string;
  currency: string;
  amount: number;
  acknowledged: boolean;
  receipt: Receipt;
}

const unitsText = (u: Receipt["lines"][number]["units"]): string =>
  Object.entries(u)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

function describeReceipt(io: CommandIO, r: Receipt): void {
  io.out(`${r.id}  job ${r.job}  buyer ${r.buyer}  ${r.amount} ${r.currency}  at ${r.at}`);
  for (const l of r.lines) io.out(`  ${l.contract} (${l.product.id} v${l.product.version}, ${l.provider}): ${unitsText(l.units)} → ${l.amount} ${r.currency}`);
  io.out(`  shares: ${r.shares.map((s) => `${s.provider} ${s.amount}`).join(", ")}`);
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read "${basename(file)}" as JSON: give the file a receipt was saved to (umbra receipt show ID --out FILE)`);
  }
}

export async function receiptCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") return (io.out(usage.trimEnd()), 0);
  if (sub === "list") {
    const o = parseOptions(rest, { "--job": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const job = o.get("--job");
    const r = await partyJson<{ receipts: Listed[] }>(partyOption(o, usage), "GET", `/v1/receipts${job !== undefined ? `?job=${encodeURIComponent(job)}` : ""}`);
    if (o.has("--json")) return (io.out(JSON.stringify(r)), 0);
    if (r.receipts.length === 0) io.out("no receipts");
    for (const x of r.receipts) {
      describeReceipt(io, x.receipt);
      io.out(`  ${x.acknowledged ? "acknowledged by the buyer" : "not acknowledged yet"}`);
    }
    return 0;
  }
  if (sub === "show") {
    const [id, ...more] = rest;
    if (id === undefined || id.startsWith("-")) throw new UsageError("give the receipt's id first: umbra receipt show ID", usage);
    const o = parseOptions(more, { "--out": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const out = o.get("--out");
    if (out !== undefined) checkJsonOut(out, "--out");
    const r = await partyJson<{ bundle: { receipt: Receipt }; acknowledged: boolean }>(partyOption(o, usage), "GET", `/v1/receipts/${encodeURIComponent(id)}`);
    if (out !== undefined) writeFileSync(out, `${JSON.stringify(r.bundle, null, 2)}\n`);
    if (o.has("--json")) return (io.out(JSON.stringify(r)), 0);
    describeReceipt(io, r.bundle.receipt);
    io.out(`  ${r.acknowledged ? "acknowledged by the buyer" : "not acknowledged yet"}`);
    if (out !== undefined) io.out(`saved to ${out}: umbra receipt verify ${out} --exchange-key HEX`);
    return 0;
  }
  if (sub === "verify") {
    const [file, ...more] = rest;
    if (file === undefined || file.startsWith("-")) throw new UsageError("give the receipt file first: umbra receipt verify FILE --exchange-key HEX", usage);
    const o = parseOptions(more, { "--exchange-key": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const key = o.require("--exchange-key");
    if (!/^[0-9a-f]{64}$/.test(key)) throw new UsageError("--exchange-key needs the exchange's signing key, 64 lowercase hex digits", usage);
    try {
      const v = verifyReceiptBundle(readJson(file), Uint8Array.from(Buffer.from(key, "hex")));
      if (o.has("--json")) io.out(JSON.stringify({ ok: true, receipt: v.receipt, digest: v.digest, seq: v.seq, head: v.head }));
      else {
        describeReceipt(io, v.receipt);
        io.out(`receipt verified: signed by the exchange's key, logged as entry ${v.seq} and included in its signed log of ${v.head.size} entries`);
      }
      return 0;
    } catch (err) {
      if (!(err instanceof ReceiptRefusedError)) throw err;
      if (o.has("--json")) io.out(JSON.stringify({ ok: false, code: err.code, rule: err.rule, problem: err.message }));
      else io.err(`${err.code}: ${err.message}`);
      return 1;
    }
  }
  throw new UsageError(`unknown receipt command "${sub}"`, usage);
}

/** A --from/--to date (an ISO 8601 date or date-time) as ms. */
function dateOption(text: string, flag: string): number {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || !Number.isFinite(ms) || ms < 0) throw new UsageError(`${flag} needs a date such as 2026-12-01 or 2026-12-01T00:00:00Z`, usage);
  return ms;
}

export async function statementCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const o = parseOptions(args, { "--from": "string", "--to": "string", "--out": "string", "--db": "string", "--for": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const from = dateOption(o.require("--from"), "--from");
  const to = dateOption(o.require("--to"), "--to");
  if (to <= from) throw new UsageError("--to must be after --from", usage);
  const out = o.require("--out");
  let format: FileFormat;
  try {
    format = formatFromPath(out);
  } catch {
    throw new UsageError("--out must end in .csv or .arrow (.arrows, .feather, .ipc)", usage);
  }
  if (format === FileFormat.Parquet) throw new UsageError("--out must end in .csv or .arrow (.arrows, .feather, .ipc)", usage);
  let s: Statement;
  const db = o.get("--db");
  if (db !== undefined) {
    const name = o.require("--for", "is required with --db: the party whose statement it is");
    if (!existsSync(db)) throw new UmbraError("UMBRA_NOT_FOUND", `no exchange database at "${db}": give the --db that umbra exchange start uses`);
    const store = openStore(resolve(db));
    try {
      s = statementOf(name, store.receipts.list({ party: name, from, to }).map((r) => r.document as unknown as Receipt), from, to);
    } finally {
      store.close();
    }
  } else {
    s = await partyJson<Statement>(partyOption(o, usage), "GET", `/v1/statement?from=${from}&to=${to}`);
  }
  await writeStatement(out, s);
  if (o.has("--json")) return (io.out(JSON.stringify(s)), 0);
  io.out(`statement of ${s.party} from ${s.from} to ${s.to}: ${s.rows.length} rows, written to ${out}`);
  for (const t of s.totals) io.out(`  ${t.role === "buyer" ? "paid" : "earned"} ${t.amount} ${t.currency} (${t.receipts} receipts)`);
  return 0;
}
