/**
 * The venue at a party's agent (docs/venue.md).
 *
 * As a provider it publishes products over its own datasets (checked against
 * its own copies of their policies, then kept: every job is checked against
 * its own copy of the product), approves an order by signing its contract
 * (after checking it copies its own product version and that the buyer's
 * signature verifies) and keeps the countersigned contract; its order
 * watcher signs, on its own, the pending orders its product's auto-approve
 * rule allows, and takes note of contracts the exchange reports revoked.
 * When a job reaches it, {@link PartyVenue.checkJob} checks every contract of
 * its own that the job cites against its own copy: all three signatures,
 * its own product version, the window, its own revocation and its own count
 * of the jobs it accepted under it.
 *
 * As a buyer it writes and signs the contract of an order.
 */
import { randomUUID } from "node:crypto";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { Type } from "typebox";
import { UmbraError } from "../../engine/errors.js";
import type { SenderKeys } from "../envelope.js";
import { ForbiddenError } from "../errors.js";
import type { NodeIdentity } from "../identity.js";
import type { JobRequest } from "../job-request.js";
import { parsePolicy } from "../policy.js";
import type { DatasetDescriptor } from "../schemas/dataset.js";
import { EndContractSchema, MAX_PURPOSE_LENGTH, MAX_QUOTA_JOBS, ProductId, ProductPublicationSchema } from "../schemas/venue.js";
import { Text } from "../schemas/common.js";
import { canonicalJson, type ContractRow, type Store } from "../store.js";
import type { ExchangeClient } from "../server/client.js";
import { documentBodyValidator } from "../server/validation.js";
import {
  contractDigest,
  ContractDeniedError,
  ContractRule,
  parseContract,
  parseSignedContract,
  signContract,
  verifyContractSignature,
  verifySignedContract,
  type ContractDocument,
  type SignedContract,
} from "./contract.js";
import { checkCitedContract, productDatasets, productOf } from "./job-contracts.js";
import { autoApproves, checkProductCatalog, parseProduct, productDigest, type Product } from "./product.js";

/** How often the order watcher looks for pending orders by default. */
export const DEFAULT_ORDER_POLL_MS = 5_000;
const DAY_MS = 24 * 3600 * 1000;

export interface PartyVenueOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly client: ExchangeClient;
  readonly log: FastifyBaseLogger;
  readonly senderKeys: (name: string) => Promise<SenderKeys | undefined>;
  readonly exchange: () => { readonly name: string; readonly keys: SenderKeys | undefined };
  /** How often the order watcher runs (ms; 0: never). */
  readonly orderPollMs?: number;
}

/** What the exchange answers of a contract (routes/contracts.ts contractView). */
interface ContractAnswer {
  readonly id: string;
  readonly state: string;
  readonly buyer: string;
  readonly provider: string;
  readonly contract: unknown;
  readonly signatures: { readonly buyer: string; readonly provider: string | null; readonly exchange: string | null };
  readonly signed?: unknown;
}

export interface PartyVenue {
  /** The local API's venue routes (products, orders, contracts). */
  register(app: FastifyInstance): void;
  /** Approves (signs) a pending order of one of this provider's products; returns the exchange's answer. */
  approve(id: string): Promise<Record<string, unknown>>;
  /**
   * A provider's check of a job on its dataset: the ids of its own contracts
   * to count the job against, or the rule that refuses it.
   */
  checkJob(request: JobRequest, dataset: string, relayed: readonly SignedContract[] | undefined): Promise<{ readonly rule: string } | { readonly contracts: readonly string[] }>;
  /** Starts the order watcher (when its period is not 0). */
  start(): void;
  /** Stops the order watcher (a pass in flight ends at its next step). */
  stop(): void;
}

