/**
 * lookup: labeled PSI / enrichment over the RFC 9497 OPRF (ristretto255-SHA512).
 *
 * ## Preparation (provider, once per product version)
 *
 * The provider's OPRF key for a product version is
 * DeriveKeyPair(masterSeed, "umbra/lookup/v1/<product>/<version>") — a new
 * version rotates the key. For each distinct key y of its table it computes
 * F = Evaluate(sk, y) (64 bytes) and
 *
 *   tag   = HKDF-SHA256(F, info "umbra/lookup/v1/tag")[0..16]
 *   key   = HKDF-SHA256(F, info "umbra/lookup/v1/aead")[0..32]
 *   sealed = nonce ‖ ChaCha20-Poly1305(key, nonce, labels of every row with key y,
 *                                       aad = product ‖ version ‖ tag)
 *
 * The prepared table (tag, sealed), shuffled, is an Arrow table the node keeps
 * as Arrow IPC and reuses across buyers and restarts. It holds no key and no
 * label in the clear.
 *
 * ## Flow (version 1)
 *
 *   step 1  buyer → provider   LookupHello {product, version, n = distinct buyer keys}
 *   step 2  buyer → provider   Blind(x_i) with a fresh blind per key, in chunks
 *   step 3  provider → buyer   LookupTableInfo {rows, tag size, label schema}
 *   step 4  provider → buyer   BlindEvaluate(sk, ·) of each, same order and chunks
 *   step 5  provider → buyer   the prepared table's (tag, sealed) rows, in chunks
 *
 * The buyer finalises F(x_i), derives tag and key, keeps the sealed rows whose
 * tag it knows, and opens them; its output is its own rows with the
 * provider's label columns (a left join: null where no match, one output row
 * per matching provider row).
 *
 * The provider learns n and refuses n over the buyer's budget
 * (BudgetExceededError); the buyer learns the labels of the keys it holds
 * and the number of prepared rows; the exchange, relaying, sees sizes. The
 * buyer withholds labels under the job's `minIntersection`
 * (BelowMinimumError). Every received element is strictly decoded; messages
 * are bound to job, step and chunk; a refused message leaves the state
 * unchanged. The threat model, the limits and who enforces them, and why it
 * is secure: docs/protocols/lookup.md.
 *
 * References: RFC 9497 (OPRF), RFC 5869 (HKDF), RFC 8439 (ChaCha20-Poly1305);
 * Chen, Huang, Laine, Rindal, "Labeled PSI from fully homomorphic encryption
 * with malicious security" (2018) for the labeled-PSI setting.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  Binary,
  DataType,
  FixedSizeBinary,
  Field,
  makeData,
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  vectorFromArray,
  type Vector,
} from "apache-arrow";
import { InvalidArgumentError, InvalidPointError } from "../engine/errors.js";
import { keysFromTable, type KeyColumn, type KeyOptions } from "../engine/columns/index.js";
import { createGroup, GroupId } from "../engine/group/index.js";
import { oprf } from "../engine/oprf/index.js";
import { distinctKeys, ElementIndex, shuffledOrder } from "../engine/psi/index.js";
import type { CryptoPool } from "../engine/pool/index.js";
import { isJobId, MAX_CHUNK_ELEMENTS, ProtocolName, type ElementBatch, type LookupHello, type LookupTableInfo, type ProtocolMessage, type SealedRows } from "./codec.js";
import { BelowMinimumError, BudgetExceededError, InvalidMessageError, RefusedError, InvalidStateError, ProtocolError, WrongSenderError, WrongStepError } from "./errors.js";
import { RoleName, type Outgoing, type Role } from "./role.js";
import { batches, checkBinding, chunkCount, expectStep, header, pointError } from "./steps.js";

export const LOOKUP_VERSION = 1;
export const LookupStep = { BuyerHello: 1, BuyerBlinded: 2, ProviderInfo: 3, ProviderEvaluated: 4, ProviderSealed: 5 } as const;
export type LookupStep = (typeof LookupStep)[keyof typeof LookupStep];

export const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const AEAD_TAG_BYTES = 16;
const ELEMENT = 32;
export const DEFAULT_LOOKUP_CHUNK = 16_384;
/** Largest sealed label blob of one key (all its rows). */
export const MAX_SEALED_BYTES = 1 << 20;

const META_PRODUCT = "umbra.lookup.product";
const META_VERSION = "umbra.lookup.version";
const META_LABELS = "umbra.lookup.labelSchema";
const META_PUBLIC_KEY = "umbra.lookup.publicKey";
const PRODUCT = /^[A-Za-z0-9._:-]{1,128}$/;

