/**
 * The node demo's data (node/commands/demo.ts): the synthetic customer,
 * subscriber, member and household files it writes into the parties' data
 * folders, each job's parameters (providers, regions, age edges, k), the
 * plaintext answer each secure result is compared with, and the secure
 * result tables read back in the same format. Deterministic: every run shows
 * the same data.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Table } from "apache-arrow";
import { count } from "./args.js";

/** A deterministic generator so every run shows the same data. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const phone = (id: number): string => {
  const d = String(10_000_000 + ((id * 7919) % 90_000_000)).padStart(8, "0");
  return `+86-138-${d.slice(0, 4)}-${d.slice(4)}`;
};

interface Household {
  readonly region: string;
  readonly spend: number;
  readonly age: number;
}

interface DemoData {
  readonly bank: { phone: string; grade: string }[];
  readonly telco: Map<string, string>; // phone → monthly_spend
  readonly retailer: Set<string>;
  /** Each provider's household survey (region, monthly spend, age of the head of household), by provider. */
  readonly households: Record<(typeof FA_PROVIDERS)[number], Household[]>;
}

/** The federated-aggregate job's providers, in provider order, its cells and its histogram. */
export const FA_PROVIDERS = ["telco", "retailer", "insurer"] as const;
export const FA_REGIONS = ["north", "south", "east", "west"];
export const FA_AGE_EDGES = [18, 30, 45, 65, 100];
export const FA_K = 10;

/** Households: north/south/east, a few of an undeclared region, and a handful in the west (under k in all). */
function households(rnd: () => number, n: number, west: number): Household[] {
  const out: Household[] = [];
  for (let i = 0; i < n; i++) {
    const region = i < west ? "west" : rnd() < 0.03 ? "islands" : (["north", "south", "east"][Math.floor(rnd() * 3)] as string);
    out.push({ region, spend: 800 + Math.floor(rnd() * rnd() * 12_000), age: 18 + Math.floor(rnd() * 80) });
  }
  return out;
}

export function generate(): DemoData {
  const rnd = lcg(2026);
  const bank: { phone: string; grade: string }[] = [];
  // Bank: 20,000 customers; 40% are telco subscribers, 30% retailer members (overlapping); 1% without a phone.
  for (let i = 0; i < 20_000; i++) bank.push({ phone: rnd() < 0.01 ? "" : phone(i), grade: "ABCDE"[Math.floor(rnd() * 5)] as string });
  for (let i = 0; i < 200; i++) bank.push({ phone: phone(i * 37), grade: "A" }); // entered twice
  const telco = new Map<string, string>();
  for (let i = 0; i < 40_000; i++) telco.set(phone(i < 8_000 ? i : 100_000 + i), (Math.floor(rnd() * 50_000) / 100).toFixed(2));
  const retailer = new Set<string>();
  for (let i = 0; i < 30_000; i++) retailer.add(phone(i < 6_000 ? 5_000 + i : 300_000 + i));
  return { bank, telco, retailer, households: { telco: households(rnd, 6_000, 3), retailer: households(rnd, 5_000, 2), insurer: households(rnd, 4_000, 1) } };
}

/** The join-aggregate job: the bank's risk grades joined with the telco's monthly spend (2 decimals), k = 10. */
export const JA_K = 10;
export const JA_GRADES = ["A", "B", "C", "D", "E"];
const JA_MEAN_SPEND: Record<string, number> = { A: 82, B: 68, C: 57, D: 46, E: 38 };

interface RiskData {
  /** The bank's customers with their risk grade ("" for a missing phone; some entered twice). */
  readonly bank: { phone: string; grade: string }[];
  /** The telco's subscribers' monthly spend in cents. */
  readonly telco: Map<string, number>;
}

/** 2,000 bank customers (grade E: a dozen, of whom only 3 telco subscribers: under k), 60% of them telco subscribers, and 1,000 others. */
export function riskData(): RiskData {
  const rnd = lcg(7);
  const bank: { phone: string; grade: string }[] = [];
  const telco = new Map<string, number>();
  for (let i = 0; i < 2_000; i++) {
    const r = rnd();
    const grade = i >= 1_988 ? "E" : (JA_GRADES[r < 0.25 ? 0 : r < 0.6 ? 1 : r < 0.85 ? 2 : 3] as string);
    const p = phone(600_000 + i);
    bank.push({ phone: rnd() < 0.01 ? "" : p, grade });
    if (grade === "E" ? i % 4 === 0 : rnd() < 0.6) {
      const euros = (JA_MEAN_SPEND[grade] ?? 50) + 36 * (rnd() - 0.5);
      telco.set(p, Math.round(euros * 100));
    }
  }
  for (let i = 0; i < 20; i++) bank.push({ ...(bank[i * 50] as { phone: string; grade: string }) }); // entered twice
  for (let i = 0; i < 1_000; i++) telco.set(phone(700_000 + i), 3_000 + Math.floor(rnd() * 6_000));
  return { bank, telco };
}

/**
 * The plaintext answer: SELECT risk_grade, COUNT(*), AVG(monthly_spend) FROM bank JOIN telco USING (phone) GROUP BY risk_grade
 * HAVING COUNT(DISTINCT phone) >= k AND COUNT(*) >= k (join-aggregate's rule: k counts matched customers, and rows).
 */
