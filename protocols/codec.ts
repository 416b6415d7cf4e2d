/**
 * The one place protobuf lives: encodes and decodes the protocol messages of
 * `proto/umbra.proto` (embedded in `proto/schema.ts`, so nothing is read from
 * disk). Decoding is strict: a size bound before parsing, then every field
 * checked against its type and range; anything else is an
 * InvalidMessageError. Bytes fields come back as views of the input buffer.
 */
import protobuf from "protobufjs";
import { InvalidMessageError, MessageTooLargeError } from "./errors.js";
import { PROTO_SOURCES } from "./proto/schema.js";

/** The protocols, by the id jobs, policies, messages and the ledger name them with. */
export const ProtocolId = {
  Psi: "psi",
  PsiCardinality: "psi-cardinality",
  PsiOt: "psi-ot",
  Lookup: "lookup",
  FederatedAggregate: "federated-aggregate",
  JoinAggregate: "join-aggregate",
} as const;
export type ProtocolId = (typeof ProtocolId)[keyof typeof ProtocolId];

/** Largest encoded message any protocol accepts (an element chunk of 65,536 × 64 bytes fits). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024 + 4096;
/** Largest number of elements in one chunk. */
export const MAX_CHUNK_ELEMENTS = 65_536;
/** Largest OT-extension matrix chunk (psi-ot step 6). */
export const MAX_MATRIX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes of a psi-ot nonce (and of the buyer's commitment to it). */
export const OT_NONCE_BYTES = 32;

export interface Header {
  readonly job: string;
  readonly protocol: ProtocolId;
  readonly version: number;
  readonly step: number;
  readonly chunk: number;
  readonly chunks: number;
}

export interface PsiHello {
  readonly kind: "psiHello";
  readonly header: Header;
  readonly group: string;
  readonly mode: string;
  readonly setSize: number;
  readonly chunkElements: number;
}
export interface ElementBatch {
  readonly kind: "elementBatch";
  readonly header: Header;
  readonly elementSize: number;
  readonly count: number;
  readonly elements: Uint8Array;
}
export interface LookupHello {
  readonly kind: "lookupHello";
  readonly header: Header;
  readonly product: string;
  readonly productVersion: number;
  readonly queryCount: number;
  readonly chunkElements: number;
}
export interface LookupTableInfo {
  readonly kind: "lookupTableInfo";
  readonly header: Header;
  readonly product: string;
  readonly productVersion: number;
  readonly rows: number;
  readonly tagSize: number;
  readonly labelSchema: Uint8Array;
  readonly chunkRows: number;
}
export interface SealedRows {
  readonly kind: "sealedRows";
  readonly header: Header;
  readonly count: number;
  readonly tags: Uint8Array;
  readonly offsets: Uint8Array;
  readonly sealed: Uint8Array;
}
export interface Refusal {
  readonly kind: "refusal";
  readonly header: Header;
  readonly code: string;
  readonly reason: string;
}
export interface AggregateKey {
  readonly kind: "aggregateKey";
  readonly header: Header;
  readonly polyModulusDegree: number;
  /** Decimal integer (scaled units). */
  readonly maxAbsValue: string;
  readonly scale: number;
  readonly maxRows: number;
  readonly maxLength: number;
  /** 32 hex digits. */
  readonly fingerprint: string;
  readonly publicKey: Uint8Array;
  /** federated-aggregate: true for CKKS (approximate arithmetic); absent or false for BFV. Decoded only when true. */
  readonly approximate?: boolean;
  /** With approximate: log2 of the CKKS scale. */
  readonly precisionBits?: number;
}
export interface AggregateCiphertext {
  readonly kind: "aggregateCiphertext";
  readonly header: Header;
  readonly party: number;
  readonly contributors: number;
  readonly ciphertext: Uint8Array;
}
export interface JoinHello {
  readonly kind: "joinHello";
  readonly header: Header;
  readonly group: string;
  readonly setSize: number;
  readonly chunkElements: number;
  readonly peerSetSize: number;
  readonly peerChunkElements: number;
  readonly groups: number;
}
export interface JoinWeights {
  readonly kind: "joinWeights";
  readonly header: Header;
  readonly count: number;
  /** (count + 1) × uint32 LE. */
  readonly offsets: Uint8Array;
  /** uint32 LE group codes. */
  readonly codes: Uint8Array;
  /** uint32 LE row counts. */
  readonly weights: Uint8Array;
}
export interface JoinCounts {
  readonly kind: "joinCounts";
  readonly header: Header;
  readonly count: number;
  /** count × uint32 LE. */
  readonly counts: Uint8Array;
}
export interface JoinCiphertext {
  readonly kind: "joinCiphertext";
  readonly header: Header;
  readonly column: number;
  readonly firstBlock: number;
  readonly ciphertext: Uint8Array;
}
export interface JoinResult {
  readonly kind: "joinResult";
  readonly header: Header;
  /** uint32 LE released codes. */
  readonly codes: Uint8Array;
  /** uint64 LE COUNT(*) per released code. */
  readonly counts: Uint8Array;
  readonly suppressed: number;
}
/** psi-ot steps 1 and 3 (see protocols/psi-ot). */
export interface OtPsiHello {
  readonly kind: "otPsiHello";
  readonly header: Header;
  readonly setSize: number;
  readonly codeWidth: number;
  readonly chunkElements: number;
  /** 32 bytes: the buyer's nonce commitment, or the provider's nonce. */
  readonly nonce: Uint8Array;
}
/** psi-ot steps 2 and 4: base-OT points. */
export interface OtBaseMessage {
  readonly kind: "otBaseMessage";
  readonly header: Header;
  readonly count: number;
  readonly points: Uint8Array;
}
/** psi-ot step 5: the buyer's nonce. */
export interface OtPsiReveal {
  readonly kind: "otPsiReveal";
  readonly header: Header;
  readonly nonce: Uint8Array;
}
/** psi-ot step 6: whole columns of the extension matrix u. */
export interface OtMatrixChunk {
  readonly kind: "otMatrixChunk";
  readonly header: Header;
  readonly firstColumn: number;
  readonly columns: number;
  readonly data: Uint8Array;
}
export type ProtocolMessage =
  | PsiHello
  | ElementBatch
  | LookupHello
  | LookupTableInfo
  | SealedRows
  | Refusal
  | AggregateKey
  | AggregateCiphertext
  | JoinHello
  | JoinWeights
  | JoinCounts
  | JoinCiphertext
  | JoinResult
  | OtPsiHello
  | OtBaseMessage
  | OtPsiReveal
  | OtMatrixChunk;
export type MessageKind = ProtocolMessage["kind"];

const root = new protobuf.Root();
for (const source of Object.values(PROTO_SOURCES)) protobuf.parse(source, root, { keepCase: false });
const MessageType = root.lookupType("umbra.v1.Message");

const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROTOCOLS = new Set<string>(Object.values(ProtocolId));
const TOKEN = /^[a-z0-9-]{1,32}$/;

/** True when `job` is a well-formed job id (it goes into domain separation tags). */
export function isJobId(job: string): boolean {
  return JOB_ID.test(job);
}

export function encodeMessage(m: ProtocolMessage): Uint8Array {
  const { kind, ...body } = m;
  const bytes = MessageType.encode(MessageType.fromObject({ [kind]: body })).finish();
  if (bytes.length > MAX_MESSAGE_BYTES) throw new MessageTooLargeError(bytes.length, MAX_MESSAGE_BYTES);
  return bytes;
}

type Obj = Record<string, unknown>;

function bad(what: string): never {
  throw new InvalidMessageError(`malformed message: ${what}`);
}

function uint(o: Obj, field: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) bad(`field ${field} out of range`);
  return v;
}

