/**
 * lookup's preparation: the provider's OPRF key per product version, and
 * the prepared table of (tag, sealed labels) it serves every buyer from —
 * see protocols/lookup/index.ts for the protocol and docs/protocols/lookup.md.
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
import { InvalidArgumentError } from "../../engine/errors.js";
import { keysFromTable, type KeyOptions } from "../../engine/columns/index.js";
import { oprf } from "../../engine/oprf/index.js";
import { distinctKeys, shuffledOrder } from "../../engine/psi/index.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { InvalidMessageError } from "../errors.js";
import { checkOptions, SIDE_RENAMED, type OptionShape } from "../options.js";

export const LOOKUP_VERSION = 1;
export const LookupStep = { BuyerHello: 1, BuyerBlinded: 2, ProviderInfo: 3, ProviderEvaluated: 4, ProviderSealed: 5 } as const;
export type LookupStep = (typeof LookupStep)[keyof typeof LookupStep];

export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
export const ELEMENT = 32;
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

export function checkProduct(product: string, version: number): void {
  if (!PRODUCT.test(product)) throw new InvalidArgumentError("product must be 1..128 of [A-Za-z0-9._:-]");
  if (!Number.isInteger(version) || version < 0 || version > 0xffffffff) throw new InvalidArgumentError("product version must be a 32-bit unsigned integer");
}

/** tag and AEAD key of one OPRF output F_k(key). */
export function deriveTagAndKey(f: Uint8Array): { tag: Uint8Array; key: Uint8Array } {
  return { tag: hkdf(sha256, f, undefined, INFO_TAG, TAG_BYTES), key: hkdf(sha256, f, undefined, INFO_KEY, 32) };
}

export function aad(product: string, version: number, tag: Uint8Array): Uint8Array {
  const p = enc.encode(product);
  const out = new Uint8Array(p.length + 4 + tag.length);
  out.set(p, 0);
  new DataView(out.buffer).setUint32(p.length, version, true);
  out.set(tag, p.length + 4);
  return out;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: AEAD_TAG_BYTES });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

/** Opens a sealed blob; undefined when it does not authenticate. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
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
export function cellToJson(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" && !Number.isFinite(v)) return String(v); // NaN, ±Infinity: JSON has no literal for them
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (v instanceof Date) return v.getTime();
  if (typeof v === "object") return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x))) as unknown;
  return v;
}

export function cellFromJson(v: unknown, type: DataType): unknown {
  if (v === null || v === undefined) return null;
  const id = type.typeId;
  // Int64/Uint64 (bitWidth 64) come back from strings; Binary from base64.
  if (DataType.isFloat(type) && typeof v === "string") return Number(v);
  if ((type as { bitWidth?: number }).bitWidth === 64 && typeof v === "string") return BigInt(v);
  if ((id === 4 || id === 15) && typeof v === "string") return Uint8Array.from(Buffer.from(v, "base64"));
  return v;
}

/** Schema of the label columns as an Arrow IPC stream with no batches. */
export function schemaToBytes(schema: Schema): Uint8Array {
  return RecordBatchStreamWriter.writeAll(new Table(schema)).toUint8Array(true);
}

export function schemaFromBytes(bytes: Uint8Array): Schema {
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
  /** Default: the shared pool (getPool()). */
  readonly pool?: CryptoPool;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

/** The options prepareLookupTable takes (checked at run time: an unknown one is an UnknownOptionError). */
export const PREPARE_LOOKUP_OPTIONS: OptionShape = {
  names: ["table", "keys", "labels", "normalise", "secretKey", "product", "version", "pool", "onProgress"],
  required: ["table", "keys", "labels", "secretKey", "product", "version"],
  renamed: SIDE_RENAMED,
};

/** A prepared table: columns tag (16 bytes) and sealed (binary), with the product and label schema in its metadata. */
export async function prepareLookupTable(o: PrepareOptions): Promise<Table> {
  checkOptions("prepareLookupTable", o, PREPARE_LOOKUP_OPTIONS);
  const pool = o.pool ?? getPool();
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
  const outputs = await pool.oprfEvaluate(o.secretKey, d.distinct, {
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
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
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

