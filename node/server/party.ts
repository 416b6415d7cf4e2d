/**
 * The party agent: runs next to its owner's data (files in its data folder),
 * registers with the exchange, registers datasets (descriptor and policy,
 * never rows), submits jobs as a buyer, and plays its role in every job it
 * takes part in. As a provider it checks its own copy of the policy again
 * before it answers anything. It reaches only the exchange: it long-polls its
 * mailbox there and sends every protocol message as an envelope signed by it
 * and sealed to the other party, relayed by the exchange.
 *
 * How it plays its role in a job, for every protocol the same way, is
 * node/server/party-jobs.ts.
 *
 * Its local API (JSON, for the CLI) listens on loopback only.
 */
import { AlreadyExistsError, NotFoundError } from "../errors.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import Fastify, { type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import { UmbraError } from "../../engine/errors.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import type { CatalogEntry } from "../catalog.js";
import { KEYED_PROTOCOLS, type JobRequest } from "../job-request.js";
import { fileKeyShapes, shapeWarning } from "../key-shape.js";
import type { SenderKeys } from "../envelope.js";
import { fingerprint, isNodeName, maskKeyPair, publicIdentity, type NodeIdentity } from "../identity.js";
import type { SignedTreeHead } from "../log/head.js";
import { LogWatch } from "../log/watch.js";
import { InvalidCertificateError, verifyCertificate, type VerifiedCertificate } from "../log/certificate.js";
import { parseJobRequest, parsePolicy, putPolicyVersion } from "../policy.js";
import { privacyBudgetView } from "../privacy-budget.js";
import type { Store } from "../store.js";
import { ExchangeClient } from "./client.js";
import { unpackDeliveries } from "./mailbox.js";
import { errorHandler } from "./http-errors.js";
import { LocalDatasetRegistrationSchema, LocalJobRequestSchema } from "../schemas/routes.js";
import { documentBodyValidator } from "./validation.js";
import { generateApiToken, guardLocalApi } from "./local-api.js";
import { dataFolder } from "./party-data.js";
import { isConsoleRoute, registerConsole } from "./console-assets.js";
import { partyConsoleRoutes } from "./party-console.js";
import { partyJobs } from "./party-jobs.js";
import { registerJobList } from "./party-job-list.js";
import { scheduleNoncePruning, type NoncePruning } from "./auth.js";
import { chattyLogLevel } from "./log-level.js";
import { DEFAULT_ORDER_POLL_MS, partyVenue } from "../venue/party-venue.js";
import { partyReceipts } from "../venue/party-receipts.js";

export interface PartyOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly exchangeUrl: string;
  readonly dataDir: string;
  readonly pool?: CryptoPool;
  readonly logger?: boolean | object;
  /** The local API's bearer token (default: a fresh random one, see {@link PartyAgent.token}). */
  readonly apiToken?: string;
  /** Host names the local API answers to besides its loopback names (node/server/local-api.ts). */
  readonly allowedHosts?: readonly string[];
  /** Serve the local API over TLS (PEM key and certificate). */
  readonly https?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * The exchange's signing key to expect: 64 hex digits (the key) or 16 (its
   * fingerprint, as `umbra exchange start` prints it). Without it the key the
   * exchange presents on first contact is pinned (trust on first use); either
   * way a later contact presenting another key is refused.
   */
  readonly exchangeKey?: string;
  /** The invitation code the exchange's operator issued for this party's name: presented when it registers (a registered party restarts without one). */
  readonly invite?: string;
  /** How often the order watcher signs the pending orders a product's auto-approve rule allows (ms; default 5 s; 0: never; docs/venue.md). */
  readonly orderPollMs?: number;
  /** The built web console's folder (default: dist/console, node/server/console-assets.ts). */
  readonly consoleDir?: string;
}

/** How the agent knows the exchange's key. */
export interface ExchangePin {
  readonly name: string;
  readonly fingerprint: string;
  /** "configured": given and matched; "pinned": as pinned before; "first-use": pinned now, on first contact. */
  readonly how: "configured" | "pinned" | "first-use";
}

