/**
 * Property tests: every backend of a group gives the same bytes on random
 * inputs; group laws hold; the x25519 group's strict decoding refuses what it
 * must.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createGroup, GROUP_BACKENDS, InvalidLengthError, InvalidPointError, InvalidScalarError, packBytes, type Group, type GroupId } from "../engine/index.js";
import { numberToBytesLE, ORDER, powMod, scalarToBytes } from "../engine/group/scalar.js";
import { P } from "../engine/group/field25519.js";
import { clampedFromScalar, x25519ScalarPlan } from "../engine/group/x25519-scalar.js";
import { toHex } from "./helpers/vectors.js";

const groupIds: GroupId[] = ["ristretto255", "x25519"];
const arbScalar = fc.bigInt({ min: 1n, max: ORDER - 1n }).map((s) => scalarToBytes(s));
const arbMsg = fc.uint8Array({ minLength: 0, maxLength: 80 });
const arbDst = fc.uint8Array({ minLength: 1, maxLength: 300 });

describe.each(groupIds)("%s: backends agree byte for byte", (id) => {
  let groups: Group[];
  beforeAll(async () => {
    groups = await Promise.all(GROUP_BACKENDS.filter((b) => b.group === id).map((b) => createGroup(b)));
    expect(groups.length).toBeGreaterThanOrEqual(2);
  });

  it("hashToGroup, multiply, multiplyBase", () => {
    fc.assert(
      fc.property(arbMsg, arbDst, arbScalar, (msg, dst, s) => {
        const outs = groups.map((g) => {
          const h = g.hashToGroup(msg, dst);
          return [toHex(g.encode(h)), toHex(g.encode(g.multiply(s, h))), toHex(g.encode(g.multiplyBase(s)))].join(":");
        });
        expect(new Set(outs).size).toBe(1);
      }),
      { numRuns: 60 },
    );
  });

  it("batch forms equal the single forms", () => {
    fc.assert(
      fc.property(fc.array(arbMsg, { minLength: 0, maxLength: 12 }), arbScalar, (msgs, s) => {
        const dst = new TextEncoder().encode("umbra-batch-test");
        const packed = packBytes(msgs);
        const results = groups.map((g) => {
          const hashed = g.hashToGroupBatch(packed, dst);
          const blinded = g.hashToGroupBatch(packed, dst, s);
          const again = g.multiplyBatch(s, hashed);
          expect(toHex(again)).toBe(toHex(blinded));
          msgs.forEach((m, i) => expect(toHex(hashed.subarray(i * 32, i * 32 + 32))).toBe(toHex(g.encode(g.hashToGroup(m, dst)))));
          return toHex(blinded);
        });
        expect(new Set(results).size).toBe(1);
      }),
      { numRuns: 25 },
    );
  });

  it("commutes (the ECDH-PSI law) and inverts", () => {
    fc.assert(
      fc.property(arbMsg, arbScalar, arbScalar, (msg, a, b) => {
        for (const g of groups) {
          const h = g.hashToGroup(msg, new TextEncoder().encode("dst"));
          const ab = g.multiply(b, g.decode(g.encode(g.multiply(a, h))));
          const ba = g.multiply(a, g.decode(g.encode(g.multiply(b, h))));
          expect(g.equals(ab, ba)).toBe(true);
          expect(g.equals(g.multiply(g.invertScalar(a), g.multiply(a, h)), h)).toBe(true);
        }
      }),
      { numRuns: 30 },
    );
  });

  it("random scalars are valid and distinct", () => {
    for (const g of groups) {
      const a = g.randomScalar();
      const b = g.randomScalar();
      expect(toHex(a)).not.toBe(toHex(b));
      expect(() => g.multiplyBase(a)).not.toThrow();
    }
  });

  it("refuses bad scalars and bad lengths with typed errors", () => {
    for (const g of groups) {
      const h = g.hashToGroup(new Uint8Array([1]), new Uint8Array([1]));
      expect(() => g.multiply(new Uint8Array(32), h)).toThrow(InvalidScalarError);
      expect(() => g.multiply(numberToBytesLE(ORDER, 32), h)).toThrow(InvalidScalarError);
      expect(() => g.multiply(new Uint8Array(31), h)).toThrow(InvalidLengthError);
      expect(() => g.multiplyBatch(scalarToBytes(3n), new Uint8Array(33))).toThrow(InvalidLengthError);
      expect(() => g.decode(new Uint8Array(31))).toThrow(InvalidPointError);
      expect(() => g.hashToGroup(new Uint8Array(1), new Uint8Array(0))).toThrow(/domain separation tag/);
    }
  });

  it("strict decode round-trips every valid element", () => {
    fc.assert(
      fc.property(arbMsg, (msg) => {
        for (const g of groups) {
          const e = g.encode(g.hashToGroup(msg, new TextEncoder().encode("rt")));
          expect(toHex(g.encode(g.decode(e)))).toBe(toHex(e));
        }
      }),
      { numRuns: 30 },
    );
  });
});

describe("x25519: validation of received elements", () => {
  const le = (n: bigint): Uint8Array => numberToBytesLE(n, 32);
  const A = 486662n;
  const onCurve = (u: bigint): boolean => {
    const g = (u * u * u + A * u * u + u) % P;
    return g === 0n || powMod(g, (P - 1n) / 2n, P) === 1n;
  };
  let twist = 2n;
  while (onCurve(twist)) twist++;
  const smallOrder = [
    0n,
    1n,
    325606250916557431795983626356110631294008115727848805560023387167927233504n,
    39382357235489614581723060781553021112529911719440698176882885853963445705823n,
    P - 1n,
  ];
  // A curve point with a torsion component: u of (H + T8) is not in the prime-order subgroup.
  const cases: [string, Uint8Array][] = [
    ["identity encoding (0)", le(0n)],
    ...smallOrder.slice(1).map((u, i) => [`small-order point ${i}`, le(u)] as [string, Uint8Array]),
    ["u = p (non-canonical)", le(P)],
    ["u = p + 1 (non-canonical)", le(P + 1n)],
    ["top bit set", (() => { const b = le(9n); b[31] = (b[31] ?? 0) | 0x80; return b; })()],
    ["point on the twist", le(twist)],
  ];

  let groups: Group[];
  beforeAll(async () => {
    groups = await Promise.all(GROUP_BACKENDS.filter((b) => b.group === "x25519").map((b) => createGroup(b)));
  });

  it.each(cases)("refuses %s", (_name, bytes) => {
    for (const g of groups) {
      expect(() => g.decode(bytes)).toThrow(InvalidPointError);
      expect(() => g.multiplyBatch(scalarToBytes(7n), bytes)).toThrow(InvalidPointError);
    }
  });

  it("refuses a curve point outside the prime-order subgroup", async () => {
    // 2-torsion + prime-order point: take u of a point of order 2ℓ via the noble reference.
    const { ed25519 } = await import("@noble/curves/ed25519.js");
    const T = ed25519.Point.fromHex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"); // (0, −1), order 2
    const Q = ed25519.Point.BASE.multiply(12345n).add(T);
    const { y } = Q.toAffine();
    const u = (((1n + y) % P) * powMod((1n - y + P) % P, P - 2n, P)) % P;
    for (const g of groups) expect(() => g.decode(le(u))).toThrow(/prime-order subgroup/);
  });

  it("reports the index of the first bad element in a batch", () => {
    for (const g of groups) {
      const good = g.encode(g.hashToGroup(new Uint8Array([1]), new Uint8Array([1])));
      const batch = new Uint8Array(32 * 4);
      batch.set(good, 0);
      batch.set(good, 32);
      batch.set(le(twist), 64);
      batch.set(good, 96);
      try {
        g.multiplyBatch(scalarToBytes(11n), batch);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidPointError);
        expect((e as InvalidPointError).index).toBe(2);
      }
    }
  });

  it("applies scalars without a single clamped form (as two multiplications) correctly", () => {
    // Search the edge of the range, where fast-check found them, for one with no single form.
    let s = ORDER - 1n;
    while (clampedFromScalar(s)) s--;
    const bytes = scalarToBytes(s);
    expect(x25519ScalarPlan(bytes)).toHaveLength(2);
    for (const g of groups) {
      const h = g.hashToGroup(new Uint8Array([5]), new Uint8Array([5]));
      expect(g.equals(g.multiply(g.invertScalar(bytes), g.multiply(bytes, h)), h)).toBe(true);
      const t = scalarToBytes(3n);
      expect(g.equals(g.multiply(t, g.multiply(bytes, h)), g.multiply(bytes, g.multiply(t, h)))).toBe(true);
    }
  });

  it("maps every scalar it accepts to a clamped X25519 scalar congruent to ±s", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: ORDER - 1n }), (s) => {
        const k = clampedFromScalar(s);
        if (!k) return;
        const kn = k.reduceRight((acc, b) => (acc << 8n) | BigInt(b), 0n);
        expect(kn % 8n).toBe(0n);
        expect(kn >> 254n).toBe(1n);
        expect([s, ORDER - s]).toContain(kn % ORDER);
      }),
      { numRuns: 200 },
    );
  });
});
