#!/usr/bin/env node
/**
 * The `umbra` command: a thin dispatcher over node/commands/.
 *
 *   umbra psi --buyer FILE --provider FILE --key COL[,COL...] (--out FILE | --cardinality) ...
 *   umbra lookup --buyer FILE (--provider FILE --columns C,... | --prepared FILE --seed-file FILE) --key COL --out FILE ...
 *   umbra lookup prepare --provider FILE --key COL --columns C,... --product NAME --version N --seed-file FILE --out FILE.arrow
 *   umbra aggregate --provider FILE --provider FILE [...] --agg "count,sum(COL),..." --out FILE ...
 *   umbra join-aggregate --buyer FILE --provider FILE --key COL[,COL...] --agg "count,sum(COL),..." --out FILE ...
 *   umbra exchange start [--port P] [--db FILE] [--open-registration]
 *   umbra exchange invite --name NAME [--db FILE] [--expires DURATION] [--json]; umbra exchange parties [--db FILE] [--json]
 *   umbra party start --name NAME [--invite CODE] [--exchange URL] [--port P] [--db FILE] [--data DIR]
 *   umbra dataset register|list|budget ...; umbra job submit|status|result|cancel ...
 *   umbra product publish|withdraw|list|show ...; umbra order create|approve|reject|list ...; umbra contract list|show|revoke ...
 *   umbra audit verify|show --db FILE ...
 *   umbra policy init --protocol P [--out FILE] [--force] [--json]; umbra policy check FILE [--data DATA] [--json]
 *   umbra demo [--keep]          (the node demo: separate processes)
 *   umbra demo --local [--buyer-rows N] [--provider-rows N] [--dir DIR]   (the engine alone)
 *   umbra protocols
 *   umbra version
 *   umbra help
 *
 * Exit codes: 0 success; 1 an UmbraError (`umbra: CODE: message` on stderr,
 * never data); 2 a usage error (the message and the usage text on stderr).
 */
import { readFileSync } from "node:fs";
import { UmbraError } from "../engine/errors.js";
import { PROTOCOLS } from "../protocols/index.js";
import { AGGREGATE_USAGE, aggregateCommand } from "./commands/aggregate.js";
import { JOIN_AGGREGATE_USAGE, joinAggregateCommand } from "./commands/join-aggregate.js";
import { LOOKUP_USAGE, lookupCommand } from "./commands/lookup.js";
import { parseOptions, UsageError, type OptionSpec } from "./commands/args.js";
import { PSI_USAGE, psiCommand } from "./commands/psi.js";
import { runDemo } from "./demo.js";
import { AUDIT_USAGE, auditCommand } from "./commands/audit.js";
import { CERTIFICATE_USAGE, certificateCommand } from "./commands/certificate.js";
import { RECEIPTS_USAGE, receiptCommand, statementCommand } from "./commands/receipts.js";
import { DEMO_USAGE, nodeDemoCommand } from "./commands/demo.js";
import { DATASET_USAGE, datasetCommand } from "./commands/datasets.js";
import { JOB_USAGE, jobCommand } from "./commands/jobs.js";
import { POLICY_USAGE, policyCommand } from "./commands/policy.js";
import { contractCommand, orderCommand, productCommand, VENUE_USAGE } from "./commands/venue.js";
import { EXCHANGE_USAGE, exchangeCommand, PARTY_USAGE, partyCommand } from "./commands/node.js";
import { CONSOLE_USAGE, consoleCommand } from "./commands/console.js";
import { WORKER_USAGE, workerCommand } from "./commands/worker.js";

