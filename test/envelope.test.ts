/**
 * Node identities and envelopes: identities round-trip through JSON and
 * agree with an independent Ed25519/X25519 (noble); envelopes round-trip
 * plain and encrypted; the signed bytes are the documented concatenation;
 * a relay sees only sizes and cannot alter a byte; every refusal (unknown
 * sender, bad signature, stale or future timestamp, replay, wrong recipient,
 * job or step, oversized, truncated, non-canonical) has its own code,
 * records no nonce, and quotes no key, name, nonce or payload byte.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { UmbraError } from "../engine/errors.js";
import {
  decodeEnvelope,
  encodeEnvelope,
  ENVELOPE_OVERHEAD_BYTES,
  envelopeSignedBytes,
  type Envelope,
} from "../protocols/envelope-codec.js";
import { PROTO_SOURCES } from "../protocols/proto/schema.js";
import {
  createMemoryReplayGuard,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_SKEW_MS,
  openEnvelope,
  sealEnvelope,
  type OpenContext,
  type ReplayGuard,
  type SealOptions,
} from "../node/envelope.js";
import { NodeErrorCode } from "../node/errors.js";
import { exchangeProtocolFor } from "../node/jobs/exchange-roles.js";
import type { JobRequest } from "../node/policy.js";
import { encodeMessage } from "../protocols/codec.js";
import {
  fingerprint,
  generateIdentity,
  identityFromJSON,
  identityToJSON,
  publicIdentity,
  type NodeIdentity,
} from "../node/identity.js";

const T = 1_700_000_000_000;
const JOB = "job-7f3a";
const SECRET_TEXT = "SECRET-ROW-4242:+86-138-0000-1234";
const SECRET = new TextEncoder().encode(SECRET_TEXT);

const alice = generateIdentity("alice");
const bob = generateIdentity("bob");
const exchange = generateIdentity("exchange");
const mallory = generateIdentity("mallory"); // never registered
const registry = new Map([alice, bob, exchange].map((id) => [id.name, publicIdentity(id)]));

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const BIG = DEFAULT_MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

function seal(o: Partial<SealOptions> = {}): Uint8Array {
  return sealEnvelope({ job: JOB, step: 2, sender: alice, recipient: "bob", sequence: 7, payload: SECRET, now: () => T, ...o });
}

function ctx(self: NodeIdentity, o: Partial<OpenContext> = {}): OpenContext {
  return { self, lookupSender: (n) => registry.get(n), replay: createMemoryReplayGuard({ now: () => T }), now: () => T, ...o };
}

/** Every error a refusal threw, for the "no secrets in messages" test. */
const refusals: UmbraError[] = [];

function refused(fn: () => unknown): UmbraError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UmbraError) {
      refusals.push(e);
      return e;
    }
    throw e;
  }
  throw new Error("expected a refusal");
}

function codeOf(fn: () => unknown): string {
  return refused(fn).code;
}

/** A replay guard that records every call. */
function spyGuard(): ReplayGuard & { remembered: number } {
  const inner = createMemoryReplayGuard({ now: () => T });
  const g = {
    remembered: 0,
    seen: (s: string, n: Uint8Array) => inner.seen(s, n),
    remember: (s: string, n: Uint8Array, t: number) => {
      g.remembered++;
      inner.remember(s, n, t);
    },
  };
  return g;
}

