/**
 * Signed, optionally encrypted envelopes between nodes.
 *
 * Flow. The sender seals: it fills the header (job, step, sender, recipient,
 * sequence, its clock, 16 fresh random bytes of nonce); when it has the
 * recipient's X25519 key it encrypts the payload to it; then it signs every
 * field with its Ed25519 key (the signed bytes are `envelopeSignedBytes` in
 * protocols/envelope-codec.ts). The exchange relays the bytes as they are.
 * The recipient opens, checking in this order — each failure its own typed
 * error, and none of them changes any state:
 *
 *   1. size bound (UMBRA_PAYLOAD_TOO_LARGE)     6. timestamp within ±maxSkewMs (UMBRA_STALE_MESSAGE)
 *   2. strict, canonical decode (UMBRA_INVALID_MESSAGE)  7. nonce not seen from this sender (UMBRA_REPLAY)
 *   3. recipient is this node (UMBRA_NOT_FOR_ME)  8. the expected job / step (UMBRA_WRONG_JOB / UMBRA_WRONG_STEP)
 *   4. sender is registered (UMBRA_UNKNOWN_SENDER) 9. payload decrypts (UMBRA_BAD_CIPHERTEXT)
 *   5. signature verifies (UMBRA_BAD_SIGNATURE)
 *
 * and only then records the nonce in the replay guard. A relay
 * (`relay: true`) runs the same checks on an envelope addressed to another
 * node but step 9: it cannot decrypt, and it returns the payload as sent.
 *
 * Encryption (an ECIES in the style of HPKE base mode, RFC 9180 §5.1, with
 * DHKEM(X25519)): a fresh ephemeral X25519 key e per envelope;
 * ikm = X25519(e, recipient box key) (RFC 7748; the all-zero output of a
 * small-order key is refused); HKDF-SHA256 (RFC 5869) with
 * salt = ephemeral public key || recipient box public key and
 * info = `envelopeSealInfo` (job, step, sender, recipient, sequence) gives a
 * 32-byte key and a 12-byte nonce; ChaCha20-Poly1305 (RFC 8439) with
 * AAD = `envelopeAad` (every header field, the nonce and timestamp and the
 * ephemeral key included). The key is used for this one envelope only.
 *
 * Threat model. The exchange relaying envelopes is honest-but-curious and
 * may also tamper: it sees the header fields and the payload's size, not an
 * encrypted payload; it cannot alter or forge an envelope (signed end to end
 * by the sender) nor replay one to the same recipient within the skew window
 * (nonce guard) or after it (timestamp). The sender's clock must be within
 * ±maxSkewMs of the recipient's. Sequence numbers are carried and signed;
 * ordering is the caller's concern. Sender identities are only as good as
 * the registry behind `lookupSender`.
 *
 * Leakage: to a relay, job, step, sender, recipient, sequence, timestamp and
 * payload length; nothing else.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes as nodeRandomBytes } from "node:crypto";
import { InvalidArgumentError } from "../engine/errors.js";
import { isJobId, MAX_MESSAGE_BYTES } from "../protocols/codec.js";
import {
  decodeEnvelope,
  encodeEnvelope,
  ENVELOPE_AEAD_TAG_BYTES,
  ENVELOPE_EPHEMERAL_KEY_BYTES,
  ENVELOPE_NONCE_BYTES,
  ENVELOPE_OVERHEAD_BYTES,
  envelopeAad,
  envelopeSealInfo,
  envelopeSignedBytes,
  isNodeName,
  type Envelope,
  type UnsignedEnvelope,
} from "../protocols/envelope-codec.js";
import {
  BadCiphertextError,
  BadSignatureError,
  NotForMeError,
  PayloadTooLargeError,
  ReplayError,
  StaleMessageError,
  UnknownSenderError,
  WrongJobError,
  WrongStepError,
} from "./errors.js";
import {
  boxPublicKeyFromSecret,
  ed25519Sign,
  ed25519Verify,
  KEY_BYTES,
  x25519SharedSecret,
  type BoxPublicKeyBytes,
  type NodeIdentity,
  type PublicIdentity,
} from "./identity.js";

/** Default clock skew allowed between sender and recipient: 5 minutes. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000;
/** Default largest payload on the wire: a largest protocol message, encrypted. */
export const DEFAULT_MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES + ENVELOPE_AEAD_TAG_BYTES;