export function partyVenue(o: PartyVenueOptions): PartyVenue {
  const { store, identity, client, log } = o;
  const me = identity.name;
  let timer: NodeJS.Timeout | undefined;
  let watching: Promise<void> | undefined;
  let stopped = false;

  const ownDataset = (id: string): { descriptor: DatasetDescriptor; policy: ReturnType<typeof parsePolicy> } | undefined => {
    const d = store.getDataset(id);
    const p = store.latestPolicy(id);
    if (!d || !p || d.owner !== me) return undefined;
    const descriptor = { id: d.id, owner: d.owner, name: d.name, schema: d.schema as DatasetDescriptor["schema"], rowCount: d.rowCount, contentHash: d.contentHash, createdAt: new Date(d.createdAt).toISOString() };
    return { descriptor, policy: parsePolicy(p.policy) };
  };

  const keyOf = async (name: string): Promise<Uint8Array | undefined> => (name === me ? identity.signing.publicKey : (await o.senderKeys(name))?.signingPublicKey);

  const approve = async (id: string): Promise<Record<string, unknown>> => {
    const r = await client.json<ContractAnswer>("GET", `/v1/contracts/${encodeURIComponent(id)}`);
    if (r.provider !== me) throw new ForbiddenError("only its provider approves an order");
    if (r.state !== "pending") throw new ContractDeniedError(ContractRule.NotActive, "only a pending order is approved");
    const c = parseContract(r.contract);
    // Its own product version, as this agent published it: the same digest, prices and share.
    const own = store.venue.getProduct(c.product.id, c.product.version);
    const p = own?.document as unknown as Product | undefined;
    if (own === undefined || p === undefined || own.state !== "active" || own.digest !== c.product.digest || c.provider !== me || canonicalJson(p.prices) !== canonicalJson(c.prices) || p.share !== c.share) {
      throw new ContractDeniedError(ContractRule.ProductMismatch, "the order does not copy this provider's product version");
    }
    const buyerKey = await keyOf(c.buyer);
    if (buyerKey === undefined || !verifyContractSignature(buyerKey, c, r.signatures.buyer)) throw new ContractDeniedError(ContractRule.Signature, "the buyer's signature does not verify");
    const signature = signContract(identity.signing.secretKey, c);
    const answer = await client.json<ContractAnswer & Record<string, unknown>>("POST", `/v1/contracts/${encodeURIComponent(id)}/approve`, { signature });
    const signed = parseSignedContract(answer.signed);
    const x = o.exchange().keys;
    if (signed === undefined || x === undefined || contractDigest(signed.contract) !== contractDigest(c) || !verifySignedContract(signed, { buyer: buyerKey, provider: identity.signing.publicKey, exchange: x.signingPublicKey })) {
      throw new UmbraError("UMBRA_EXCHANGE", "the exchange's countersigned contract does not verify");
    }
    // This provider's own copy: every job under the contract is checked against it.
    if (store.venue.getContract(c.id) === undefined) {
      store.venue.putContract({
        id: c.id,
        productId: c.product.id,
        productVersion: c.product.version,
        buyer: c.buyer,
        provider: me,
        document: c,
        digest: contractDigest(c),
        buyerSignature: signed.signatures.buyer,
        providerSignature: signed.signatures.provider,
        exchangeSignature: signed.signatures.exchange,
        state: "active",
        quotaJobs: c.quota.jobs,
        notBefore: Date.parse(c.notBefore),
        notAfter: Date.parse(c.notAfter),
      });
    }
    log.info({ contract: c.id }, "contract signed");
    return answer;
  };

  /** One pass of the order watcher: signs the pending orders the auto-approve rule allows; notes contracts revoked at the exchange. */
  const watchOnce = async (): Promise<void> => {
    // A party that sells nothing has no order to approve and no contract of its own to keep: it asks nothing.
    if (!store.venue.listProducts({ owner: me }).some((p) => p.state === "active") && store.venue.listContracts({ party: me, state: "active" }).length === 0) return;
    const { contracts } = await client.json<{ contracts: (ContractAnswer & { product: { id: string; version: number }; quotaJobs: number })[] }>("GET", "/v1/contracts");
    for (const c of contracts) {
      if (stopped) return;
      if (c.provider !== me) continue;
      if (c.state === "revoked" && store.venue.getContract(c.id)?.state === "active") store.venue.endContract(c.id, "revoked", "revoked-at-exchange");
      if (c.state !== "pending") continue;
      const p = productOf(store, c.product.id, c.product.version);
      const doc = c.contract as ContractDocument;
      if (p === undefined || !autoApproves(p, { buyer: c.buyer, purpose: doc.purpose, quotaJobs: c.quotaJobs })) continue;
      await approve(c.id).catch((err: unknown) => log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not approve an order on its own"));
    }
  };

  const checkJob: PartyVenue["checkJob"] = async (request, dataset, relayed) => {
    const now = Date.now();
    const covered = new Set<string>();
    const mine: string[] = [];
    try {
      for (const id of request.contracts ?? []) {
        const own = store.venue.getContract(id);
        const sent = relayed?.find((s) => s.contract.id === id);
        if (own === undefined || own.provider !== me) {
          // A contract relayed as this provider's that it never signed.
          if (sent !== undefined && sent.contract.provider === me) throw new ContractDeniedError(ContractRule.Unknown, "this provider signed no such contract");
          continue;
        }
        if (!sameContract(own, sent)) throw new ContractDeniedError(ContractRule.Mismatch, "the contract relayed is not the one this provider signed");
        const buyerKey = await keyOf(own.buyer);
        const x = o.exchange().keys;
        if (buyerKey === undefined || x === undefined || !verifySignedContract(sent as SignedContract, { buyer: buyerKey, provider: identity.signing.publicKey, exchange: x.signingPublicKey })) {
          throw new ContractDeniedError(ContractRule.Signature, "a signature of the contract does not verify");
        }
        const product = store.venue.getProduct(own.productId, own.productVersion);
        if (product === undefined || product.digest !== (own.document as unknown as ContractDocument).product.digest) throw new ContractDeniedError(ContractRule.Mismatch, "the contract is not of a product version this provider published");
        for (const d of checkCitedContract(own, product.document as unknown as Product, request, [dataset], now)) covered.add(d);
        mine.push(id);
      }
      if (productDatasets(store, me).has(dataset) && !covered.has(dataset)) throw new ContractDeniedError(ContractRule.Required, "the dataset is sold as a product and the job cites no contract for it");
    } catch (err) {
      if (err instanceof ContractDeniedError) return { rule: err.rule };
      throw err;
    }
    return { contracts: mine };
  };

  const register = (app: FastifyInstance): void => {
    app.post("/v1/products", { schema: { body: ProductPublicationSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
      const product = parseProduct((req.body as { product: unknown }).product, me);
      checkProductCatalog(product, me, ownDataset);
      const digest = productDigest(product);
      const r = await client.json<{ id: string; version: number; digest: string }>("POST", "/v1/products", { product });
      if (r.digest !== digest) throw new UmbraError("UMBRA_EXCHANGE", "the exchange recorded another product than the one published");
      store.transaction(() => {
        const latest = store.venue.latestProduct(product.id);
        if (latest !== undefined && latest.state === "active" && latest.version < r.version) store.venue.setProductState(latest.id, latest.version, "withdrawn");
        if (latest === undefined || latest.version < r.version) store.venue.putProduct({ id: product.id, owner: me, document: product, digest, version: r.version });
      });
      return reply.code(201).send(r);
    });
    app.post("/v1/products/:id/withdraw", async (req) => {
      const id = (req.params as { id: string }).id;
      const r = await client.json<{ version: number }>("POST", `/v1/products/${encodeURIComponent(id)}/withdraw`, {});
      const own = store.venue.latestProduct(id);
      if (own !== undefined && own.state === "active") store.venue.setProductState(id, own.version, "withdrawn");
      return r;
    });
    app.get("/v1/products", async () => client.json("GET", "/v1/products"));
    app.get("/v1/products/:id", async (req) => client.json("GET", `/v1/products/${encodeURIComponent((req.params as { id: string }).id)}`));

    const OrderBody = Type.Object(
      {
        product: ProductId,
        purpose: Text(MAX_PURPOSE_LENGTH, "a purpose"),
        quotaJobs: Type.Integer({ minimum: 1, maximum: MAX_QUOTA_JOBS }),
        days: Type.Optional(Type.Integer({ minimum: 1, maximum: 5 * 365, description: "an integer from 1 to 1825: how many days the contract runs (default 30)" })),
      },
      { additionalProperties: false },
    );
    app.post("/v1/orders", { schema: { body: OrderBody }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
      const b = req.body as { product: string; purpose: string; quotaJobs: number; days?: number };
      const p = await client.json<Product & { version: number; digest: string; owner: string }>("GET", `/v1/products/${encodeURIComponent(b.product)}`);
      const start = Math.floor(Date.now() / 1000) * 1000;
      const contract = parseContract({
        v: 1,
        id: `contract-${randomUUID()}`,
        product: { id: p.id, version: p.version, digest: p.digest },
        buyer: me,
        provider: p.owner,
        purpose: b.purpose,
        quota: { jobs: b.quotaJobs },
        prices: p.prices,
        share: p.share,
        notBefore: new Date(start).toISOString(),
        notAfter: new Date(start + (b.days ?? 30) * DAY_MS).toISOString(),
      });
      const signature = signContract(identity.signing.secretKey, contract);
      const r = await client.json("POST", "/v1/orders", { contract, signature });
      // The buyer's own copy of what it signed: the prices its agent meters its jobs' units by, and checks their receipts against (docs/venue.md).
      store.venue.putContract({ id: contract.id, productId: p.id, productVersion: p.version, buyer: me, provider: p.owner, document: contract, digest: contractDigest(contract), buyerSignature: signature, state: "pending", quotaJobs: b.quotaJobs, notBefore: Date.parse(contract.notBefore), notAfter: Date.parse(contract.notAfter) });
      return reply.code(201).send(r);
    });
    app.post("/v1/orders/:id/approve", async (req) => approve((req.params as { id: string }).id));
    app.post("/v1/orders/:id/reject", { schema: { body: EndContractSchema }, validatorCompiler: documentBodyValidator }, async (req) =>
      client.json("POST", `/v1/contracts/${encodeURIComponent((req.params as { id: string }).id)}/reject`, req.body ?? {}),
    );
    app.get("/v1/contracts", async (req) => {
      const state = (req.query as { state?: string }).state;
      return client.json("GET", `/v1/contracts${state !== undefined ? `?state=${encodeURIComponent(state)}` : ""}`);
    });
    app.get("/v1/contracts/:id", async (req) => client.json("GET", `/v1/contracts/${encodeURIComponent((req.params as { id: string }).id)}`));
    app.post("/v1/contracts/:id/revoke", async (req) => {
      const id = (req.params as { id: string }).id;
      const r = await client.json("POST", `/v1/contracts/${encodeURIComponent(id)}/revoke`, {});
      // This provider's own copy: revoked here too, whoever asked.
      if (store.venue.getContract(id)?.state === "active") store.venue.endContract(id, "revoked", "revoked-here");
      return r;
    });
  };

  return {
    register,
    approve,
    checkJob,
    start() {
      const every = o.orderPollMs ?? DEFAULT_ORDER_POLL_MS;
      if (every <= 0 || timer !== undefined) return;
      stopped = false;
      timer = setInterval(() => {
        if (watching !== undefined) return;
        watching = watchOnce()
          .catch((err: unknown) => log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_NETWORK" }, "order watcher failed; retrying"))
          .finally(() => (watching = undefined));
      }, every);
      timer.unref();
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}

/** Whether a relayed contract is the provider's own copy: the same document and the same three signatures. */
function sameContract(own: ContractRow, sent: SignedContract | undefined): boolean {
  return (
    sent !== undefined &&
    contractDigest(sent.contract) === own.digest &&
    sent.signatures.buyer === own.buyerSignature &&
    sent.signatures.provider === own.providerSignature &&
    sent.signatures.exchange === own.exchangeSignature
  );
}

