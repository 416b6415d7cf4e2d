/**
 * `umbra certificate show|verify`: data asset certificates
 * (node/log/certificate.ts, docs/certificates.md). show asks a party's
 * agent for a dataset's certificate (fresh from the exchange, checked by the
 * agent); verify checks one offline with only the exchange's public key,
 * and with --data, that a file is the certified content.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { describeDataset } from "../catalog.js";
import { verifyCertificate, type VerifiedCertificate } from "../log/certificate.js";
import { count, parseOptions, processIO, UsageError, type CommandIO } from "./args.js";
import { PARTY_API_OPTIONS, partyJson, partyOption } from "./node.js";

export const CERTIFICATE_USAGE = `  certificate show --dataset ID [--out FILE] [--json] [--party URL] [--token-file FILE]
                 a dataset's data asset certificate (owner, schema, rows, content hash,
                 policy version, its place in the exchange's signed log), fresh from
                 the exchange and checked by the party's agent; --out saves it (JSON)
  certificate verify FILE --exchange-key HEX [--data DATA] [--json]
                 check a certificate offline with only the exchange's public key (64
                 hex digits): the exchange's signatures and the inclusion proof; with
                 --data, also that DATA (CSV, Arrow, Parquet) is the certified content
                 (schema, rows, content hash). Exit 0 when it verifies, 1 when not
`;

/** Checks before any work that a JSON output file can be written (its folder exists and is writable; not a folder). */
export function checkJsonOut(out: string, flag: string): void {
  const target = resolve(out);
  try {
    if (!statSync(dirname(target)).isDirectory()) throw new Error("not a folder");
    accessSync(dirname(target), fsConstants.W_OK);
  } catch {
    throw new UmbraError("UMBRA_UNWRITABLE_FILE", `cannot write ${flag} "${out}": its folder "${dirname(out)}" does not exist or is not writable; create it first or choose another path`);
  }
  let isDir = false;
  try {
    isDir = statSync(target).isDirectory();
  } catch {
    // a new file
  }
  if (isDir) throw new UmbraError("UMBRA_UNWRITABLE_FILE", `cannot write ${flag} "${out}": it is a folder; give a file name`);
}

function describe(v: VerifiedCertificate): string[] {
  const s = v.subject;
  return [
    `dataset        ${s.dataset} (file ${s.name}) of ${s.owner}`,
    `schema         ${s.schema.map((f) => `${f.name}:${f.type}`).join(", ")}`,
    `rows           ${count(s.rows)}`,
    `content hash   ${s.contentHash}`,
    `policy         version ${s.policyVersion}, digest ${s.policyDigest.slice(0, 16)}…`,
    `logged         entry ${v.seq} at ${new Date(v.loggedAt).toISOString()}`,
    `in the log     of ${count(v.head.size)} entries, root ${v.head.root.slice(0, 16)}…, signed ${new Date(v.head.at).toISOString()}`,
  ];
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read "${file}": give the file a certificate was saved to (umbra certificate show --dataset ID --out FILE)`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UmbraError("UMBRA_INVALID_CERTIFICATE", `"${basename(file)}" is not JSON`);
  }
}

export async function certificateCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${CERTIFICATE_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "show") {
    const o = parseOptions(rest, { "--dataset": "string", "--out": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const id = o.require("--dataset");
    const out = o.get("--out");
    if (out !== undefined) checkJsonOut(out, "--out");
    const r = await partyJson<{ certificate: unknown; exchangeKey: string | null }>(partyOption(o, usage), "GET", `/v1/datasets/${encodeURIComponent(id)}/certificate`);
    if (out !== undefined) writeFileSync(out, `${JSON.stringify(r.certificate, null, 2)}\n`);
    if (o.has("--json")) return (io.out(JSON.stringify(r)), 0);
    const v = verifyCertificate(r.certificate, Uint8Array.from(Buffer.from(r.exchangeKey ?? "", "hex")));
    for (const l of describe(v)) io.out(l);
    io.out(`verify it anywhere: umbra certificate verify ${out ?? "FILE"} --exchange-key ${r.exchangeKey ?? "HEX"}`);
    return 0;
  }
  if (sub === "verify") {
    const [file, ...more] = rest;
    if (file === undefined || file.startsWith("-")) throw new UsageError("give the certificate file first: umbra certificate verify FILE --exchange-key HEX", usage);
    const o = parseOptions(more, { "--exchange-key": "string", "--data": "string", "--json": "flag" }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const key = o.require("--exchange-key");
    if (!/^[0-9a-f]{64}$/.test(key)) throw new UsageError("--exchange-key needs the exchange's signing key, 64 lowercase hex digits (certificate show prints it; a 16-digit fingerprint cannot check a signature)", usage);
    let v: VerifiedCertificate;
    try {
      v = verifyCertificate(readJson(file), Uint8Array.from(Buffer.from(key, "hex")));
    } catch (err) {
      if (!(err instanceof UmbraError) || err.code !== "UMBRA_INVALID_CERTIFICATE") throw err;
      if (o.has("--json")) io.out(JSON.stringify({ ok: false, code: err.code, problem: err.message }));
      else io.err(`${err.code}: ${err.message}`);
      return 1;
    }
    const data = o.get("--data");
    const mismatches: string[] = [];
    if (data !== undefined) {
      const d = await describeDataset({ id: v.subject.dataset, owner: v.subject.owner, name: v.subject.name, table: data });
      const schema = (x: readonly { name: string; type: string }[]) => x.map((f) => `${f.name}:${f.type}`).join(",");
      if (schema(d.schema) !== schema(v.subject.schema)) mismatches.push("schema");
      if (d.rowCount !== v.subject.rows) mismatches.push("rows");
      if (d.contentHash !== v.subject.contentHash) mismatches.push("content hash");
    }
    if (o.has("--json")) io.out(JSON.stringify({ ok: mismatches.length === 0, subject: v.subject, seq: v.seq, loggedAt: v.loggedAt, head: v.head, ...(data !== undefined ? { dataMatches: mismatches.length === 0, dataMismatches: mismatches } : {}) }));
    else {
      for (const l of describe(v)) io.out(l);
      io.out("certificate verified: signed by the exchange's key and included in its signed log");
      if (data !== undefined) (mismatches.length === 0 ? io.out : io.err)(mismatches.length === 0 ? `the data in ${basename(data)} is the certified content (schema, rows and content hash)` : `UMBRA_DATA_MISMATCH: ${basename(data)} is not the certified content: its ${mismatches.join(", ")} differ`);
    }
    return mismatches.length === 0 ? 0 : 1;
  }
  throw new UsageError(`unknown certificate command "${sub}"`, usage);
}
