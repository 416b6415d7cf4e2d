/**
 * `umbra product|order|contract ...`: the venue (docs/venue.md), as a client
 * of a party agent's local API. A provider publishes and withdraws products
 * and approves or rejects orders; a buyer browses products and orders them;
 * either lists, shows and revokes its contracts. Prints ids, terms, prices
 * and states, never data.
 */
import { readFileSync } from "node:fs";
import { UmbraError } from "../../engine/errors.js";
import { parseOptions, UsageError, type CommandIO, processIO, type Options } from "./args.js";
import { epsilonOf, fmtEpsilon, table } from "./datasets.js";
import type { PrivacyBudgetView } from "../privacy-budget.js";
import { PARTY_API_OPTIONS, PartyApiError, partyJson, partyOption, type PartyEndpoint } from "./node.js";

export const VENUE_USAGE = `  product publish --file product.json [--json] [--party URL] [--token-file FILE]
                 publish a product over your own datasets (or a new version of it):
                 its protocols and output columns within each dataset's policy, its
                 prices in integer minor units (docs/venue.md)
  product withdraw --product ID | list | show --product ID  [--json] [--party URL] [--token-file FILE]
  order create --product ID --purpose TEXT --quota-jobs N [--days D] [--json] [--party URL] [--token-file FILE]
                 order a product: your agent writes and signs the contract (D days,
                 default 30); the provider approves it (or its auto-approve rule does)
  order approve|reject --order ID [--json] [--party URL] [--token-file FILE]
  order list [--json] [--party URL] [--token-file FILE]
                 your pending orders, as buyer or provider
  contract list [--state pending|active|rejected|revoked] | show --contract ID | revoke --contract ID
                 [--json] [--party URL] [--token-file FILE]
                 a job runs under one with: job submit ... --contract ID
`;

const usage = `Usage:\n${VENUE_USAGE}`;

interface ProductView {
  id: string;
  version: number;
  owner: string;
  state: string;
  title: string;
  description?: string;
  datasets: string[];
  protocols: string[];
  outputColumns: string[];
  prices: { currency: string; perJob: number; perKey: number; perMatchedRow: number; perCell: number };
  share: string;
  autoApprove?: Record<string, unknown>;
  digest: string;
}

interface ContractView {
  id: string;
  state: string;
  product: { id: string; version: number };
  buyer: string;
  provider: string;
  quotaJobs: number;
  jobsUsed: number;
  notBefore: string;
  notAfter: string;
  reason: string | null;
  contract: { purpose: string };
  /** Per dataset of the product with a privacy budget: the buyer's ρ budget, spent and remaining (the exchange's record). */
  privacy?: PrivacyBudgetView[];
}

/** A refusal by a rule as the CLI prints it ("refused: RULE (message)"), exit 1; any other error goes up. */
async function orRefused(io: CommandIO, json: boolean, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PartyApiError && err.rule) {
      if (json) io.out(JSON.stringify({ refused: true, rule: err.rule, reason: err.message }));
      io.err(`refused: ${err.rule} (${err.message})`);
      return 1;
    }
    throw err;
  }
}

const money = (n: number, currency: string): string => `${n} ${currency}`;

function showProduct(io: CommandIO, p: ProductView): void {
  io.out(`${p.id} v${p.version} (${p.state}) by ${p.owner}: ${p.title}`);
  if (p.description) io.out(`  ${p.description}`);
  io.out(`  datasets: ${p.datasets.join(", ")}`);
  io.out(`  protocols: ${p.protocols.join(", ")}; output columns: ${p.outputColumns.join(", ") || "-"}`);
  const c = p.prices.currency;
  io.out(`  prices (minor units): per job ${money(p.prices.perJob, c)}, per key ${money(p.prices.perKey, c)}, per matched row ${money(p.prices.perMatchedRow, c)}, per cell ${money(p.prices.perCell, c)}; share: ${p.share}`);
  io.out(`  auto-approve: ${p.autoApprove ? JSON.stringify(p.autoApprove) : "none (the provider approves each order)"}`);
  io.out(`  digest: ${p.digest}`);
}

function showContract(io: CommandIO, c: ContractView): void {
  io.out(`${c.id} (${c.state}${c.reason ? `: ${c.reason}` : ""})`);
  io.out(`  product ${c.product.id} v${c.product.version}; buyer ${c.buyer}; provider ${c.provider}`);
  io.out(`  purpose: ${c.contract.purpose}`);
  io.out(`  jobs: ${c.jobsUsed} of ${c.quotaJobs}; valid ${c.notBefore} to ${c.notAfter}`);
  for (const p of c.privacy ?? []) {
    const line = p.buyers[0];
    if (p.budget === null || line === undefined) continue;
    io.out(`  privacy budget on ${p.dataset}: ρ ${line.spent} spent of ${p.budget}, ${line.remaining} remains (ε ${fmtEpsilon(epsilonOf(line.remaining))} at δ = 1e-6)`);
  }
}

function readDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", "cannot read the product file");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError("--file needs a JSON document (a product: docs/venue.md)", usage);
  }
}

const id = (o: Options, flag: string): string => encodeURIComponent(o.require(flag));

async function print<T>(io: CommandIO, o: Options, value: T, human: (v: T) => void): Promise<number> {
  if (o.has("--json")) io.out(JSON.stringify(value));
  else human(value);
  return 0;
}