const enc = new TextEncoder();
const INFO_TAG = enc.encode("umbra/lookup/v1/tag");
const INFO_KEY = enc.encode("umbra/lookup/v1/aead");

/** The product's OPRF key pair for one version: rotate by bumping the version. */
export function lookupKeyPair(masterSeed: Uint8Array, product: string, version: number) {
  checkProduct(product, version);
  return oprf.deriveKeyPair(masterSeed, enc.encode(`umbra/lookup/v${LOOKUP_VERSION}/${product}/${version}`));
}

function checkProduct(product: string, version: number): void {
  if (!PRODUCT.test(product)) throw new InvalidArgumentError("product must be 1..128 of [A-Za-z0-9._:-]");
  if (!Number.isInteger(version) || version < 0 || version > 0xffffffff) throw new InvalidArgumentError("product version must be a 32-bit unsigned integer");
}

/** tag and AEAD key of one OPRF output F_k(key). */
export function deriveTagAndKey(f: Uint8Array): { tag: Uint8Array; key: Uint8Array } {
  return { tag: hkdf(sha256, f, undefined, INFO_TAG, TAG_BYTES), key: hkdf(sha256, f, undefined, INFO_KEY, 32) };
}

function aad(product: string, version: number, tag: Uint8Array): Uint8Array {
  const p = enc.encode(product);
  const out = new Uint8Array(p.length + 4 + tag.length);
  out.set(p, 0);
  new DataView(out.buffer).setUint32(p.length, version, true);
  out.set(tag, p.length + 4);
  return out;
}

function seal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: AEAD_TAG_BYTES });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

/** Opens a sealed blob; undefined when it does not authenticate. */
function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < NONCE_BYTES + AEAD_TAG_BYTES) return undefined;
  try {
    const d = createDecipheriv("chacha20-poly1305", key, sealed.subarray(0, NONCE_BYTES), { authTagLength: AEAD_TAG_BYTES });
    d.setAAD(ad, { plaintextLength: sealed.length - NONCE_BYTES - AEAD_TAG_BYTES });
    d.setAuthTag(sealed.subarray(sealed.length - AEAD_TAG_BYTES));
    return Buffer.concat([d.update(sealed.subarray(NONCE_BYTES, sealed.length - AEAD_TAG_BYTES)), d.final()]);
  } catch {
    return undefined;
  }
}

// ----------------------------------------------------------- label values

/** JSON-safe form of a cell: bigints as strings, bytes as base64, dates as epoch ms. */
function cellToJson(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" && !Number.isFinite(v)) return String(v); // NaN, ±Infinity: JSON has no literal for them
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (v instanceof Date) return v.getTime();
  if (typeof v === "object") return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x))) as unknown;
  return v;
}

function cellFromJson(v: unknown, type: DataType): unknown {
  if (v === null || v === undefined) return null;
  const id = type.typeId;
  // Int64/Uint64 (bitWidth 64) come back from strings; Binary from base64.
  if (DataType.isFloat(type) && typeof v === "string") return Number(v);
  if ((type as { bitWidth?: number }).bitWidth === 64 && typeof v === "string") return BigInt(v);
  if ((id === 4 || id === 15) && typeof v === "string") return Uint8Array.from(Buffer.from(v, "base64"));
  return v;
}

/** Schema of the label columns as an Arrow IPC stream with no batches. */
function schemaToBytes(schema: Schema): Uint8Array {
  return RecordBatchStreamWriter.writeAll(new Table(schema)).toUint8Array(true);
}

function schemaFromBytes(bytes: Uint8Array): Schema {
  try {
    const reader = RecordBatchReader.from(bytes);
    reader.open();
    return reader.schema;
  } catch {
    throw new InvalidMessageError("label schema is not an Arrow IPC schema");
  }
}

// --------------------------------------------------------- preparation

