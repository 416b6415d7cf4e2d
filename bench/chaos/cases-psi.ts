/**
 * The psi family's chaos cases: psi (the buyer's matching rows),
 * psi-cardinality (the number of distinct shared keys) and lookup (a left
 * join with the provider's column, one row per matching provider row). The
 * buyer holds `n` rows, the provider `n` rows, half of their identities
 * shared; a budget counted in keys, so the provider's `charged` step is in
 * the ledger.
 */
import type { Table } from "apache-arrow";
import { BUYER, PROVIDERS, cellText, compareRows, datasetId, rowTexts, type ChaosCase } from "./case.js";
import { csv, ids, normaliseKey, spell } from "./data.js";
import { below, rngFor } from "./rng.js";

interface Side {
  /** Each row's key as written (null: no key) and its value. */
  readonly rows: { readonly key: string | null; readonly value: string }[];
}

/** `n` rows from identities [from, from + n), dupRate of them repeated, 1% without a key. */
function side(seed: number, label: string, from: number, n: number, dupRate: number): Side {
  const r = rngFor(seed, label);
  return { rows: ids(r, from, n, dupRate).map((id) => ({ key: r() < 0.01 ? null : spell(id, r), value: String(below(r, 1_000_000)) })) };
}

const keyPolicy = (protocol: string, outputColumns: string[]) => ({
  allowedProtocols: [protocol],
  keyColumns: ["k"],
  outputColumns,
  allowedBuyers: [BUYER],
  minGroupSize: 1,
  queryBudget: 1_000_000_000,
  budgetUnit: "keys",
  expiresAt: null,
});

export function psiCase(protocol: "psi" | "psi-cardinality" | "lookup", seed: number, n: number): ChaosCase {
  const buyer = side(seed, `${protocol}/buyer`, 0, n, 0.05);
  const provider = side(seed, `${protocol}/provider`, Math.floor(n / 2), n, protocol === "lookup" ? 0.02 : 0.05);
  const providerName = PROVIDERS[0];
  const dataset = { party: providerName, file: "subscribers.csv", policy: keyPolicy(protocol, protocol === "lookup" ? ["v"] : []) };
  // The provider's rows by normalised key (its values, one per row).
  const byKey = new Map<string, string[]>();
  for (const p of provider.rows) {
    const k = normaliseKey(p.key);
    if (k !== null) byKey.set(k, [...(byKey.get(k) ?? []), p.value]);
  }
  const buyerKeys = new Set(buyer.rows.map((b) => normaliseKey(b.key)).filter((k): k is string => k !== null));
  const common = [...buyerKeys].filter((k) => byKey.has(k)).length;
  const submit = ["--protocol", protocol, "--input", "customers.csv", "--provider-dataset", datasetId(dataset), "--key", "k", "--query-count", String(buyer.rows.length)];
  const files = {
    [BUYER]: { "customers.csv": csv(["k", "tag"], buyer.rows.map((b) => [b.key, b.value])) },
    [providerName]: { "subscribers.csv": csv(["k", "v"], provider.rows.map((p) => [p.key, p.value])) },
  };
  const summary = `buyer ${n.toLocaleString("en-US")} rows (${buyerKeys.size.toLocaleString("en-US")} distinct keys), provider ${n.toLocaleString("en-US")} rows, ${common.toLocaleString("en-US")} keys shared`;
  const base = { protocol, providers: [providerName], files, datasets: [dataset], summary } as const;

  if (protocol === "psi-cardinality") {
    return { ...base, submit, result: "count", compare: (got) => (got === common ? "" : `count ${cellText(got)}, expected ${common}`) };
  }
  if (protocol === "psi") {
    const want = buyer.rows.filter((b) => byKey.has(normaliseKey(b.key) ?? "\0none")).map((b) => `${b.key ?? "∅"}|${b.value}`);
    return { ...base, submit, result: "table", compare: (t) => (typeof t === "number" ? "a count, expected a table" : compareRows(rowTexts(t as Table, ["k", "tag"]), want)) };
  }
  // lookup: every buyer row, once per matching provider row, or once with null.
  const want: string[] = [];
  for (const b of buyer.rows) {
    const k = normaliseKey(b.key);
    const vs = k === null ? undefined : byKey.get(k);
    for (const v of vs ?? [null]) want.push(`${b.key ?? "∅"}|${b.value}|${v ?? "∅"}`);
  }
  return {
    ...base,
    submit: [...submit, "--columns", "v"],
    result: "table",
    compare: (t) => (typeof t === "number" ? "a count, expected a table" : compareRows(rowTexts(t as Table, ["k", "tag", "v"]), want)),
  };
}
