/**
 * A node's identity key file: its name, its public keys, and its secret keys —
 * in the clear, or sealed under a passphrase. The node's database holds only
 * the public half (so whoever copies or edits the database cannot sign as the
 * node, nor re-sign a rewritten audit ledger). The file is a secret file
 * (node/secret-file.ts): mode 0600, refused when other users may read it.
 *
 * Format (JSON, one object):
 *
 *   { "format": "umbra.key.v1", "name": "bank",
 *     "public": { "signing": HEX32, "box": HEX32 },
 *     "secret": { "signing": HEX32, "box": HEX32 } }                   // clear
 *   … or, with a passphrase, instead of "secret":
 *     "sealed": { "kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": HEX16,
 *                 "cipher": "aes-256-gcm", "iv": HEX12, "ciphertext": HEX64, "tag": HEX16 }
 *
 * The sealed form encrypts the 64 bytes signing secret ‖ box secret with
 * AES-256-GCM under scrypt(passphrase, salt) (RFC 7914), the name and the
 * public keys as associated data, so neither can be swapped.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";
import { UmbraError } from "../engine/errors.js";
import { boxPublicKeyFromSecret, isNodeName, signingPublicKeyFromSecret, type NodeIdentity } from "./identity.js";
import { InvalidIdentityError } from "./errors.js";
import { createSecretFile, readSecretFile } from "./secret-file.js";

export const KEY_FILE_FORMAT = "umbra.key.v1";

const SCRYPT = { n: 32_768, r: 8, p: 1 } as const;
const HEX32 = /^[0-9a-f]{64}$/;

/** The key file is sealed and no passphrase was given, or the passphrase does not open it. */
export class KeyPassphraseError extends UmbraError {
  constructor(message: string) {
    super("UMBRA_KEY_PASSPHRASE", message);
  }
}

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));

function kek(passphrase: string, salt: Uint8Array, p: { n: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase.normalize("NFC"), salt, 32, { N: p.n, r: p.r, p: p.p, maxmem: 256 * p.n * p.r + 1024 * 1024 });
}

function aad(name: string, signing: string, box: string): Buffer {
  return Buffer.from(`${KEY_FILE_FORMAT}\n${name}\n${signing}\n${box}`, "utf8");
}

/** The key file's text for an identity: sealed under `passphrase` when one is given. */
export function keyFileText(id: NodeIdentity, passphrase?: string): string {
  const pub = { signing: bytesToHex(id.signing.publicKey), box: bytesToHex(id.box.publicKey) };
  if (passphrase === undefined) {
    return `${JSON.stringify({ format: KEY_FILE_FORMAT, name: id.name, public: pub, secret: { signing: bytesToHex(id.signing.secretKey), box: bytesToHex(id.box.secretKey) } }, null, 2)}\n`;
  }
  if (passphrase.length === 0) throw new KeyPassphraseError("the key passphrase is empty");
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", kek(passphrase, salt, SCRYPT), iv);
  cipher.setAAD(aad(id.name, pub.signing, pub.box));
  const ct = Buffer.concat([cipher.update(Buffer.concat([id.signing.secretKey, id.box.secretKey])), cipher.final()]);
  const sealed = { kdf: "scrypt", ...SCRYPT, salt: bytesToHex(salt), cipher: "aes-256-gcm", iv: bytesToHex(iv), ciphertext: bytesToHex(ct), tag: bytesToHex(cipher.getAuthTag()) };
  return `${JSON.stringify({ format: KEY_FILE_FORMAT, name: id.name, public: pub, sealed }, null, 2)}\n`;
}

function field(o: unknown, key: string): unknown {
  return o !== null && typeof o === "object" && !Array.isArray(o) ? (o as Record<string, unknown>)[key] : undefined;
}

function hexField(o: unknown, key: string, pattern: RegExp, what: string): string {
  const v = field(o, key);
  if (typeof v !== "string" || !pattern.test(v)) throw new InvalidIdentityError(`key file: ${what} is missing or malformed`);
  return v;
}