export async function productCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "help") return sub === undefined ? Promise.reject(new UsageError("a subcommand is required", usage)) : (io.out(usage.trimEnd()), 0);
  const spec = { "--file": "string", "--product": "string", "--json": "flag", ...PARTY_API_OPTIONS } as const;
  const o = parseOptions(rest, spec, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const party: PartyEndpoint = partyOption(o, usage);
  return orRefused(io, o.has("--json"), async () => {
    switch (sub) {
      case "publish": {
        const r = await partyJson<{ id: string; version: number; digest: string }>(party, "POST", "/v1/products", { product: readDocument(o.require("--file")) });
        return print(io, o, r, (v) => io.out(`published ${v.id} version ${v.version} (digest ${v.digest.slice(0, 16)}…)`));
      }
      case "withdraw": {
        const r = await partyJson<ProductView>(party, "POST", `/v1/products/${id(o, "--product")}/withdraw`, {});
        return print(io, o, r, (v) => io.out(`withdrew ${v.id} version ${v.version}`));
      }
      case "list": {
        const { products } = await partyJson<{ products: ProductView[] }>(party, "GET", "/v1/products");
        return print(io, o, products, (ps) => {
          if (ps.length === 0) return io.out("no products");
          for (const l of table(["id", "version", "state", "owner", "protocols", "per job", "title"], ps.map((p) => [p.id, String(p.version), p.state, p.owner, p.protocols.join(","), money(p.prices.perJob, p.prices.currency), p.title]))) io.out(l);
        });
      }
      case "show":
        return print(io, o, await partyJson<ProductView>(party, "GET", `/v1/products/${id(o, "--product")}`), (p) => showProduct(io, p));
      default:
        throw new UsageError(`unknown product command "${sub}"`, usage);
    }
  });
}

export async function orderCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "help") return sub === undefined ? Promise.reject(new UsageError("a subcommand is required", usage)) : (io.out(usage.trimEnd()), 0);
  const spec = { "--product": "string", "--purpose": "string", "--quota-jobs": "string", "--days": "string", "--order": "string", "--json": "flag", ...PARTY_API_OPTIONS } as const;
  const o = parseOptions(rest, spec, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const party = partyOption(o, usage);
  return orRefused(io, o.has("--json"), async () => {
    switch (sub) {
      case "create": {
        const quotaJobs = o.integer("--quota-jobs", 1_000_000, 1);
        if (quotaJobs === undefined) throw new UsageError("--quota-jobs N (the jobs the contract allows) is required", usage);
        const days = o.integer("--days", 5 * 365, 1);
        const body = { product: o.require("--product"), purpose: o.require("--purpose"), quotaJobs, ...(days !== undefined ? { days } : {}) };
        const r = await partyJson<ContractView>(party, "POST", "/v1/orders", body);
        return print(io, o, r, (v) => io.out(`ordered ${v.product.id} v${v.product.version}: ${v.id} (pending: the provider approves it)`));
      }
      case "approve": {
        const r = await partyJson<ContractView>(party, "POST", `/v1/orders/${id(o, "--order")}/approve`, {});
        return print(io, o, r, (v) => io.out(`signed ${v.id}: active, ${v.quotaJobs} jobs until ${v.notAfter}`));
      }
      case "reject": {
        const r = await partyJson<ContractView>(party, "POST", `/v1/orders/${id(o, "--order")}/reject`, {});
        return print(io, o, r, (v) => io.out(`rejected ${v.id}`));
      }
      case "list": {
        const { contracts } = await partyJson<{ contracts: ContractView[] }>(party, "GET", "/v1/contracts?state=pending");
        return print(io, o, contracts, (cs) => listContracts(io, cs));
      }
      default:
        throw new UsageError(`unknown order command "${sub}"`, usage);
    }
  });
}

function listContracts(io: CommandIO, cs: readonly ContractView[]): void {
  if (cs.length === 0) return io.out("no contracts");
  for (const l of table(["id", "state", "product", "buyer", "provider", "jobs", "until"], cs.map((c) => [c.id, c.state, `${c.product.id} v${c.product.version}`, c.buyer, c.provider, `${c.jobsUsed}/${c.quotaJobs}`, c.notAfter]))) io.out(l);
}

export async function contractCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "help") return sub === undefined ? Promise.reject(new UsageError("a subcommand is required", usage)) : (io.out(usage.trimEnd()), 0);
  const spec = { "--contract": "string", "--state": "string", "--json": "flag", ...PARTY_API_OPTIONS } as const;
  const o = parseOptions(rest, spec, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const party = partyOption(o, usage);
  return orRefused(io, o.has("--json"), async () => {
    switch (sub) {
      case "list": {
        const state = o.get("--state");
        if (state !== undefined && !["pending", "active", "rejected", "revoked"].includes(state)) throw new UsageError("--state must be pending, active, rejected or revoked", usage);
        const { contracts } = await partyJson<{ contracts: ContractView[] }>(party, "GET", `/v1/contracts${state ? `?state=${state}` : ""}`);
        return print(io, o, contracts, (cs) => listContracts(io, cs));
      }
      case "show":
        return print(io, o, await partyJson<ContractView>(party, "GET", `/v1/contracts/${id(o, "--contract")}`), (c) => showContract(io, c));
      case "revoke": {
        const r = await partyJson<ContractView>(party, "POST", `/v1/contracts/${id(o, "--contract")}/revoke`, {});
        return print(io, o, r, (v) => io.out(`revoked ${v.id}: no further job runs under it`));
      }
      default:
        throw new UsageError(`unknown contract command "${sub}"`, usage);
    }
  });
}
