/**
 * The dataset catalog, each dataset's policy versions, and the per-buyer
 * budgets of a dataset: their SQL and row mapping, called by the open store
 * (`node/store/sqlite.ts`).
 */
import { BudgetExceededError } from "../../protocols/errors.js";
import { checkAmount, checkCount, checkDigest, checkId, checkName, checkText, jsonText, parseJson } from "./checks.js";
import type { StoreContext } from "./context.js";
import { AlreadyExistsError, NotFoundError } from "./errors.js";
import type { BudgetRecord, DatasetInput, DatasetRecord, PolicyRecord } from "./types.js";

interface DatasetRow {
  id: string;
  owner: string;
  name: string;
  schema: string;
  row_count: number;
  content_hash: string;
  created_at: number;
  updated_at: number;
}
interface PolicyRow {
  dataset_id: string;
  version: number;
  policy: string;
  created_at: number;
}
interface BudgetRow {
  dataset_id: string;
  buyer: string;
  remaining: number;
  updated_at: number;
}

const datasetFromRow = (r: DatasetRow): DatasetRecord => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  schema: parseJson(r.schema),
  rowCount: r.row_count,
  contentHash: r.content_hash,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const policyFromRow = (r: PolicyRow): PolicyRecord => ({ datasetId: r.dataset_id, version: r.version, policy: parseJson(r.policy), createdAt: r.created_at });
const budgetFromRow = (r: BudgetRow): BudgetRecord => ({ datasetId: r.dataset_id, buyer: r.buyer, remaining: r.remaining, updatedAt: r.updated_at });

export function putDataset(ctx: StoreContext, dataset: DatasetInput): DatasetRecord {
  const id = checkId("dataset id", dataset.id);
  const owner = checkName("dataset owner", dataset.owner);
  const name = checkText("dataset name", dataset.name, 256);
  const schema = jsonText("dataset schema", dataset.schema);
  const rowCount = checkCount("row count", dataset.rowCount);
  const contentHash = checkDigest("content hash", dataset.contentHash);
  const now = ctx.time();
  return ctx.transaction(() => {
    const existing = ctx.sql("SELECT owner FROM datasets WHERE id = ?").get(id) as { owner: string } | undefined;
    if (existing !== undefined && existing.owner !== owner) throw new AlreadyExistsError("a dataset with this id and another owner");
    ctx.sql(
      `INSERT INTO datasets (id, owner, name, schema, row_count, content_hash, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, schema = excluded.schema, row_count = excluded.row_count,
         content_hash = excluded.content_hash, updated_at = excluded.updated_at`,
    ).run(id, owner, name, schema, rowCount, contentHash, now, now);
    return getDataset(ctx, id) as DatasetRecord;
  });
}

export function getDataset(ctx: StoreContext, id: string): DatasetRecord | undefined {
  const row = ctx.sql("SELECT * FROM datasets WHERE id = ?").get(id) as DatasetRow | undefined;
  return row === undefined ? undefined : datasetFromRow(row);
}

export function listDatasets(ctx: StoreContext, filter: { readonly owner?: string } = {}): DatasetRecord[] {
  const rows =
    filter.owner === undefined
      ? (ctx.sql("SELECT * FROM datasets ORDER BY id").all() as DatasetRow[])
      : (ctx.sql("SELECT * FROM datasets WHERE owner = ? ORDER BY id").all(filter.owner) as DatasetRow[]);
  return rows.map(datasetFromRow);
}

export function putPolicy(ctx: StoreContext, datasetId: string, policy: unknown): PolicyRecord {
  checkId("dataset id", datasetId);
  const text = jsonText("policy", policy);
  const now = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM datasets WHERE id = ?").get(datasetId) === undefined) throw new NotFoundError("dataset");
    const { v } = ctx.sql("SELECT coalesce(max(version), 0) AS v FROM policies WHERE dataset_id = ?").get(datasetId) as { v: number };
    ctx.sql("INSERT INTO policies (dataset_id, version, policy, created_at) VALUES (?, ?, ?, ?)").run(datasetId, v + 1, text, now);
    return { datasetId, version: v + 1, policy: parseJson(text), createdAt: now };
  });
}

export function latestPolicy(ctx: StoreContext, datasetId: string): PolicyRecord | undefined {
  const row = ctx.sql("SELECT * FROM policies WHERE dataset_id = ? ORDER BY version DESC LIMIT 1").get(datasetId) as PolicyRow | undefined;
  return row === undefined ? undefined : policyFromRow(row);
}

