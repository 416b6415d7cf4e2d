/**
 * One bench:cluster case in its own process (so its peak RSS is its own):
 * `node dist/bench/cluster/case.js psi|ja N local THREADS` runs in process on
 * THREADS threads; `... psi|ja N cluster REDIS_URL KEY_FILE` hands the group
 * work to the cluster's workers (the coordinator's own pool, for what stays
 * local — small batches, HE in join-aggregate — has 2 threads). Prints one
 * line of JSON: seconds, a digest of the result (equal across cases), the
 * cluster's chunk and byte counts, peak RSS.
 *
 * The data is bench/join-aggregate-case.ts's: buyer keys customer-i for i in
 * [0, N), provider keys for i in [N/2, 3N/2), half matching, 10 groups.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { makeVector, Table, Utf8, vectorFromArray } from "apache-arrow";
import { CryptoPool } from "../../engine/pool/index.js";
import { ClusterPool } from "../../engine/cluster/index.js";
import { runJoinAggregate, runPsi } from "../../protocols/index.js";
import { peakRssMiB } from "../table.js";

const [kind, nArg, mode, a, b] = process.argv.slice(2);
const n = Number(nArg);
const now = (): number => Number(process.hrtime.bigint()) / 1e9;

function tables(): { buyer: Table; provider: Table } {
  const k: string[] = new Array<string>(n);
  const g: string[] = new Array<string>(n);
  const pk: string[] = new Array<string>(n);
  const v = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    k[i] = `customer-${i}`;
    g[i] = `g${i % 10}`;
    const j = n / 2 + i;
    pk[i] = `customer-${j}`;
    v[i] = ((j * 2654435761) % 2001) - 1000;
  }
  return {
    buyer: new Table({ k: vectorFromArray(k, new Utf8()), g: vectorFromArray(g, new Utf8()) }),
    provider: new Table({ k: vectorFromArray(pk, new Utf8()), v: makeVector(v) }),
  };
}

async function main(): Promise<Record<string, unknown>> {
  if (!Number.isSafeInteger(n) || n < 2 || n % 2 !== 0) throw new Error("N must be an even integer");
  const pool =
    mode === "cluster"
      ? await ClusterPool.connect({ redis: a as string, key: Uint8Array.from(Buffer.from(readFileSync(b as string, "utf8").trim(), "hex")), threads: 2 })
      : new CryptoPool({ threads: Number(a) });
  try {
    await pool.warm();
    const { buyer, provider } = tables();
    const t0 = now();
    let digest: string;
    if (kind === "psi") {
      const r = await runPsi({ buyer: { table: buyer, keys: ["k"] }, provider: { table: provider, keys: ["k"] }, group: "x25519", pool });
      digest = createHash("sha256").update(r.matchedRows).digest("hex").slice(0, 16);
      if (r.matchedRows.length !== n / 2) throw new Error(`wrong intersection: ${r.matchedRows.length}`);
    } else {
      const r = await runJoinAggregate({
        buyer: { table: buyer, keys: ["k"], groupBy: "g" },
        provider: { table: provider, keys: ["k"] },
        aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }, { fn: "var", column: "v" }],
        minGroupSize: 1,
        maxAbsValue: 1000,
        group: "x25519",
        pool,
      });
      const rows: string[] = [];
      for (let i = 0; i < r.table.numRows; i++) rows.push(["g", "count", "sum_v", "avg_v", "var_v"].map((c) => String(r.table.getChild(c)?.get(i))).join(","));
      digest = createHash("sha256").update(rows.sort().join("\n")).digest("hex").slice(0, 16);
    }
    const seconds = now() - t0;
    const cluster = pool instanceof ClusterPool ? pool.clusterStats() : undefined;
    return { seconds, digest, peakMiB: peakRssMiB(), ...(cluster ? { cluster } : {}) };
  } finally {
    await pool.close();
  }
}

console.log(JSON.stringify(await main()));
