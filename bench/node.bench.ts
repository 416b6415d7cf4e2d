/**
 * `npm run bench:node`: the node's overhead. The same psi N × N (default
 * 10^5) run twice in this process: in-process (runPsi over the serialising
 * transport) and as a job through an exchange and two party agents on
 * loopback HTTP (signed, sealed envelopes committed to the exchange's relay
 * table until acknowledged, every step committed with its checkpoint and
 * outbox: durable jobs, the audit ledger written). Both share one worker
 * pool. Prints the ratio.
 *
 * Options: --n N, --repeats R (median of R, default 1), --timeline (the last job's
 * ledger entries with their times: where the job spent them)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Table, Utf8, vectorFromArray } from "apache-arrow";
import { closePool, getPool, writeCsv } from "../engine/index.js";
import { runPsi } from "../protocols/index.js";
import { createInvitation } from "../node/admission.js";
import { generateIdentity } from "../node/identity.js";
import { buildExchange } from "../node/server/exchange.js";
import { buildParty } from "../node/server/party.js";
import { openStore } from "../node/store.js";
import { formatTable, median, peakRssMiB, timeIt } from "./table.js";

const args = process.argv.slice(2);
const nArg = args.indexOf("--n");
const n = nArg >= 0 ? Number(args[nArg + 1]) : 100_000;
const rArg = args.indexOf("--repeats");
const repeats = rArg >= 0 ? Number(args[rArg + 1]) : 1;

const keys = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => `customer-${from + i}`);
const table = (k: string[]): Table => new Table({ k: vectorFromArray(k, new Utf8()) });

async function main(): Promise<void> {
  const pool = getPool();
  const buyer = table(keys(0, n));
  const provider = table(keys(n / 2, n));

  const dir = mkdtempSync(join(tmpdir(), "umbra-node-bench-"));
  const xStore = openStore(join(dir, "exchange.db"));
  const x = await buildExchange({ store: xStore, identity: generateIdentity("exchange") });
  const xUrl = await x.listen({ host: "127.0.0.1", port: 0 });
  const party = async (name: string) => {
    const data = join(dir, name);
    rmSync(data, { recursive: true, force: true });
    const { mkdirSync } = await import("node:fs");
    mkdirSync(data);
    const store = openStore(join(dir, `${name}.db`));
    // Admitted as a user's party is: with an invitation from the exchange's operator.
    const { code: invite } = createInvitation(xStore, { name });
    const agent = await buildParty({ store, identity: generateIdentity(name), exchangeUrl: xUrl, dataDir: data, pool, invite });
    const url = await agent.app.listen({ host: "127.0.0.1", port: 0 });
    await agent.start();
    return { agent, url, data, store, auth: { authorization: `Bearer ${agent.token}` } };
  };
  const telco = await party("telco");
  const bank = await party("bank");
  await writeCsv(join(telco.data, "subscribers.csv"), provider);
  await writeCsv(join(bank.data, "customers.csv"), buyer);
  const post = async (p: { url: string; auth: Record<string, string> }, path: string, body: unknown) => {
    const r = await fetch(p.url + path, { method: "POST", headers: { ...p.auth, "content-type": "application/json" }, body: JSON.stringify(body) });
    return (await r.json()) as Record<string, unknown>;
  };
  await post(telco, "/v1/datasets", { file: "subscribers.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: "any", queryBudget: 1000, budgetUnit: "jobs" } });

  const inProcess: number[] = [];
  const throughNodes: number[] = [];
  for (let r = 0; r < repeats; r++) {
    inProcess.push(await timeIt(() => runPsi({ buyer: { table: buyer, keys: ["k"] }, provider: { table: provider, keys: ["k"] }, pool })));
    throughNodes.push(
      await timeIt(async () => {
        const job = await post(bank, "/v1/jobs", { protocol: "psi", buyerDataset: "customers.csv", providerDataset: "telco.subscribers.csv", params: { keyColumns: ["k"] } });
        for (;;) {
          const s = (await (await fetch(`${bank.url}/v1/jobs/${String(job["id"])}`, { headers: bank.auth })).json()) as { state: string; reason: string | null };
          if (s.state === "succeeded") break;
          if (s.state !== "submitted" && s.state !== "running") throw new Error(`job ${s.state}: ${String(s.reason)}`);
          await new Promise((res) => setTimeout(res, 20));
        }
      }),
    );
  }
  if (args.includes("--timeline")) {
    const rows = [...xStore.ledgerRows()].filter((r) => r.job !== null);
    const lastJob = rows.at(-1)?.job;
    const mine = rows.filter((r) => r.job === lastJob);
    const t0 = mine[0]?.at ?? 0;
    for (const r of mine) console.log(`${((r.at - t0) / 1000).toFixed(2)}s ${r.kind} ${r.body}`);
  }
  const a = median(inProcess);
  const b = median(throughNodes);
  console.log(`# Umbra node overhead — Node ${process.version}, ${availableParallelism()} cores\n`);
  console.log(`psi ${n.toLocaleString("en-US")} × ${n.toLocaleString("en-US")}, half shared; median of ${repeats}; one worker pool shared by every role.\n`);
  console.log(
    formatTable(
      ["run", "time", "vs in-process"],
      [
        ["in-process (runPsi, serialising transport)", `${a.toFixed(2)} s`, "1.00x"],
        ["as a job: exchange + 2 party agents, loopback HTTP, SQLite, ledger", `${b.toFixed(2)} s`, `${(b / a).toFixed(2)}x`],
      ],
    ),
  );
  console.log(`\npeak RSS ${peakRssMiB().toFixed(0)} MiB (all nodes in this process); the job read its inputs from CSV files, the in-process run from tables already in memory.`);
  await bank.agent.stop();
  await telco.agent.stop();
  await x.close();
  xStore.close();
  bank.store.close();
  telco.store.close();
  rmSync(dir, { recursive: true, force: true });
  await closePool();
}

await main();
