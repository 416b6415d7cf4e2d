/**
 * The attack tests' kit: what a node stores, as one comparable value, so that
 * a test shows a refused attack left the store and the ledger as they were.
 */
import { unpackDeliveries } from "../../node/server/mailbox.js";
import { decodeEnvelope } from "../../protocols/envelope-codec.js";
import { createHash } from "node:crypto";
import { generateIdentity, maskKeyPair, type NodeIdentity } from "../../node/identity.js";
import { signRequest } from "../../node/server/auth.js";
import type { ExchangeApp } from "../../node/server/exchange.js";
import { inviteAt } from "../helpers/nodes.js";
import type { Store } from "../../node/store.js";

const hex = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString("hex"));

/**
 * Everything a refused request must leave unchanged in a node's store:
 * parties and their keys, datasets, every policy version, jobs with their
 * states, steps and results, budgets, persisted role states, and the ledger
 * (every entry's hash).
 */
export function snapshot(store: Store): string {
  const jobs = store.listJobs();
  const datasets = store.listDatasets();
  return JSON.stringify({
    parties: store.listParties().map((p) => [p.name, p.role, hex(p.signingPublicKey), hex(p.boxPublicKey), hex(p.maskPublicKey)]),
    datasets: datasets.map((d) => [d.id, d.owner, d.name, d.rowCount, d.contentHash]),
    policies: datasets.map((d) => store.listPolicies(d.id).map((p) => [p.version, JSON.stringify(p.policy)])),
    budgets: datasets.map((d) => store.listBudgets(d.id).map((b) => [b.datasetId, b.buyer, b.remaining])),
    jobs: jobs.map((j) => [j.id, j.protocol, j.state, j.reason, store.listSteps(j.id).length, store.getResult(j.id)?.digest ?? null]),
    ledger: [...store.ledgerRows()].map((r) => r.hash),
  });
}

/** The ledger's entries of one kind (bodies parsed), in order. */
export function ledgerKinds(store: Store): string[] {
  return [...store.ledgerRows()].map((r) => r.kind);
}

// ---------------------------------------------------------------------------
// The exchange as one comparable value, and parties driven by hand.


/**
 * Everything a refused request must leave unchanged at an exchange: its
 * store as {@link snapshot} sees it, each job's progress and last change,
 * the invitations (names, times, whether used), and every mailbox's queued
 * frames and bytes.
 */
export function exchangeSnapshot(x: { readonly store: Store; readonly app: ExchangeApp }): string {
  const s = x.store;
  return JSON.stringify({
    store: snapshot(s),
    jobs: s.listJobs().map((j) => [j.id, j.updatedAt, JSON.stringify(j.progress)]),
    invitations: s.listInvitations().map((i) => [i.name, i.createdAt, i.expiresAt, i.usedAt, hex(i.usedBy)]),
    mailboxes: x.app.mailboxes.sizes(),
  });
}

export interface SignedAnswer<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
  /** The request's signature (hex): its first 32 bytes are the nonce the exchange remembers. */
  readonly signature: string;
  /** The headers it was sent with (to replay it byte for byte). */
  readonly sent: Record<string, string>;
}

/**
 * A request to the exchange signed by `id`, as its agent would send it, or
 * with an attacker's changes: another clock (`time`), raw bytes.
 */
export async function signedRequest<T = { error?: { code: string; message: string; rule?: string } }>(
  url: string,
  id: NodeIdentity,
  method: string,
  path: string,
  o: { readonly body?: unknown; readonly raw?: Uint8Array; readonly time?: number; readonly headers?: Record<string, string> } = {},
): Promise<SignedAnswer<T>> {
  const bytes = o.raw ?? (o.body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(o.body)));
  const headers: Record<string, string> = o.headers ?? { ...signRequest(id, method, path, bytes, o.time ?? Date.now()) };
  if (bytes.length > 0) headers["content-type"] = o.raw ? "application/octet-stream" : "application/json";
  const res = await fetch(url + path, { method, headers, ...(bytes.length > 0 ? { body: bytes } : {}) });
  const text = Buffer.from(await res.arrayBuffer());
  let body: unknown = text;
  if ((res.headers.get("content-type") ?? "").includes("json")) body = JSON.parse(text.toString("utf8"));
  return { status: res.status, body: body as T, headers: res.headers, signature: headers["x-umbra-signature"] as string, sent: headers };
}

