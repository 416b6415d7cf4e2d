/**
 * What every part of the exchange shares: its options, store and identity,
 * the request authentication, the ledger, the catalog's lookups and the
 * control messages it sends parties. The services (the job lifecycle, the
 * exchange-side roles) and the route plugins are built on it
 * (node/server/exchange.ts puts them together).
 */
import type { FastifyBaseLogger, FastifyRequest } from "fastify";
import { UmbraError } from "../../../engine/errors.js";
import type { CryptoPool } from "../../../engine/pool/index.js";
import type { DatasetDescriptor } from "../../schemas/dataset.js";
import { sealEnvelope } from "../../envelope.js";
import type { NodeIdentity } from "../../identity.js";
import { appendEntry, LedgerKind, listEntries, type LedgerEntry } from "../../ledger.js";
import { consistencyProofOf, currentTreeHead, treeSize, type SignedTreeHead } from "../../log/head.js";
import { parsePolicy, type UsagePolicy } from "../../policy.js";
import type { Store } from "../../store.js";
import { verifyRequest } from "../auth.js";
import { CONTROL_STEP, ControlType, type ControlMessage } from "../control.js";
import type { Mailboxes, MailboxLimits } from "../mailbox.js";

export interface ExchangeOptions {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly logger?: boolean | object;
  readonly now?: () => number;
  /** A job with no step, event or progress for this long is failed (default 10 minutes). */
  readonly jobTimeoutMs?: number;
  /** The crypto pool of the exchange's own roles (default: the shared pool, created on first use). */
  readonly pool?: CryptoPool;
  /** Serve over TLS (PEM key and certificate). */
  readonly https?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * Admit any new party name without an invitation (a development switch;
   * default false: a new name registers only with an invitation, see
   * node/admission.ts). Logged as a warning when the exchange is built.
   */
  readonly openRegistration?: boolean;
  /** Byte caps of the relay's queues (node/server/mailbox.ts DEFAULT_MAILBOX_LIMITS). */
  readonly mailboxLimits?: Partial<MailboxLimits>;
  /** How long the exchange's own role waits for room in a recipient's mailbox before it fails the job (default jobTimeoutMs). */
  readonly deliveryWaitMs?: number;
  /** How often remembered nonces past the skew window are forgotten (default a minute). */
  readonly noncePruneIntervalMs?: number;
  /**
   * Serve the log's signed tree head and its proofs (GET /v1/log/…) to anyone,
   * not only to registered parties, so an outside witness can follow it
   * (default false: they show how many entries the ledger holds, nothing more).
   */
  readonly publicLog?: boolean;
  /** Every job must cite a contract covering each of its datasets (docs/venue.md; default: only datasets sold in an active product need one). */
  readonly requireContracts?: boolean;
  /** The built web console's folder (default: dist/console, node/server/console-assets.ts). */
  readonly consoleDir?: string;
  /**
   * The operator's admin token: the admin API (GET /v1/admin/…, the
   * exchange's console) needs `Authorization: Bearer TOKEN` (default: a fresh
   * random one, see ExchangeApp.adminToken; `umbra exchange start` keeps it
   * in a secret file). A party's signature is not enough.
   */
  readonly adminToken?: string;
}

declare module "fastify" {
  interface FastifyRequest {
    rawBody?: Buffer;
    party?: string;
  }
}

/** Room a job.start needs in its recipient's control reserve (a request, a ledger record and keys are far smaller). */
const MAX_START_BYTES = 256 * 1024;


/** An error's code as it may be logged or recorded: a stable UMBRA_* code, or UMBRA_INTERNAL. */
export const codeOf = (err: unknown): string => (err instanceof UmbraError && /^UMBRA_[A-Z_]{1,64}$/.test(err.code) ? err.code : "UMBRA_INTERNAL");

export class ExchangeContext {
  readonly store: Store;
  readonly identity: NodeIdentity;
  readonly now: () => number;
  /** Set once the server closes: the roles stop delivering. */
  closing = false;

  constructor(
    readonly options: ExchangeOptions,
    readonly mailboxes: Mailboxes,
    readonly log: FastifyBaseLogger,
  ) {
    this.store = options.store;
    this.identity = options.identity;
    this.now = options.now ?? Date.now;
  }

  /** Authenticates a party's signed request (not registration): every route's preValidation hook, so nothing of an unauthenticated body is parsed against its schema. */
  readonly auth = async (req: FastifyRequest): Promise<void> => {
    const body = req.rawBody ?? new Uint8Array(0);
    req.party = verifyRequest(req.headers, req.method, req.url, body, {
      lookup: (name) => this.store.getParty(name)?.signingPublicKey,
      remember: (name, nonce, time) => this.store.checkAndRememberNonce(name, nonce, time),
      now: this.now,
    });
    this.#seen.set(req.party, this.now());
  };

  /** When each party last made an authenticated request (bounded by the registered parties). */
  readonly #seen = new Map<string, number>();

