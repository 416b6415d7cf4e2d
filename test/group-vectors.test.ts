/**
 * RFC 9496 ristretto255 and RFC 9380 expand_message_xmd known-answer vectors,
 * run against every ristretto255 backend; the expander against every SHA-512
 * the backends use.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { createGroup, expandMessageXmd, GROUP_BACKENDS, InvalidPointError, ristrettoFromUniformNoble, type Group } from "../engine/index.js";
import { scalarToBytes } from "../engine/group/scalar.js";
import { concatSha512 } from "../engine/group/concat-sha.js";
import { dstPrime, nobleSha512Parts, type Sha512 } from "../engine/group/expand.js";
import { ascii, hex, loadVectors, toHex } from "./helpers/vectors.js";

interface R496 {
  multiples_of_generator: { vectors: { multiple: number; encoding: string }[] };
  invalid_encodings: { vectors: { reason: string; encoding: string }[] };
  element_derivation_from_uniform_bytes: { vectors: { input: string; output: string }[] };
  element_derivation_same_output: { inputs: string[]; output: string };
}
interface R9380 {
  DST: string;
  vectors: { msg: string; len_in_bytes: number; uniform_bytes: string; DST_prime: string }[];
}

const r9496 = loadVectors<R496>("rfc9496-ristretto255.json");
const r9380 = loadVectors<R9380>("rfc9380-expand-message-xmd-sha512.json");
const ristrettoBackends = GROUP_BACKENDS.filter((b) => b.group === "ristretto255");

// The expander with the SHA-512 of each backend: noble (reference and OPRF), libsodium (WASM), sodium-native.
const shaBackends: [string, () => Promise<Sha512>][] = [
  ["noble", async () => nobleSha512Parts],
  [
    "libsodium",
    async () => {
      const sodium = (await import("libsodium-wrappers-sumo")).default;
      await sodium.ready;
      return concatSha512((m) => sodium.crypto_hash_sha512(m));
    },
  ],
  [
    "sodium-native",
    async () => {
      const sodium = (await import("sodium-native")).default;
      return concatSha512((m) => {
        const out = new Uint8Array(64);
        sodium.crypto_hash_sha512(out, m);
        return out;
      });
    },
  ],
];

describe.each(shaBackends)("RFC 9380 expand_message_xmd(SHA-512) with %s SHA-512", (_name, load) => {
  let sha: Sha512;
  beforeAll(async () => {
    sha = await load();
  });
  it.each(r9380.vectors.map((v, i) => [i, v] as const))("vector %i", (_i, v) => {
    expect(toHex(dstPrime(ascii(r9380.DST), sha))).toBe(v.DST_prime);
    expect(toHex(expandMessageXmd(ascii(v.msg), ascii(r9380.DST), v.len_in_bytes, sha))).toBe(v.uniform_bytes);
  });
  it("has ten vectors", () => expect(r9380.vectors.length).toBe(10));
});

describe.each(ristrettoBackends)("ristretto255 on $backend", ({ group: id, backend }) => {
  let group: Group;
  beforeAll(async () => {
    group = await createGroup({ group: id, backend });
  });
  it("loads the requested backend", () => {
    expect(group.id).toBe("ristretto255");
    expect(group.backend).toBe(backend);
  });

  it.each(r9496.multiples_of_generator.vectors.map((v) => [v.multiple, v.encoding] as const))(
    "multiple %i of the generator decodes, re-encodes and equals k·B",
    (k, encoding) => {
      const bytes = hex(encoding);
      const p = group.decode(bytes, { allowIdentity: true });
      expect(toHex(group.encode(p))).toBe(encoding);
      if (k === 0) {
        expect(() => group.decode(bytes)).toThrow(InvalidPointError);
      } else {
        expect(toHex(group.encode(group.multiplyBase(scalarToBytes(BigInt(k)))))).toBe(encoding);
        // and as a received point, through the batch path
        expect(toHex(group.multiplyBatch(scalarToBytes(1n), bytes))).toBe(encoding);
      }
    },
  );

  it.each(r9496.invalid_encodings.vectors.map((v, i) => [i, v.reason, v.encoding] as const))(
    "invalid encoding %i (%s) is refused",
    (_i, _reason, encoding) => {
      const bytes = hex(encoding);
      expect(() => group.decode(bytes)).toThrow(InvalidPointError);
      expect(() => group.decode(bytes, { allowIdentity: true })).toThrow(InvalidPointError);
      expect(() => group.multiplyBatch(scalarToBytes(5n), bytes)).toThrow(InvalidPointError);
    },
  );

  it("refuses the identity as a received element, with its index in a batch", () => {
    const batch = new Uint8Array(96);
    batch.set(hex(r9496.multiples_of_generator.vectors[1]!.encoding), 0);
    batch.set(hex(r9496.multiples_of_generator.vectors[2]!.encoding), 32);
    try {
      group.multiplyBatch(scalarToBytes(3n), batch);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidPointError);
      expect((e as InvalidPointError).code).toBe("UMBRA_INVALID_POINT");
      expect((e as InvalidPointError).index).toBe(2);
    }
  });
});

describe("RFC 9496 element derivation (one-way map) on the reference", () => {
  it.each(r9496.element_derivation_from_uniform_bytes.vectors.map((v, i) => [i, v] as const))("vector %i", (_i, v) => {
    expect(toHex(ristrettoFromUniformNoble(hex(v.input)).toBytes())).toBe(v.output);
  });
  it("maps the four equivalent inputs to one output", () => {
    for (const input of r9496.element_derivation_same_output.inputs) {
      expect(toHex(ristrettoFromUniformNoble(hex(input)).toBytes())).toBe(r9496.element_derivation_same_output.output);
    }
  });
});

describe("RFC 9496 element derivation on libsodium", () => {
  it("matches every vector", async () => {
    const sodium = (await import("libsodium-wrappers-sumo")).default;
    await sodium.ready;
    for (const v of r9496.element_derivation_from_uniform_bytes.vectors) {
      expect(toHex(sodium.crypto_core_ristretto255_from_hash(hex(v.input)))).toBe(v.output);
    }
    for (const input of r9496.element_derivation_same_output.inputs) {
      expect(toHex(sodium.crypto_core_ristretto255_from_hash(hex(input)))).toBe(r9496.element_derivation_same_output.output);
    }
  });
});