export interface PrepareOptions {
  readonly table: Table;
  /** Key columns (several for a composite key). */
  readonly keys: readonly string[];
  /** The label columns a buyer may receive (the policy's allowed output columns). */
  readonly labels: readonly string[];
  readonly normalise?: KeyOptions;
  readonly secretKey: Uint8Array;
  readonly product: string;
  readonly version: number;
  readonly pool: CryptoPool;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

/** A prepared table: columns tag (16 bytes) and sealed (binary), with the product and label schema in its metadata. */
export async function prepareLookupTable(o: PrepareOptions): Promise<Table> {
  checkProduct(o.product, o.version);
  if (o.labels.length === 0) throw new InvalidArgumentError("at least one label column is required");
  const labelFields = o.labels.map((name) => {
    const f = o.table.schema.fields.find((x) => x.name === name);
    if (!f) throw new InvalidArgumentError(`label column "${name}" not found in the provider table`);
    if (o.keys.includes(name)) throw new InvalidArgumentError(`column "${name}" cannot be both a key and a label`);
    return f;
  });
  const keys = keysFromTable(o.table, o.keys, { ...o.normalise, source: "provider table" });
  const d = distinctKeys(keys);
  const outputs = await o.pool.oprfEvaluate(o.secretKey, d.distinct, {
    onProgress: (done, total) => o.onProgress?.("provider: evaluate keys", done, total),
  });
  // Rows of each distinct key, in table order.
  const rowsOf: number[][] = Array.from({ length: d.count }, () => []);
  for (let r = 0; r < keys.length; r++) {
    const k = d.rowToDistinct[r] ?? -1;
    if (k >= 0) rowsOf[k]?.push(r);
  }
  const columns = labelFields.map((f) => o.table.getChild(f.name) as Vector);
  const order = shuffledOrder(d.count);
  const tags = new Uint8Array(d.count * TAG_BYTES);
  const sealed: Uint8Array[] = new Array<Uint8Array>(d.count);
  for (let i = 0; i < d.count; i++) {
    const k = order[i] as number;
    const { tag, key } = deriveTagAndKey(outputs.subarray(k * 64, k * 64 + 64));
    const rows = (rowsOf[k] ?? []).map((r) => columns.map((c) => cellToJson(c.get(r))));
    const plaintext = enc.encode(JSON.stringify(rows));
    if (plaintext.length > MAX_SEALED_BYTES - 64) throw new InvalidArgumentError("the labels of one key exceed 1 MiB");
    tags.set(tag, i * TAG_BYTES);
    sealed[i] = seal(key, plaintext, aad(o.product, o.version, tag));
    if ((i & 0xffff) === 0xffff) o.onProgress?.("provider: seal labels", i + 1, d.count);
  }
  o.onProgress?.("provider: seal labels", d.count, d.count);
  const labelSchema = new Schema(labelFields);
  const tagVector = vectorFromArray(Array.from({ length: d.count }, (_, i) => tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES)), new FixedSizeBinary(TAG_BYTES));
  const sealedVector = vectorFromArray(sealed, new Binary());
  const metadata = new Map([
    [META_PRODUCT, o.product],
    [META_VERSION, String(o.version)],
    [META_LABELS, Buffer.from(schemaToBytes(labelSchema)).toString("base64")],
    // The OPRF public key: lets the provider check, when it loads the table, that it holds the key it was sealed under.
    [META_PUBLIC_KEY, Buffer.from(publicKeyOf(o.secretKey)).toString("hex")],
  ]);
  const schema = new Schema([new Field("tag", new FixedSizeBinary(TAG_BYTES), false), new Field("sealed", new Binary(), false)], metadata);
  const data = makeData({ type: new Struct(schema.fields), length: d.count, nullCount: 0, children: [tagVector.data[0]!, sealedVector.data[0]!] });
  return new Table(schema, [new RecordBatch(schema, data)]);
}

/** The OPRF public key of a secret key (G · sk), checked against a prepared table's. */
function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return oprf.publicKey(secretKey);
}

/**
 * Throws InvalidArgumentError unless `secretKey` is the key `prepared` was
 * sealed under (its public key is in the table's metadata).
 */
export function assertPreparedKey(prepared: Table, secretKey: Uint8Array): void {
  const stored = prepared.schema.metadata.get(META_PUBLIC_KEY);
  if (stored === undefined || stored !== Buffer.from(publicKeyOf(secretKey)).toString("hex")) {
    throw new InvalidArgumentError("the secret key is not the one this prepared table was sealed under (wrong seed, product or version?)");
  }
}