describe("identity", () => {
  it("generates Ed25519 and X25519 key pairs that agree with noble", () => {
    expect(alice.signing.publicKey).toEqual(ed25519.getPublicKey(alice.signing.secretKey));
    expect(alice.box.publicKey).toEqual(x25519.getPublicKey(alice.box.secretKey));
    expect(alice.signing.secretKey).toHaveLength(32);
    expect(hex(alice.signing.secretKey)).not.toBe(hex(bob.signing.secretKey));
  });

  it("round-trips through JSON (object and text), strictly", () => {
    const j = identityToJSON(alice);
    expect(j.signing.secretKey).toMatch(/^[0-9a-f]{64}$/);
    expect(identityFromJSON(j)).toEqual(alice);
    expect(identityFromJSON(JSON.stringify(j))).toEqual(alice);
    const code = NodeErrorCode.InvalidIdentity;
    expect(codeOf(() => identityFromJSON({ ...j, signing: { ...j.signing, publicKey: hex(bob.signing.publicKey) } }))).toBe(code);
    expect(codeOf(() => identityFromJSON({ ...j, box: { ...j.box, secretKey: hex(bob.box.secretKey) } }))).toBe(code);
    expect(codeOf(() => identityFromJSON({ ...j, box: { ...j.box, secretKey: j.box.secretKey.toUpperCase() } }))).toBe(code);
    expect(codeOf(() => identityFromJSON({ ...j, version: 2 }))).toBe(code);
    expect(codeOf(() => identityFromJSON({ ...j, name: "no spaces" }))).toBe(code);
    expect(codeOf(() => identityFromJSON("{not json"))).toBe(code);
    expect(codeOf(() => identityFromJSON(null))).toBe(code);
  });

  it("checks names", () => {
    for (const name of ["a", "A-z_0.9", "x".repeat(64)]) expect(generateIdentity(name).name).toBe(name);
    for (const name of ["", "x".repeat(65), "a b", "é", "a/b", "a:b"]) expect(codeOf(() => generateIdentity(name))).toBe("UMBRA_INVALID_ARGUMENT");
  });

  it("gives public identities and short fingerprints", () => {
    expect(publicIdentity(bob)).toEqual({ name: "bob", signingPublicKey: bob.signing.publicKey, boxPublicKey: bob.box.publicKey });
    expect(JSON.stringify(publicIdentity(bob))).not.toContain("secret");
    const f = fingerprint(bob.signing.publicKey);
    expect(f).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(bob.signing.publicKey)).toBe(f);
    expect(fingerprint(alice.signing.publicKey)).not.toBe(f);
  });
});

describe("envelope round trip", () => {
  it("plain", () => {
    const bytes = seal();
    const r = openEnvelope(bytes, ctx(bob));
    expect(r).toMatchObject({ job: JOB, step: 2, sender: "alice", recipient: "bob", sequence: 7, timestamp: T, encrypted: false, relayed: false });
    expect(r.payload).toEqual(SECRET);
  });

  it("encrypted: the wire carries no plaintext", () => {
    const bytes = seal({ encryptTo: bob.box.publicKey });
    expect(Buffer.from(bytes).includes(Buffer.from(SECRET.subarray(0, 8)))).toBe(false);
    const e = decodeEnvelope(bytes, BIG);
    expect(e.encrypted).toBe(true);
    expect(e.payload.length).toBe(SECRET.length + 16);
    const r = openEnvelope(bytes, ctx(bob));
    expect(r.payload).toEqual(SECRET);
    expect(r).toMatchObject({ encrypted: true, relayed: false, sequence: 7, step: 2 });
  });

  it("empty payloads, step 0, sequence 0 and large values", () => {
    for (const encryptTo of [undefined, bob.box.publicKey]) {
      const bytes = seal({ payload: new Uint8Array(0), step: 0, sequence: 0, encryptTo });
      expect(openEnvelope(bytes, ctx(bob)).payload).toEqual(new Uint8Array(0));
      const big = seal({ step: 0xffffffff, sequence: Number.MAX_SAFE_INTEGER, encryptTo });
      expect(openEnvelope(big, ctx(bob))).toMatchObject({ step: 0xffffffff, sequence: Number.MAX_SAFE_INTEGER });
    }
  });

  it("is deterministic given its randomness, and every nonce is fresh otherwise", () => {
    let counter = 0;
    const rng = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => (counter++ * 37 + 11) & 0xff);
    const a = seal({ encryptTo: bob.box.publicKey, randomBytes: rng });
    counter = 0;
    const b = seal({ encryptTo: bob.box.publicKey, randomBytes: rng });
    expect(a).toEqual(b);
    expect(hex(decodeEnvelope(seal(), BIG).nonce)).not.toBe(hex(decodeEnvelope(seal(), BIG).nonce));
  });

  it("signs the documented concatenation (checked by hand and with noble)", () => {
    const bytes = seal({ encryptTo: bob.box.publicKey });
    const e = decodeEnvelope(bytes, BIG);
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v);
      return b;
    };
    const u64 = (v: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(v));
      return b;
    };
    const lp = (b: Uint8Array | string): Buffer => {
      const x = typeof b === "string" ? Buffer.from(b, "utf8") : Buffer.from(b);
      return Buffer.concat([u32(x.length), x]);
    };
    const expected = Buffer.concat([
      lp("umbra.v1.Envelope/signature"),
      lp(e.job),
      u32(e.step),
      lp(e.sender),
      lp(e.recipient),
      u64(e.sequence),
      u64(e.timestampMs),
      lp(e.nonce),
      Buffer.of(1),
      lp(e.ephemeralPublicKey),
      lp(e.payload),
    ]);
    expect(Buffer.from(envelopeSignedBytes(e)).equals(expected)).toBe(true);
    expect(ed25519.verify(e.signature, expected, alice.signing.publicKey, { zip215: false })).toBe(true);
  });
});

