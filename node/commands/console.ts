/**
 * `umbra console url --party|--exchange`: the web console's address with its
 * token in the fragment (`…/console/party/#token=TOKEN`), read from the token
 * file, for the operator's own terminal: the part after `#` never leaves the
 * browser (docs/console.md). The node's start line names the console without
 * the token; this is the one command that prints a token.
 */
import { UmbraError } from "../../engine/errors.js";
import { consoleUrl } from "../server/console-assets.js";
import { DEFAULT_EXCHANGE_URL, defaultAdminTokenFile } from "../server/start.js";
import { readSecretFile } from "../secret-file.js";
import { parseOptions, processIO, UsageError, type CommandIO } from "./args.js";
import { DEFAULT_PARTY_URL, partyOption, urlOption } from "./node.js";

export const CONSOLE_USAGE = `  console url --party [URL] [--token-file FILE] [--json]
  console url --exchange [URL] [--admin-token-file FILE | --db FILE] [--json]
                 print the web console's address with its token after # (the
                 browser keeps that part to itself; the page moves it to the tab's
                 session storage): --party the party agent's (default ${DEFAULT_PARTY_URL},
                 its token found as the job and dataset commands find it), --exchange
                 the exchange's (default ${DEFAULT_EXCHANGE_URL}, the admin token from
                 --admin-token-file, default exchange.admin-token beside --db, itself
                 default .umbra/exchange.db). The address holds a secret: paste it
                 into your own browser only
`;

/** `--party URL` / `--exchange URL` with the URL optional: which console, and the options with the URL as the option's value. */
function whichConsole(args: readonly string[], usage: string): { which: "party" | "exchange"; rest: string[] } {
  const rest = [...args];
  const found = (["--party", "--exchange"] as const).filter((f) => rest.includes(f));
  if (found.length !== 1) throw new UsageError("console url needs --party or --exchange (one of them)", usage);
  const flag = found[0] as "--party" | "--exchange";
  const i = rest.indexOf(flag);
  const next = rest[i + 1];
  // Without a URL the flag only chooses the console (the default address is used).
  if (next === undefined || next.startsWith("-")) rest.splice(i, 1);
  return { which: flag === "--party" ? "party" : "exchange", rest };
}

export async function consoleCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${CONSOLE_USAGE}`;
  const [sub, ...more] = args;
  if (sub === undefined) throw new UsageError("a subcommand is required", usage);
  if (sub === "--help" || sub === "-h" || sub === "help") return (io.out(usage.trimEnd()), 0);
  if (sub !== "url") throw new UsageError(`unknown console command "${sub}"`, usage);
  if (more.includes("--help") || more.includes("-h")) return (io.out(usage.trimEnd()), 0);
  const { which, rest } = whichConsole(more, usage);
  const o = parseOptions(rest, { "--party": "string", "--token-file": "string", "--exchange": "string", "--admin-token-file": "string", "--db": "string", "--json": "flag" }, usage);
  if (o === undefined) return (io.out(usage.trimEnd()), 0);
  let base: string;
  let token: string;
  if (which === "party") {
    if (o.has("--admin-token-file") || o.has("--db")) throw new UsageError("--admin-token-file and --db go with --exchange", usage);
    const party = partyOption(o, usage);
    base = party.url;
    token = party.token;
  } else {
    if (o.has("--token-file")) throw new UsageError("--token-file goes with --party (the exchange's is --admin-token-file)", usage);
    base = urlOption(o, "--exchange", DEFAULT_EXCHANGE_URL, usage);
    const file = o.get("--admin-token-file") ?? defaultAdminTokenFile(o.get("--db") ?? ".umbra/exchange.db");
    const text = readSecretFile(file, "admin token file");
    if (text === undefined) throw new UmbraError("UMBRA_NOT_FOUND", `no admin token file at "${file}" (umbra exchange start creates it beside its database; give --admin-token-file FILE or --db FILE)`);
    token = text.trim();
  }
  const url = `${consoleUrl(base, which)}#token=${encodeURIComponent(token)}`;
  io.out(o.has("--json") ? JSON.stringify({ console: which, url }) : url);
  return 0;
}