export function getPolicy(ctx: StoreContext, datasetId: string, version: number): PolicyRecord | undefined {
  const row = ctx.sql("SELECT * FROM policies WHERE dataset_id = ? AND version = ?").get(datasetId, version) as PolicyRow | undefined;
  return row === undefined ? undefined : policyFromRow(row);
}

export function listPolicies(ctx: StoreContext, datasetId: string): PolicyRecord[] {
  return (ctx.sql("SELECT * FROM policies WHERE dataset_id = ? ORDER BY version").all(datasetId) as PolicyRow[]).map(policyFromRow);
}

export function getBudget(ctx: StoreContext, datasetId: string, buyer: string): BudgetRecord | undefined {
  const row = ctx.sql("SELECT * FROM budgets WHERE dataset_id = ? AND buyer = ?").get(datasetId, buyer) as BudgetRow | undefined;
  return row === undefined ? undefined : budgetFromRow(row);
}

export function setBudget(ctx: StoreContext, datasetId: string, buyer: string, remaining: number): BudgetRecord {
  checkName("buyer", buyer);
  checkAmount("budget", remaining);
  const now = ctx.time();
  return ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM datasets WHERE id = ?").get(datasetId) === undefined) throw new NotFoundError("dataset");
    ctx.sql(
      "INSERT INTO budgets (dataset_id, buyer, remaining, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (dataset_id, buyer) DO UPDATE SET remaining = excluded.remaining, updated_at = excluded.updated_at",
    ).run(datasetId, buyer, remaining, now);
    return getBudget(ctx, datasetId, buyer) as BudgetRecord;
  });
}

export function listBudgets(ctx: StoreContext, datasetId: string): BudgetRecord[] {
  return (ctx.sql("SELECT * FROM budgets WHERE dataset_id = ? ORDER BY buyer").all(datasetId) as BudgetRow[]).map(budgetFromRow);
}

export function refundBudget(ctx: StoreContext, datasetId: string, buyer: string, amount: number): BudgetRecord {
  checkAmount("amount", amount);
  const now = ctx.time();
  return ctx.transaction(() => {
    if (getBudget(ctx, datasetId, buyer) === undefined) throw new NotFoundError("budget");
    ctx.sql("UPDATE budgets SET remaining = remaining + ?, updated_at = ? WHERE dataset_id = ? AND buyer = ?").run(amount, now, datasetId, buyer);
    return getBudget(ctx, datasetId, buyer) as BudgetRecord;
  });
}

export function consumeBudget(ctx: StoreContext, datasetId: string, buyer: string, amount: number): BudgetRecord {
  checkAmount("amount", amount);
  const now = ctx.time();
  return ctx.transaction(() => {
    const before = getBudget(ctx, datasetId, buyer);
    if (before === undefined) throw new BudgetExceededError(amount, 0);
    const changed = ctx.sql("UPDATE budgets SET remaining = remaining - ?, updated_at = ? WHERE dataset_id = ? AND buyer = ? AND remaining >= ?").run(
      amount,
      now,
      datasetId,
      buyer,
      amount,
    ).changes;
    if (changed !== 1) throw new BudgetExceededError(amount, before.remaining);
    return getBudget(ctx, datasetId, buyer) as BudgetRecord;
  });
}

/** The ρ a buyer has spent on a dataset, "num/den" ("0/1" when none). */
export function getPrivacySpent(ctx: StoreContext, datasetId: string, buyer: string): string {
  const row = ctx.sql("SELECT spent FROM privacy_spent WHERE dataset_id = ? AND buyer = ?").get(datasetId, buyer) as { spent: string } | undefined;
  return row?.spent ?? "0/1";
}

/** Every buyer's spent ρ on a dataset ("num/den"), by buyer name. */
export function listPrivacySpent(ctx: StoreContext, datasetId: string): { buyer: string; spent: string }[] {
  return ctx.sql("SELECT buyer, spent FROM privacy_spent WHERE dataset_id = ? ORDER BY buyer").all(datasetId) as { buyer: string; spent: string }[];
}

/** Records the ρ a buyer has spent on a dataset ("num/den"); the caller checks it against the budget in the same transaction. */
export function setPrivacySpent(ctx: StoreContext, datasetId: string, buyer: string, spent: string): void {
  checkName("buyer", buyer);
  const now = ctx.time();
  ctx.transaction(() => {
    if (ctx.sql("SELECT 1 FROM datasets WHERE id = ?").get(datasetId) === undefined) throw new NotFoundError("dataset");
    ctx.sql(
      "INSERT INTO privacy_spent (dataset_id, buyer, spent, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (dataset_id, buyer) DO UPDATE SET spent = excluded.spent, updated_at = excluded.updated_at",
    ).run(datasetId, buyer, spent, now);
  });
}