const AEAD = "chacha20-poly1305";
const AEAD_KEY_BYTES = 32;
const AEAD_NONCE_BYTES = 12;

export interface SealOptions {
  readonly job: string;
  readonly step: number;
  readonly sender: NodeIdentity;
  /** The recipient's node name. */
  readonly recipient: string;
  readonly sequence: number;
  readonly payload: Uint8Array;
  /** The recipient's X25519 box public key: when given, the payload is encrypted to it. */
  readonly encryptTo?: BoxPublicKeyBytes;
  /** Clock, Unix milliseconds (default Date.now). */
  readonly now?: () => number;
  /** Largest payload on the wire, ciphertext tag included (default DEFAULT_MAX_PAYLOAD_BYTES). */
  readonly maxPayloadBytes?: number;
  /** Randomness for the nonce and the ephemeral key (default node:crypto's CSPRNG); for known-answer tests. */
  readonly randomBytes?: (n: number) => Uint8Array;
}

/** The keys `openEnvelope` needs for a sender. */
export type SenderKeys = Pick<PublicIdentity, "signingPublicKey" | "boxPublicKey">;

/**
 * Remembers which nonces each sender has used. Synchronous and small so a
 * SQLite-backed store can implement it. `remember` is called only for an
 * envelope that passed every check; an implementation may forget a nonce
 * once its timestamp is older than the skew window (the timestamp check
 * refuses it from then on).
 */
export interface ReplayGuard {
  seen(sender: string, nonce: Uint8Array): boolean;
  remember(sender: string, nonce: Uint8Array, timestampMs: number): void;
}

export interface OpenContext {
  /** This node. */
  readonly self: NodeIdentity;
  /** The registered keys of a sender, or undefined when it is not registered. */
  lookupSender(name: string): SenderKeys | undefined;
  readonly replay: ReplayGuard;
  /** Clock, Unix milliseconds (default Date.now). */
  readonly now?: () => number;
  /** Allowed clock skew either way (default 5 minutes). Must not exceed the replay guard's window. */
  readonly maxSkewMs?: number;
  /** Largest payload on the wire (default DEFAULT_MAX_PAYLOAD_BYTES). */
  readonly maxPayloadBytes?: number;
  /** Accept envelopes addressed to other nodes: verify and check freshness, but do not decrypt. */
  readonly relay?: boolean;
  /** Refuse envelopes of another job or step. */
  readonly expect?: { readonly job?: string; readonly step?: number };
}

export interface OpenedEnvelope {
  readonly job: string;
  readonly step: number;
  readonly sender: string;
  readonly recipient: string;
  readonly sequence: number;
  /** The sender's timestamp, Unix milliseconds. */
  readonly timestamp: number;
  /**
   * The plaintext payload; for a relayed envelope (`relayed`), the payload as
   * sent (the ciphertext when `encrypted`). A plaintext payload is a view of
   * the input bytes.
   */
  readonly payload: Uint8Array;
  /** Whether the payload travelled encrypted. */
  readonly encrypted: boolean;
  /** True when opened by a relay for another node: the payload was not decrypted. */
  readonly relayed: boolean;
}

function checkLimit(what: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return v;
}

function aeadKeyAndNonce(shared: Uint8Array, ephemeralPublicKey: Uint8Array, recipientBoxPublicKey: Uint8Array, info: Uint8Array): { key: Buffer; iv: Buffer } {
  const salt = Buffer.concat([ephemeralPublicKey, recipientBoxPublicKey]);
  const okm = Buffer.from(hkdfSync("sha256", shared, salt, info, AEAD_KEY_BYTES + AEAD_NONCE_BYTES));
  return { key: okm.subarray(0, AEAD_KEY_BYTES), iv: okm.subarray(AEAD_KEY_BYTES) };
}

/**
 * Builds, optionally encrypts (to `encryptTo`), and signs an envelope; returns
 * its bytes. Throws InvalidArgumentError on a bad field or key,
 * PayloadTooLargeError past the payload limit.
 */
