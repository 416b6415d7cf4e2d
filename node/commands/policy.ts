/**
 * `umbra policy init|check`: a provider's usage policy, before it registers
 * a dataset with it (`umbra dataset register --policy @FILE`).
 *
 *   init --protocol P   writes an example policy for protocol P: plain JSON
 *                       whose "//" field explains each field (the policy's
 *                       comment: accepted and ignored wherever a policy is
 *                       read, so the file registers as written)
 *   check FILE          lists every problem of a policy file at once (exit 1,
 *                       UMBRA_INVALID_POLICY), or what it allows
 *
 * The examples are docs/policy.md's and examples/policies/<protocol>.json
 * (test/policy-cli.test.ts checks all three agree). Nothing here prints a
 * buyer's name or a key.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { openBatches } from "../../engine/columns/index.js";
import { UmbraError } from "../../engine/errors.js";
import { ProtocolId } from "../../protocols/index.js";
import { AlreadyExistsError } from "../errors.js";
import { INTERSECTION_PROTOCOLS, K_PROTOCOLS, parsePolicy, policyIssues, policyWarnings, type PolicyDocument, type UsagePolicy } from "../policy.js";
import type { FieldIssue } from "../schemas/check.js";
import { POLICY_COMMENT_FIELD } from "../schemas/policy.js";
import { parseOptions, processIO, UsageError, type CommandIO } from "./args.js";

export const POLICY_USAGE = `  policy init --protocol P [--out FILE] [--force] [--json]
                 write an example usage policy for protocol P (psi, psi-cardinality,
                 lookup, join-aggregate, federated-aggregate): JSON whose "//" lines
                 explain each field; to stdout, or to --out FILE (replacing a file
                 only with --force)
  policy check FILE [--data DATA] [--json]
                 check a policy file: every problem at once (exit 1), or what it
                 allows; - reads stdin; --data: also that its columns are DATA's
                 (the file you will register); --json prints {ok, errors, warnings}.
                 Every field and its default: docs/policy.md
`;

/** What every example says about a field it sets (the protocol's own notes come first). */
const FIELD_NOTES: Readonly<Record<string, string>> = {
  allowedProtocols: "allowedProtocols: what a buyer may run on this dataset.",
  keyColumns:
    'keyColumns: the keys a buyer may join on, each one column or a composite key (an array inside the array): replace "phone" with yours; [["first_name", "birth_date"]] allows first_name + birth_date together, while ["first_name", "birth_date"] allows either column alone.',
  outputColumns: "outputColumns: the columns a buyer's job may release or aggregate: replace these with yours (key columns need not be listed).",
  allowedBuyers: 'allowedBuyers: the buyers\' party names (as they registered at the exchange), or "any": replace "bank".',
  minGroupSize: "minGroupSize: k, the smallest group a released result may describe; groups under k are suppressed.",
  minIntersection: "minIntersection: a result matching fewer distinct keys is withheld from the buyer.",
  queryBudget: 'queryBudget, budgetUnit: what each buyer may spend on this dataset in all: jobs, or "keys" (its distinct keys: each job then declares --query-count).',
  expiresAt: 'expiresAt: from this instant the policy permits nothing, e.g. "2027-01-01T00:00:00Z"; null: never.',
};

interface Example {
  readonly what: string;
  readonly fields: PolicyDocument;
}

const EXAMPLES: Readonly<Record<ProtocolId, Example>> = {
  [ProtocolId.Psi]: {
    what: "psi: the buyer learns which of its keys this dataset holds too; you learn how many keys it sent.",
    fields: { allowedProtocols: [ProtocolId.Psi], keyColumns: ["phone"], allowedBuyers: ["bank"], minIntersection: 10, queryBudget: 100, budgetUnit: "jobs", expiresAt: null },
  },
  [ProtocolId.PsiCardinality]: {
    what: "psi-cardinality: the buyer learns only how many of its keys this dataset holds too (withheld under k).",
    fields: { allowedProtocols: [ProtocolId.PsiCardinality], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 10, queryBudget: 100, budgetUnit: "jobs", expiresAt: null },
  },
  [ProtocolId.PsiOt]: {
    what: "psi-ot: psi by OT extension, semi-honest: the buyer learns which of its keys this dataset holds too; you learn how many keys it sent. psi does not allow it: a policy lists it to opt in (add \"psi\" to allow both).",
    fields: { allowedProtocols: [ProtocolId.PsiOt], keyColumns: ["phone"], allowedBuyers: ["bank"], minIntersection: 10, queryBudget: 100, budgetUnit: "jobs", expiresAt: null },
  },
  [ProtocolId.Lookup]: {
    what: "lookup: for each of its keys this dataset holds, the buyer learns the output columns' values; you learn how many keys it asked.",
    fields: {
      allowedProtocols: [ProtocolId.Lookup],
      keyColumns: ["phone"],
      outputColumns: ["plan", "monthly_spend"],
      allowedBuyers: ["bank"],
      minIntersection: 10,
      queryBudget: 100,
      budgetUnit: "jobs",
      expiresAt: null,
    },
  },
  [ProtocolId.JoinAggregate]: {
    what: "join-aggregate: the buyer learns COUNT/SUM/AVG/VAR of your output columns over the join, per group of its own, groups under k suppressed.",
    fields: { allowedProtocols: [ProtocolId.JoinAggregate], keyColumns: ["phone"], outputColumns: ["monthly_spend"], allowedBuyers: ["bank"], minGroupSize: 10, queryBudget: 100, budgetUnit: "jobs", expiresAt: null },
  },
  [ProtocolId.FederatedAggregate]: {
    what: "federated-aggregate: the buyer learns totals across several providers per public category, cells under k suppressed; nothing is joined, so no key column.",
    fields: { allowedProtocols: [ProtocolId.FederatedAggregate], outputColumns: ["region", "age", "spend"], allowedBuyers: ["bank"], minGroupSize: 10, queryBudget: 100, budgetUnit: "jobs", expiresAt: null },
  },
};

