/**
 * A node's identity: its name, an Ed25519 key pair that signs every envelope
 * it sends, and an X25519 key pair that envelopes are encrypted to. The
 * exchange registers each party's public half (`publicIdentity`); the secret
 * half is persisted by the node's store as hex JSON (`identityToJSON` /
 * `identityFromJSON`) and never leaves the node.
 *
 * Keys are raw bytes (RFC 8032 / RFC 7748 encodings): a 32-byte Ed25519 seed
 * and its 32-byte public key; a 32-byte X25519 scalar and its 32-byte public
 * u-coordinate. The operations run on node:crypto (OpenSSL), the raw keys
 * wrapped in fixed PKCS#8 / SPKI DER prefixes.
 *
 * Nothing here puts a key or a name into an error message.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { InvalidArgumentError } from "../engine/errors.js";
import { isNodeName } from "../protocols/envelope-codec.js";
import { InvalidIdentityError } from "./errors.js";

export { isNodeName };

/** A 32-byte Ed25519 public key. */
export type SigningPublicKeyBytes = Uint8Array;
/** A 32-byte Ed25519 secret key (the RFC 8032 seed). */
export type SigningSecretKeyBytes = Uint8Array;
/** A 32-byte X25519 public key. */
export type BoxPublicKeyBytes = Uint8Array;
/** A 32-byte X25519 secret key. */
export type BoxSecretKeyBytes = Uint8Array;

export interface NodeIdentity {
  readonly name: string;
  /** Ed25519: signs envelopes. */
  readonly signing: { readonly publicKey: SigningPublicKeyBytes; readonly secretKey: SigningSecretKeyBytes };
  /** X25519: envelopes are encrypted to its public key. */
  readonly box: { readonly publicKey: BoxPublicKeyBytes; readonly secretKey: BoxSecretKeyBytes };
}

/** What the exchange registers for a party, and what a node needs to check its envelopes. */
export interface PublicIdentity {
  readonly name: string;
  readonly signingPublicKey: SigningPublicKeyBytes;
  readonly boxPublicKey: BoxPublicKeyBytes;
}

/** The persisted form: keys as lowercase hex. */
export interface NodeIdentityJSON {
  readonly version: 1;
  readonly name: string;
  readonly signing: { readonly publicKey: string; readonly secretKey: string };
  readonly box: { readonly publicKey: string; readonly secretKey: string };
}

export const KEY_BYTES = 32;

// DER wrappers for raw keys (RFC 8410): PKCS#8 private keys, SPKI public keys.
const ED25519_PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");

function rawKey(what: string, key: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new InvalidArgumentError(`${what} must be ${KEY_BYTES} bytes`);
  return key;
}

function privateKeyObject(prefix: Buffer, secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([prefix, secret]), format: "der", type: "pkcs8" });
}

function publicKeyObject(prefix: Buffer, pub: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([prefix, pub]), format: "der", type: "spki" });
}

function rawPublic(key: KeyObject): Uint8Array {
  const spki = key.export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(spki.length - KEY_BYTES));
}

/** The Ed25519 public key of a 32-byte secret key (seed). */
export function signingPublicKeyFromSecret(secretKey: SigningSecretKeyBytes): SigningPublicKeyBytes {
  return rawPublic(createPublicKey(privateKeyObject(ED25519_PKCS8, rawKey("signing secret key", secretKey))));
}

/** The X25519 public key of a 32-byte secret key. */
export function boxPublicKeyFromSecret(secretKey: BoxSecretKeyBytes): BoxPublicKeyBytes {
  return rawPublic(createPublicKey(privateKeyObject(X25519_PKCS8, rawKey("box secret key", secretKey))));
}

/** Ed25519 (pure, RFC 8032 §5.1.6) signature of `message`. */
export function ed25519Sign(secretKey: SigningSecretKeyBytes, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, privateKeyObject(ED25519_PKCS8, rawKey("signing secret key", secretKey))));
}