export function sealEnvelope(o: SealOptions): Uint8Array {
  const { job, step, sender, recipient, sequence, payload, encryptTo } = o;
  if (typeof job !== "string" || !isJobId(job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new InvalidArgumentError("step must be a 32-bit unsigned integer");
  if (typeof sender?.name !== "string" || !isNodeName(sender.name)) throw new InvalidArgumentError("sender name must be 1..64 of [A-Za-z0-9._-]");
  if (typeof recipient !== "string" || !isNodeName(recipient)) throw new InvalidArgumentError("recipient name must be 1..64 of [A-Za-z0-9._-]");
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new InvalidArgumentError("sequence must be a non-negative safe integer");
  if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError("payload must be bytes");
  const maxPayload = checkLimit("maxPayloadBytes", o.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES);
  const wireLength = payload.length + (encryptTo ? ENVELOPE_AEAD_TAG_BYTES : 0);
  if (wireLength > maxPayload) throw new PayloadTooLargeError(maxPayload);
  const timestampMs = Math.floor((o.now ?? Date.now)());
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) throw new InvalidArgumentError("clock must give a non-negative time in milliseconds");
  const random = o.randomBytes ?? ((n: number) => new Uint8Array(nodeRandomBytes(n)));
  const nonce = random(ENVELOPE_NONCE_BYTES);
  if (!(nonce instanceof Uint8Array) || nonce.length !== ENVELOPE_NONCE_BYTES) throw new InvalidArgumentError("randomBytes returned the wrong length");

  const header = { job, step, sender: sender.name, recipient, sequence, timestampMs, nonce };
  let unsigned: UnsignedEnvelope;
  if (encryptTo === undefined) {
    unsigned = { ...header, payload, encrypted: false, ephemeralPublicKey: new Uint8Array(0) };
  } else {
    if (!(encryptTo instanceof Uint8Array) || encryptTo.length !== KEY_BYTES) throw new InvalidArgumentError("recipient box public key must be 32 bytes");
    const ephemeralSecret = random(ENVELOPE_EPHEMERAL_KEY_BYTES);
    if (!(ephemeralSecret instanceof Uint8Array) || ephemeralSecret.length !== ENVELOPE_EPHEMERAL_KEY_BYTES) throw new InvalidArgumentError("randomBytes returned the wrong length");
    const ephemeralPublicKey = boxPublicKeyFromSecret(ephemeralSecret);
    const shared = x25519SharedSecret(ephemeralSecret, encryptTo);
    ephemeralSecret.fill(0);
    if (shared === undefined) throw new InvalidArgumentError("recipient box public key is not a usable X25519 key");
    const { key, iv } = aeadKeyAndNonce(shared, ephemeralPublicKey, encryptTo, envelopeSealInfo(header));
    shared.fill(0);
    const cipher = createCipheriv(AEAD, key, iv, { authTagLength: ENVELOPE_AEAD_TAG_BYTES });
    cipher.setAAD(envelopeAad({ ...header, encrypted: true, ephemeralPublicKey }), { plaintextLength: payload.length });
    const sealed = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
    key.fill(0);
    unsigned = { ...header, payload: new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength), encrypted: true, ephemeralPublicKey };
  }
  const signature = ed25519Sign(sender.signing.secretKey, envelopeSignedBytes(unsigned));
  return encodeEnvelope({ ...unsigned, signature });
}

function decrypt(e: Envelope, self: NodeIdentity): Uint8Array {
  const shared = x25519SharedSecret(self.box.secretKey, e.ephemeralPublicKey);
  if (shared === undefined) throw new BadCiphertextError();
  const { key, iv } = aeadKeyAndNonce(shared, e.ephemeralPublicKey, self.box.publicKey, envelopeSealInfo(e));
  shared.fill(0);
  const ctLength = e.payload.length - ENVELOPE_AEAD_TAG_BYTES;
  try {
    const d = createDecipheriv(AEAD, key, iv, { authTagLength: ENVELOPE_AEAD_TAG_BYTES });
    d.setAAD(envelopeAad(e), { plaintextLength: ctLength });
    d.setAuthTag(e.payload.subarray(ctLength));
    const plain = Buffer.concat([d.update(e.payload.subarray(0, ctLength)), d.final()]);
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  } catch {
    throw new BadCiphertextError();
  } finally {
    key.fill(0);
  }
}

