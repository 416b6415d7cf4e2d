/**
 * The node envelope on the wire: encodes and decodes `umbra.v1.Envelope`
 * (`proto/envelope.proto`, embedded in `proto/schema.ts`), and defines the
 * bytes its signature and its AEAD cover. Like `codec.ts` this stops at bytes:
 * the keys, the signing and the encryption live in `node/envelope.ts`.
 *
 * Decoding is strict: a size bound before parsing; every field checked
 * against its type and range (names, job id, 16-byte nonce, 64-byte
 * signature, a 32-byte ephemeral key exactly when encrypted); and the input
 * must be the one canonical encoding of those fields — the bytes
 * `encodeEnvelope` produces (fields in number order, minimal varints, proto3
 * defaults omitted, no unknown or repeated fields). So an envelope has one
 * encoding, and a relay cannot add bytes that the signature does not cover.
 * Anything else is an InvalidMessageError. Bytes fields come back as plain
 * Uint8Array views of the input buffer.
 *
 * Signed bytes (`envelopeSignedBytes`), with lp(x) = u32be(len(x)) || x and
 * all integers big-endian:
 *
 *   lp("umbra.v1.Envelope/signature") || envelopeFields || lp(payload)
 *
 *   envelopeFields = lp(utf8(job)) || u32be(step) || lp(utf8(sender))
 *     || lp(utf8(recipient)) || u64be(sequence) || u64be(timestamp_ms)
 *     || lp(nonce) || u8(encrypted ? 1 : 0) || lp(ephemeral_public_key)
 *
 * i.e. every field but `signature`, each at a fixed position and
 * length-prefixed, so no two envelopes share signed bytes. The AEAD's
 * associated data (`envelopeAad`) is the same without the payload and under
 * its own tag: lp("umbra.v1.Envelope/aad") || envelopeFields. The HKDF info
 * of an encrypted payload (`envelopeSealInfo`) is
 * lp("umbra.v1.Envelope/seal") || lp(utf8(job)) || u32be(step)
 * || lp(utf8(sender)) || lp(utf8(recipient)) || u64be(sequence).
 */
import protobuf from "protobufjs";
import { isJobId } from "./codec.js";
import { InvalidMessageError, MessageTooLargeError } from "./errors.js";
import { PROTO_SOURCES } from "./proto/schema.js";

/** 16 random bytes, unique per sender. */
export type EnvelopeNonceBytes = Uint8Array;
/** An Ed25519 signature (64 bytes). */
export type SignatureBytes = Uint8Array;
/** An X25519 public key (32 bytes). */
export type X25519PublicKeyBytes = Uint8Array;

export const ENVELOPE_NONCE_BYTES = 16;
export const ENVELOPE_SIGNATURE_BYTES = 64;
export const ENVELOPE_EPHEMERAL_KEY_BYTES = 32;
/** ChaCha20-Poly1305 tag at the end of an encrypted payload. */
export const ENVELOPE_AEAD_TAG_BYTES = 16;
/**
 * Upper bound on everything in an encoded envelope but its payload (names,
 * job id, integers, nonce, keys, signature and their protobuf tags are under
 * 500 bytes): an envelope whose payload is at most P bytes encodes to at most
 * P + ENVELOPE_OVERHEAD_BYTES.
 */
export const ENVELOPE_OVERHEAD_BYTES = 1024;

export interface Envelope {
  readonly job: string;
  readonly step: number;
  readonly sender: string;
  readonly recipient: string;
  readonly sequence: number;
  readonly timestampMs: number;
  readonly nonce: EnvelopeNonceBytes;
  /** Plaintext, or ciphertext followed by its 16-byte tag when `encrypted`. */
  readonly payload: Uint8Array;
  readonly encrypted: boolean;
  /** 32 bytes when `encrypted`, empty otherwise. */
  readonly ephemeralPublicKey: X25519PublicKeyBytes;
  readonly signature: SignatureBytes;
}

/** Every field but the signature: what is signed. */
export type UnsignedEnvelope = Omit<Envelope, "signature">;