/** The name and public keys a key file declares (no passphrase needed). */
export function keyFilePublic(text: string): { name: string; signingPublicKey: Uint8Array; boxPublicKey: Uint8Array } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new InvalidIdentityError("key file is not JSON");
  }
  if (field(o, "format") !== KEY_FILE_FORMAT) throw new InvalidIdentityError(`key file: format must be "${KEY_FILE_FORMAT}"`);
  const name = field(o, "name");
  if (typeof name !== "string" || !isNodeName(name)) throw new InvalidIdentityError("key file: name must be 1..64 of [A-Za-z0-9._-]");
  const pub = field(o, "public");
  return { name, signingPublicKey: bytes(hexField(pub, "signing", HEX32, "public signing key")), boxPublicKey: bytes(hexField(pub, "box", HEX32, "public box key")) };
}

/** Reads a key file's text into an identity; a sealed one needs its passphrase. */
export function identityFromKeyFile(text: string, passphrase?: string): NodeIdentity {
  const { name, signingPublicKey, boxPublicKey } = keyFilePublic(text);
  const o = JSON.parse(text) as unknown;
  let signingSecret: Uint8Array;
  let boxSecret: Uint8Array;
  const sealed = field(o, "sealed");
  if (sealed !== undefined) {
    if (passphrase === undefined) throw new KeyPassphraseError("the key file is sealed with a passphrase: set UMBRA_KEY_PASSPHRASE or give --key-passphrase-file FILE");
    if (field(sealed, "kdf") !== "scrypt" || field(sealed, "cipher") !== "aes-256-gcm") throw new InvalidIdentityError("key file: unsupported kdf or cipher");
    const n = field(sealed, "n");
    const r = field(sealed, "r");
    const p = field(sealed, "p");
    if (n !== SCRYPT.n || r !== SCRYPT.r || p !== SCRYPT.p) throw new InvalidIdentityError("key file: unsupported scrypt parameters");
    const salt = bytes(hexField(sealed, "salt", /^[0-9a-f]{32}$/, "salt"));
    const iv = bytes(hexField(sealed, "iv", /^[0-9a-f]{24}$/, "iv"));
    const ct = bytes(hexField(sealed, "ciphertext", /^[0-9a-f]{128}$/, "ciphertext"));
    const tag = bytes(hexField(sealed, "tag", /^[0-9a-f]{32}$/, "tag"));
    const d = createDecipheriv("aes-256-gcm", kek(passphrase, salt, SCRYPT), iv);
    d.setAAD(aad(name, bytesToHex(signingPublicKey), bytesToHex(boxPublicKey)));
    d.setAuthTag(tag);
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(ct), d.final()]);
    } catch {
      throw new KeyPassphraseError("the passphrase does not open the key file");
    }
    signingSecret = new Uint8Array(plain.subarray(0, 32));
    boxSecret = new Uint8Array(plain.subarray(32, 64));
  } else {
    const secret = field(o, "secret");
    signingSecret = bytes(hexField(secret, "signing", HEX32, "secret signing key"));
    boxSecret = bytes(hexField(secret, "box", HEX32, "secret box key"));
  }
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!same(signingPublicKeyFromSecret(signingSecret), signingPublicKey)) throw new InvalidIdentityError("key file: the signing public key does not match its secret key");
  if (!same(boxPublicKeyFromSecret(boxSecret), boxPublicKey)) throw new InvalidIdentityError("key file: the box public key does not match its secret key");
  return { name, signing: { publicKey: signingPublicKey, secretKey: signingSecret }, box: { publicKey: boxPublicKey, secretKey: boxSecret } };
}

/** The identity in the key file at `path`, or undefined when there is none. */
export function readKeyFile(path: string, passphrase?: string): NodeIdentity | undefined {
  const text = readSecretFile(path, "key file");
  return text === undefined ? undefined : identityFromKeyFile(text, passphrase);
}

/** Writes a new key file (mode 0600; never over an existing file). */
export function writeKeyFile(path: string, id: NodeIdentity, passphrase?: string): void {
  createSecretFile(path, keyFileText(id, passphrase), "key file");
}
