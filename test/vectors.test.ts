/** The vector copy in test/vectors is the shared one, byte for byte, wherever the shared folder is present. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { sharedVectorsDir, vectorsDir } from "./helpers/vectors.js";

const files = ["rfc9496-ristretto255.json", "rfc9380-expand-message-xmd-sha512.json", "rfc9497-oprf-ristretto255-sha512.json"];

describe("known-answer vector files", () => {
  it("are all in test/vectors", () => {
    for (const f of files) expect(readdirSync(vectorsDir)).toContain(f);
  });

  it("match ../shared/vectors when it is present", () => {
    const shared = existsSync(sharedVectorsDir) ? files.filter((f) => existsSync(sharedVectorsDir + f)) : [];
    for (const f of shared) expect(readFileSync(vectorsDir + f, "utf8")).toBe(readFileSync(sharedVectorsDir + f, "utf8"));
    // Every shared vector file must have a copy here.
    if (existsSync(sharedVectorsDir)) {
      for (const f of readdirSync(sharedVectorsDir).filter((n) => n.endsWith(".json"))) expect(files).toContain(f);
    }
  });
});