/** The exchange presents another key than the one this agent pinned or was given. */
export class ExchangeKeyMismatchError extends UmbraError {
  constructor(message: string) {
    super("UMBRA_EXCHANGE_KEY_MISMATCH", message);
  }
}


export interface PartyAgent {
  readonly app: FastifyInstance;
  readonly client: ExchangeClient;
  /** The local API's bearer token: every request to it needs `Authorization: Bearer <token>`. */
  readonly token: string;
  /** The exchange's key as pinned by start(). */
  readonly exchangePin: ExchangePin | undefined;
  /** The latest signed tree head of the exchange's log this agent accepted (kept in its store). */
  readonly exchangeHead: SignedTreeHead | undefined;
  /** Registers with the exchange and starts polling the mailbox. */
  start(): Promise<void>;
  /** Stops polling and closes the API. */
  stop(): Promise<void>;
  /** How many console job streams are open now (GET /v1/jobs/:id/stream; at most 16). */
  openStreams(): number;
}

export async function buildParty(o: PartyOptions): Promise<PartyAgent> {
  const { store, identity } = o;
  const pool = o.pool ?? getPool();
  // The exchange's log as this party has seen it: every answer's signed head checked against the one held (node/log/watch.ts).
  let exchangeKeys: SenderKeys | undefined;
  const logWatch = new LogWatch({
    store,
    exchangeKey: () => exchangeKeys?.signingPublicKey,
    onInconsistent: (reason) => app.log.error({ code: "UMBRA_LOG_INCONSISTENT", reason }, "the exchange's log does not extend the head this party holds: evidence kept; nothing more is taken from the exchange"),
  });
  const client = new ExchangeClient(o.exchangeUrl, identity, { logWatch });
  const token = o.apiToken ?? generateApiToken();
  const options = { logger: o.logger ?? false, bodyLimit: 1024 * 1024, requestTimeout: 600_000, connectionTimeout: 600_000 };
  const app = (o.https ? Fastify({ ...options, https: { key: o.https.key, cert: o.https.cert } }) : Fastify(options)) as unknown as FastifyInstance;
  // Every route, the OpenAPI document included, needs this machine's Host and the token; the console's static
  // pages and assets (they hold no data) need the Host alone.
  guardLocalApi(app, { token, ...(o.allowedHosts ? { allowedHosts: o.allowedHosts } : {}), hostOnly: (req) => isConsoleRoute(req.routeOptions.url) });
  await app.register(swagger, { openapi: { info: { title: "Umbra party agent (local API)", version: "1" } } });
  app.get("/documentation/json", { schema: { hide: true } }, async () => app.swagger());
  const keyCache = new Map<string, SenderKeys>();
  let exchangeName = "";
  let polling = false;
  const stopping = new AbortController();
  let pollLoop: Promise<void> | undefined;

  const log = (msg: string, extra: Record<string, unknown> = {}) => app.log.info(extra, msg);

  await app.register(errorHandler);

  // The data folder: which files may be read, and what registering one makes of it (node/server/party-data.ts).
  const data = dataFolder(o.dataDir, identity.name);
  const dataFile = data.file;

  /**
   * Where the buyer's key columns (under the job's normalisation) clearly
   * differ in shape from the provider's registered ones: a warning each, with
   * the fix. Only classes are compared, never values.
   */
  const keyShapeWarnings = async (r: JobRequest): Promise<string[]> => {
    if (r.buyerDataset === undefined || r.providerDataset === undefined || !KEYED_PROTOCOLS.includes(r.protocol)) return [];
    const { datasets } = await client.json<{ datasets: CatalogEntry[] }>("GET", "/v1/datasets");
    const theirs = datasets.find((d) => d.id === r.providerDataset);
    if (theirs === undefined) return [];
    const own = store.getDataset(r.buyerDataset);
    const mine = await fileKeyShapes(dataFile(own ? own.name : r.buyerDataset), r.params.keyColumns, r.params.normalise ?? {});
    return r.params.keyColumns.flatMap((c) => {
      const provider = theirs.schema.find((f) => f.name === c)?.keyShape;
      const buyer = mine.get(c);
      const w = provider !== undefined && buyer !== undefined ? shapeWarning(c, provider, buyer, r.params.normalise ?? {}) : undefined;
      return w !== undefined ? [w] : [];
    });
  };
  const senderKeys = async (name: string): Promise<SenderKeys | undefined> => {
    const cached = keyCache.get(name);
    if (cached) return cached;
    const p = await client.json<{ signingPublicKey: string; boxPublicKey: string | null }>("GET", `/v1/parties/${encodeURIComponent(name)}`);
    if (!p.boxPublicKey) return undefined;
    const keys = { signingPublicKey: Uint8Array.from(Buffer.from(p.signingPublicKey, "hex")), boxPublicKey: Uint8Array.from(Buffer.from(p.boxPublicKey, "hex")) };
    keyCache.set(name, keys);
    return keys;
  };

  /** Submissions on their way to the exchange (a job.start may overtake the answer that names its job). */
  const submitting = new Set<Promise<unknown>>();
  // Products, orders and contracts (docs/venue.md): this party's own copies, checked in every job it provides.
  const venue = partyVenue({ store, identity, client, log: app.log, senderKeys, exchange: () => ({ name: exchangeName, keys: exchangeKeys }), ...(o.orderPollMs !== undefined ? { orderPollMs: o.orderPollMs } : {}) });
  // Receipts (docs/venue.md): as a buyer, each succeeded job's receipt checked, kept and acknowledged; a statement of its own.
  const receipts = partyReceipts({ store, identity, client, log: app.log, exchange: () => ({ name: exchangeName, keys: exchangeKeys }) });
  let receiptTimer: NodeJS.Timeout | undefined;
  let receiptSync: Promise<void> | undefined;
  const jobs = partyJobs({
    venue,
    store,
    identity,
    pool,
    client,
    log: app.log,
    dataFile,
    senderKeys,
    cachedKeys: (name) => keyCache.get(name),
    exchange: () => ({ name: exchangeName, keys: exchangeKeys }),
    logWatch,
    submitting,
  });
  let pin: ExchangePin | undefined;
  let pruning: NoncePruning | undefined;

  /**
   * Checks the identity the exchange presents against the pinned one (kept in
   * this agent's store as its party of role "exchange") or the configured
   * key, pins it on first use, and takes its keys for every envelope.
   */
  const pinExchange = (body: unknown): ExchangePin => {
    const b = (body ?? {}) as Record<string, unknown>;
    const name = b["name"];
    const signing = typeof b["signingPublicKey"] === "string" && /^[0-9a-f]{64}$/.test(b["signingPublicKey"]) ? b["signingPublicKey"] : undefined;
    const box = typeof b["boxPublicKey"] === "string" && /^[0-9a-f]{64}$/.test(b["boxPublicKey"]) ? b["boxPublicKey"] : undefined;
    if (typeof name !== "string" || !isNodeName(name) || signing === undefined || box === undefined) {
      throw new UmbraError("UMBRA_EXCHANGE", "the exchange's identity answer is malformed");
    }
    const keys = { signingPublicKey: Uint8Array.from(Buffer.from(signing, "hex")), boxPublicKey: Uint8Array.from(Buffer.from(box, "hex")) };
    const fp = fingerprint(keys.signingPublicKey);
    const pinned = store.listParties({ role: "exchange" })[0];
    let how: ExchangePin["how"];
    if (o.exchangeKey !== undefined) {
      const want = o.exchangeKey.toLowerCase();
      if (want !== signing && want !== fp) {
        throw new ExchangeKeyMismatchError(`the exchange at ${client.url} presents the key with fingerprint ${fp}, not the one given with --exchange-key; check the URL and the fingerprint its operator published`);
      }
      how = "configured";
    } else if (pinned !== undefined) {
      if (pinned.name !== name || bytesToHex(pinned.signingPublicKey) !== signing || (pinned.boxPublicKey !== null && bytesToHex(pinned.boxPublicKey) !== box)) {
        throw new ExchangeKeyMismatchError(
          `the exchange at ${client.url} presents the key with fingerprint ${fp}, not the one this party pinned (${fingerprint(pinned.signingPublicKey)}); if its operator rotated the key, confirm the new fingerprint with them and start with --exchange-key ${fp}`,
        );
      }
      how = "pinned";
    } else how = "first-use";
    store.transaction(() => {
      // One pinned exchange: a configured key replaces an older pin.
      for (const p of store.listParties({ role: "exchange" })) if (p.name !== name) store.deleteParty(p.name);
      store.putParty({ name, role: "exchange", signingPublicKey: keys.signingPublicKey, boxPublicKey: keys.boxPublicKey, maskPublicKey: null, endpoint: client.url });
    });
    if (how === "first-use") log("pinned the exchange's key on first use", { fingerprint: fp });
    exchangeName = name;
    exchangeKeys = keys;
    return { name, fingerprint: fp, how };
  };

  /**
   * A certificate from the exchange, verified under the pinned key, and its
   * entry in the log this party holds (its head is the one the answer moved
   * this party to, or one it extends). With `contentHash`, it must certify
   * that content.
   */
  const checkedCertificate = (value: unknown, contentHash?: string): VerifiedCertificate => {
    if (exchangeKeys === undefined) throw new InvalidCertificateError("no exchange key is pinned");
    const cert = verifyCertificate(value, exchangeKeys.signingPublicKey);
    if (contentHash !== undefined && (cert.subject.contentHash !== contentHash || cert.subject.owner !== identity.name)) throw new InvalidCertificateError("it certifies other content than this party registered");
    const held = logWatch.head();
    if (held !== undefined && held.size === cert.head.size && held.root !== cert.head.root) throw new InvalidCertificateError("its tree head is not the one this party holds");
    return cert;
  };

  /**
   * Long-polls the mailbox for what is queued after the last delivery seen
   * (from the first one still unacknowledged, after a restart): each goes to
   * its job, and is acknowledged once processed (node/server/party-jobs.ts).
   */
  const poll = async (): Promise<void> => {
    let after = 0;
    while (polling) {
      try {
        const body = await client.binary("GET", `/v1/mailbox?wait=20000&after=${after}`, undefined, 40_000, stopping.signal);
        for (const d of unpackDeliveries(body)) {
          after = Math.max(after, d.id);
          jobs.handle({ id: d.id, frame: Uint8Array.from(d.frame) });
        }
      } catch (err) {
        if (!polling) break;
        app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_NETWORK" }, "mailbox poll failed; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };

  // --------------------------------------------------------------- local API

  // The latest signed tree head of the exchange's log this party accepted, and any inconsistency it found:
  // give the head to `umbra audit verify --head`, to another party (`umbra party check-head`) or to a witness.
  app.get("/v1/exchange/head", async () => {
    const head = logWatch.head();
    if (head === undefined) throw new NotFoundError("this party holds no signed head of the exchange's log yet (it takes one from the exchange's first answer after it registers)");
    const evidence = store.log.evidence().map((e) => ({ reason: e.reason, held: JSON.parse(e.held) as unknown, offered: JSON.parse(e.offered) as unknown, foundAt: new Date(e.foundAt).toISOString() }));
    return { head, exchange: pin?.fingerprint ?? null, inconsistent: evidence };
  });

  // A head of the exchange's log learnt elsewhere (another party's, a witness's): consistent with the one held, or a fork.
  app.post("/v1/exchange/head/check", { schema: { body: { type: "object", additionalProperties: false, required: ["head"], properties: { head: { type: "object" } } } } }, async (req) => {
    const { held, other } = await logWatch.compare((req.body as { head: unknown }).head, async (first, second) => (await client.json<{ proof: unknown }>("GET", `/v1/log/consistency?first=${first}&second=${second}`)).proof);
    return { consistent: true, held, other };
  });

  app.get("/v1/status", async () => ({ name: identity.name, exchange: client.url, runningJobs: jobs.running }));

  app.post(
    "/v1/datasets",
    { schema: { body: LocalDatasetRegistrationSchema }, validatorCompiler: documentBodyValidator },
    async (req, reply) => {
      const body = req.body as { file: string; policy: unknown; update?: boolean };
      const at = data.locate(body.file);
      const id = at.id;
      const existing = store.getDataset(id);
      // Changing a policy is a deliberate act: it needs the flag, and it is logged here and in the exchange's ledger.
      if (existing && body.update !== true) {
        const v = store.latestPolicy(id)?.version ?? 1;
        throw new AlreadyExistsError(`this file is registered already (policy version ${v}); to change its policy or content register it again with update (CLI: --update), which makes version ${v + 1}`);
      }
      if (!existing && body.update === true) throw new NotFoundError("this file is not registered yet: register it without update first");
      // The same steps as the console's check (POST /v1/datasets/check, node/server/party-console.ts).
      const { descriptor, policy } = await data.prepare(at, body.policy);
      const r = await client.json<{ id: string; policyVersion: number; certificate: unknown }>("POST", "/v1/datasets", { descriptor, policy });
      // The data asset certificate, checked under the pinned key: what it certifies is what this agent registered, in the log it holds.
      const cert = checkedCertificate(r.certificate, descriptor.contentHash);
      store.transaction(() => {
        store.putDataset({ id, owner: identity.name, name: at.name, schema: descriptor.schema, rowCount: descriptor.rowCount, contentHash: descriptor.contentHash });
        putPolicyVersion(store, id, policy);
        store.log.putCertificate({ datasetId: id, policyVersion: cert.subject.policyVersion, seq: cert.seq, document: JSON.stringify(r.certificate) });
      });
      if (existing) log("dataset policy changed", { dataset: id, policyVersion: r.policyVersion });
      else log("dataset registered", { dataset: id, policyVersion: r.policyVersion });
      return reply.code(existing ? 200 : 201).send({ id: r.id, policyVersion: r.policyVersion, rows: descriptor.rowCount, contentHash: descriptor.contentHash, updated: existing !== undefined, certificate: r.certificate });
    },
  );

  app.get("/v1/datasets", async () => client.json("GET", "/v1/datasets"));

  // A dataset's data asset certificate, fresh from the exchange and checked here: this party's own, or one its catalog shows it.
  app.get("/v1/datasets/:id/certificate", async (req) => {
    const id = (req.params as { id: string }).id;
    const r = await client.json<{ certificate: unknown }>("GET", `/v1/datasets/${encodeURIComponent(id)}/certificate`);
    const cert = checkedCertificate(r.certificate);
    if (cert.subject.dataset !== id) throw new InvalidCertificateError("it certifies another dataset");
    return { certificate: r.certificate, exchangeKey: exchangeKeys ? bytesToHex(exchangeKeys.signingPublicKey) : null };
  });

  // A dataset's privacy budget: this party's own copy for a dataset it owns (the one it checks before it accepts a job), the exchange's view otherwise (its own line).
  app.get("/v1/datasets/:id/privacy-budget", async (req) => {
    const id = (req.params as { id: string }).id;
    const mine = store.getDataset(id);
    const record = mine?.owner === identity.name ? store.latestPolicy(id) : undefined;
    if (record !== undefined) return privacyBudgetView(store, id, parsePolicy(record.policy), "provider");
    return client.json("GET", `/v1/datasets/${encodeURIComponent(id)}/privacy-budget`);
  });

  app.post("/v1/jobs", { schema: { body: LocalJobRequestSchema }, validatorCompiler: documentBodyValidator }, async (req, reply) => {
    const b = req.body as Record<string, unknown>;
    // Parsed here first: this agent records what it asked for, and runs only a job that is that one.
    const asked = parseJobRequest({ ...b, buyer: identity.name });
    // A warning is advice: one that cannot be worked out (the file unreadable: the job says so when it runs) is none.
    const warnings = await keyShapeWarnings(asked).catch(() => [] as string[]);
    const sent = client.json<{ id: string; protocol: string; providers: string[] }>("POST", "/v1/jobs", asked);
    submitting.add(sent);
    try {
      const job = await sent;
      if (typeof job.id === "string" && !store.getJob(job.id)) {
        store.createJob({ id: job.id, protocol: asked.protocol, buyer: identity.name, providers: Array.isArray(job.providers) ? job.providers : [], params: { request: asked, submitted: true, ...(warnings.length > 0 ? { warnings } : {}) } as never });
      }
      return reply.code(201).send(warnings.length > 0 ? { ...job, warnings } : job);
    } finally {
      submitting.delete(sent);
    }
  });

  /**
   * A job as this party sees it: the exchange's view (which answers only a
   * party of the job), with the buyer's own warnings and, once it succeeded,
   * its own summary. GET /v1/jobs/:id and the console's stream show this.
   */
  const jobViewOf = async (id: string): Promise<Record<string, unknown>> => {
    const view = await client.json<Record<string, unknown>>("GET", `/v1/jobs/${encodeURIComponent(id)}`);
    // The exchange does not keep the result's summary: a job this party bought and finished shows its own.
    const local = store.getJob(id);
    // The key-shape warnings given when it was submitted, to its buyer.
    const warnings = local?.buyer === identity.name ? ((local.params as { warnings?: string[] } | null)?.warnings ?? []) : [];
    if (warnings.length > 0) view["warnings"] = warnings;
    // A result withheld here (below the job's minimum intersection) says so only to its buyer.
    if (local === undefined || local.buyer !== identity.name || local.state !== "succeeded" || view["state"] !== "succeeded") return view;
    return { ...view, ...(local.progress !== null ? { progress: local.progress } : {}), ...(local.reason !== null ? { reason: local.reason } : {}) };
  };

  app.get("/v1/jobs/:id", { logLevel: chattyLogLevel(app) }, async (req) => jobViewOf((req.params as { id: string }).id));

  registerJobList(app, store, identity.name);
  venue.register(app);
  receipts.register(app);

  app.post("/v1/jobs/:id/cancel", async (req) => client.json("POST", `/v1/jobs/${encodeURIComponent((req.params as { id: string }).id)}/cancel`));

  // The web console (docs/console.md): its page and assets, and the routes only it uses.
  await registerConsole(app, { page: "party", ...(o.consoleDir !== undefined ? { dir: o.consoleDir } : {}) });
  const consoleRoutes = await partyConsoleRoutes(app, { store, identity, data, jobView: jobViewOf });

  return {
    app,
    client,
    token,
    openStreams: () => consoleRoutes.openStreams(),
    get exchangePin() {
      return pin;
    },
    get exchangeHead() {
      return logWatch.head();
    },
    async start() {
      // The exchange's keys first: checked against the pinned (or given) key before anything is sent to it.
      pin = pinExchange(await client.json<unknown>("GET", "/v1/identity"));
      pruning ??= scheduleNoncePruning(store, { onError: (err) => app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_INTERNAL" }, "could not prune nonces") });
      const me = publicIdentity(identity);
      await client.json("POST", "/v1/parties", { name: me.name, signingPublicKey: bytesToHex(me.signingPublicKey), boxPublicKey: bytesToHex(me.boxPublicKey), maskPublicKey: bytesToHex(maskKeyPair(identity).publicKey), ...(o.invite !== undefined ? { invite: o.invite } : {}) });
      // Every job open when the agent stopped is taken up where it stopped (docs/durability.md).
      await jobs.resume();
      polling = true;
      pollLoop = poll();
      venue.start();
      const every = o.orderPollMs ?? DEFAULT_ORDER_POLL_MS;
      if (every > 0 && receiptTimer === undefined) {
        receiptTimer = setInterval(() => {
          receiptSync ??= receipts
            .sync()
            .catch((err: unknown) => app.log.warn({ code: err instanceof UmbraError ? err.code : "UMBRA_NETWORK" }, "receipt sync failed; retrying"))
            .finally(() => (receiptSync = undefined));
        }, every);
        receiptTimer.unref();
      }
    },
    async stop() {
      pruning?.stop();
      venue.stop();
      if (receiptTimer !== undefined) clearInterval(receiptTimer);
      receiptTimer = undefined;
      await receiptSync;
      // The console's job streams end now: the server's close waits for open requests.
      consoleRoutes.close();
      polling = false;
      stopping.abort();
      await pollLoop;
      await jobs.drain();
      await app.close();
    },
  };
}