describe("a relay", () => {
  it("sees only sizes: it can verify and forward, not read", () => {
    const bytes = seal({ encryptTo: bob.box.publicKey });
    expect(codeOf(() => openEnvelope(bytes, ctx(exchange)))).toBe(NodeErrorCode.NotForMe);
    const r = openEnvelope(bytes, ctx(exchange, { relay: true }));
    expect(r).toMatchObject({ relayed: true, encrypted: true, recipient: "bob" });
    expect(r.payload.length).toBe(SECRET.length + 16);
    expect(Buffer.from(r.payload).includes(Buffer.from(SECRET.subarray(0, 8)))).toBe(false);
    // Its own box key does not open it, even posing as the recipient.
    const posing: NodeIdentity = { ...exchange, name: "bob" };
    expect(codeOf(() => openEnvelope(bytes, ctx(posing)))).toBe(NodeErrorCode.BadCiphertext);
    // The recipient still can.
    expect(openEnvelope(bytes, ctx(bob)).payload).toEqual(SECRET);
  });

  it("decrypts envelopes addressed to itself", () => {
    const bytes = seal({ recipient: "exchange", encryptTo: exchange.box.publicKey });
    expect(openEnvelope(bytes, ctx(exchange, { relay: true }))).toMatchObject({ relayed: false, payload: SECRET });
  });

  it("cannot change any single byte", () => {
    for (const encryptTo of [undefined, bob.box.publicKey]) {
      const bytes = seal({ encryptTo });
      const codes = new Map<string, number>();
      for (let i = 0; i < bytes.length; i++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const t = Uint8Array.from(bytes);
          t[i] = t[i]! ^ mask;
          for (const c of [ctx(bob), ctx(exchange, { relay: true })]) {
            const code = codeOf(() => openEnvelope(t, c));
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
        }
      }
      for (const code of codes.keys()) {
        expect([NodeErrorCode.BadSignature, "UMBRA_INVALID_MESSAGE", NodeErrorCode.NotForMe, NodeErrorCode.UnknownSender]).toContain(code);
      }
      expect(codes.get(NodeErrorCode.BadSignature)! > bytes.length).toBe(true);
    }
  });

  it("cannot change any field, nor add one", () => {
    for (const encryptTo of [undefined, bob.box.publicKey]) {
      const e = decodeEnvelope(seal({ encryptTo }), BIG);
      const flip = (b: Uint8Array): Uint8Array => {
        const c = Uint8Array.from(b);
        c[0] = c[0]! ^ 1;
        return c;
      };
      const changes: Partial<Envelope>[] = [
        { job: "job-7f3b" },
        { step: 3 },
        { sender: "exchange" },
        { recipient: "exchange" },
        { sequence: 8 },
        { timestampMs: T - 1 },
        { nonce: flip(e.nonce) },
        { payload: flip(e.payload) },
        e.encrypted
          ? { encrypted: false, ephemeralPublicKey: new Uint8Array(0) }
          : { encrypted: true, ephemeralPublicKey: exchange.box.publicKey },
        ...(e.encrypted ? [{ ephemeralPublicKey: flip(e.ephemeralPublicKey) }] : []),
        { signature: flip(e.signature) },
      ];
      for (const change of changes) {
        const t = encodeEnvelope({ ...e, ...change });
        expect(codeOf(() => openEnvelope(t, ctx(exchange, { relay: true })))).toBe(NodeErrorCode.BadSignature);
        if (change.recipient === undefined) expect(codeOf(() => openEnvelope(t, ctx(bob)))).toBe(NodeErrorCode.BadSignature);
      }
      // Extra bytes: an unknown field (15, varint 0), a repeated field, trailing garbage.
      const bytes = encodeEnvelope(e);
      const extra = [Uint8Array.of(0x78, 0x00), Uint8Array.of(0x10, 0x02), Uint8Array.of(0x00)];
      for (const x of extra) {
        const t = Buffer.concat([bytes, x]);
        expect(codeOf(() => openEnvelope(t, ctx(bob)))).toBe("UMBRA_INVALID_MESSAGE");
      }
    }
  });
});

