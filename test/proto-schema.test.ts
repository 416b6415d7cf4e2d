/** protocols/proto/schema.ts is generated from the .proto files: it must be current. */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

describe("embedded protobuf schemas", () => {
  it("match protocols/proto/*.proto", () => {
    const script = fileURLToPath(new URL("../scripts/gen-proto.mjs", import.meta.url));
    const r = spawnSync(process.execPath, [script, "--check"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