/** JSON as a person edits it: one field per line, short arrays on one line, the comment one line per entry. */
function formatPolicy(doc: Record<string, unknown>): string {
  const inline = (v: unknown): string => (Array.isArray(v) ? `[${v.map(inline).join(", ")}]` : JSON.stringify(v));
  const lines = Object.entries(doc).map(([k, v]) =>
    k === POLICY_COMMENT_FIELD && Array.isArray(v) ? `  ${JSON.stringify(k)}: [\n${v.map((l) => `    ${JSON.stringify(l)}`).join(",\n")}\n  ]` : `  ${JSON.stringify(k)}: ${inline(v)}`,
  );
  return `{\n${lines.join(",\n")}\n}\n`;
}

/** The example policy `umbra policy init --protocol P` writes, as its text. */
export function examplePolicyText(protocol: ProtocolId): string {
  const { what, fields } = EXAMPLES[protocol];
  const notes = Object.keys(fields).flatMap((f) => (FIELD_NOTES[f] === undefined ? [] : [FIELD_NOTES[f]]));
  const comment = [
    `A usage policy for ${what}`,
    ...notes,
    "Check it: umbra policy check FILE. Register it: umbra dataset register --file DATA --policy @FILE.",
    'Every field, its default and how it is checked: docs/policy.md. This "//" comment is ignored.',
  ];
  return formatPolicy({ [POLICY_COMMENT_FIELD]: comment, ...fields });
}

/** "psi, lookup to 2 buyers; keys phone or first_name+birth_date; …": what a good policy allows, naming no buyer. */
export function describePolicy(p: UsagePolicy): string {
  const buyers = p.allowedBuyers === "any" ? "any buyer" : `${p.allowedBuyers.length} buyer${p.allowedBuyers.length === 1 ? "" : "s"}`;
  // "or": each entry is a key of its own; "+": the columns of one composite key.
  const keys = p.keyColumns.map((k) => (typeof k === "string" ? k : k.join("+"))).join(" or ") || "none";
  const parts = [
    `allows ${p.allowedProtocols.join(", ")} to ${buyers}`,
    `keys ${keys}`,
    `output columns ${p.outputColumns.join(", ") || "none"}`,
    ...(p.allowedProtocols.some((id) => K_PROTOCOLS.includes(id)) ? [`k ${p.minGroupSize}`] : []),
    ...(p.minIntersection !== undefined && p.allowedProtocols.some((id) => INTERSECTION_PROTOCOLS.includes(id)) ? [`min intersection ${p.minIntersection}`] : []),
    `budget ${p.queryBudget} ${p.budgetUnit} per buyer`,
    `expires ${p.expiresAt ?? "never"}`,
  ];
  return parts.join("; ");
}

/** Line and column (1-based) of a character offset in a text. */
function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

/** A policy file's parsed JSON, or why it is not JSON; its name in every message (never its content). */
function readPolicyFile(path: string): { readonly doc: unknown } | { readonly issues: FieldIssue[] } {
  const name = path === "-" ? "stdin" : `"${path}"`;
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch {
    throw new UmbraError("UMBRA_UNREADABLE_FILE", `cannot read the policy file ${name}${path !== "-" && !existsSync(path) ? " (no such file)" : ""}`);
  }
  try {
    return { doc: JSON.parse(text) as unknown };
  } catch (err) {
    // The parser's message may quote the text: only where it stopped is kept.
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : "")?.[1];
    const where = at !== undefined ? ` at ${lineAndColumn(text, Number(at))}` : text.trim() === "" ? " (the file is empty)" : "";
    return { issues: [{ field: "policy", problem: `is not valid JSON${where}: a policy is a JSON object (write notes in a "//" field: JSON has no comments)` }] };
  }
}

const asJson = (issues: readonly FieldIssue[]) => issues.map((i) => ({ path: i.field, message: i.problem }));

