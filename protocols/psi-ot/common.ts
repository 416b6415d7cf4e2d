/**
 * psi-ot, what both roles share: the job's parameters, the steps, the seed
 * derivation from both sides' nonces, the chunking of the extension matrix
 * and the hello checks. The roles are buyer.ts and provider.ts; the flow and
 * what each side learns are in index.ts.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../../engine/errors.js";
import { createGroup, GroupId, type Group } from "../../engine/group/index.js";
import { CODE_WIDTH, loadBlake2b, wordsFor, type Blake2b512 } from "../../engine/ot/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { isJobId, MAX_CHUNK_ELEMENTS, MAX_MATRIX_CHUNK_BYTES, OT_NONCE_BYTES, ProtocolId, type OtPsiHello, type ProtocolMessage } from "../codec.js";
import { InvalidMessageError, ProtocolError, WrongSenderError } from "../errors.js";
import { RoleName, type Outgoing, type Step } from "../role.js";
import { assertState } from "../state.js";
import { checkBinding, chunkCount, expectStep, header } from "../steps.js";

export const PSI_OT_VERSION = 1;

export const PsiOtStep = { BuyerHello: 1, BuyerBaseOt: 2, ProviderHello: 3, ProviderBaseOt: 4, BuyerReveal: 5, BuyerMatrix: 6, ProviderTags: 7 } as const;
export type PsiOtStep = (typeof PsiOtStep)[keyof typeof PsiOtStep];

export const DEFAULT_TAG_CHUNK = 65_536;
export const DEFAULT_MAX_SET_SIZE = 100_000_000;

/** What both roles of one job agree on (from the job, not from messages). */
export interface PsiOtParams {
  readonly job: string;
  /** Tags per chunk the provider sends (default 65,536, the most). The buyer ignores it. */
  readonly chunkElements?: number;
  /** Columns of u per step-6 chunk the buyer sends (default: as many as fit in 4 MiB). The provider ignores it. */
  readonly matrixColumns?: number;
  /** Largest set the other side may announce (default 10^8). On the provider: the job's maxBuyerKeys. */
  readonly maxPeerSetSize?: number;
  /** The buyer withholds its result when fewer distinct keys matched (default 1: nothing withheld). */
  readonly minIntersection?: number;
}

/** Local resources: not part of the state. */
export interface PsiOtContext {
  /** The worker pool for the bulk stages (digests, tags); without one they run on this thread, with the same bytes. */
  readonly pool?: CryptoPool;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

export interface Common {
  readonly protocol: ProtocolId;
  readonly version: number;
  readonly job: string;
  readonly chunkElements: number;
  readonly maxPeerSetSize: number;
  readonly minIntersection: number;
  /** This side's distinct non-null keys. */
  readonly setSize: number;
  readonly peerSetSize: number;
  /** Buyer: columns of u per chunk it sends; provider: as the buyer announced (0 before its hello). */
  readonly matrixColumns: number;
  /** This side's 32-byte nonce. */
  readonly nonce: Uint8Array;
}

export function resolveParams(p: PsiOtParams) {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  const chunkElements = p.chunkElements ?? DEFAULT_TAG_CHUNK;
  if (!Number.isInteger(chunkElements) || chunkElements < 1 || chunkElements > MAX_CHUNK_ELEMENTS) throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
  const maxPeerSetSize = p.maxPeerSetSize ?? DEFAULT_MAX_SET_SIZE;
  if (!Number.isSafeInteger(maxPeerSetSize) || maxPeerSetSize < 0) throw new InvalidArgumentError("maxPeerSetSize must be a non-negative integer");
  const matrixColumns = p.matrixColumns ?? CODE_WIDTH;
  if (!Number.isInteger(matrixColumns) || matrixColumns < 1 || matrixColumns > CODE_WIDTH) throw new InvalidArgumentError(`matrixColumns must be 1..${CODE_WIDTH}`);
  const minIntersection = p.minIntersection ?? 1;
  if (!Number.isSafeInteger(minIntersection) || minIntersection < 1) throw new InvalidArgumentError("minIntersection must be a positive integer");
  return { protocol: ProtocolId.PsiOt, version: PSI_OT_VERSION, job: p.job, chunkElements, matrixColumns, maxPeerSetSize, minIntersection };
}

const utf8 = new TextEncoder();
const prefixed = (s: string): Uint8Array => {
  const b = utf8.encode(s);
  const out = new Uint8Array(2 + b.length);
  new DataView(out.buffer).setUint16(0, b.length, true);
  out.set(b, 2);
  return out;
};

/** The buyer's commitment to its nonce: SHA-256("umbra/psi-ot/v1/commit" ‖ job ‖ nonce). */
export function nonceCommitment(job: string, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(prefixed("umbra/psi-ot/v1/commit")).update(prefixed(job)).update(nonce).digest());
}

