/** The documentation's relative links resolve inside the repository (scripts/check-links.mjs). */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../scripts/check-links.mjs", import.meta.url));
const checkLinks = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: "utf8", timeout: 60_000 });

describe("documentation links", () => {
  const scratch = mkdtempSync(join(tmpdir(), "umbra-links-test-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("every link of README.md, CONTRIBUTING.md and docs/ resolves", () => {
    const run = checkLinks();
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("flags a link to a heading the target does not have, with its file and line", () => {
    mkdirSync(join(scratch, "docs"));
    writeFileSync(join(scratch, "docs", "page.md"), "# A page\n\n## The flow\n");
    writeFileSync(join(scratch, "README.md"), "# Readme\n\nSee [the flow](docs/page.md#the-flow).\nAnd [the steps](docs/page.md#the-steps).\n");
    const run = checkLinks("--root", scratch, "README.md");
    expect({ status: run.status, first: run.stderr.split("\n")[0] }).toEqual({
      status: 1,
      first: 'README.md:4: docs/page.md#the-steps: no heading "#the-steps" in docs/page.md',
    });
  });

  it("flags a link that climbs out of its folder, even to a file that exists", () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-links-up-"));
    try {
      mkdirSync(join(dir, "docs"));
      writeFileSync(join(dir, "CONTRIBUTING.md"), "# Contributing\n");
      writeFileSync(join(dir, "docs", "page.md"), "# A page\n\nSee [contributing](../CONTRIBUTING.md).\n");
      const run = checkLinks("--root", dir, "docs/page.md");
      expect({ status: run.status, first: run.stderr.split("\n")[0] }).toEqual({
        status: 1,
        first: "docs/page.md:3: ../CONTRIBUTING.md: climbs out of this file's folder (..): name the file as code instead",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
