/**
 * The demo's trade (`umbra demo`, step 5): one data product sold end to end
 * on the venue, every step a real `umbra` command against the running nodes
 * — the provider's data asset certificate, a product published with prices,
 * the buyer's order and the provider's approval (a contract signed by both
 * and countersigned by the exchange), a job run under the contract, its
 * receipt (checked against price × units) and the provider's statement, and
 * an outsider checking the certificate, the receipt and the log's
 * consistency with only the exchange's public key. Each command line is printed as a user would type
 * it, with what it printed.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** What the trade needs from the running demo. */
export interface TradeContext {
  readonly say: (line: string) => void;
  readonly runCli: (args: readonly string[]) => Promise<{ code: number | null; out: string }>;
  readonly exchangeUrl: string;
  /** Where the trade's files go (certificate, product, heads). */
  readonly dir: string;
  readonly telco: { readonly url: string; readonly tokenFile: string };
  readonly bank: { readonly url: string; readonly tokenFile: string };
  /** The provider's registered dataset the product sells (psi on phone). */
  readonly dataset: string;
  /** The bank's file to match with it. */
  readonly input: string;
  /** The plaintext intersection size, to check the job's result. */
  readonly expectedMatches: number;
  /** The bank's distinct keys (the provider's budget counts keys: a job declares them). */
  readonly queryCount: number;
}