const NODE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** True when `name` is a well-formed node name: 1..64 of [A-Za-z0-9._-]. */
export function isNodeName(name: string): boolean {
  return NODE_NAME.test(name);
}

const root = new protobuf.Root();
const source = PROTO_SOURCES["envelope.proto"];
if (source === undefined) throw new Error("envelope.proto is not embedded: run node scripts/gen-proto.mjs");
protobuf.parse(source, root, { keepCase: false });
const EnvelopeType = root.lookupType("umbra.v1.Envelope");

function bad(what: string): never {
  throw new InvalidMessageError(`malformed envelope: ${what}`);
}

/** Checks every field against its type and range; throws InvalidMessageError naming the field only. */
function check(e: Envelope): void {
  if (typeof e.job !== "string" || !isJobId(e.job)) bad("job id is not valid");
  if (!Number.isInteger(e.step) || e.step < 0 || e.step > 0xffffffff) bad("field step out of range");
  if (typeof e.sender !== "string" || !isNodeName(e.sender)) bad("sender is not a valid node name");
  if (typeof e.recipient !== "string" || !isNodeName(e.recipient)) bad("recipient is not a valid node name");
  if (!Number.isSafeInteger(e.sequence) || e.sequence < 0) bad("field sequence out of range");
  if (!Number.isSafeInteger(e.timestampMs) || e.timestampMs < 0) bad("field timestamp_ms out of range");
  if (!(e.nonce instanceof Uint8Array) || e.nonce.length !== ENVELOPE_NONCE_BYTES) bad("nonce must be 16 bytes");
  if (!(e.payload instanceof Uint8Array)) bad("payload is not bytes");
  if (typeof e.encrypted !== "boolean") bad("field encrypted is not a boolean");
  if (!(e.ephemeralPublicKey instanceof Uint8Array)) bad("ephemeral public key is not bytes");
  if (e.encrypted) {
    if (e.ephemeralPublicKey.length !== ENVELOPE_EPHEMERAL_KEY_BYTES) bad("an encrypted envelope needs a 32-byte ephemeral public key");
    if (e.payload.length < ENVELOPE_AEAD_TAG_BYTES) bad("encrypted payload is shorter than its tag");
  } else if (e.ephemeralPublicKey.length !== 0) {
    bad("a plaintext envelope carries no ephemeral public key");
  }
  if (!(e.signature instanceof Uint8Array) || e.signature.length !== ENVELOPE_SIGNATURE_BYTES) bad("signature must be 64 bytes");
}

/** Encodes an envelope (canonically: proto3 defaults omitted). Throws InvalidMessageError on an invalid field. */
export function encodeEnvelope(e: Envelope): Uint8Array {
  check(e);
  const o: Record<string, unknown> = {
    job: e.job,
    sender: e.sender,
    recipient: e.recipient,
    nonce: e.nonce,
    signature: e.signature,
  };
  if (e.step !== 0) o["step"] = e.step;
  if (e.sequence !== 0) o["sequence"] = e.sequence;
  if (e.timestampMs !== 0) o["timestampMs"] = e.timestampMs;
  if (e.payload.length !== 0) o["payload"] = e.payload;
  if (e.encrypted) {
    o["encrypted"] = true;
    o["ephemeralPublicKey"] = e.ephemeralPublicKey;
  }
  return EnvelopeType.encode(EnvelopeType.fromObject(o)).finish();
}

type Obj = Record<string, unknown>;

function str(o: Obj, field: string): string {
  const v = o[field];
  if (typeof v !== "string") bad(`field ${field} is not a string`);
  return v;
}

function u64(o: Obj, field: string): number {
  // longs: String, so a value past 2^53 is seen as such and not rounded.
  const v = o[field];
  if (typeof v !== "string" || !/^[0-9]{1,20}$/.test(v) || BigInt(v) > BigInt(Number.MAX_SAFE_INTEGER)) bad(`field ${field} out of range`);
  return Number(v);
}

function u32(o: Obj, field: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(`field ${field} out of range`);
  return v;
}