function str(o: Obj, field: string, pattern: RegExp): string {
  const v = o[field];
  if (typeof v !== "string" || !pattern.test(v)) bad(`field ${field} is not valid`);
  return v;
}

function bytes(o: Obj, field: string): Uint8Array {
  const v = o[field];
  if (!(v instanceof Uint8Array)) bad(`field ${field} is missing`);
  return v;
}

function header(o: Obj): Header {
  const h = o["header"];
  if (h === null || typeof h !== "object") bad("header is missing");
  const hh = h as Obj;
  const job = hh["job"];
  if (typeof job !== "string" || !JOB_ID.test(job)) bad("job id is not valid");
  const protocol = hh["protocol"];
  if (typeof protocol !== "string" || !PROTOCOLS.has(protocol)) bad("unknown protocol");
  const chunks = uint(hh, "chunks", 1 << 24);
  const chunk = uint(hh, "chunk", 1 << 24);
  if (chunks < 1 || chunk >= chunks) bad("chunk index out of range");
  return { job, protocol: protocol as ProtocolId, version: uint(hh, "version", 1000), step: uint(hh, "step", 1000), chunk, chunks };
}

/** Decodes one message, strictly. Throws InvalidMessageError / MessageTooLargeError. */
export function decodeMessage(input: Uint8Array, maxBytes: number = MAX_MESSAGE_BYTES): ProtocolMessage {
  if (!(input instanceof Uint8Array)) bad("not bytes");
  if (input.length > maxBytes) throw new MessageTooLargeError(input.length, maxBytes);
  let decoded: protobuf.Message;
  try {
    decoded = MessageType.decode(input);
  } catch {
    bad("not a protocol message");
  }
  const o = MessageType.toObject(decoded, { longs: Number, defaults: true, oneofs: true }) as Obj;
  const kind = o["body"];
  const b = typeof kind === "string" ? (o[kind] as Obj | undefined) : undefined;
  if (!b) bad("empty message");
  const h = header(b);
  switch (kind) {
    case "psiHello":
      return {
        kind,
        header: h,
        group: str(b, "group", TOKEN),
        mode: str(b, "mode", TOKEN),
        setSize: uint(b, "setSize"),
        chunkElements: uint(b, "chunkElements", MAX_CHUNK_ELEMENTS),
      };
    case "elementBatch": {
      const elementSize = uint(b, "elementSize", 1024);
      const count = uint(b, "count", MAX_CHUNK_ELEMENTS);
      const elements = bytes(b, "elements");
      if (elementSize === 0 || count === 0 || elements.length !== elementSize * count) bad("element batch length does not match its count");
      return { kind, header: h, elementSize, count, elements };
    }
    case "lookupHello":
      return {
        kind,
        header: h,
        product: str(b, "product", /^[A-Za-z0-9._:-]{1,128}$/),
        productVersion: uint(b, "productVersion", 0xffffffff),
        queryCount: uint(b, "queryCount"),
        chunkElements: uint(b, "chunkElements", MAX_CHUNK_ELEMENTS),
      };
    case "lookupTableInfo":
      return {
        kind,
        header: h,
        product: str(b, "product", /^[A-Za-z0-9._:-]{1,128}$/),
        productVersion: uint(b, "productVersion", 0xffffffff),
        rows: uint(b, "rows"),
        tagSize: uint(b, "tagSize", 64),
        labelSchema: bytes(b, "labelSchema"),
        chunkRows: uint(b, "chunkRows", MAX_CHUNK_ELEMENTS),
      };
    case "sealedRows": {
      const count = uint(b, "count", MAX_CHUNK_ELEMENTS);
      const offsets = bytes(b, "offsets");
      if (count === 0 || offsets.length !== (count + 1) * 4) bad("sealed rows offsets do not match the count");
      return { kind, header: h, count, tags: bytes(b, "tags"), offsets, sealed: bytes(b, "sealed") };
    }
    case "aggregateKey": {
      const publicKey = bytes(b, "publicKey");
      if (publicKey.length === 0) bad("public key is empty");
      return {
        kind,
        header: h,
        polyModulusDegree: uint(b, "polyModulusDegree", 65_536),
        maxAbsValue: str(b, "maxAbsValue", /^[1-9][0-9]{0,99}$/),
        scale: uint(b, "scale", 18),
        maxRows: uint(b, "maxRows"),
        maxLength: uint(b, "maxLength", 0xffffffff),
        fingerprint: str(b, "fingerprint", /^[0-9a-f]{32}$/),
        publicKey,
        ...approximateFields(b),
      };
    }
    case "aggregateCiphertext": {
      const ciphertext = bytes(b, "ciphertext");
      if (ciphertext.length === 0) bad("ciphertext is empty");
      return { kind, header: h, party: uint(b, "party", 0xffff), contributors: uint(b, "contributors", 0xffff), ciphertext };
    }
    case "joinHello":
      return {
        kind,
        header: h,
        group: str(b, "group", TOKEN),
        setSize: uint(b, "setSize"),
        chunkElements: uint(b, "chunkElements", MAX_CHUNK_ELEMENTS),
        peerSetSize: uint(b, "peerSetSize"),
        peerChunkElements: uint(b, "peerChunkElements", MAX_CHUNK_ELEMENTS),
        groups: uint(b, "groups", 1 << 20),
      };
    case "joinWeights": {
      const count = uint(b, "count", MAX_CHUNK_ELEMENTS);
      const offsets = bytes(b, "offsets");
      const codes = bytes(b, "codes");
      const weights = bytes(b, "weights");
      if (count === 0 || offsets.length !== (count + 1) * 4) bad("join weights offsets do not match the count");
      if (codes.length % 4 !== 0 || weights.length !== codes.length) bad("join weights codes and weights differ in length");
      return { kind, header: h, count, offsets, codes, weights };
    }
    case "joinCounts": {
      const count = uint(b, "count", MAX_CHUNK_ELEMENTS);
      const counts = bytes(b, "counts");
      if (count === 0 || counts.length !== count * 4) bad("join counts length does not match the count");
      return { kind, header: h, count, counts };
    }
    case "joinCiphertext": {
      const ciphertext = bytes(b, "ciphertext");
      if (ciphertext.length === 0) bad("ciphertext is empty");
      return { kind, header: h, column: uint(b, "column", 1024), firstBlock: uint(b, "firstBlock", 1 << 24), ciphertext };
    }
    case "joinResult": {
      const codes = bytes(b, "codes");
      const counts = bytes(b, "counts");
      if (codes.length % 4 !== 0 || counts.length !== codes.length * 2) bad("join result codes and counts do not match");
      return { kind, header: h, codes, counts, suppressed: uint(b, "suppressed", 1 << 20) };
    }
    case "otPsiHello":
      return {
        kind,
        header: h,
        setSize: uint(b, "setSize"),
        codeWidth: uint(b, "codeWidth", 512),
        chunkElements: uint(b, "chunkElements", MAX_CHUNK_ELEMENTS),
        nonce: exactBytes(b, "nonce", OT_NONCE_BYTES),
      };
    case "otBaseMessage": {
      const count = uint(b, "count", 4096);
      const points = bytes(b, "points");
      if (count === 0 || points.length === 0 || points.length % 32 !== 0 || points.length > count * 32 + 64) bad("base OT points do not match the count");
      return { kind, header: h, count, points };
    }
    case "otPsiReveal":
      return { kind, header: h, nonce: exactBytes(b, "nonce", OT_NONCE_BYTES) };
    case "otMatrixChunk": {
      const columns = uint(b, "columns", 512);
      const data = bytes(b, "data");
      if (columns === 0 || data.length === 0 || data.length % (4 * columns) !== 0 || data.length > MAX_MATRIX_CHUNK_BYTES) bad("matrix chunk length does not match its columns");
      return { kind, header: h, firstColumn: uint(b, "firstColumn", 511), columns, data };
    }
    case "refusal":
      return { kind, header: h, code: str(b, "code", /^UMBRA_[A-Z_]{1,64}$/), reason: str(b, "reason", /^[\x20-\x7e]{0,512}$/) };
    default:
      return bad("unknown message kind");
  }
}

function exactBytes(o: Obj, field: string, length: number): Uint8Array {
  const v = bytes(o, field);
  if (v.length !== length) bad(`field ${field} must be ${length} bytes`);
  return v;
}

/** AggregateKey's approximate fields (present in the decoded message only when approximate is true). */
function approximateFields(b: Obj): { approximate?: true; precisionBits?: number } {
  const approximate = b["approximate"];
  if (typeof approximate !== "boolean") bad("field approximate is not a boolean");
  const precisionBits = uint(b, "precisionBits", 64);
  if (!approximate) {
    if (precisionBits !== 0) bad("field precisionBits is set without approximate");
    return {};
  }
  return { approximate: true, precisionBits };
}