function initCommand(args: readonly string[], io: CommandIO, usage: string): number {
  const o = parseOptions(args, { "--protocol": "string", "--out": "string", "--force": "flag", "--json": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  const protocol = o.require("--protocol");
  if (!(Object.values(ProtocolId) as string[]).includes(protocol)) throw new UsageError(`--protocol needs one of ${Object.values(ProtocolId).join(", ")}`, usage);
  const text = examplePolicyText(protocol as ProtocolId);
  const out = o.get("--out");
  if (out === undefined) {
    if (o.has("--json")) io.out(JSON.stringify({ protocol, policy: JSON.parse(text) as unknown }));
    else io.out(text.trimEnd());
    return 0;
  }
  const exists = () => new AlreadyExistsError(`"${out}" exists already: give --force to overwrite it, or another --out`);
  if (existsSync(out) && !o.has("--force")) throw exists();
  const dir = dirname(out);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UmbraError("UMBRA_UNWRITABLE_FILE", `cannot write "${out}": the folder "${dir}" does not exist`);
  try {
    // "wx": a file made meanwhile is not overwritten either.
    writeFileSync(out, text, { flag: o.has("--force") ? "w" : "wx" });
  } catch (err) {
    if ((err as { code?: unknown }).code === "EEXIST") throw exists();
    throw new UmbraError("UMBRA_UNWRITABLE_FILE", `cannot write "${out}"`);
  }
  if (o.has("--json")) io.out(JSON.stringify({ protocol, file: out }));
  else {
    io.out(`wrote ${out}: an example ${protocol} policy; its "//" lines explain each field. Next:`);
    io.out(`  edit it (keyColumns, outputColumns, allowedBuyers), then`);
    io.out(`  umbra policy check ${out}`);
    io.out(`  umbra dataset register --file DATA --policy @${out}`);
  }
  return 0;
}

/** The columns of a data file, read from its header (no row is read). */
async function columnsOf(path: string): Promise<{ name: string }[]> {
  const source = await openBatches(path);
  await source.batches.return(undefined);
  return source.schema.fields.map((f) => ({ name: f.name }));
}

/**
 * The columns --data was found to have, and, when its header is one column
 * holding a semicolon, tab or bar, that the node path reads CSV with commas.
 */
function columnsHint(data: string, columns: readonly { name: string }[]): string {
  const found = `columns of ${basename(data)}: ${columns.map((c) => `"${c.name}"`).join(", ")}`;
  const sep = columns.length === 1 ? [";", "\t", "|"].find((d) => columns[0]?.name.includes(d)) : undefined;
  if (sep === undefined) return found;
  const what = sep === "\t" ? "tabs" : `"${sep}"`;
  return `${found}; its header looks separated by ${what}: dataset register and job submit read CSV separated by commas, so save it with commas (or as .arrow/.parquet)`;
}

async function checkCommand(args: readonly string[], io: CommandIO, usage: string): Promise<number> {
  const positional = args.filter((a, i) => (a === "-" || !a.startsWith("-")) && args[i - 1] !== "--data");
  const o = parseOptions(
    args.filter((a, i) => !positional.includes(a) || args[i - 1] === "--data"),
    { "--data": "string", "--json": "flag" },
    usage,
  );
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? "policy check needs the policy FILE" : "policy check takes one FILE", usage);
  // The form dataset register takes (@FILE) is accepted too.
  const path = (positional[0] as string).replace(/^@(?=.)/, "");
  const data = o.get("--data");
  const columns = data === undefined ? undefined : await columnsOf(data);
  const json = o.has("--json");
  const read = readPolicyFile(path);
  const doc = "doc" in read ? read.doc : undefined;
  const errors = "doc" in read ? policyIssues(doc, columns) : read.issues;
  const warnings = errors.length === 0 ? policyWarnings(doc as PolicyDocument) : [];
  if (json) {
    io.out(JSON.stringify({ ok: errors.length === 0, errors: asJson(errors), warnings: asJson(warnings), ...(errors.length === 0 ? { summary: describePolicy(parsePolicy(doc)) } : {}) }));
    return errors.length === 0 ? 0 : 1;
  }
  const name = basename(path === "-" ? "stdin" : path);
  if (errors.length > 0) {
    io.err(`umbra: UMBRA_INVALID_POLICY: ${name}: ${errors.length} problem${errors.length === 1 ? "" : "s"}:`);
    for (const e of errors) io.err(`  ${e.field}: ${e.problem}`);
    if (data !== undefined && columns !== undefined && errors.some((e) => e.problem.includes("not in the dataset's schema"))) io.err(columnsHint(data, columns));
    io.err("Every field, its type and default: docs/policy.md; an example: umbra policy init --protocol P");
    return 1;
  }
  for (const w of warnings) io.err(`warning: ${w.field}: ${w.problem}`);
  io.out(`ok: ${describePolicy(parsePolicy(doc))}`);
  return 0;
}

export async function policyCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${POLICY_USAGE}`;
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required (init or check)", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(usage.trimEnd());
    return 0;
  }
  if (sub === "init") return initCommand(rest, io, usage);
  if (sub === "check") return await checkCommand(rest, io, usage);
  throw new UsageError(`unknown policy command "${sub}"`, usage);
}