/** The product, version and label schema of a prepared table (e.g. one read back from Arrow IPC). */
export function preparedTableInfo(prepared: Table): { product: string; version: number; labelSchema: Schema; rows: number } {
  const md = prepared.schema.metadata;
  const product = md.get(META_PRODUCT);
  const version = Number(md.get(META_VERSION));
  const labels = md.get(META_LABELS);
  const tag = prepared.schema.fields.find((f) => f.name === "tag");
  const sealed = prepared.schema.fields.find((f) => f.name === "sealed");
  if (product === undefined || labels === undefined || !Number.isInteger(version) || !tag || !sealed) {
    throw new InvalidArgumentError("not a prepared lookup table (metadata or columns missing)");
  }
  if (!(tag.type instanceof FixedSizeBinary) || tag.type.byteWidth !== TAG_BYTES) throw new InvalidArgumentError("prepared table: tag column has the wrong type");
  checkProduct(product, version);
  return { product, version, labelSchema: schemaFromBytes(Uint8Array.from(Buffer.from(labels, "base64"))), rows: prepared.numRows };
}

// ------------------------------------------------------------ states

export interface LookupParams {
  readonly job: string;
  readonly product: string;
  readonly version: number;
  readonly chunkElements?: number;
  /** The buyer releases labels only when at least this many distinct keys matched; default 1 (nothing withheld). */
  readonly minIntersection?: number;
}

