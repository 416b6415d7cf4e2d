/**
 * RFC 9497 Appendix A.1 OPRF(ristretto255, SHA-512) vectors — modes OPRF,
 * VOPRF and POPRF — on every ristretto255 backend; and the exported `oprf`
 * object with the RFC's function names.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { createGroup, createOprf, GROUP_BACKENDS, InvalidInputError, InvalidPointError, oprf, OprfMode, VerifyError, type OprfSuite } from "../engine/index.js";
import { hex, loadVectors, toHex } from "./helpers/vectors.js";

interface Test {
  name: string;
  batchSize: number;
  Input: string[];
  Info?: string;
  Blind: string[];
  BlindedElement: string[];
  EvaluationElement: string[];
  Proof?: string;
  ProofRandomScalar?: string;
  Output: string[];
}
interface Mode {
  mode: "OPRF" | "VOPRF" | "POPRF";
  modeId: 0 | 1 | 2;
  Seed: string;
  KeyInfo: string;
  skSm: string;
  pkSm?: string;
  tests: Test[];
}
const r9497 = loadVectors<{ modes: Mode[]; derived_constants: { contextString: Record<string, string> } }>("rfc9497-oprf-ristretto255-sha512.json");

/** A random source that replays the vector's ProofRandomScalar (64 bytes whose reduction is that scalar). */
const replay = (scalarHex: string) => (n: number) => {
  const out = new Uint8Array(n);
  out.set(hex(scalarHex));
  return out;
};

const backends = GROUP_BACKENDS.filter((b) => b.group === "ristretto255");

describe.each(backends)("RFC 9497 on ristretto255/$backend", ({ backend }) => {
  describe.each(r9497.modes)("mode $mode", (mode) => {
    let suite: OprfSuite;
    beforeAll(async () => {
      suite = createOprf(await createGroup({ group: "ristretto255", backend }), mode.modeId as OprfMode);
    });

    it("has the RFC context string", () => {
      expect(toHex(suite.contextString)).toBe(r9497.derived_constants.contextString[mode.mode]);
    });

    it("DeriveKeyPair gives skSm (and pkSm)", () => {
      const kp = suite.deriveKeyPair(hex(mode.Seed), hex(mode.KeyInfo));
      expect(toHex(kp.secretKey)).toBe(mode.skSm);
      if (mode.pkSm) expect(toHex(kp.publicKey)).toBe(mode.pkSm);
    });

    it.each(mode.tests.map((t) => [t.name, t] as const))("%s", (_name, t) => {
      const sk = hex(mode.skSm);
      const inputs = t.Input.map(hex);
      const info = t.Info === undefined ? undefined : hex(t.Info);
      // Blind
      const blinded = inputs.map((input, i) => {
        if (mode.mode === "POPRF") {
          const r = suite.blindPoprf(input, info!, hex(mode.pkSm!), hex(t.Blind[i]!));
          return r;
        }
        return suite.blind(input, hex(t.Blind[i]!));
      });
      expect(blinded.map((b) => toHex(b.blindedElement))).toEqual(t.BlindedElement);
      const blindedElements = blinded.map((b) => b.blindedElement);
      // BlindEvaluate (+ proof)
      let evaluated: Uint8Array[];
      if (mode.mode === "OPRF") {
        evaluated = blindedElements.map((b) => suite.blindEvaluate(sk, b));
      } else {
        const rng = replay(t.ProofRandomScalar!);
        const res =
          mode.mode === "VOPRF"
            ? suite.blindEvaluateBatchVoprf(sk, hex(mode.pkSm!), blindedElements, rng)
            : suite.blindEvaluateBatchPoprf(sk, blindedElements, info!, rng);
        evaluated = res.evaluatedElements;
        expect(toHex(res.proof)).toBe(t.Proof);
      }
      expect(evaluated.map(toHex)).toEqual(t.EvaluationElement);
      // Finalize
      let outputs: Uint8Array[];
      if (mode.mode === "OPRF") {
        outputs = inputs.map((input, i) => suite.finalize(input, hex(t.Blind[i]!), evaluated[i]!));
      } else if (mode.mode === "VOPRF") {
        outputs = suite.finalizeBatchVoprf(inputs, t.Blind.map(hex), evaluated, blindedElements, hex(mode.pkSm!), hex(t.Proof!));
      } else {
        const tweaked = (blinded[0] as unknown as { tweakedKey: Uint8Array }).tweakedKey;
        outputs = suite.finalizeBatchPoprf(inputs, t.Blind.map(hex), evaluated, blindedElements, hex(t.Proof!), info!, tweaked);
      }
      expect(outputs.map(toHex)).toEqual(t.Output);
      // Evaluate (unblinded) gives the same output
      const direct = inputs.map((input) => (mode.mode === "POPRF" ? suite.evaluatePoprf(sk, input, info!) : suite.evaluate(sk, input)));
      expect(direct.map(toHex)).toEqual(t.Output);
    });

    if (mode.mode !== "OPRF") {
      it("refuses a proof that does not verify", () => {
        const t = mode.tests[0]!;
        const bad = hex(t.Proof!);
        bad[40] = (bad[40] ?? 0) ^ 1;
        const inputs = t.Input.map(hex);
        const call = () =>
          mode.mode === "VOPRF"
            ? suite.finalizeBatchVoprf(inputs, t.Blind.map(hex), t.EvaluationElement.map(hex), t.BlindedElement.map(hex), hex(mode.pkSm!), bad)
            : suite.finalizeBatchPoprf(
                inputs,
                t.Blind.map(hex),
                t.EvaluationElement.map(hex),
                t.BlindedElement.map(hex),
                bad,
                hex(t.Info!),
                suite.blindPoprf(inputs[0]!, hex(t.Info!), hex(mode.pkSm!)).tweakedKey,
              );
        expect(call).toThrow(VerifyError);
      });
    }
  });
});

describe("the exported oprf (mode OPRF, RFC names)", () => {
  const seed = new Uint8Array(32).fill(7);
  const { secretKey } = oprf.deriveKeyPair(seed, new TextEncoder().encode("umbra test"));

  it("round-trips with a random blind and matches evaluate", () => {
    const input = new TextEncoder().encode("+8613800000000");
    const { blind, blindedElement } = oprf.blind(input);
    const out = oprf.finalize(input, blind, oprf.blindEvaluate(secretKey, blindedElement));
    expect(out).toHaveLength(64);
    expect(toHex(out)).toBe(toHex(oprf.evaluate(secretKey, input)));
  });

  it("server refuses the identity and non-canonical blinded elements", () => {
    expect(() => oprf.blindEvaluate(secretKey, new Uint8Array(32))).toThrow(InvalidPointError);
    expect(() => oprf.blindEvaluate(secretKey, new Uint8Array(32).fill(0xff))).toThrow(InvalidPointError);
    expect(() => oprf.blindEvaluate(secretKey, new Uint8Array(31))).toThrow(InvalidPointError);
  });

  it("client refuses the identity as an evaluation element", () => {
    const input = new Uint8Array([1, 2, 3]);
    const { blind } = oprf.blind(input);
    expect(() => oprf.finalize(input, blind, new Uint8Array(32))).toThrow(InvalidPointError);
  });

  it("refuses a zero or unreduced secret key with a typed error that names no value", () => {
    const blinded = oprf.blind(new Uint8Array([9])).blindedElement;
    for (const bad of [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(16)]) {
      try {
        oprf.blindEvaluate(bad, blinded);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidInputError);
        expect((e as Error).message).not.toMatch(/[0-9a-f]{16}/);
      }
    }
  });
});