/** Ed25519 verification (RFC 8032 §5.1.7, OpenSSL: S < L required). False on any malformed input. */
export function ed25519Verify(publicKey: SigningPublicKeyBytes, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== KEY_BYTES || signature.length !== 64) return false;
  try {
    return verify(null, message, publicKeyObject(ED25519_SPKI, publicKey), signature);
  } catch {
    return false;
  }
}

/**
 * X25519 (RFC 7748 §5) shared secret. Returns undefined when the peer key is
 * malformed or of small order (the all-zero output, RFC 7748 §6.1).
 */
export function x25519SharedSecret(secretKey: BoxSecretKeyBytes, peerPublicKey: BoxPublicKeyBytes): Uint8Array | undefined {
  if (peerPublicKey.length !== KEY_BYTES) return undefined;
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: privateKeyObject(X25519_PKCS8, rawKey("box secret key", secretKey)), publicKey: publicKeyObject(X25519_SPKI, peerPublicKey) });
  } catch {
    return undefined;
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? undefined : new Uint8Array(shared);
}

function checkName(name: string): void {
  if (typeof name !== "string" || !isNodeName(name)) throw new InvalidArgumentError("node name must be 1..64 of [A-Za-z0-9._-]");
}

/** A fresh identity: new Ed25519 and X25519 key pairs from node:crypto's CSPRNG. */
export function generateIdentity(name: string): NodeIdentity {
  checkName(name);
  const signingSecret = new Uint8Array(randomBytes(KEY_BYTES));
  const boxSecret = new Uint8Array(randomBytes(KEY_BYTES));
  return {
    name,
    signing: { publicKey: signingPublicKeyFromSecret(signingSecret), secretKey: signingSecret },
    box: { publicKey: boxPublicKeyFromSecret(boxSecret), secretKey: boxSecret },
  };
}

/** The public half of an identity, as the exchange registers it. */
export function publicIdentity(id: NodeIdentity): PublicIdentity {
  return { name: id.name, signingPublicKey: id.signing.publicKey, boxPublicKey: id.box.publicKey };
}

const MASK_KEY_SALT = new TextEncoder().encode("umbra.v1.mask-key");

/**
 * The node's X25519 *mask key*: the key pair federated-aggregate's providers
 * derive their pairwise masks from (X25519 between two providers' mask keys,
 * protocols/federated-aggregate/masks.ts). It is derived from the identity's box
 * secret key — HKDF-SHA256 (RFC 5869), salt "umbra.v1.mask-key", info the
 * node's name — so it lives in the node's key store with its identity and
 * needs no storage of its own; the exchange registers its public half beside
 * the box key. A separate key, not the box key itself: the box key only ever
 * decrypts envelopes (ephemeral–static X25519), the mask key only ever meets
 * other providers' mask keys (static–static), so neither use can be turned
 * against the other.
 */
export function maskKeyPair(id: NodeIdentity): { readonly publicKey: BoxPublicKeyBytes; readonly secretKey: BoxSecretKeyBytes } {
  const secretKey = new Uint8Array(hkdfSync("sha256", rawKey("box secret key", id.box.secretKey), MASK_KEY_SALT, new TextEncoder().encode(id.name), KEY_BYTES));
  return { publicKey: boxPublicKeyFromSecret(secretKey), secretKey };
}

/**
 * A short display form of a public key: the first 8 bytes of
 * SHA-256("umbra.v1.fingerprint" || key), as 16 lowercase hex digits. For
 * people comparing keys out of band, not for lookups.
 */
export function fingerprint(publicKey: Uint8Array): string {
  return createHash("sha256").update("umbra.v1.fingerprint").update(publicKey).digest("hex").slice(0, 16);
}


/** The persisted form of an identity (secret keys included: store it as a secret). */
export function identityToJSON(id: NodeIdentity): NodeIdentityJSON {
  return {
    version: 1,
    name: id.name,
    signing: { publicKey: bytesToHex(id.signing.publicKey), secretKey: bytesToHex(id.signing.secretKey) },
    box: { publicKey: bytesToHex(id.box.publicKey), secretKey: bytesToHex(id.box.secretKey) },
  };
}