const USAGE = `Usage: umbra <command> [options]

Commands:
${PSI_USAGE}${LOOKUP_USAGE}${JOIN_AGGREGATE_USAGE}${AGGREGATE_USAGE}
The node (parties reach only the exchange; the CLI talks to a party's local API):
${EXCHANGE_USAGE}${PARTY_USAGE}${WORKER_USAGE}${CONSOLE_USAGE}${POLICY_USAGE}${DATASET_USAGE}${JOB_USAGE}${VENUE_USAGE}${RECEIPTS_USAGE}${AUDIT_USAGE}${CERTIFICATE_USAGE}
${DEMO_USAGE}  protocols      list the protocols and what each role learns
  version        print the version
  help           print this help

Files are read and written by extension: .csv (--delimiter C for another
separator than the comma), .arrow/.feather/.ipc (Arrow IPC), .arrows (Arrow
IPC stream), .parquet. Keys are trimmed and NFC-normalised; --digits-only
keeps the ASCII digits, --case-fold lower-cases (on a node job both sides
apply what the job names); a composite key is several comma-separated
columns, named alike in both files. Progress goes to stderr (--quiet: none);
results and the summary to stdout (--json: one JSON document).
A walkthrough from install to a verified ledger: the README, "Bring your own
data"; usage policies: docs/policy.md; config files: docs/configuration.md.

Exit codes: 0 done, 1 error ("umbra: CODE: message"), 2 usage error.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** The engine demo's options (`umbra demo --local`); any of them selects it over the node demo. */
const LOCAL_DEMO_OPTIONS: OptionSpec = { "--local": "flag", "--buyer-rows": "string", "--provider-rows": "string", "--dir": "string" };

/** `umbra demo --local ...`: the engine alone; returns the exit code. */
async function localDemoCommand(args: readonly string[]): Promise<number> {
  const usage = `Usage:\n${DEMO_USAGE}`;
  const o = parseOptions(args, LOCAL_DEMO_OPTIONS, usage);
  if (o === undefined) {
    process.stdout.write(usage);
    return 0;
  }
  const rows = (name: string): number | undefined => {
    const n = o.integer(name);
    if (n !== undefined && n < 1) throw new UsageError(`${name} needs an integer of at least 1`, usage);
    return n;
  };
  const buyerRows = rows("--buyer-rows");
  const providerRows = rows("--provider-rows");
  const dir = o.get("--dir");
  const r = await runDemo({ ...(buyerRows ? { buyerRows } : {}), ...(providerRows ? { providerRows } : {}), ...(dir ? { dir } : {}) });
  return r.intersection === r.plaintextIntersection && r.oprfMatches === r.plaintextIntersection ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case "psi":
        return await psiCommand(args);
      case "lookup":
        return await lookupCommand(args);
      case "aggregate":
        return await aggregateCommand(args);
      case "join-aggregate":
        return await joinAggregateCommand(args);
      case "exchange":
        return await exchangeCommand(args);
      case "party":
        return await partyCommand(args);
      case "worker":
        return await workerCommand(args);
      case "console":
        return await consoleCommand(args);
      case "policy":
        return await policyCommand(args);
      case "dataset":
        return await datasetCommand(args);
      case "job":
        return await jobCommand(args);
      case "product":
        return await productCommand(args);
      case "order":
        return await orderCommand(args);
      case "contract":
        return await contractCommand(args);
      case "receipt":
        return await receiptCommand(args);
      case "statement":
        return await statementCommand(args);
      case "audit":
        return await auditCommand(args);
      case "certificate":
        return await certificateCommand(args);
      case "demo": {
        const local = args.some((a) => Object.keys(LOCAL_DEMO_OPTIONS).some((f) => a === f || a.startsWith(`${f}=`)));
        return await (local ? localDemoCommand(args) : nodeDemoCommand(args));
      }
      case "protocols":
        for (const p of PROTOCOLS) {
          console.log(`${p.id}\n  parties: ${p.parties.join(", ")}\n  buyer learns: ${p.buyerLearns}\n  provider learns: ${p.providerLearns}\n  exchange learns: ${p.exchangeLearns}\n`);
        }
        return 0;
      case "version":
      case "--version":
        console.log(version());
        return 0;
      case undefined:
      case "help":
      case "--help":
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`umbra: ${err.message}\n\n${err.usage ?? USAGE}`);
      return 2;
    }
    if (err instanceof UmbraError) {
      process.stderr.write(`umbra: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

// A reader that stops early (`umbra audit show | head`) closes the pipe: stop quietly, as cat does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}

process.exitCode = await main(process.argv.slice(2));
