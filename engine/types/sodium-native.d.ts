// The subset of sodium-native (which ships no type declarations) that Umbra uses.
declare module "sodium-native" {
  type Bytes = Uint8Array;
  interface SodiumNative {
    crypto_scalarmult(q: Bytes, n: Bytes, p: Bytes): void;
    crypto_scalarmult_base(q: Bytes, n: Bytes): void;
    crypto_core_ed25519_from_uniform(p: Bytes, r: Bytes): void;
    crypto_core_ed25519_add(r: Bytes, p: Bytes, q: Bytes): void;
    crypto_core_ed25519_is_valid_point(p: Bytes): boolean;
    crypto_hash_sha512(out: Bytes, input: Bytes): void;
    crypto_generichash(out: Bytes, input: Bytes, key?: Bytes): void;
    randombytes_buf(buf: Bytes): void;
  }
  const sodium: SodiumNative;
  export default sodium;
}
