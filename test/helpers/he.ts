/**
 * HE fixtures: a context and a fresh key set for the tests of the enclosing
 * describe (or file), made before them and freed after — the setup every HE
 * suite repeated by hand. The keys come loaded (public, secret and, unless
 * `galois: false`, Galois keys) besides their bytes.
 */
import { afterAll, beforeAll } from "vitest";
import {
  createCkksContext,
  createHeContext,
  type CkksContext,
  type CkksContextOptions,
  type CkksGaloisKeys,
  type CkksKeyBytes,
  type CkksPublicKey,
  type CkksSecretKey,
  type HeContext,
  type HeContextOptions,
  type HeGaloisKeys,
  type HeKeyBytes,
  type HePublicKey,
  type HeSecretKey,
} from "../../engine/he/index.js";

export interface HeFixture<C, K, P, S, G> {
  readonly ctx: C;
  readonly keys: K;
  readonly pk: P;
  readonly sk: S;
  /** Absent with `galois: false`. */
  readonly gk: G;
}

interface Loadable<K, P, S, G> {
  generateKeys(options?: { galois?: boolean }): K;
  loadPublicKey(bytes: Uint8Array): P;
  loadSecretKey(bytes: Uint8Array): S;
  loadGaloisKeys(bytes: Uint8Array): G;
  dispose(): void;
}

function fixture<C extends Loadable<K, P, S, G>, K extends { publicKey: Uint8Array; secretKey: Uint8Array; galoisKeys?: Uint8Array }, P, S, G>(make: () => Promise<C>, galois: boolean): HeFixture<C, K, P, S, G> {
  const f = {} as { ctx: C; keys: K; pk: P; sk: S; gk: G };
  beforeAll(async () => {
    f.ctx = await make();
    f.keys = f.ctx.generateKeys({ galois });
    f.pk = f.ctx.loadPublicKey(f.keys.publicKey);
    f.sk = f.ctx.loadSecretKey(f.keys.secretKey);
    if (f.keys.galoisKeys) f.gk = f.ctx.loadGaloisKeys(f.keys.galoisKeys);
  }, 60_000);
  afterAll(() => f.ctx?.dispose());
  return f;
}

/** A BFV context (engine/he/bfv.ts) with a key set, for the enclosing suite. */
export const bfvFixture = (options: HeContextOptions, o: { galois?: boolean } = {}): HeFixture<HeContext, HeKeyBytes, HePublicKey, HeSecretKey, HeGaloisKeys> =>
  fixture(() => createHeContext(options), o.galois ?? true);

/** A CKKS context (engine/he/ckks.ts) with a key set, for the enclosing suite. */
export const ckksFixture = (options: CkksContextOptions, o: { galois?: boolean } = {}): HeFixture<CkksContext, CkksKeyBytes, CkksPublicKey, CkksSecretKey, CkksGaloisKeys> =>
  fixture(() => createCkksContext(options), o.galois ?? true);
