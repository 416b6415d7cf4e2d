/**
 * A small venue for the console's browser tests, as real processes on
 * loopback: an exchange (with its admin token file) and two party agents,
 * the telco (a provider: spend.csv, subscribers.csv) and the bank (the
 * buyer: risk.csv), each admitted by invitation, each with its own data
 * folder, database and token file — as `umbra demo` starts them.
 *
 * The data is fixed and small, so the tests compute every expected answer
 * here in plain JavaScript: the join of the bank's risk grades with the
 * telco's monthly spend, per grade.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { umbra } from "../helpers/cli.js";
import { startNode, stopNode, type NodeProcess } from "../helpers/processes.js";

const phone = (i: number) => `+86-139-${String(10_000_000 + i)}`;

/** The bank's customers: 400, graded A–D (one grade with only 3 members, below k = 5). */
export const bankRows: readonly { readonly phone: string; readonly grade: string }[] = Array.from({ length: 400 }, (_, i) => ({ phone: phone(i * 3), grade: i < 3 ? "E" : "ABCD"[i % 4] as string }));
/** The telco's subscribers: 600, every 2nd number, spend 10–209 (integers). */
export const telcoRows: readonly { readonly phone: string; readonly spend: number }[] = Array.from({ length: 600 }, (_, i) => ({ phone: phone(i * 2), spend: 10 + ((i * 37) % 200) }));

/** The join-aggregate answer: per grade of the bank's matched customers, the count and the sum of their spend (groups of fewer than k dropped). */
export function expectedPerGrade(k: number): Map<string, { count: number; sum: number }> {
  const spend = new Map(telcoRows.map((r) => [r.phone, r.spend]));
  const out = new Map<string, { count: number; sum: number }>();
  for (const r of bankRows) {
    const s = spend.get(r.phone);
    if (s === undefined) continue;
    const g = out.get(r.grade) ?? { count: 0, sum: 0 };
    out.set(r.grade, { count: g.count + 1, sum: g.sum + s });
  }
  for (const [g, v] of out) if (v.count < k) out.delete(g);
  return out;
}

export interface Venue {
  readonly root: string;
  readonly exchange: NodeProcess;
  readonly telco: NodeProcess;
  readonly bank: NodeProcess;
  readonly exchangeDb: string;
  /** The tokens, read from the files the nodes wrote (mode 0600). */
  readonly tokens: { readonly exchange: string; readonly telco: string; readonly bank: string };
  /** The console page of a node, with its token after "#" (as the demo prints it) unless `signedIn` is false. */
  consoleUrl(who: "exchange" | "telco" | "bank", signedIn?: boolean): string;
  close(): Promise<void>;
}

export async function startVenue(): Promise<Venue> {
  const root = mkdtempSync(join(tmpdir(), "umbra-console-"));
  const dirs = { exchange: join(root, "exchange"), telco: join(root, "telco"), bank: join(root, "bank") };
  for (const d of Object.values(dirs)) mkdirSync(d);
  writeFileSync(join(dirs.bank, "risk.csv"), "phone,risk_grade\n" + bankRows.map((r) => `${r.phone},${r.grade}`).join("\n") + "\n");
  writeFileSync(join(dirs.telco, "spend.csv"), "phone,monthly_spend\n" + telcoRows.map((r) => `${r.phone},${r.spend}`).join("\n") + "\n");
  writeFileSync(join(dirs.telco, "subscribers.csv"), "phone,plan\n" + telcoRows.map((r, i) => `${r.phone},${i % 2 === 0 ? "basic" : "plus"}`).join("\n") + "\n");
  const exchangeDb = join(dirs.exchange, "exchange.db");
  const started: NodeProcess[] = [];
  try {
    const exchange = await startNode("exchange", "start", "--port", "0", "--db", exchangeDb);
    started.push(exchange);
    const fingerprint = /key fingerprint ([0-9a-f]{16})/.exec(exchange.stdout)?.[1];
    if (fingerprint === undefined) throw new Error(`the exchange printed no key fingerprint: ${exchange.stdout}`);
    const party = async (name: "telco" | "bank"): Promise<NodeProcess> => {
      const inv = await umbra(["exchange", "invite", "--name", name, "--db", exchangeDb, "--json"]);
      if (inv.status !== 0) throw new Error(`umbra exchange invite: ${inv.stderr}`);
      const { code } = JSON.parse(inv.stdout) as { code: string };
      const dir = dirs[name];
      const p = await startNode("party", "start", "--name", name, "--exchange", exchange.url, "--exchange-key", fingerprint, "--invite", code, "--port", "0", "--db", join(dir, `${name}.db`), "--data", dir);
      started.push(p);
      return p;
    };
    const telco = await party("telco");
    const bank = await party("bank");
    const read = (path: string) => readFileSync(path, "utf8").trim();
    const tokens = { exchange: read(join(dirs.exchange, "exchange.admin-token")), telco: read(join(dirs.telco, "telco.token")), bank: read(join(dirs.bank, "bank.token")) };
    const nodes = { exchange, telco, bank };
    return {
      root,
      exchange,
      telco,
      bank,
      exchangeDb,
      tokens,
      consoleUrl: (who, signedIn = true) => `${nodes[who].url}/console/${who === "exchange" ? "exchange" : "party"}/${signedIn ? `#token=${tokens[who]}` : ""}`,
      async close() {
        for (const n of [bank, telco, exchange]) await stopNode(n);
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const n of started.reverse()) await stopNode(n, "SIGKILL");
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}