export interface LookupContext {
  readonly pool: CryptoPool;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

interface Common {
  readonly protocol: typeof ProtocolName.Lookup;
  readonly version: number;
  readonly job: string;
  readonly product: string;
  readonly productVersion: number;
  readonly chunkElements: number;
  /** The buyer's result is withheld below this many matched distinct keys (absent in older states: 1). */
  readonly minIntersection?: number;
}

export interface LookupBuyerState extends Common {
  readonly role: "buyer";
  readonly rows: number;
  readonly rowToDistinct: Int32Array;
  /** The buyer's distinct keys (it finalises with them). */
  readonly keyData: Uint8Array;
  readonly keyOffsets: Uint32Array;
  readonly queryCount: number;
  /** One blind per distinct key. */
  readonly blinds: Uint8Array;
  readonly infoReceived: boolean;
  readonly tableRows: number;
  readonly tableChunkRows: number;
  readonly labelSchema: Uint8Array;
  readonly evaluated: Uint8Array;
  readonly evaluatedReceived: number;
  /** After finalising: tag and AEAD key per distinct key. */
  readonly tags: Uint8Array;
  readonly aeadKeys: Uint8Array;
  readonly sealedReceived: number;
  /** Per distinct key, its opened label rows as JSON text ("" when none). */
  readonly opened: string[];
}

export interface LookupProviderState extends Common {
  readonly role: "provider";
  readonly secretKey: Uint8Array;
  /** Evaluations this buyer may still ask for. */
  readonly budgetRemaining: number;
  readonly helloReceived: boolean;
  readonly queryCount: number;
  readonly peerChunkElements: number;
  readonly received: number;
}

interface StepResult<S> {
  readonly state: S;
  readonly messages: ProtocolMessage[];
}

function resolve(p: LookupParams): Common {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  checkProduct(p.product, p.version);
  const chunkElements = p.chunkElements ?? DEFAULT_LOOKUP_CHUNK;
  if (!Number.isInteger(chunkElements) || chunkElements < 1 || chunkElements > MAX_CHUNK_ELEMENTS) throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
  const minIntersection = p.minIntersection ?? 1;
  if (!Number.isSafeInteger(minIntersection) || minIntersection < 1) throw new InvalidArgumentError("minIntersection must be a positive integer");
  return { protocol: ProtocolName.Lookup, version: LOOKUP_VERSION, job: p.job, product: p.product, productVersion: p.version, chunkElements, minIntersection };
}

// -------------------------------------------------------------- buyer

/** Starts the buyer: de-duplicates and blinds its keys; returns steps 1 and 2. */
async function lookupBuyerStart(params: LookupParams, keys: KeyColumn, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  const c = resolve(params);
  const d = distinctKeys(keys);
  const group = await createGroup({ group: GroupId.Ristretto255 });
  const blinds = new Uint8Array(d.count * 32);
  for (let i = 0; i < d.count; i++) blinds.set(group.randomScalar(), i * 32);
  const blinded = await ctx.pool.oprfBlind(d.distinct, blinds, { onProgress: (done, total) => ctx.onProgress?.("buyer: blind keys", done, total) });
  const state: LookupBuyerState = {
    ...c,
    role: "buyer",
    rows: keys.length,
    rowToDistinct: d.rowToDistinct,
    keyData: d.distinct.data,
    keyOffsets: d.distinct.offsets,
    queryCount: d.count,
    blinds,
    infoReceived: false,
    tableRows: 0,
    tableChunkRows: 0,
    labelSchema: new Uint8Array(0),
    evaluated: new Uint8Array(d.count * ELEMENT),
    evaluatedReceived: 0,
    tags: new Uint8Array(0),
    aeadKeys: new Uint8Array(0),
    sealedReceived: 0,
    opened: [],
  };
  const hello: LookupHello = {
    kind: "lookupHello",
    header: header(c, LookupStep.BuyerHello, 0, 1),
    product: c.product,
    productVersion: c.productVersion,
    queryCount: d.count,
    chunkElements: c.chunkElements,
  };
  return { state, messages: [hello, ...batches(c, LookupStep.BuyerBlinded, blinded, c.chunkElements, ELEMENT)] };
}

function lookupBuyerDone(s: LookupBuyerState): boolean {
  return s.infoReceived && s.evaluatedReceived === s.queryCount && s.sealedReceived === s.tableRows;
}

/** The buyer takes one message from the provider (steps 3, 4, 5). */
async function lookupBuyerReceive(s: LookupBuyerState, m: ProtocolMessage, ctx: LookupContext): Promise<StepResult<LookupBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (!s.infoReceived) {
    expectStep(m.header, LookupStep.ProviderInfo, 0, 1, "lookupTableInfo", m.kind);
    const info = m as LookupTableInfo;
    if (info.product !== s.product || info.productVersion !== s.productVersion) throw new ProtocolError("the provider answered for another product version");
    if (info.tagSize !== TAG_BYTES) throw new InvalidMessageError(`tags must be ${TAG_BYTES} bytes`);
    if (info.chunkRows < 1) throw new InvalidMessageError("chunk size must be positive");
    schemaFromBytes(info.labelSchema);
    const state: LookupBuyerState = {
      ...s,
      infoReceived: true,
      tableRows: info.rows,
      tableChunkRows: info.chunkRows,
      labelSchema: Uint8Array.from(info.labelSchema),
      opened: new Array<string>(s.queryCount).fill(""),
    };
    return { state: s.queryCount === 0 ? await finalise(state, ctx) : state, messages: [] };
  }
  if (s.evaluatedReceived < s.queryCount) {
    const per = s.chunkElements;
    const chunk = s.evaluatedReceived / per;
    expectStep(m.header, LookupStep.ProviderEvaluated, chunk, chunkCount(s.queryCount, per), "elementBatch", m.kind);
    const b = m as ElementBatch;
    const want = Math.min(per, s.queryCount - s.evaluatedReceived);
    if (b.elementSize !== ELEMENT || b.count !== want) throw new InvalidMessageError(`step 4 chunk ${chunk} must hold ${want} elements of ${ELEMENT} bytes`);
    const group = await createGroup({ group: GroupId.Ristretto255 });
    for (let i = 0; i < b.count; i++) {
      try {
        group.decode(b.elements.subarray(i * ELEMENT, (i + 1) * ELEMENT));
      } catch (e) {
        pointError(e instanceof InvalidPointError ? new InvalidPointError(e.message, i) : e, chunk, per);
      }
    }
    s.evaluated.set(b.elements, s.evaluatedReceived * ELEMENT);
    const state = { ...s, evaluatedReceived: s.evaluatedReceived + b.count };
    return { state: state.evaluatedReceived === s.queryCount ? await finalise(state, ctx) : state, messages: [] };
  }
  if (s.sealedReceived < s.tableRows) {
    const per = s.tableChunkRows;
    const chunk = s.sealedReceived / per;
    expectStep(m.header, LookupStep.ProviderSealed, chunk, chunkCount(s.tableRows, per), "sealedRows", m.kind);
    const r = m as SealedRows;
    const want = Math.min(per, s.tableRows - s.sealedReceived);
    if (r.count !== want) throw new InvalidMessageError(`step 5 chunk ${chunk} must hold ${want} rows`);
    if (r.tags.length !== r.count * TAG_BYTES) throw new InvalidMessageError("step 5: tags do not match the count");
    const offsets = new Uint32Array(r.count + 1);
    const dv = new DataView(r.offsets.buffer, r.offsets.byteOffset, r.offsets.byteLength);
    for (let i = 0; i <= r.count; i++) offsets[i] = dv.getUint32(i * 4, true);
    if (offsets[0] !== 0 || offsets[r.count] !== r.sealed.length) throw new InvalidMessageError("step 5: offsets do not cover the sealed bytes");
    for (let i = 0; i < r.count; i++) {
      const len = (offsets[i + 1] ?? 0) - (offsets[i] ?? 0);
      if (len < NONCE_BYTES + AEAD_TAG_BYTES || len > MAX_SEALED_BYTES) throw new InvalidMessageError("step 5: a sealed row has an invalid length");
    }
    // Open the rows whose tag the buyer derived; all checks passed, so state changes only now.
    const index = ElementIndex.build(s.tags, TAG_BYTES);
    const hits = index.matchAll(r.tags);
    const opened = s.opened.slice();
    const dec = new TextDecoder();
    for (let i = 0; i < r.count; i++) {
      const k = hits[i] ?? -1;
      if (k < 0) continue;
      const tag = r.tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES);
      const plain = open(s.aeadKeys.subarray(k * 32, k * 32 + 32), r.sealed.subarray(offsets[i], offsets[i + 1]), aad(s.product, s.productVersion, tag));
      if (plain === undefined) throw new InvalidMessageError("step 5: a sealed row for a matching tag does not authenticate");
      opened[k] = dec.decode(plain);
    }
    return { state: { ...s, sealedReceived: s.sealedReceived + r.count, opened }, messages: [] };
  }
  throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
}