function bytes(o: Obj, field: string): Uint8Array {
  const v = o[field];
  if (!(v instanceof Uint8Array)) bad(`field ${field} is not bytes`);
  // A plain Uint8Array view (protobufjs gives Buffers on Node), no copy.
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  // Native comparison, not noble's equalBytes: an envelope carries up to 16 MB (a byte loop took tens of ms on the MB-sized ones); nothing here is secret.
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Decodes one envelope, strictly (see the file header). Does not verify the
 * signature. Throws MessageTooLargeError when `input` is longer than
 * `maxBytes`, InvalidMessageError otherwise.
 */
export function decodeEnvelope(input: Uint8Array, maxBytes: number): Envelope {
  if (!(input instanceof Uint8Array)) bad("not bytes");
  if (input.length > maxBytes) throw new MessageTooLargeError(input.length, maxBytes);
  let decoded: protobuf.Message;
  try {
    decoded = EnvelopeType.decode(input);
  } catch {
    bad("not an envelope");
  }
  const o = EnvelopeType.toObject(decoded, { longs: String, defaults: true }) as Obj;
  const e: Envelope = {
    job: str(o, "job"),
    step: u32(o, "step"),
    sender: str(o, "sender"),
    recipient: str(o, "recipient"),
    sequence: u64(o, "sequence"),
    timestampMs: u64(o, "timestampMs"),
    nonce: bytes(o, "nonce"),
    payload: bytes(o, "payload"),
    encrypted: o["encrypted"] === true,
    ephemeralPublicKey: bytes(o, "ephemeralPublicKey"),
    signature: bytes(o, "signature"),
  };
  check(e);
  // One encoding per envelope: anything but the canonical bytes is refused.
  if (!sameBytes(encodeEnvelope(e), input)) bad("not the canonical encoding");
  return e;
}

const TEXT = new TextEncoder();
const SIGNATURE_TAG = TEXT.encode("umbra.v1.Envelope/signature");
const AAD_TAG = TEXT.encode("umbra.v1.Envelope/aad");
const SEAL_TAG = TEXT.encode("umbra.v1.Envelope/seal");

/** Writes lp(x) / fixed-size integers into one buffer. */
class Concat {
  readonly #parts: Uint8Array[] = [];
  #length = 0;
  #push(b: Uint8Array): this {
    this.#parts.push(b);
    this.#length += b.length;
    return this;
  }
  u8(v: number): this {
    return this.#push(Uint8Array.of(v));
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, false);
    return this.#push(b);
  }
  u64(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), false);
    return this.#push(b);
  }
  lp(b: Uint8Array): this {
    return this.u32(b.length).#push(b);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function fields(c: Concat, e: UnsignedEnvelope): Concat {
  return c
    .lp(TEXT.encode(e.job))
    .u32(e.step)
    .lp(TEXT.encode(e.sender))
    .lp(TEXT.encode(e.recipient))
    .u64(e.sequence)
    .u64(e.timestampMs)
    .lp(e.nonce)
    .u8(e.encrypted ? 1 : 0)
    .lp(e.ephemeralPublicKey);
}

/** The bytes the sender's Ed25519 signature covers: every field but the signature (see the file header). */
export function envelopeSignedBytes(e: UnsignedEnvelope): Uint8Array {
  return fields(new Concat().lp(SIGNATURE_TAG), e).lp(e.payload).finish();
}

/** The AEAD associated data of an encrypted payload: every header field (see the file header). */
export function envelopeAad(e: Omit<UnsignedEnvelope, "payload">): Uint8Array {
  return fields(new Concat().lp(AAD_TAG), { ...e, payload: new Uint8Array(0) }).finish();
}

/** The HKDF info that binds an encrypted payload's key to its job, step, sender, recipient and sequence (see the file header). */
export function envelopeSealInfo(e: Pick<UnsignedEnvelope, "job" | "step" | "sender" | "recipient" | "sequence">): Uint8Array {
  return new Concat()
    .lp(SEAL_TAG)
    .lp(TEXT.encode(e.job))
    .u32(e.step)
    .lp(TEXT.encode(e.sender))
    .lp(TEXT.encode(e.recipient))
    .u64(e.sequence)
    .finish();
}