/** The nonce the exchange remembers of a signed request (the signature's first 32 bytes). */
export const requestNonce = (signature: string): Uint8Array => Uint8Array.from(Buffer.from(signature, "hex").subarray(0, 32));

/** Party registration's body for `id` (keys as its agent sends them), with an invitation when given. */
export function registration(id: NodeIdentity, invite?: string): Record<string, string> {
  const h = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return { name: id.name, signingPublicKey: h(id.signing.publicKey), boxPublicKey: h(id.box.publicKey), maskPublicKey: h(maskKeyPair(id).publicKey), ...(invite !== undefined ? { invite } : {}) };
}

/** A party driven by hand (no agent): registered at an in-process exchange with an invitation its operator issued. */
export async function handParty(x: { readonly url: string }, name: string): Promise<NodeIdentity> {
  const id = generateIdentity(name);
  const r = await signedRequest(x.url, id, "POST", "/v1/parties", { body: registration(id, inviteAt(x.url, name)) });
  if (r.status !== 201) throw new Error(`registering ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return id;
}

/**
 * What a party's agent does with its mailbox: takes what is queued and
 * acknowledges it (the exchange then deletes it). Returns the envelopes.
 */
export async function takeMail(x: { readonly url: string }, who: NodeIdentity): Promise<Uint8Array[]> {
  const r = await signedRequest<Buffer>(x.url, who, "GET", "/v1/mailbox");
  const deliveries = unpackDeliveries(r.body);
  const upTo = new Map<string, number>();
  for (const d of deliveries) upTo.set(decodeEnvelope(d.frame, d.frame.length).job, d.id);
  if (upTo.size > 0) {
    const ack = await signedRequest(x.url, who, "POST", "/v1/mailbox/ack", { body: { acks: [...upTo].map(([job, n]) => ({ job, upTo: n })) } });
    if (ack.status !== 200) throw new Error(`acknowledging: ${ack.status} ${JSON.stringify(ack.body)}`);
  }
  return deliveries.map((d) => Uint8Array.from(d.frame));
}

/** A descriptor of a small dataset `NAME.FILE` of `owner`, one Utf8 column k (what an agent registers; no rows). */
export function descriptor(owner: string, file = "d.csv", id = `${owner}.${file}`): Record<string, unknown> {
  return { id, owner, name: file, schema: [{ name: "k", type: "Utf8" }], rowCount: 3, contentHash: createHash("sha256").update(id).digest("hex"), createdAt: new Date().toISOString() };
}

/**
 * A psi job between two hand-driven parties: the provider registers a
 * dataset (buyers: the buyer), the buyer submits, and — unless `accept` is
 * false — the provider takes its job.start from its mailbox and accepts, so
 * the job runs. Returns the job's id.
 */
export async function handJob(x: { readonly url: string }, buyer: NodeIdentity, provider: NodeIdentity, o: { readonly accept?: boolean; readonly file?: string } = {}): Promise<string> {
  const d = descriptor(provider.name, o.file ?? "d.csv");
  const policy = { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: [buyer.name], queryBudget: 1_000, budgetUnit: "jobs" };
  const reg = await signedRequest(x.url, provider, "POST", "/v1/datasets", { body: { descriptor: d, policy } });
  if (reg.status !== 201) throw new Error(`registering a dataset: ${reg.status} ${JSON.stringify(reg.body)}`);
  const sub = await signedRequest<{ id: string }>(x.url, buyer, "POST", "/v1/jobs", { body: { protocol: "psi", buyer: buyer.name, buyerDataset: "mine.csv", providerDataset: d["id"], params: { keyColumns: ["k"] } } });
  if (sub.status !== 201) throw new Error(`submitting a job: ${sub.status} ${JSON.stringify(sub.body)}`);
  if (o.accept === false) return sub.body.id;
  await takeMail(x, provider);
  const acc = await signedRequest(x.url, provider, "POST", `/v1/jobs/${sub.body.id}/events`, { body: { kind: "accepted" } });
  if (acc.status !== 200) throw new Error(`accepting: ${acc.status} ${JSON.stringify(acc.body)}`);
  return sub.body.id;
}
