/**
 * The venue's rows (docs/venue.md): products, each version with its state,
 * and contracts (orders until countersigned) with their signatures, state and
 * the jobs counted against their quota. The exchange and every party keep
 * them alike: the exchange the whole venue, a provider the products it
 * published and the contracts it signed (its own copy, which it checks every
 * job against), a buyer the contracts it ordered.
 *
 * Every function may run inside the caller's transaction: a record commits
 * with its ledger entry, a job with the quota it reserves.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { checkCount, checkId, checkName, checkTime, jsonText, parseJson, type JsonValue } from "./checks.js";
import type { StoreContext } from "./context.js";

export const ProductState = { Active: "active", Withdrawn: "withdrawn" } as const;
export type ProductState = (typeof ProductState)[keyof typeof ProductState];

export const ContractState = { Pending: "pending", Active: "active", Rejected: "rejected", Revoked: "revoked" } as const;
export type ContractState = (typeof ContractState)[keyof typeof ContractState];

export interface ProductRow {
  readonly id: string;
  readonly version: number;
  readonly owner: string;
  /** The product document as published (node/venue/product.ts). */
  readonly document: JsonValue;
  /** Hex SHA-256 of the document's canonical JSON. */
  readonly digest: string;
  readonly state: ProductState;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ContractInput {
  readonly id: string;
  readonly productId: string;
  readonly productVersion: number;
  readonly buyer: string;
  readonly provider: string;
  /** The contract document (node/venue/contract.ts). */
  readonly document: unknown;
  readonly digest: string;
  readonly buyerSignature: string;
  readonly providerSignature?: string | null;
  readonly exchangeSignature?: string | null;
  readonly state: ContractState;
  readonly quotaJobs: number;
  readonly jobsUsed?: number;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface ContractRow {
  readonly id: string;
  readonly productId: string;
  readonly productVersion: number;
  readonly buyer: string;
  readonly provider: string;
  readonly document: JsonValue;
  readonly digest: string;
  readonly buyerSignature: string;
  readonly providerSignature: string | null;
  readonly exchangeSignature: string | null;
  readonly state: ContractState;
  readonly quotaJobs: number;
  readonly jobsUsed: number;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Why it was rejected or revoked (and by whom): a short code, never a value. */
  readonly reason: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const REASON = /^[A-Za-z0-9._:-]{1,64}$/;

function hex(what: string, v: unknown, re: RegExp): string {
  if (typeof v !== "string" || !re.test(v)) throw new InvalidArgumentError(`${what} must be lowercase hex of its length`);
  return v;
}

interface ProductSql {
  id: string;
  version: number;
  owner: string;
  document: string;
  digest: string;
  state: string;
  created_at: number;
  updated_at: number;
}

interface ContractSql {
  id: string;
  product_id: string;
  product_version: number;
  buyer: string;
  provider: string;
  document: string;
  digest: string;
  buyer_signature: string;
  provider_signature: string | null;
  exchange_signature: string | null;
  state: string;
  quota_jobs: number;
  jobs_used: number;
  not_before: number;
  not_after: number;
  reason: string | null;
  created_at: number;
  updated_at: number;
}

const product = (r: ProductSql): ProductRow => ({
  id: r.id,
  version: r.version,
  owner: r.owner,
  document: parseJson(r.document),
  digest: r.digest,
  state: r.state as ProductState,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const contract = (r: ContractSql): ContractRow => ({
  id: r.id,
  productId: r.product_id,
  productVersion: r.product_version,
  buyer: r.buyer,
  provider: r.provider,
  document: parseJson(r.document),
  digest: r.digest,
  buyerSignature: r.buyer_signature,
  providerSignature: r.provider_signature,
  exchangeSignature: r.exchange_signature,
  state: r.state as ContractState,
  quotaJobs: r.quota_jobs,
  jobsUsed: r.jobs_used,
  notBefore: r.not_before,
  notAfter: r.not_after,
  reason: r.reason,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The venue's rows of one store (its `venue` member). */
export class VenueRows {
  constructor(readonly ctx: StoreContext) {}

  // ------------------------------------------------------------------ products

  /** Stores a product version (the next one of its id, or `version` when given: a provider's copy of what the exchange numbered). */
  putProduct(p: { readonly id: string; readonly owner: string; readonly document: unknown; readonly digest: string; readonly version?: number }): ProductRow {
    checkId("product id", p.id);
    checkName("product owner", p.owner);
    hex("product digest", p.digest, HEX64);
    const text = jsonText("product document", p.document);
    return this.ctx.transaction(() => {
      const latest = this.latestProduct(p.id);
      const version = p.version ?? (latest?.version ?? 0) + 1;
      checkCount("product version", version);
      if (version < 1 || (latest !== undefined && version <= latest.version)) throw new InvalidArgumentError("a product version must be above the latest one");
      const t = this.ctx.time();
      this.ctx.sql("INSERT INTO products (id, version, owner, document, digest, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)").run(p.id, version, p.owner, text, p.digest, t, t);
      return this.getProduct(p.id, version) as ProductRow;
    });
  }

  getProduct(id: string, version: number): ProductRow | undefined {
    const r = this.ctx.sql("SELECT * FROM products WHERE id = ? AND version = ?").get(id, version) as ProductSql | undefined;
    return r ? product(r) : undefined;
  }

  /** A product's current (highest) version. */
  latestProduct(id: string): ProductRow | undefined {
    const r = this.ctx.sql("SELECT * FROM products WHERE id = ? ORDER BY version DESC LIMIT 1").get(id) as ProductSql | undefined;
    return r ? product(r) : undefined;
  }

  /** Every product's current version, by id (optionally one owner's). */
  listProducts(filter: { readonly owner?: string } = {}): ProductRow[] {
    const rows = this.ctx
      .sql("SELECT p.* FROM products p WHERE p.version = (SELECT max(version) FROM products q WHERE q.id = p.id) AND (? IS NULL OR p.owner = ?) ORDER BY p.id")
      .all(filter.owner ?? null, filter.owner ?? null) as ProductSql[];
    return rows.map(product);
  }

  /** Sets a product version's state. */
  setProductState(id: string, version: number, state: ProductState): ProductRow {
    if (!Object.values(ProductState).includes(state)) throw new InvalidArgumentError("unknown product state");
    const r = this.ctx.sql("UPDATE products SET state = ?, updated_at = ? WHERE id = ? AND version = ?").run(state, this.ctx.time(), id, version);
    if (r.changes !== 1) throw new InvalidArgumentError("no such product version");
    return this.getProduct(id, version) as ProductRow;
  }

  // ------------------------------------------------------------------ contracts

  /** Stores a new contract (an order, or a signed copy); an id stored already is refused. */
  putContract(c: ContractInput): ContractRow {
    checkId("contract id", c.id);
    checkId("product id", c.productId);
    checkCount("product version", c.productVersion);
    checkName("buyer", c.buyer);
    checkName("provider", c.provider);
    hex("contract digest", c.digest, HEX64);
    hex("buyer signature", c.buyerSignature, HEX128);
    if (c.providerSignature != null) hex("provider signature", c.providerSignature, HEX128);
    if (c.exchangeSignature != null) hex("exchange signature", c.exchangeSignature, HEX128);
    if (!Object.values(ContractState).includes(c.state)) throw new InvalidArgumentError("unknown contract state");
    checkCount("quota", c.quotaJobs);
    checkTime("notBefore", c.notBefore);
    checkTime("notAfter", c.notAfter);
    const text = jsonText("contract document", c.document);
    return this.ctx.transaction(() => {
      if (this.getContract(c.id) !== undefined) throw new InvalidArgumentError("a contract with this id is stored already");
      const t = this.ctx.time();
      this.ctx
        .sql(
          `INSERT INTO contracts (id, product_id, product_version, buyer, provider, document, digest, buyer_signature, provider_signature, exchange_signature, state, quota_jobs, jobs_used, not_before, not_after, reason, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
        )
        .run(c.id, c.productId, c.productVersion, c.buyer, c.provider, text, c.digest, c.buyerSignature, c.providerSignature ?? null, c.exchangeSignature ?? null, c.state, c.quotaJobs, c.jobsUsed ?? 0, c.notBefore, c.notAfter, t, t);
      return this.getContract(c.id) as ContractRow;
    });
  }

  getContract(id: string): ContractRow | undefined {
    const r = this.ctx.sql("SELECT * FROM contracts WHERE id = ?").get(id) as ContractSql | undefined;
    return r ? contract(r) : undefined;
  }

  /** Contracts where `party` is the buyer or the provider (every one without a party), oldest first; optionally of one state. */
  listContracts(filter: { readonly party?: string; readonly state?: ContractState } = {}): ContractRow[] {
    const rows = this.ctx
      .sql("SELECT * FROM contracts WHERE (? IS NULL OR buyer = ? OR provider = ?) AND (? IS NULL OR state = ?) ORDER BY created_at, id")
      .all(filter.party ?? null, filter.party ?? null, filter.party ?? null, filter.state ?? null, filter.state ?? null) as ContractSql[];
    return rows.map(contract);
  }

  /** A pending contract signed by its provider and countersigned: active. Anything but a pending one is refused (false, nothing changed). */
  activateContract(id: string, providerSignature: string, exchangeSignature: string | null): boolean {
    hex("provider signature", providerSignature, HEX128);
    if (exchangeSignature !== null) hex("exchange signature", exchangeSignature, HEX128);
    const r = this.ctx
      .sql("UPDATE contracts SET provider_signature = ?, exchange_signature = ?, state = CASE WHEN ? IS NULL THEN 'pending' ELSE 'active' END, updated_at = ? WHERE id = ? AND state = 'pending'")
      .run(providerSignature, exchangeSignature, exchangeSignature, this.ctx.time(), id);
    return r.changes === 1;
  }

  /** Ends a contract (`rejected` from pending, `revoked` from pending or active) with its reason; false (nothing changed) from any other state. */
  endContract(id: string, to: "rejected" | "revoked", reason: string): boolean {
    if (!REASON.test(reason)) throw new InvalidArgumentError("a contract's reason must match [A-Za-z0-9._:-]{1,64}");
    const from = to === "rejected" ? ["pending"] : ["pending", "active"];
    const r = this.ctx
      .sql(`UPDATE contracts SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (${from.map(() => "?").join(", ")})`)
      .run(to, reason, this.ctx.time(), id, ...from);
    return r.changes === 1;
  }

  /**
   * Counts one job against an active contract's quota, in one statement: true
   * when there was room (and it is taken), false when the contract is not
   * active or its quota is used up (nothing changed). Two submissions can
   * never both take the last job.
   */
  reserveJob(id: string): boolean {
    const r = this.ctx.sql("UPDATE contracts SET jobs_used = jobs_used + 1, updated_at = ? WHERE id = ? AND state = 'active' AND jobs_used < quota_jobs").run(this.ctx.time(), id);
    return r.changes === 1;
  }

  /** Gives back one job of a contract's quota (a job refused before it ran); nothing when none is counted. */
  releaseJob(id: string): void {
    this.ctx.sql("UPDATE contracts SET jobs_used = jobs_used - 1, updated_at = ? WHERE id = ? AND jobs_used > 0").run(this.ctx.time(), id);
  }
}