describe("refusals", () => {
  it("an unknown sender, and a forger using a registered name", () => {
    const fromMallory = seal({ sender: mallory });
    expect(codeOf(() => openEnvelope(fromMallory, ctx(bob)))).toBe(NodeErrorCode.UnknownSender);
    const forged = seal({ sender: { ...mallory, name: "alice" } });
    expect(codeOf(() => openEnvelope(forged, ctx(bob)))).toBe(NodeErrorCode.BadSignature);
  });

  it("stale and future timestamps, at the skew boundary", () => {
    const skew = DEFAULT_MAX_SKEW_MS;
    for (const [sent, code] of [
      [T - skew - 1, NodeErrorCode.StaleMessage],
      [T + skew + 1, NodeErrorCode.StaleMessage],
      [T - skew, undefined],
      [T + skew, undefined],
    ] as const) {
      const bytes = seal({ now: () => sent });
      if (code) expect(codeOf(() => openEnvelope(bytes, ctx(bob)))).toBe(code);
      else expect(openEnvelope(bytes, ctx(bob)).timestamp).toBe(sent);
    }
    const bytes = seal({ now: () => T - 1001 });
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { maxSkewMs: 1000 })))).toBe(NodeErrorCode.StaleMessage);
    expect(openEnvelope(bytes, ctx(bob, { maxSkewMs: 1001 })).timestamp).toBe(T - 1001);
  });

  it("a replayed nonce; refused envelopes record nothing", () => {
    const guard = spyGuard();
    const c = ctx(bob, { replay: guard });
    const bytes = seal({ encryptTo: bob.box.publicKey });
    // Refusals at every later check leave the guard untouched...
    expect(codeOf(() => openEnvelope(bytes, { ...c, expect: { step: 9 } }))).toBe("UMBRA_WRONG_STEP");
    expect(codeOf(() => openEnvelope(bytes, { ...c, expect: { job: "other" } }))).toBe("UMBRA_WRONG_JOB");
    expect(codeOf(() => openEnvelope(bytes, { ...c, now: () => T + DEFAULT_MAX_SKEW_MS + 1 }))).toBe(NodeErrorCode.StaleMessage);
    expect(codeOf(() => openEnvelope(bytes, { ...c, self: { ...exchange, name: "bob" } }))).toBe(NodeErrorCode.BadCiphertext);
    expect(codeOf(() => openEnvelope(bytes, { ...c, lookupSender: () => undefined }))).toBe(NodeErrorCode.UnknownSender);
    expect(codeOf(() => openEnvelope(bytes, { ...c, maxPayloadBytes: 8 }))).toBe(NodeErrorCode.PayloadTooLarge);
    expect(guard.remembered).toBe(0);
    // ...so the envelope is still accepted once, then refused as a replay.
    expect(openEnvelope(bytes, c).payload).toEqual(SECRET);
    expect(guard.remembered).toBe(1);
    expect(codeOf(() => openEnvelope(bytes, c))).toBe(NodeErrorCode.Replay);
    expect(guard.remembered).toBe(1);
    // A different envelope from the same sender is fine; the same nonce from another sender is its own.
    expect(openEnvelope(seal(), c).sender).toBe("alice");
  });

  it("the memory replay guard forgets nonces older than its window", () => {
    let now = T;
    const g = createMemoryReplayGuard({ now: () => now, windowMs: 60_000 });
    const n1 = new Uint8Array(16).fill(1);
    const n2 = new Uint8Array(16).fill(2);
    g.remember("alice", n1, T);
    expect(g.seen("alice", n1)).toBe(true);
    expect(g.seen("bob", n1)).toBe(false);
    expect(g.seen("alice", n2)).toBe(false);
    now = T + 60_000;
    expect(g.seen("alice", n1)).toBe(true);
    now = T + 60_001;
    expect(g.seen("alice", n1)).toBe(false);
    g.remember("alice", n2, now);
    expect(g.size).toBe(1);
    // Through openEnvelope: once forgotten, the old envelope is refused as stale.
    const guard = createMemoryReplayGuard({ now: () => now, windowMs: 1000 });
    now = T;
    const bytes = seal();
    openEnvelope(bytes, ctx(bob, { replay: guard, now: () => now, maxSkewMs: 1000 }));
    now = T + 1001;
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { replay: guard, now: () => now, maxSkewMs: 1000 })))).toBe(NodeErrorCode.StaleMessage);
  });

  it("the wrong recipient", () => {
    const bytes = seal({ recipient: "exchange" });
    expect(codeOf(() => openEnvelope(bytes, ctx(bob)))).toBe(NodeErrorCode.NotForMe);
  });

  it("the wrong job or step", () => {
    const bytes = seal();
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { expect: { job: "job-other" } })))).toBe("UMBRA_WRONG_JOB");
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { expect: { step: 3 } })))).toBe("UMBRA_WRONG_STEP");
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { expect: { job: JOB, step: 3 } })))).toBe("UMBRA_WRONG_STEP");
    expect(openEnvelope(bytes, ctx(bob, { expect: { job: JOB, step: 2 } })).step).toBe(2);
  });

  it("an oversized payload, at sealing and at opening", () => {
    const payload = new Uint8Array(1500);
    expect(codeOf(() => seal({ payload, maxPayloadBytes: 1499 }))).toBe(NodeErrorCode.PayloadTooLarge);
    expect(codeOf(() => seal({ payload, maxPayloadBytes: 1500, encryptTo: bob.box.publicKey }))).toBe(NodeErrorCode.PayloadTooLarge);
    const bytes = seal({ payload });
    // Decoded, then its payload measured.
    expect(codeOf(() => openEnvelope(bytes, ctx(bob, { maxPayloadBytes: 1499 })))).toBe(NodeErrorCode.PayloadTooLarge);
    expect(openEnvelope(bytes, ctx(bob, { maxPayloadBytes: 1500 })).payload.length).toBe(1500);
    // Refused before parsing.
    expect(codeOf(() => openEnvelope(seal({ payload: new Uint8Array(4096) }), ctx(bob, { maxPayloadBytes: 1000 })))).toBe(NodeErrorCode.PayloadTooLarge);
    expect(codeOf(() => openEnvelope(new Uint8Array(BIG + 1), ctx(bob)))).toBe(NodeErrorCode.PayloadTooLarge);
    expect(codeOf(() => decodeEnvelope(bytes, 100))).toBe("UMBRA_MESSAGE_TOO_LARGE");
  });

  it("truncated bytes", () => {
    const bytes = seal({ encryptTo: bob.box.publicKey });
    for (let n = 0; n < bytes.length; n++) {
      expect(codeOf(() => openEnvelope(bytes.subarray(0, n), ctx(bob)))).toBe("UMBRA_INVALID_MESSAGE");
    }
  });

  it("non-canonical and out-of-range encodings", () => {
    const Type = protobuf.parse(PROTO_SOURCES["envelope.proto"]!).root.lookupType("umbra.v1.Envelope");
    const e = decodeEnvelope(seal(), BIG);
    const base = { ...e, timestampMs: String(e.timestampMs) };
    // sequence past 2^53 - 1: refused, not rounded.
    const past = Type.encode(Type.fromObject({ ...base, sequence: "9007199254740992" })).finish();
    expect(codeOf(() => openEnvelope(past, ctx(bob)))).toBe("UMBRA_INVALID_MESSAGE");
    // A default value written out (step 0 explicitly) is not the canonical encoding.
    const zeroStep = Buffer.concat([Buffer.from(encodeEnvelope({ ...e, step: 0 })), Buffer.of(0x10, 0x00)]);
    expect(codeOf(() => decodeEnvelope(zeroStep, BIG))).toBe("UMBRA_INVALID_MESSAGE");
    // Fields out of order.
    const wire = Buffer.from(encodeEnvelope(e));
    const sigField = wire.subarray(wire.length - 66);
    expect(sigField[0]).toBe(0x5a);
    expect(codeOf(() => decodeEnvelope(Buffer.concat([sigField, wire.subarray(0, wire.length - 66)]), BIG))).toBe("UMBRA_INVALID_MESSAGE");
    // Wrong sizes.
    for (const o of [{ nonce: new Uint8Array(15) }, { signature: new Uint8Array(63) }, { encrypted: true, ephemeralPublicKey: new Uint8Array(31) }]) {
      expect(codeOf(() => encodeEnvelope({ ...e, ...o }))).toBe("UMBRA_INVALID_MESSAGE");
    }
  });

  it("decoding arbitrary bytes only ever throws typed errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          decodeEnvelope(b, 1024);
        } catch (err) {
          expect(err).toBeInstanceOf(UmbraError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("encode/decode round trip (property)", () => {
    const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/);
    fc.assert(
      fc.property(
        fc.record({
          job: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
          step: fc.bigInt({ min: 0n, max: 0xffffffffn }).map(Number),
          sender: name,
          recipient: name,
          sequence: fc.maxSafeNat(),
          timestampMs: fc.maxSafeNat(),
          nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
          payload: fc.uint8Array({ maxLength: 64 }),
          signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
        }),
        (r) => {
          const e: Envelope = { ...r, encrypted: false, ephemeralPublicKey: new Uint8Array(0) };
          const d = decodeEnvelope(encodeEnvelope(e), 4096);
          expect({ ...d, nonce: hex(d.nonce), payload: hex(d.payload), signature: hex(d.signature), ephemeralPublicKey: hex(d.ephemeralPublicKey) }).toEqual({
            ...e,
            nonce: hex(e.nonce),
            payload: hex(e.payload),
            signature: hex(e.signature),
            ephemeralPublicKey: "",
          });
        },
      ),
      { numRuns: 100 },
    );
  });

  it("bad sealing arguments", () => {
    expect(codeOf(() => seal({ job: "bad job" }))).toBe("UMBRA_INVALID_ARGUMENT");
    expect(codeOf(() => seal({ recipient: "b/ob" }))).toBe("UMBRA_INVALID_ARGUMENT");
    expect(codeOf(() => seal({ step: -1 }))).toBe("UMBRA_INVALID_ARGUMENT");
    expect(codeOf(() => seal({ sequence: 2 ** 53 }))).toBe("UMBRA_INVALID_ARGUMENT");
    expect(codeOf(() => seal({ encryptTo: new Uint8Array(31) }))).toBe("UMBRA_INVALID_ARGUMENT");
    // A small-order X25519 key (the all-zero point) would give the all-zero secret.
    expect(codeOf(() => seal({ encryptTo: new Uint8Array(32) }))).toBe("UMBRA_INVALID_ARGUMENT");
  });

  it("job roles refuse a provider with no mask key and a message from the wrong party", async () => {
    const federatedAggregateExchange = exchangeProtocolFor("federated-aggregate")!;
    refused(() => federatedAggregateExchange.providerStart(0, [{ name: "alice", maskPublicKey: null }, { name: "mallory", maskPublicKey: new Uint8Array(32).fill(9) }]));
    const request = {
      protocol: "federated-aggregate",
      buyer: "bob",
      providerDatasets: ["alice.csv", "mallory.csv"],
      params: { minGroupSize: 1, aggregate: { aggregates: [{ fn: "count" }], minProviders: 2, maxAbsValue: "10", scale: 0, maxRowsPerProvider: 10 } },
    } as unknown as JobRequest;
    const role = await federatedAggregateExchange.start({ id: JOB, request, buyer: "bob", providers: ["alice", "mallory"] }, {} as never);
    try {
      const key = encodeMessage({
        kind: "aggregateKey",
        header: { job: JOB, protocol: "federated-aggregate", version: 1, step: 1, chunk: 0, chunks: 1 },
        polyModulusDegree: 4096,
        maxAbsValue: "1",
        scale: 0,
        maxRows: 2,
        maxLength: 1,
        fingerprint: "0".repeat(32),
        publicKey: new Uint8Array(8),
      });
      let err: unknown;
      try {
        await role.receive("mallory", key);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UmbraError);
      refusals.push(err as UmbraError);
      expect((err as UmbraError).code).toBe(NodeErrorCode.WrongSender);
    } finally {
      role.dispose();
    }
  });

  it("no refusal quotes a key, a name, a job id, a nonce or a payload byte", () => {
    expect(refusals.length).toBeGreaterThan(100);
    const e = decodeEnvelope(seal({ encryptTo: bob.box.publicKey }), BIG);
    const secrets = [SECRET_TEXT, hex(SECRET), Buffer.from(SECRET).toString("base64"), JOB, "alice", "mallory", "job-other"];
    for (const id of [alice, bob, exchange, mallory]) {
      for (const k of [id.signing.publicKey, id.signing.secretKey, id.box.publicKey, id.box.secretKey]) {
        secrets.push(hex(k), hex(k).toUpperCase(), Buffer.from(k).toString("base64"));
      }
    }
    secrets.push(hex(e.nonce), hex(e.signature));
    const seen = new Set<string>();
    const leaks: string[] = [];
    for (const err of refusals) {
      seen.add(err.code);
      const text = `${err.message}\n${String(err.cause ?? "")}`;
      // No secret, no run of 8+ hex digits, no byte list.
      if (!/^UMBRA_[A-Z_]+$/.test(err.code) || secrets.some((s) => text.includes(s)) || /[0-9a-f]{8,}|\d+,\d+,\d+/i.test(text)) {
        leaks.push(`${err.code}: ${err.message}`);
      }
    }
    expect(leaks).toEqual([]);
    for (const code of Object.values(NodeErrorCode)) expect(seen.has(code), code).toBe(true);
  });
});