/**
 * The job's seeds from both nonces: SHA-256("umbra/psi-ot/v1/seeds" ‖ job ‖
 * buyer nonce ‖ provider nonce); bytes 0..16 key the cuckoo / simple hashing
 * (engine/psi/cuckoo.ts), bytes 16..32 the pseudorandom code (engine/ot/code.ts).
 */
export function jobSeeds(job: string, buyerNonce: Uint8Array, providerNonce: Uint8Array): { hashing: Uint8Array; code: Uint8Array } {
  if (buyerNonce.length !== OT_NONCE_BYTES || providerNonce.length !== OT_NONCE_BYTES) throw new InvalidArgumentError("psi-ot nonces are 32 bytes");
  const d = new Uint8Array(createHash("sha256").update(prefixed("umbra/psi-ot/v1/seeds")).update(prefixed(job)).update(buyerNonce).update(providerNonce).digest());
  return { hashing: d.slice(0, 16), code: d.slice(16, 32) };
}

/** Bytes of one column of u for m OT rows: 4·⌈m/32⌉. */
export const columnBytes = (rows: number): number => 4 * wordsFor(rows);

/** The most columns of u a chunk may hold for m OT rows: MAX_MATRIX_CHUNK_BYTES of whole columns (at least one). */
export const maxMatrixColumns = (rows: number): number => Math.max(1, Math.min(CODE_WIDTH, Math.floor(MAX_MATRIX_CHUNK_BYTES / columnBytes(rows))));

/** How u (w columns) travels: `perChunk` whole columns a chunk. */
export function matrixChunking(rows: number, perChunk: number): { columnBytes: number; perChunk: number; chunks: number } {
  return { columnBytes: columnBytes(rows), perChunk, chunks: chunkCount(CODE_WIDTH, perChunk) };
}

export function hello(s: Common, step: PsiOtStep, nonce: Uint8Array, chunkElements: number): OtPsiHello {
  return { kind: "otPsiHello", header: header(s, step, 0, 1), setSize: s.setSize, codeWidth: CODE_WIDTH, chunkElements, nonce };
}

/** Checks a hello's binding, step, code width and announced size (`tooMany` is the error for a set over the limit). */
export function checkHello(s: Common, m: ProtocolMessage, step: PsiOtStep, tooMany: (announced: number) => Error): OtPsiHello {
  checkBinding(s, m.header);
  expectStep(m.header, step, 0, 1, "otPsiHello", m.kind);
  const h = m as OtPsiHello;
  if (h.codeWidth !== CODE_WIDTH) throw new ProtocolError(`the other side uses code width ${h.codeWidth}, this job uses ${CODE_WIDTH}`);
  if (h.setSize > s.maxPeerSetSize) throw tooMany(h.setSize);
  return h;
}

export function expectFrom(from: RoleName, want: RoleName): void {
  if (from !== want) throw new WrongSenderError(`a psi-ot ${want === RoleName.Provider ? "buyer" : "provider"} takes messages from the ${want} only`);
}

export const assertRole = (s: { role?: unknown } | null | undefined, role: "buyer" | "provider"): void => assertState(s as never, { protocols: [ProtocolId.PsiOt], role, version: PSI_OT_VERSION });

export const addressed = <S>(to: RoleName, state: S, messages: readonly ProtocolMessage[]): Step<S> => ({ state, messages: messages.map((message): Outgoing => ({ to, message })) });

export function invalid(what: string): never {
  throw new InvalidMessageError(what);
}

let blake: Promise<Blake2b512> | undefined;
let ristretto: Promise<Group> | undefined;
/** BLAKE2b-512 (sodium-native or node:crypto), loaded once. */
export const blake2b = (): Promise<Blake2b512> => (blake ??= loadBlake2b());
/** ristretto255, the base OTs' group, created once. */
export const baseOtGroup = (): Promise<Group> => (ristretto ??= createGroup({ group: GroupId.Ristretto255 }));