export async function demoTrade(c: TradeContext): Promise<boolean> {
  const api = (p: { url: string; tokenFile: string }) => ["--party", p.url, "--token-file", p.tokenFile];
  let ok = true;
  const step = async (who: string, args: readonly string[], shown: readonly string[] = args): Promise<string> => {
    const r = await c.runCli([...args]);
    c.say(`   ${who.padEnd(9)}$ umbra ${shown.join(" ")}`);
    for (const l of r.out.trimEnd().split("\n").filter((x) => x !== "").slice(0, 12)) c.say(`              ${l}`);
    if (r.code !== 0) {
      ok = false;
      c.say(`              — exit ${r.code}: NOT EXPECTED`);
    }
    return r.out;
  };
  const json = <T>(text: string): T => JSON.parse(text) as T;

  // The certificate the registration yielded: the bank fetches one (it may see the dataset) and keeps it.
  const cert = join(c.dir, "certificate.json");
  const shown = json<{ exchangeKey: string }>(await c.runCli(["certificate", "show", "--dataset", c.dataset, "--out", cert, "--json", ...api(c.bank)]).then((r) => r.out));
  const key = shown.exchangeKey;
  await step("bank", ["certificate", "show", "--dataset", c.dataset, ...api(c.bank)], ["certificate", "show", "--dataset", c.dataset, "--out", "certificate.json"]);

  // The telco sells matching against it: psi only, 5.00 CNY a job and 0.01 CNY per key queried.
  const product = join(c.dir, "product.json");
  writeFileSync(
    product,
    JSON.stringify({ id: "telco.matching", title: "Subscriber matching", description: "Which of your customers are our subscribers", datasets: [c.dataset], protocols: ["psi"], outputColumns: [], prices: { currency: "CNY", perJob: 500, perKey: 1 }, share: "equal" }, null, 2),
  );
  await step("telco", ["product", "publish", "--file", product, ...api(c.telco)], ["product", "publish", "--file", "product.json"]);
  await step("bank", ["product", "list", ...api(c.bank)], ["product", "list"]);

  // The bank orders it; the telco approves: a contract signed by both, countersigned by the exchange.
  const order = json<{ id: string }>(await c.runCli(["order", "create", "--product", "telco.matching", "--purpose", "fraud screening", "--quota-jobs", "2", "--days", "30", "--json", ...api(c.bank)]).then((r) => r.out));
  c.say(`   bank     $ umbra order create --product telco.matching --purpose "fraud screening" --quota-jobs 2 --days 30`);
  c.say(`              ordered telco.matching v1: ${order.id} (pending: the provider approves it)`);
  await step("telco", ["order", "approve", "--order", order.id, ...api(c.telco)], ["order", "approve", "--order", order.id]);

  // Without the contract the job is refused; under it, it runs.
  const refused = await c.runCli(["job", "submit", "--protocol", "psi", "--input", c.input, "--provider-dataset", c.dataset, "--key", "phone", "--query-count", String(c.queryCount), ...api(c.bank)]);
  c.say(`   bank     $ umbra job submit --protocol psi --input ${c.input} --provider-dataset ${c.dataset} --key phone --query-count ${c.queryCount}`);
  c.say(`              ${refused.out.trim().split("\n")[0] ?? ""}`);
  if (refused.code === 0 || !refused.out.includes("contract-required")) {
    ok = false;
    c.say("              — accepted without a contract: NOT EXPECTED");
  }
  const job = json<{ id: string; state: string }>(
    await c.runCli(["job", "submit", "--protocol", "psi", "--input", c.input, "--provider-dataset", c.dataset, "--key", "phone", "--query-count", String(c.queryCount), "--contract", order.id, "--wait", "--json", ...api(c.bank)]).then((r) => r.out.trim().split("\n").at(-1) ?? "{}"),
  );
  c.say(`   bank     $ umbra job submit --protocol psi --input ${c.input} --provider-dataset ${c.dataset} --key phone --query-count ${c.queryCount} --contract ${order.id} --wait`);
  c.say(`              ${job.id}: ${job.state}`);
  if (job.state !== "succeeded") ok = false;
  const result = join(c.dir, "matched.csv");
  await c.runCli(["job", "result", job.id, "--out", result, ...api(c.bank)]);
  const matched = (await import("node:fs")).readFileSync(result, "utf8").trim().split("\n").length - 1;
  c.say(`              ${matched} matched customers; the plaintext answer: ${c.expectedMatches} — ${matched === c.expectedMatches ? "equal ✓" : "DIFFERENT ✗"}`);
  if (matched !== c.expectedMatches) ok = false;
  await step("bank", ["contract", "show", "--contract", order.id, ...api(c.bank)], ["contract", "show", "--contract", order.id]);

  // Metered and billed: one receipt, checked here against the price × what the bank queried, acknowledged by the bank's agent.
  type Listed = { id: string; amount: number; acknowledged: boolean };
  let listed: Listed | undefined;
  for (let i = 0; i < 150 && listed?.acknowledged !== true; i++) {
    const r = await c.runCli(["receipt", "list", "--job", job.id, "--json", ...api(c.bank)]);
    listed = r.code === 0 ? json<{ receipts: Listed[] }>(r.out).receipts[0] : undefined;
    if (listed?.acknowledged !== true) await new Promise((res) => setTimeout(res, 200));
  }
  const expected = 500 + 1 * c.queryCount;
  if (listed === undefined) {
    ok = false;
    c.say("              — no receipt: NOT EXPECTED");
    return ok;
  }
  const receipt = join(c.dir, "receipt.json");
  await step("bank", ["receipt", "show", listed.id, "--out", receipt, ...api(c.bank)], ["receipt", "show", listed.id, "--out", "receipt.json"]);
  c.say(`              price × units: 500 + ${c.queryCount} keys × 1 = ${expected} minor units — ${listed.amount === expected ? "equal ✓" : "DIFFERENT ✗"}`);
  if (listed.amount !== expected) ok = false;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const statement = join(c.dir, "telco-statement.csv");
  await step("telco", ["statement", "--from", day(Date.now() - 86_400_000), "--to", day(Date.now() + 2 * 86_400_000), "--out", statement, ...api(c.telco)], ["statement", "--from", day(Date.now() - 86_400_000), "--to", day(Date.now() + 2 * 86_400_000), "--out", "telco-statement.csv"]);
  for (const l of (await import("node:fs")).readFileSync(statement, "utf8").trim().split("\n").slice(0, 4)) c.say(`              ${l}`);

  // An outsider, with only the exchange's public key: the certificate, and the log since its head only grew.
  c.say(`\n   An outsider with only the exchange's public key (${key.slice(0, 16)}…):`);
  await step("outsider", ["certificate", "verify", cert, "--exchange-key", key], ["certificate", "verify", "certificate.json", "--exchange-key", `${key.slice(0, 8)}…`]);
  await step("outsider", ["receipt", "verify", receipt, "--exchange-key", key], ["receipt", "verify", "receipt.json", "--exchange-key", `${key.slice(0, 8)}…`]);
  await step("outsider", ["audit", "witness", "--exchange", c.exchangeUrl, "--exchange-key", key, "--head", cert], ["audit", "witness", "--exchange", c.exchangeUrl, "--exchange-key", `${key.slice(0, 8)}…`, "--head", "certificate.json"]);
  return ok;
}