/**
 * Checks and opens an envelope (the order of the checks is in the file
 * header). Throws the check's typed error and leaves the replay guard
 * untouched on any refusal; records the nonce only when every check passed.
 */
export function openEnvelope(bytes: Uint8Array, ctx: OpenContext): OpenedEnvelope {
  const maxPayload = checkLimit("maxPayloadBytes", ctx.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES);
  const maxSkew = checkLimit("maxSkewMs", ctx.maxSkewMs, DEFAULT_MAX_SKEW_MS);
  const { self } = ctx;

  // 1. Size bound, before parsing anything.
  const maxBytes = maxPayload + ENVELOPE_OVERHEAD_BYTES;
  if (bytes instanceof Uint8Array && bytes.length > maxBytes) throw new PayloadTooLargeError(maxPayload);
  // 2. Strict decode.
  const e = decodeEnvelope(bytes, maxBytes);
  if (e.payload.length > maxPayload) throw new PayloadTooLargeError(maxPayload);
  // 3. Addressed to this node (or relayed).
  const forMe = e.recipient === self.name;
  if (!forMe && ctx.relay !== true) throw new NotForMeError();
  // 4. A registered sender.
  const keys = ctx.lookupSender(e.sender);
  if (keys === undefined) throw new UnknownSenderError();
  // 5. Its signature over every field.
  if (!ed25519Verify(keys.signingPublicKey, envelopeSignedBytes(e), e.signature)) throw new BadSignatureError();
  // 6. Fresh: within the clock skew either way.
  const now = (ctx.now ?? Date.now)();
  if (e.timestampMs < now - maxSkew) throw new StaleMessageError("old");
  if (e.timestampMs > now + maxSkew) throw new StaleMessageError("future");
  // 7. Not a replay.
  if (ctx.replay.seen(e.sender, e.nonce)) throw new ReplayError();
  // 8. The job and step the caller expects.
  if (ctx.expect?.job !== undefined && e.job !== ctx.expect.job) throw new WrongJobError("envelope is for another job");
  if (ctx.expect?.step !== undefined && e.step !== ctx.expect.step) throw new WrongStepError("envelope is for another step");
  // 9. Decrypt (not as a relay for another node).
  const payload = forMe && e.encrypted ? decrypt(e, self) : e.payload;
  // Every check passed: only now is state changed.
  ctx.replay.remember(e.sender, e.nonce, e.timestampMs);
  return {
    job: e.job,
    step: e.step,
    sender: e.sender,
    recipient: e.recipient,
    sequence: e.sequence,
    timestamp: e.timestampMs,
    payload,
    encrypted: e.encrypted,
    relayed: !forMe,
  };
}

export interface MemoryReplayGuardOptions {
  /** How long a nonce is kept past its timestamp: at least the openers' maxSkewMs (default 5 minutes). */
  readonly windowMs?: number;
  /** Clock, Unix milliseconds (default Date.now). */
  readonly now?: () => number;
}

/** An in-memory ReplayGuard that forgets nonces whose timestamp is older than the window. */
export interface MemoryReplayGuard extends ReplayGuard {
  /** Nonces currently remembered. */
  readonly size: number;
}

/** A ReplayGuard in memory (one process, lost on restart: nodes persist theirs in the store). */
export function createMemoryReplayGuard(options: MemoryReplayGuardOptions = {}): MemoryReplayGuard {
  const windowMs = checkLimit("windowMs", options.windowMs, DEFAULT_MAX_SKEW_MS);
  const clock = options.now ?? Date.now;
  const sweepEveryMs = Math.min(1000, windowMs);
  const entries = new Map<string, number>();
  let lastSweep = -Infinity;
  const key = (sender: string, nonce: Uint8Array): string => `${sender}\n${Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString("hex")}`;
  const sweep = (now: number): void => {
    if (now - lastSweep < sweepEveryMs) return;
    lastSweep = now;
    const oldest = now - windowMs;
    for (const [k, t] of entries) if (t < oldest) entries.delete(k);
  };
  return {
    seen(sender, nonce) {
      const t = entries.get(key(sender, nonce));
      return t !== undefined && t >= clock() - windowMs;
    },
    remember(sender, nonce, timestampMs) {
      sweep(clock());
      entries.set(key(sender, nonce), timestampMs);
    },
    get size() {
      return entries.size;
    },
  };
}