export function riskAnswer(d: RiskData): Map<string, string> {
  const out = new Map<string, string>();
  for (const grade of JA_GRADES) {
    const matched = d.bank.filter((b) => b.grade === grade && b.phone !== "" && d.telco.has(b.phone));
    const cents = matched.map((b) => d.telco.get(b.phone) as number);
    const customers = new Set(matched.map((b) => b.phone)).size;
    const sum = cents.reduce((a, c) => a + BigInt(c), 0n);
    out.set(grade, customers < JA_K || cents.length < JA_K ? `suppressed (${customers} matched customers, under k)` : riskLine(cents.length, Number(sum) / cents.length / 100));
  }
  return out;
}

const riskLine = (n: number, avg: number): string => `${count(n).padStart(5)} joined rows, average ${avg.toFixed(4)}`;

/** The secure result table, formatted as riskAnswer formats the plaintext (a group absent from it was suppressed). */
export function riskResult(t: Table): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < t.numRows; i++) {
    out.set(String(t.getChild("risk_grade")?.get(i)), riskLine(Number(t.getChild("count")?.get(i) as bigint), Number(t.getChild("avg_monthly_spend")?.get(i))));
  }
  return out;
}

export function writeData(dirs: Record<string, string>, d: DemoData): void {
  writeFileSync(join(dirs["bank"] as string, "customers.csv"), "phone,grade\n" + d.bank.map((r) => `${r.phone},${r.grade}`).join("\n") + "\n");
  let plan = 0;
  writeFileSync(join(dirs["telco"] as string, "subscribers.csv"), "phone,monthly_spend,plan\n" + [...d.telco].map(([p, s]) => `${p},${s},${["basic", "plus", "max"][plan++ % 3]}`).join("\n") + "\n");
  let pts = 0;
  writeFileSync(join(dirs["retailer"] as string, "members.csv"), "phone,points\n" + [...d.retailer].map((p) => `${p},${(pts++ * 37) % 5000}`).join("\n") + "\n");
  for (const p of FA_PROVIDERS) {
    writeFileSync(join(dirs[p] as string, "households.csv"), "region,monthly_spend,age\n" + d.households[p].map((h) => `${h.region},${h.spend},${h.age}`).join("\n") + "\n");
  }
}

/**
 * The plaintext answer on the providers' households: per region count, sum, avg, sample stddev, age bins;
 * k applied per provider (federated-aggregate's rule: a provider's households in an age bin of a region, or
 * below the first or above the last edge, where it has 1 … k−1 of them are left out of the region altogether —
 * its count, sums and bins), then to the totals as the buyer's runner applies it.
 */
export function householdAnswer(byProvider: readonly (readonly Household[])[]): Map<string, string> {
  const out = new Map<string, string>();
  const bins = FA_AGE_EDGES.length - 1;
  const last = bins - 1;
  const inBin = (h: Household, b: number): boolean => h.age >= (FA_AGE_EDGES[b] as number) && (b === last ? h.age <= (FA_AGE_EDGES[b + 1] as number) : h.age < (FA_AGE_EDGES[b + 1] as number));
  // A household's range: its bin, or `bins` below the first edge, `bins` + 1 above the last.
  const rangeOf = (h: Household): number => {
    const b = FA_AGE_EDGES.slice(0, -1).findIndex((_, i) => inBin(h, i));
    return b >= 0 ? b : h.age < (FA_AGE_EDGES[0] as number) ? bins : bins + 1;
  };
  for (const region of FA_REGIONS) {
    const kept = byProvider.map((p) => {
      const own = p.filter((h) => h.region === region);
      const n = new Map<number, number>();
      for (const h of own) n.set(rangeOf(h), (n.get(rangeOf(h)) ?? 0) + 1);
      return own.filter((h) => (n.get(rangeOf(h)) as number) >= FA_K);
    });
    const hs = kept.flat();
    const n = BigInt(hs.length);
    if (hs.length < FA_K) {
      out.set(region, "suppressed");
      continue;
    }
    const sum = hs.reduce((a, h) => a + BigInt(h.spend), 0n);
    const sumsq = hs.reduce((a, h) => a + BigInt(h.spend) ** 2n, 0n);
    const byBin = FA_AGE_EDGES.slice(0, -1).map((_, b) => hs.filter((h) => inBin(h, b)).length);
    const stddev = Math.sqrt(Number(n * sumsq - sum * sum) / Number(n * (n - 1n)));
    out.set(region, householdLine(hs.length, Number(sum), Number(sum) / Number(n), stddev, byBin.map((b) => (b < FA_K ? null : b))));
  }
  return out;
}

const householdLine = (count_: number, sum: number, avg: number, stddev: number, bins: readonly (number | null)[]): string =>
  `${count(count_).padStart(6)} ${count(sum).padStart(11)} ${avg.toFixed(2).padStart(8)} ${stddev.toFixed(2).padStart(8)}   ${bins.map((b) => (b === null ? "-" : count(b))).join(" / ")}`;

/** The secure result table's cells, formatted as householdAnswer formats the plaintext. */
export function householdResult(t: Table): Map<string, string> {
  const out = new Map<string, string>();
  const num = (name: string, i: number): number => Number(t.getChild(name)?.get(i) as number | bigint);
  for (let i = 0; i < t.numRows; i++) {
    const region = String(t.getChild("category")?.get(i));
    if (t.getChild("suppressed")?.get(i) === true) {
      out.set(region, "suppressed");
      continue;
    }
    const bins = FA_AGE_EDGES.slice(0, -1).map((_, b) => {
      const v: unknown = t.getChild(`hist_age_${b}`)?.get(i);
      return v === null || v === undefined ? null : Number(v);
    });
    out.set(region, householdLine(num("count", i), num("sum_monthly_spend", i), num("avg_monthly_spend", i), num("stddev_monthly_spend", i), bins));
  }
  return out;
}
