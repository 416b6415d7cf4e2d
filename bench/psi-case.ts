/**
 * One benchmark case, run in its own process so its peak RSS is its own
 * (`node dist/bench/psi-case.js psi|psi-ot|psi-cardinality|lookup|psijs N [TABLE_ROWS]`).
 * Prints one line of JSON. The inputs are the same for Umbra and psi.js:
 * buyer keys "customer-<i>" for i in [0, N), provider keys for i in
 * [N/2, 3N/2) — half of each side matches.
 */
import { resourceUsage } from "node:process";
import { Float64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { closePool, getPool } from "../engine/index.js";
import { lookupKeyPair, prepareLookupTable, runLookup, runPsi, runPsiOt } from "../protocols/index.js";

const [kind, nArg, tableArg] = process.argv.slice(2);
const n = Number(nArg);

const keys = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => `customer-${from + i}`);
const keyTable = (k: string[]): Table => new Table({ k: vectorFromArray(k, new Utf8()) });
const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const peakMiB = (): number => resourceUsage().maxRSS / 1024;

async function main(): Promise<Record<string, unknown>> {
  if (kind === "psi" || kind === "psi-cardinality") {
    const buyer = keyTable(keys(0, n));
    const provider = keyTable(keys(n / 2, n));
    const t0 = now();
    const r = await runPsi({ buyer: { table: buyer, keys: ["k"] }, provider: { table: provider, keys: ["k"] }, mode: kind === "psi" ? "intersection" : "cardinality" });
    const seconds = now() - t0;
    const found = r.mode === "intersection" ? r.matchedRows.length : r.count;
    if (found !== n / 2) throw new Error(`wrong intersection: ${found}`);
    return { seconds, intersection: found, bytesBuyerToProvider: r.stats.bytesBuyerToProvider, bytesProviderToBuyer: r.stats.bytesProviderToBuyer, peakMiB: peakMiB() };
  }
  if (kind === "psi-ot") {
    const buyer = keyTable(keys(0, n));
    const provider = keyTable(keys(n / 2, n));
    const t0 = now();
    const r = await runPsiOt({ buyer: { table: buyer, keys: ["k"] }, provider: { table: provider, keys: ["k"] } });
    const seconds = now() - t0;
    if (r.matchedRows.length !== n / 2) throw new Error(`wrong intersection: ${r.matchedRows.length}`);
    return { seconds, intersection: r.matchedRows.length, bytesBuyerToProvider: r.stats.bytesBuyerToProvider, bytesProviderToBuyer: r.stats.bytesProviderToBuyer, peakMiB: peakMiB() };
  }
  if (kind === "lookup") {
    const rows = Number(tableArg);
    const providerKeys = keys(0, rows);
    const provider = new Table({ k: vectorFromArray(providerKeys, new Utf8()), spend: vectorFromArray(providerKeys.map((_, i) => (i % 997) * 1.5), new Float64()) });
    // n buyer keys, half of them in the provider's table.
    const buyer = keyTable([...keys(0, n / 2), ...keys(rows + 1, n / 2)]);
    const { secretKey } = lookupKeyPair(new Uint8Array(32).fill(7), "bench", 1);
    const t0 = now();
    const prepared = await prepareLookupTable({ table: provider, keys: ["k"], labels: ["spend"], secretKey, product: "bench", version: 1, pool: getPool() });
    const prepareSeconds = now() - t0;
    const t1 = now();
    const r = await runLookup({ buyer: { table: buyer, keys: ["k"] }, provider: { prepared, secretKey } });
    const seconds = now() - t1;
    if (r.matchedRows !== n / 2) throw new Error(`wrong matches: ${r.matchedRows}`);
    return { seconds, prepareSeconds, matched: r.matchedRows, bytesBuyerToProvider: r.stats.bytesBuyerToProvider, bytesProviderToBuyer: r.stats.bytesProviderToBuyer, peakMiB: peakMiB() };
  }
  if (kind === "psijs") {
    const peer = (await import(new URL("../../bench/peers/psijs.mjs", import.meta.url).href)) as {
      runPsiJs(o: { clientKeys: string[]; serverKeys: string[] }): Promise<{ seconds: number; intersectionSize: number; bytesClientToServer: number; bytesServerToClient: number }>;
      psiJsVersion(): Promise<string>;
    };
    const r = await peer.runPsiJs({ clientKeys: keys(0, n), serverKeys: keys(n / 2, n) });
    if (r.intersectionSize !== n / 2) throw new Error(`psi.js: wrong intersection ${r.intersectionSize}`);
    return { seconds: r.seconds, intersection: r.intersectionSize, bytesBuyerToProvider: r.bytesClientToServer, bytesProviderToBuyer: r.bytesServerToClient, peakMiB: peakMiB(), version: await peer.psiJsVersion() };
  }
  throw new Error(`unknown case ${String(kind)}`);
}

try {
  console.log(JSON.stringify(await main()));
} finally {
  await closePool();
}