  /**
   * Whether `party` looks gone: no poll of its mailbox open now and no
   * request for `quietMs` (a running agent always has a poll open, renewed
   * at least every 20 s). Names the parties a silent job waits for.
   */
  absent(party: string, quietMs: number): boolean {
    return !this.mailboxes.polling(party) && this.now() - (this.#seen.get(party) ?? 0) > quietMs;
  }

  /** When `party` last made an authenticated request since the exchange started (ms since the epoch), or undefined (read-only; the operator's console). */
  lastSeen(party: string): number | undefined {
    return this.#seen.get(party);
  }

  /** Whether `party` has a poll of its mailbox open now. */
  online(party: string): boolean {
    return this.mailboxes.polling(party);
  }

  #head: SignedTreeHead | undefined;
  /** Consistency proofs to the current head, by the size they start from (cleared when the log grows; at most 1,024). */
  readonly #proofs = new Map<number, string[]>();

  /** The log's signed tree head now: signed again only when the log has grown. */
  treeHead(): SignedTreeHead {
    const size = treeSize(this.store);
    if (this.#head?.size !== size) {
      this.#head = currentTreeHead(this.store, this.identity.signing.secretKey, this.now());
      this.#proofs.clear();
    }
    return this.#head;
  }

  /**
   * What every answer to a party carries (the Umbra-Log-Head header): the
   * current signed tree head and the consistency proof to it from the size the
   * party says it holds (its Umbra-Log-Known header), as base64url JSON
   * {head, known, proof}. A known size above the log's gets no proof: the
   * party sees the log shrank.
   */
  logHeadHeader(knownHeader: unknown): string {
    const head = this.treeHead();
    const known = typeof knownHeader === "string" && /^\d{1,15}$/.test(knownHeader) ? Number(knownHeader) : null;
    let proof: string[] | null = null;
    if (known !== null && known <= head.size) {
      proof = this.#proofs.get(known) ?? null;
      if (proof === null) {
        proof = consistencyProofOf(this.store, known, head.size);
        if (this.#proofs.size >= 1024) this.#proofs.clear();
        this.#proofs.set(known, proof);
      }
    }
    return Buffer.from(JSON.stringify({ head, known, proof })).toString("base64url");
  }

  /** Appends a signed entry to the ledger (inside the caller's transaction, when there is one). */
  ledger(kind: LedgerKind, body: Record<string, unknown>, job?: string): LedgerEntry {
    return appendEntry(this.store, this.identity.signing, { kind, ...(job ? { job } : {}), body: body as never });
  }

  /** The sequence number of the exchange's next envelope in `job` (control messages and its role's messages alike; durable, never reused). */
  nextSequence(job: string): number {
    return this.store.durable.takeSequence(job, this.identity.name);
  }

  // ------------------------------------------------ the catalog

  loadPolicy(datasetId: string): UsagePolicy | undefined {
    const p = this.store.latestPolicy(datasetId);
    return p ? parsePolicy(p.policy) : undefined;
  }

  descriptorOf(datasetId: string): DatasetDescriptor | undefined {
    const d = this.store.getDataset(datasetId);
    if (!d) return undefined;
    return { id: d.id, owner: d.owner, name: d.name, schema: d.schema as DatasetDescriptor["schema"], rowCount: d.rowCount, contentHash: d.contentHash, createdAt: new Date(d.createdAt).toISOString() };
  }

  /** Whether a buyer may see a dataset at all (its catalog lists it): the policy's allowed buyers. */
  visibleTo(policy: UsagePolicy, buyer: string): boolean {
    return policy.allowedBuyers === "any" || policy.allowedBuyers.includes(buyer);
  }

  // ------------------------------------------------ control messages to parties

  /** A job's signed job.submitted entry: every job.start carries it, so a party can check its job against the ledger. */
  submittedRecord(job: string): LedgerEntry {
    const e = listEntries(this.store, { job }).find((x) => x.kind === LedgerKind.JobSubmitted);
    if (e === undefined) throw new UmbraError("UMBRA_INTERNAL", "a started job has no submission entry");
    return e;
  }

  /** Seals a control message to `to` and queues it (inside the caller's transaction, when there is one). */
  #queueControl(to: string, message: ControlMessage, kind: "start" | "stop"): void {
    this.mailboxes.commit((relay) => {
      const sequence = this.nextSequence(message.job);
      const frame = sealEnvelope({ job: message.job, step: CONTROL_STEP, sender: this.identity, recipient: to, sequence, payload: new TextEncoder().encode(JSON.stringify(message)), now: this.now });
      relay.insert({ recipient: to, job: message.job, sender: this.identity.name, sequence, kind, frame });
    });
  }

  /** Queues a job.start in the recipient's control reserve; false (nothing queued) when it has no room. */
  sendStart(to: string, message: Extract<ControlMessage, { type: "job.start" }>): boolean {
    if (this.mailboxes.controlRoom(to) < MAX_START_BYTES) return false;
    this.#queueControl(to, message, "start");
    return true;
  }

  /** Whether every one of `parties` has room for a job.start (checked before a submission records anything). */
  startRoom(parties: readonly string[]): boolean {
    return parties.every((p) => this.mailboxes.controlRoom(p) >= MAX_START_BYTES);
  }

  /** Queues a job.stop: always (at most one per job and party; node/server/mailbox.ts); releasing the job's envelopes never drops it. */
  sendStop(to: string, job: string, reason: string): void {
    this.#queueControl(to, { type: ControlType.Stop, job, reason }, "stop");
  }
}