/** Finalize every evaluated element (in the pool) and derive tags and AEAD keys. */
async function finalise(s: LookupBuyerState, ctx: LookupContext): Promise<LookupBuyerState> {
  const n = s.queryCount;
  const outputs = await ctx.pool.oprfFinalize({ data: s.keyData, offsets: s.keyOffsets }, s.blinds, s.evaluated, {
    onProgress: (done, total) => ctx.onProgress?.("buyer: finalise", done, total),
  });
  const tags = new Uint8Array(n * TAG_BYTES);
  const aeadKeys = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) {
    const { tag, key } = deriveTagAndKey(outputs.subarray(i * 64, i * 64 + 64));
    tags.set(tag, i * TAG_BYTES);
    aeadKeys.set(key, i * 32);
  }
  // The blinds have served their purpose.
  return { ...s, tags, aeadKeys, blinds: new Uint8Array(0) };
}

/**
 * The buyer's output: the label schema and, per distinct key, its label rows (empty when none).
 * @throws BelowMinimumError when fewer distinct keys matched than the job's minIntersection.
 */
function lookupBuyerResult(s: LookupBuyerState): { labelSchema: Schema; rowToDistinct: Int32Array; labelsOf: (distinct: number) => unknown[][] } {
  assertRole(s, "buyer");
  if (!lookupBuyerDone(s)) throw new ProtocolError("the protocol has not finished");
  const min = s.minIntersection ?? 1;
  if (min > 1) {
    let matched = 0;
    for (const text of s.opened) if (text !== "") matched++;
    if (matched < min) throw new BelowMinimumError(min);
  }
  const labelSchema = schemaFromBytes(s.labelSchema);
  const types = labelSchema.fields.map((f) => f.type);
  return {
    labelSchema,
    rowToDistinct: s.rowToDistinct,
    labelsOf: (k: number) => {
      const text = s.opened[k] ?? "";
      if (text === "") return [];
      let rows: unknown;
      try {
        rows = JSON.parse(text);
      } catch {
        throw new InvalidMessageError("a label row does not parse");
      }
      if (!Array.isArray(rows)) throw new InvalidMessageError("a label row does not parse");
      return rows.map((row: unknown) => {
        if (!Array.isArray(row) || row.length !== types.length) throw new InvalidMessageError("a label row has the wrong shape");
        return row.map((v: unknown, j: number) => cellFromJson(v, types[j] as DataType));
      });
    },
  };
}

// ------------------------------------------------------------ provider

export interface LookupProviderOptions {
  readonly secretKey: Uint8Array;
  /** Evaluations this buyer may still ask for (the node persists the budget). */
  readonly budgetRemaining: number;
}

function lookupProviderStart(params: LookupParams, o: LookupProviderOptions): LookupProviderState {
  const c = resolve(params);
  if (!Number.isSafeInteger(o.budgetRemaining) || o.budgetRemaining < 0) throw new InvalidArgumentError("budgetRemaining must be a non-negative integer");
  return { ...c, role: "provider", secretKey: Uint8Array.from(o.secretKey), budgetRemaining: o.budgetRemaining, helloReceived: false, queryCount: 0, peerChunkElements: 0, received: 0 };
}

function lookupProviderDone(s: LookupProviderState): boolean {
  return s.helloReceived && s.received === s.queryCount;
}