const HEX_KEY = /^[0-9a-f]{64}$/;

function keyPairFromJSON(o: unknown, what: string): { publicKey: Uint8Array; secretKey: Uint8Array } {
  if (o === null || typeof o !== "object") throw new InvalidIdentityError(`${what} key pair is missing`);
  const { publicKey, secretKey } = o as Record<string, unknown>;
  if (typeof publicKey !== "string" || !HEX_KEY.test(publicKey)) throw new InvalidIdentityError(`${what} public key is not 64 lowercase hex digits`);
  if (typeof secretKey !== "string" || !HEX_KEY.test(secretKey)) throw new InvalidIdentityError(`${what} secret key is not 64 lowercase hex digits`);
  return { publicKey: new Uint8Array(Buffer.from(publicKey, "hex")), secretKey: new Uint8Array(Buffer.from(secretKey, "hex")) };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Reads a persisted identity (the object, or its JSON text), strictly: the
 * version, a valid name, four 32-byte hex keys, and public keys that are the
 * ones their secret keys give. Throws InvalidIdentityError.
 */
export function identityFromJSON(json: unknown): NodeIdentity {
  let o = json;
  if (typeof o === "string") {
    try {
      o = JSON.parse(o) as unknown;
    } catch {
      throw new InvalidIdentityError("not JSON");
    }
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new InvalidIdentityError("not an object");
  const r = o as Record<string, unknown>;
  if (r["version"] !== 1) throw new InvalidIdentityError("unsupported version");
  const name = r["name"];
  if (typeof name !== "string" || !isNodeName(name)) throw new InvalidIdentityError("name must be 1..64 of [A-Za-z0-9._-]");
  const signing = keyPairFromJSON(r["signing"], "signing");
  const box = keyPairFromJSON(r["box"], "box");
  if (!equal(signingPublicKeyFromSecret(signing.secretKey), signing.publicKey)) throw new InvalidIdentityError("signing public key does not match its secret key");
  if (!equal(boxPublicKeyFromSecret(box.secretKey), box.publicKey)) throw new InvalidIdentityError("box public key does not match its secret key");
  return { name, signing, box };
}

/** The form a node's database keeps of its own identity: its name and public keys only (the secret keys live in its key file, node/key-file.ts). */
export interface StoredIdentityJSON {
  readonly format: "umbra.public-identity.v1";
  readonly name: string;
  readonly signingPublicKey: string;
  readonly boxPublicKey: string;
}

/** The database's record of a node's identity: name and public keys, no secret. */
export function storedIdentityJSON(id: { readonly name: string; readonly signingPublicKey: Uint8Array; readonly boxPublicKey: Uint8Array }): string {
  const o: StoredIdentityJSON = { format: "umbra.public-identity.v1", name: id.name, signingPublicKey: bytesToHex(id.signingPublicKey), boxPublicKey: bytesToHex(id.boxPublicKey) };
  return JSON.stringify(o);
}

/**
 * The name and public keys in a database's identity record: the public form,
 * or the older form that also held the secret keys (`secret` true: a node
 * moves those into its key file when it starts).
 */
export function storedIdentityFrom(json: string): PublicIdentity & { readonly secret: boolean } {
  let o: unknown;
  try {
    o = JSON.parse(json);
  } catch {
    throw new InvalidIdentityError("not JSON");
  }
  const r = (o ?? {}) as Record<string, unknown>;
  if (r["format"] === "umbra.public-identity.v1") {
    const name = r["name"];
    const s = r["signingPublicKey"];
    const b = r["boxPublicKey"];
    if (typeof name !== "string" || !isNodeName(name) || typeof s !== "string" || !HEX_KEY.test(s) || typeof b !== "string" || !HEX_KEY.test(b)) {
      throw new InvalidIdentityError("the stored public identity is malformed");
    }
    return { name, signingPublicKey: new Uint8Array(Buffer.from(s, "hex")), boxPublicKey: new Uint8Array(Buffer.from(b, "hex")), secret: false };
  }
  const id = identityFromJSON(o);
  return { ...publicIdentity(id), secret: true };
}
