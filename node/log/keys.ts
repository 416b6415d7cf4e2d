/**
 * The exchange's Ed25519 key as the log uses it: raw 32-byte keys (RFC 8032)
 * wrapped in the fixed DER prefixes of PKCS#8 and SubjectPublicKeyInfo
 * (RFC 8410) for node:crypto. Signs ledger entries (node/ledger.ts) and tree
 * heads (node/log/head.ts); each signed message begins differently (a 32-byte
 * hash, a tagged text), so one can never pass for the other.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { InvalidArgumentError } from "../../engine/errors.js";

const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function privateKey(secretKey: Uint8Array): KeyObject {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new InvalidArgumentError("ledger secret key must be 32 bytes");
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: "der", type: "pkcs8" });
}

export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new InvalidArgumentError("ledger public key must be 32 bytes");
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" });
  } catch {
    throw new InvalidArgumentError("ledger public key is not an Ed25519 public key");
  }
}

/** The Ed25519 public key of a secret key (32 bytes). */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKey(secretKey)).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(SPKI_PREFIX.length));
}

/** Ed25519 signature (hex) of `message`. */
export function signHex(secretKey: Uint8Array | KeyObject, message: Uint8Array): string {
  return sign(null, message, secretKey instanceof Uint8Array ? privateKey(secretKey) : secretKey).toString("hex");
}

/** Whether `signature` (128 hex digits) is a valid Ed25519 signature of `message` under `publicKey`. */
export function verifyHex(publicKey: Uint8Array | KeyObject, message: Uint8Array, signature: string): boolean {
  if (typeof signature !== "string" || !/^[0-9a-f]{128}$/.test(signature)) return false;
  const key = publicKey instanceof Uint8Array ? publicKeyObject(publicKey) : publicKey;
  return verify(null, message, key, Buffer.from(signature, "hex"));
}
