/**
 * The aggregate protocols' chaos cases, each with one group or cell under k
 * so suppression is part of the answer:
 *
 * - join-aggregate: COUNT(*) and SUM(v) of the provider's column over the
 *   buyer's file joined with the provider's on the key, per value of the
 *   buyer's group column (a function of the key, so a key is in one group),
 *   k = 5: a group is released only with at least k distinct matched keys and
 *   k joined rows; duplicate keys on either side multiply.
 * - federated-aggregate: COUNT(*) and SUM(v) per declared region across two
 *   providers, k = 5 per provider (a provider leaves out a region where it
 *   has 1 … k−1 rows) and on the total; rows of an undeclared region count
 *   nowhere.
 */
import type { Table } from "apache-arrow";
import { BUYER, PROVIDERS, compareRows, datasetId, rowTexts, type ChaosCase } from "./case.js";
import { csv, ids, normaliseKey, spell } from "./data.js";
import { below, rngFor } from "./rng.js";

const K = 5;
const GROUPS = ["A", "B", "C", "东区"];
/** The group of the few identities that make it fall under k. */
const RARE_GROUP = "稀";

const policy = (protocol: string, keyColumns: string[] | undefined) => ({
  allowedProtocols: [protocol],
  ...(keyColumns ? { keyColumns } : {}),
  outputColumns: keyColumns ? ["v"] : ["region", "v"],
  allowedBuyers: [BUYER],
  minGroupSize: K,
  queryBudget: 1_000_000,
  budgetUnit: "jobs",
  expiresAt: null,
});

/** The buyer `n` rows, the provider `n` rows, half the identities shared. */
export function joinAggregateCase(seed: number, n: number): ChaosCase {
  const r = rngFor(seed, "join-aggregate");
  const from = Math.floor(n / 2);
  // Three shared identities form the rare group: under k distinct matched keys.
  const rare = new Set([from, from + 1, from + 2]);
  const groupOf = (id: number): string => (rare.has(id) ? RARE_GROUP : (GROUPS[(Math.imul(id, 2654435761) >>> 0) % GROUPS.length] as string));
  const buyer = ids(r, 0, n, 0.05).map((id) => ({ key: r() < 0.01 ? null : spell(id, r), group: groupOf(id) }));
  const provider = ids(r, from, n, 0.05).map((id) => ({ key: r() < 0.01 ? null : spell(id, r), v: below(r, 10_001) }));
  const byKey = new Map<string, number[]>();
  for (const p of provider) {
    const k = normaliseKey(p.key);
    if (k !== null) byKey.set(k, [...(byKey.get(k) ?? []), p.v]);
  }
  const acc = new Map<string, { keys: Set<string>; rows: number; sum: bigint }>();
  for (const b of buyer) {
    const k = normaliseKey(b.key);
    const vs = k === null ? undefined : byKey.get(k);
    if (k === null || vs === undefined) continue;
    const a = acc.get(b.group) ?? { keys: new Set<string>(), rows: 0, sum: 0n };
    a.keys.add(k);
    a.rows += vs.length;
    a.sum += vs.reduce((s, v) => s + BigInt(v), 0n);
    acc.set(b.group, a);
  }
  const want = [...acc].filter(([, a]) => a.keys.size >= K && a.rows >= K).map(([g, a]) => `${g}|${a.rows}|${a.sum}`);
  const dataset = { party: PROVIDERS[0], file: "spend.csv", policy: policy("join-aggregate", ["k"]) };
  return {
    protocol: "join-aggregate",
    providers: [PROVIDERS[0]],
    files: {
      [BUYER]: { "risk.csv": csv(["k", "g"], buyer.map((b) => [b.key, b.group])) },
      [PROVIDERS[0]]: { "spend.csv": csv(["k", "v"], provider.map((p) => [p.key, p.v])) },
    },
    datasets: [dataset],
    submit: ["--protocol", "join-aggregate", "--input", "risk.csv", "--provider-dataset", datasetId(dataset), "--key", "k", "--agg", "count,sum(v)", "--group-by", "g",
      "--min-group-size", String(K), "--max-abs-value", "100000", "--max-join-rows", String(4 * n)],
    result: "table",
    compare: (t) => (typeof t === "number" ? "a count, expected a table" : compareRows(rowTexts(t as Table, ["g", "count", "sum_v"]), want)),
    summary: `buyer ${n.toLocaleString("en-US")} rows in ${GROUPS.length + 1} groups, provider ${n.toLocaleString("en-US")} rows; ${want.length} groups released, ${acc.size - want.length} under k = ${K}`,
  };
}

const REGIONS = ["north", "south", "east", "west", "中部", "rare"];

/** Two providers, `n` rows each: regions north/south/east/中部 at random, "islands" (undeclared) now and then, west and rare planted under k. */
export function federatedAggregateCase(seed: number, n: number): ChaosCase {
  const r = rngFor(seed, "federated-aggregate");
  // west: 3 rows at the first provider (under k: left out by it), 7 at the second (released: 7 ≥ k); rare: 2 + 2 (left out by both: suppressed).
  const planted: Record<string, readonly [number, number]> = { west: [3, 7], rare: [2, 2] };
  const rows = PROVIDERS.map((_, p) => {
    const out: { region: string; v: number }[] = [];
    for (const [region, counts] of Object.entries(planted)) for (let i = 0; i < (counts[p] as number); i++) out.push({ region, v: below(r, 10_001) });
    while (out.length < n) out.push({ region: r() < 0.03 ? "islands" : (["north", "south", "east", "中部"][below(r, 4)] as string), v: below(r, 10_001) });
    return out;
  });
  const want: string[] = [];
  for (const region of REGIONS) {
    let count = 0;
    let sum = 0n;
    for (const own of rows.map((pr) => pr.filter((x) => x.region === region))) {
      if (own.length < K) continue; // the provider leaves out a cell where it has 1 … k−1 rows
      count += own.length;
      sum += own.reduce((s, x) => s + BigInt(x.v), 0n);
    }
    want.push(count < K ? `${region}|true|∅|∅` : `${region}|false|${count}|${sum}`);
  }
  const datasets = PROVIDERS.map((party) => ({ party, file: "households.csv", policy: policy("federated-aggregate", undefined) }));
  return {
    protocol: "federated-aggregate",
    providers: [...PROVIDERS],
    files: Object.fromEntries(PROVIDERS.map((party, p) => [party, { "households.csv": csv(["region", "v"], (rows[p] ?? []).map((x) => [x.region, x.v])) }])),
    datasets,
    submit: ["--protocol", "federated-aggregate", ...datasets.flatMap((d) => ["--provider-dataset", datasetId(d)]), "--agg", "count,sum(v)", "--group-by", "region", "--categories", REGIONS.join(","),
      "--min-group-size", String(K), "--max-abs-value", "100000"],
    result: "table",
    compare: (t) => (typeof t === "number" ? "a count, expected a table" : compareRows(rowTexts(t as Table, ["category", "suppressed", "count", "sum_v"]), want)),
    summary: `2 providers × ${n.toLocaleString("en-US")} rows, ${REGIONS.length} regions, 1 under k = ${K} (suppressed), 1 under k at one provider`,
  };
}