/**
 * The provider takes one message from the buyer (steps 1, 2). `prepared` is
 * the prepared table of the state's product version.
 */
async function lookupProviderReceive(s: LookupProviderState, m: ProtocolMessage, prepared: Table, ctx: LookupContext): Promise<StepResult<LookupProviderState>> {
  assertRole(s, "provider");
  checkBinding(s, m.header);
  const info = preparedTableInfo(prepared);
  if (info.product !== s.product || info.version !== s.productVersion) throw new ProtocolError("the prepared table is for another product version");
  if (!s.helloReceived) {
    expectStep(m.header, LookupStep.BuyerHello, 0, 1, "lookupHello", m.kind);
    const h = m as LookupHello;
    if (h.product !== s.product || h.productVersion !== s.productVersion) throw new ProtocolError("the buyer asks for another product version");
    if (h.queryCount > s.budgetRemaining) throw new BudgetExceededError(h.queryCount, s.budgetRemaining);
    if (h.chunkElements < 1) throw new InvalidMessageError("chunk size must be positive");
    const state: LookupProviderState = { ...s, helloReceived: true, queryCount: h.queryCount, peerChunkElements: h.chunkElements, budgetRemaining: s.budgetRemaining - h.queryCount };
    const tableInfo: LookupTableInfo = {
      kind: "lookupTableInfo",
      header: header(s, LookupStep.ProviderInfo, 0, 1),
      product: s.product,
      productVersion: s.productVersion,
      rows: info.rows,
      tagSize: TAG_BYTES,
      labelSchema: schemaToBytes(info.labelSchema),
      chunkRows: s.chunkElements,
    };
    const messages: ProtocolMessage[] = [tableInfo];
    if (h.queryCount === 0) messages.push(...sealedChunks(state, prepared));
    return { state, messages };
  }
  if (s.received >= s.queryCount) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  const per = s.peerChunkElements;
  const chunk = s.received / per;
  const chunks = chunkCount(s.queryCount, per);
  expectStep(m.header, LookupStep.BuyerBlinded, chunk, chunks, "elementBatch", m.kind);
  const b = m as ElementBatch;
  const want = Math.min(per, s.queryCount - s.received);
  if (b.elementSize !== ELEMENT || b.count !== want) throw new InvalidMessageError(`step 2 chunk ${chunk} must hold ${want} elements of ${ELEMENT} bytes`);
  let evaluated: Uint8Array;
  try {
    evaluated = await ctx.pool.multiply({ group: GroupId.Ristretto255 }, s.secretKey, b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
  const state = { ...s, received: s.received + b.count };
  ctx.onProgress?.("provider: blind-evaluate", state.received, s.queryCount);
  const messages: ProtocolMessage[] = [
    { kind: "elementBatch", header: header(s, LookupStep.ProviderEvaluated, chunk, chunks), elementSize: ELEMENT, count: b.count, elements: evaluated },
  ];
  if (state.received === s.queryCount) messages.push(...sealedChunks(state, prepared));
  return { state, messages };
}

/** Step 5: the prepared table in chunks of packed bytes. */
function sealedChunks(s: LookupProviderState, prepared: Table): SealedRows[] {
  const per = s.chunkElements;
  const { tags, offsets, data } = flatPrepared(prepared);
  const n = prepared.numRows;
  const chunks = chunkCount(n, per);
  const out: SealedRows[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c * per;
    const count = Math.min(per, n - start);
    const base = offsets[start] ?? 0;
    const chunkOffsets = new Uint8Array((count + 1) * 4);
    const dv = new DataView(chunkOffsets.buffer);
    for (let i = 0; i <= count; i++) dv.setUint32(i * 4, (offsets[start + i] ?? base) - base, true);
    out.push({
      kind: "sealedRows",
      header: header(s, LookupStep.ProviderSealed, c, chunks),
      count,
      tags: tags.subarray(start * TAG_BYTES, (start + count) * TAG_BYTES),
      offsets: chunkOffsets,
      sealed: data.subarray(base, offsets[start + count] ?? base),
    });
  }
  return out;
}

/** The prepared table's tag and sealed columns as flat buffers (straight from the Arrow buffers, batch by batch). */
function flatPrepared(prepared: Table): { tags: Uint8Array; offsets: Float64Array; data: Uint8Array } {
  const tagIndex = prepared.schema.fields.findIndex((f) => f.name === "tag");
  const sealedIndex = prepared.schema.fields.findIndex((f) => f.name === "sealed");
  if (tagIndex < 0 || sealedIndex < 0) throw new InvalidArgumentError("not a prepared lookup table");
  const n = prepared.numRows;
  const tags = new Uint8Array(n * TAG_BYTES);
  const offsets = new Float64Array(n + 1);
  let total = 0;
  for (const batch of prepared.batches) {
    const sd = batch.data.children[sealedIndex];
    const vo = sd?.valueOffsets as Int32Array | undefined;
    if (sd && vo) total += (vo[sd.offset + sd.length] ?? 0) - (vo[sd.offset] ?? 0);
  }
  const data = new Uint8Array(total);
  let row = 0;
  let at = 0;
  for (const batch of prepared.batches) {
    const td = batch.data.children[tagIndex];
    const sd = batch.data.children[sealedIndex];
    if (!td || !sd || batch.numRows === 0) continue;
    if (td.nullCount > 0 || sd.nullCount > 0) throw new InvalidArgumentError("prepared table: null tag or sealed row");
    const tv = td.values as Uint8Array;
    tags.set(tv.subarray(td.offset * TAG_BYTES, (td.offset + batch.numRows) * TAG_BYTES), row * TAG_BYTES);
    const vo = sd.valueOffsets as Int32Array;
    const first = vo[sd.offset] ?? 0;
    const last = vo[sd.offset + batch.numRows] ?? first;
    data.set((sd.values as Uint8Array).subarray(first, last), at);
    for (let i = 0; i < batch.numRows; i++) offsets[row + i] = at + (vo[sd.offset + i] ?? first) - first;
    at += last - first;
    row += batch.numRows;
    offsets[row] = at;
  }
  return { tags, offsets, data };
}

function assertRole(s: { role?: unknown; protocol?: unknown; version?: unknown }, role: "buyer" | "provider"): void {
  if (!s || s.role !== role || s.protocol !== ProtocolName.Lookup || s.version !== LOOKUP_VERSION) throw new InvalidStateError(`not a lookup ${role} state`);
}


// ------------------------------------------------------------------ roles

/** What the buyer's result holds: its rows' distinct keys and each key's opened label rows. */
export type LookupBuyerResult = ReturnType<typeof lookupBuyerResult>;

/** What the lookup buyer starts from: the job's parameters and its own key column. */
export interface LookupBuyerInit {
  readonly params: LookupParams;
  readonly keys: KeyColumn;
}

/** What the lookup provider starts from: the job's parameters, its key for the product version and the buyer's budget. */
export interface LookupProviderInit extends LookupProviderOptions {
  readonly params: LookupParams;
}

/** The provider's local resources: besides the pool, the prepared table of the job's product version. */
export interface LookupProviderContext extends LookupContext {
  readonly prepared: Table;
}

const to = (r: RoleName, messages: readonly ProtocolMessage[]): Outgoing[] => messages.map((message) => ({ to: r, message }));

/** The lookup buyer: sends steps 1 and 2, takes 3, 4 and 5 from the provider; its result is the labels of its matched keys. */
export const lookupBuyer: Role<LookupBuyerState, LookupBuyerInit, LookupContext, LookupBuyerResult> = {
  async start(init, ctx) {
    const r = await lookupBuyerStart(init.params, init.keys, ctx);
    return { state: r.state, messages: to(RoleName.Provider, r.messages) };
  },
  async receive(state, from, message, ctx) {
    if (from !== RoleName.Provider) throw new WrongSenderError("a lookup buyer takes messages from the provider only");
    const r = await lookupBuyerReceive(state, message, ctx);
    return { state: r.state, messages: to(RoleName.Provider, r.messages) };
  },
  done: lookupBuyerDone,
  result: lookupBuyerResult,
};

/** The lookup provider: waits for the buyer's hello, evaluates its blinded keys within the budget and sends the sealed rows. */
export const lookupProvider: Role<LookupProviderState, LookupProviderInit, LookupProviderContext, undefined> = {
  async start(init) {
    return { state: lookupProviderStart(init.params, init), messages: [] };
  },
  async receive(state, from, message, ctx) {
    if (from !== RoleName.Buyer) throw new WrongSenderError("a lookup provider takes messages from the buyer only");
    const r = await lookupProviderReceive(state, message, ctx.prepared, ctx);
    return { state: r.state, messages: to(RoleName.Buyer, r.messages) };
  },
  done: lookupProviderDone,
  result: () => undefined,
};
