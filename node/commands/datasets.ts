/**
 * `umbra dataset register|list|budget`: a client of a party agent's local API
 * (default http://127.0.0.1:7301) that registers a file of the party's data
 * folder with its usage policy, and lists the datasets the party may use. It
 * prints ids, counts, column names and policy rules, never a key or a cell
 * value.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { UmbraError } from "../../engine/errors.js";
import { epsilonFromRho, rational, rationalToNumber } from "../../engine/dp/index.js";
import type { PrivacyBudgetView } from "../privacy-budget.js";
import { count, parseOptions, processIO, UsageError, type CommandIO, type Options } from "./args.js";
import { PARTY_API_OPTIONS, partyJson, partyOption, type PartyEndpoint } from "./node.js";
import { checkJsonOut } from "./certificate.js";

export const DATASET_USAGE = `  dataset register --file FILE --policy JSON|@policy.json [--update] [--certificate-out FILE] [--json]
      [--party URL] [--token-file FILE]
                 describe a file of the party's data folder (schema, rows, content
                 hash, each key column's shape; never rows) and register it with its
                 usage policy; FILE is named relative to the data folder, or by a
                 path (absolute, or from here) inside it; a CSV file must be
                 separated by commas (or save it as .arrow/.parquet);
                 --update registers a file again: a new policy version (and content),
                 recorded in the exchange's ledger. Each registration yields a data
                 asset certificate (docs/certificates.md): --certificate-out writes it
  dataset list [--json] [--party URL] [--token-file FILE]
                 the datasets this party may use: id, owner, rows, protocols,
                 output columns, k, expiry
  dataset budget DATASET [--buyer ID] [--json] [--party URL] [--token-file FILE]
                 a dataset's privacy budget (its policy's privacyBudget): per
                 buyer the zCDP ρ allowed, spent and remaining, each with its ε at
                 δ = 1e-6 (CKS20); on the dataset's owner, its agent's own record
                 (every buyer); on a buyer, the exchange's (its own line)
`;

interface CatalogEntry {
  id: string;
  owner: string;
  name: string;
  rowCount: number;
  allowedProtocols: string[];
  outputColumns: string[];
  keyColumns?: (string | string[])[];
  minGroupSize: number;
  queryBudget: number;
  budgetUnit: string;
  expiresAt: string | null;
}

/** A policy given inline as JSON or as @file. */
function policyOption(o: Options, usage: string): unknown {
  const v = o.require("--policy");
  let text = v;
  if (v.startsWith("@")) {
    try {
      text = readFileSync(v.slice(1), "utf8");
    } catch {
      throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the policy file "${v.slice(1)}"`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError("--policy needs a JSON object, or @FILE naming one", usage);
  }
}

/** Fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}


export async function registerDataset(party: PartyEndpoint, file: string, policy: unknown, update = false): Promise<{ id: string; policyVersion: number; rows: number; contentHash: string; certificate: { entry: { seq: number }; head: { size: number } } }> {
  return partyJson(party, "POST", "/v1/datasets", { file, policy, ...(update ? { update: true } : {}) });
}

export async function listDatasets(party: PartyEndpoint): Promise<CatalogEntry[]> {
  return (await partyJson<{ datasets: CatalogEntry[] }>(party, "GET", "/v1/datasets")).datasets;
}

/** A dataset's privacy budget as the party's agent shows it (node/privacy-budget.ts). */
export async function datasetPrivacyBudget(party: PartyEndpoint, id: string): Promise<PrivacyBudgetView> {
  return partyJson<PrivacyBudgetView>(party, "GET", `/v1/datasets/${encodeURIComponent(id)}/privacy-budget`);
}

/** δ of the ε that dataset budget shows beside each ρ. */
const BUDGET_DELTA = 1e-6;

/** The ε at δ = 1e-6 of a ρ "num/den" (CKS20 Corollary 13). */
export function epsilonOf(rho: string): number {
  const [n, d] = rho.split("/");
  return epsilonFromRho(rationalToNumber(rational(BigInt(n ?? "0"), BigInt(d ?? "1"), "ρ")), BUDGET_DELTA);
}

export const fmtEpsilon = (e: number): string => (e === 0 ? "0" : e.toPrecision(3));

export async function datasetCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${DATASET_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "register") {
    const o = parseOptions(rest, { "--file": "string", "--policy": "string", "--update": "flag", "--certificate-out": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    // A path with a folder in it that exists from here goes as an absolute path (the agent takes it when it lies in its data folder); a bare name is the data folder's.
    const given = o.require("--file");
    const file = !isAbsolute(given) && /[\\/]/.test(given) && existsSync(given) ? resolve(given) : given;
    const policy = policyOption(o, usage);
    const party = partyOption(o, usage);
    const certOut = o.get("--certificate-out");
    if (certOut !== undefined) checkJsonOut(certOut, "--certificate-out");
    const r = await registerDataset(party, file, policy, o.has("--update"));
    if (certOut !== undefined) writeFileSync(certOut, `${JSON.stringify(r.certificate, null, 2)}\n`);
    if (o.has("--json")) return (io.out(JSON.stringify(r)), 0);
    io.out(`${o.has("--update") ? "updated" : "registered"} ${r.id} (policy version ${r.policyVersion}): ${count(r.rows)} rows, content hash ${r.contentHash.slice(0, 16)}…`);
    io.out(`certified: entry ${r.certificate.entry.seq} of the exchange's signed log (${count(r.certificate.head.size)} entries)${certOut !== undefined ? `; certificate written to ${certOut}` : `; umbra certificate show --dataset ${r.id} --out FILE saves it`}`);
    return 0;
  }
  if (sub === "list") {
    const o = parseOptions(rest, { "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    const party = partyOption(o, usage);
    const ds = await listDatasets(party);
    if (o.has("--json")) return (io.out(JSON.stringify(ds)), 0);
    if (ds.length === 0) {
      io.out("no datasets");
      return 0;
    }
    const rows = ds.map((d) => [
      d.id,
      d.owner,
      count(d.rowCount),
      d.allowedProtocols.join(",") || "-",
      // As policy check says it: "or" between keys, "+" within a composite one.
      (d.keyColumns ?? []).map((k) => (typeof k === "string" ? k : k.join("+"))).join(" or ") || "-",
      d.outputColumns.join(",") || "-",
      String(d.minGroupSize),
      d.expiresAt ?? "never",
    ]);
    for (const l of table(["id", "owner", "rows", "protocols", "keys", "output columns", "k", "expiry"], rows)) io.out(l);
    return 0;
  }
  if (sub === "budget") {
    const named = rest[0] !== undefined && !rest[0].startsWith("-");
    const id = named ? rest[0] : undefined;
    const more = named ? rest.slice(1) : rest;
    const o = parseOptions(more, { "--buyer": "string", "--json": "flag", ...PARTY_API_OPTIONS }, usage);
    if (o === undefined) return (io.out(usage.trimEnd()), 0);
    if (id === undefined) throw new UsageError("the dataset ID is required (umbra dataset list shows them)", usage);
    const party = partyOption(o, usage);
    const view = await datasetPrivacyBudget(party, id);
    if (view.budget === null) throw new UmbraError("UMBRA_NO_PRIVACY_BUDGET", `dataset ${id} has no privacy budget: its policy sets no privacyBudget (a job on it need not declare differential privacy)`);
    const buyer = o.get("--buyer");
    const lines = buyer === undefined ? [...view.buyers] : view.buyers.filter((b) => b.buyer === buyer);
    if (buyer !== undefined && lines.length === 0) {
      if (view.source !== "provider") throw new UmbraError("UMBRA_NOT_FOUND", `the exchange shows a buyer its own line of a dataset's budget only: ${buyer} is not this party`);
      // The owner's record lists every buyer that spent and those its policy names: one it has no line for has spent nothing.
      lines.push({ buyer, spent: "0/1", remaining: view.budget });
    }
    const budget = view.budget;
    const out = {
      dataset: view.dataset,
      source: view.source,
      delta: BUDGET_DELTA,
      budget: { rho: budget, epsilon: epsilonOf(budget) },
      buyers: lines.map((l) => ({ buyer: l.buyer, spent: { rho: l.spent, epsilon: epsilonOf(l.spent) }, remaining: { rho: l.remaining, epsilon: epsilonOf(l.remaining) } })),
    };
    if (o.has("--json")) return (io.out(JSON.stringify(out)), 0);
    io.out(`dataset ${view.dataset}: privacy budget ρ = ${budget} zCDP per buyer (ε = ${fmtEpsilon(out.budget.epsilon)} at δ = 1e-6); ${view.source === "provider" ? "this party's own record (it checks it again before every job)" : "the exchange's record"}`);
    if (out.buyers.length === 0) return (io.out("no buyer has spent any of it"), 0);
    const rows = out.buyers.map((b) => [b.buyer, b.spent.rho, fmtEpsilon(b.spent.epsilon), b.remaining.rho, fmtEpsilon(b.remaining.epsilon)]);
    for (const l of table(["buyer", "spent ρ", "spent ε", "remaining ρ", "remaining ε"], rows)) io.out(l);
    return 0;
  }
  throw new UsageError(`unknown dataset command "${sub}"`, usage);
}
