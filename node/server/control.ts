/** Control messages from the exchange to a party, and the events a party reports back. */
import { InvalidMessageError } from "../../protocols/errors.js";
import { jobDatasets, parseJobRequest, type JobRequest } from "../policy.js";
import { parseSignedContract, type SignedContract } from "../venue/contract.js";

/** Envelope step of exchange control messages (protocol steps start at 1). */
export const CONTROL_STEP = 0;

export const ControlType = { Start: "job.start", Stop: "job.stop" } as const;
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

export type ControlMessage =
  | {
      readonly type: typeof ControlType.Start;
      readonly job: string;
      readonly role: "buyer" | "provider";
      readonly request: JobRequest;
      readonly counterpart: string;
      /** lookup: the product (the provider dataset) and its version (the policy version in force). */
      readonly lookup?: { readonly product: string; readonly version: number };
      /** A job with an exchange-side role: the providers' party names, in provider order (the counterpart is then the exchange). */
      readonly providers?: readonly string[];
      /** Such a job's provider: its index in `providers` (it owns the request's dataset of that index). */
      readonly providerIndex?: number;
      /** federated-aggregate's providers: every provider's registered mask public key (hex), in provider order. */
      readonly peerKeys?: readonly string[];
      /**
       * The job's signed job.submitted ledger entry (its body holds the digest
       * of `request`): the party checks it under the exchange's pinned key, so
       * it runs only a job the ledger records as this one, and keeps the head.
       */
      readonly record: unknown;
      /** The contracts of the job this provider signed (docs/venue.md), each with its three signatures: the provider checks them against its own copies. */
      readonly contracts?: readonly SignedContract[];
    }
  | { readonly type: typeof ControlType.Stop; readonly job: string; readonly reason: string };

export interface JobEvent {
  /** "charged": a provider whose budget counts keys reports the buyer's measured key count (`units`). */
  readonly kind: "accepted" | "refused" | "progress" | "succeeded" | "failed" | "charged";
  readonly units?: number;
  readonly rule?: string;
  readonly reason?: string;
  readonly digest?: string;
  readonly progress?: unknown;
  /** "succeeded": the units the buyer measured, only those a contract of the job prices (docs/venue.md). */
  readonly matchedRows?: number;
  readonly cells?: number;
}

/** The lookup product name of a dataset (a product version is its policy version). */
export function lookupProduct(datasetId: string): string {
  return datasetId.replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 128);
}

/**
 * Parses a control message from the exchange (its envelope already verified):
 * strict JSON shape, the job request through parseJobRequest, the job id bound
 * to the envelope's.
 */
export function parseControl(envelopeJob: string, payload: Uint8Array): ControlMessage {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new InvalidMessageError("control message is not JSON");
  }
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== "object" || o["job"] !== envelopeJob) throw new InvalidMessageError("control message for another job");
  if (o["type"] === ControlType.Stop) {
    if (typeof o["reason"] !== "string" || o["reason"].length > 64) throw new InvalidMessageError("control message: bad reason");
    return { type: ControlType.Stop, job: envelopeJob, reason: o["reason"] };
  }
  if (o["type"] !== ControlType.Start) throw new InvalidMessageError("unknown control message");
  const role = o["role"];
  const counterpart = o["counterpart"];
  if ((role !== "buyer" && role !== "provider") || typeof counterpart !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(counterpart)) {
    throw new InvalidMessageError("control message: bad role or counterpart");
  }
  const request = parseJobRequest(o["request"]);
  const lk = o["lookup"] as { product?: unknown; version?: unknown } | undefined;
  let lookup: { product: string; version: number } | undefined;
  if (lk !== undefined) {
    if (typeof lk?.product !== "string" || !/^[A-Za-z0-9._:-]{1,128}$/.test(lk.product) || !Number.isInteger(lk.version) || (lk.version as number) < 0) {
      throw new InvalidMessageError("control message: bad lookup product");
    }
    lookup = { product: lk.product, version: lk.version as number };
  }
  const multi = parseMultiProvider(o, role, jobDatasets(request).length);
  const record = o["record"];
  if (record === null || typeof record !== "object" || Array.isArray(record)) throw new InvalidMessageError("control message: job.start carries no ledger record");
  const cs = o["contracts"];
  let contracts: SignedContract[] | undefined;
  if (cs !== undefined) {
    const parsed = Array.isArray(cs) && cs.length >= 1 && cs.length <= 16 ? cs.map(parseSignedContract) : [undefined];
    if (parsed.some((c) => c === undefined)) throw new InvalidMessageError("control message: bad contracts");
    contracts = parsed as SignedContract[];
  }
  return { type: ControlType.Start, job: envelopeJob, role, request, counterpart, ...(lookup ? { lookup } : {}), ...multi, record, ...(contracts ? { contracts } : {}) };
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const HEX_KEY = /^[0-9a-f]{64}$/;

/**
 * The fields of job.start for a job with an exchange-side role: absent for a
 * two-party job; else the providers (one name per dataset of the request),
 * and for a provider its index and, when the protocol needs them, the mask
 * keys (one per provider).
 */
function parseMultiProvider(o: Record<string, unknown>, role: "buyer" | "provider", datasets: number): { providers?: string[]; providerIndex?: number; peerKeys?: string[] } {
  const { providers, providerIndex, peerKeys } = o;
  if (providers === undefined) {
    if (providerIndex !== undefined || peerKeys !== undefined) throw new InvalidMessageError("control message: provider fields without the providers");
    return {};
  }
  if (!Array.isArray(providers) || providers.length !== datasets || !providers.every((p) => typeof p === "string" && NAME.test(p)) || new Set(providers).size !== providers.length) {
    throw new InvalidMessageError("control message: bad providers");
  }
  if (role === "buyer") {
    if (providerIndex !== undefined || peerKeys !== undefined) throw new InvalidMessageError("control message: provider fields for the buyer");
    return { providers: providers as string[] };
  }
  if (typeof providerIndex !== "number" || !Number.isInteger(providerIndex) || providerIndex < 0 || providerIndex >= datasets) throw new InvalidMessageError("control message: bad provider index");
  if (peerKeys !== undefined && (!Array.isArray(peerKeys) || peerKeys.length !== datasets || !peerKeys.every((k) => typeof k === "string" && HEX_KEY.test(k)))) {
    throw new InvalidMessageError("control message: bad peer keys");
  }
  return { providers: providers as string[], providerIndex, ...(peerKeys !== undefined ? { peerKeys: peerKeys as string[] } : {}) };
}
