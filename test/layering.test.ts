/**
 * The layering rule (CONTRIBUTING.md): node -> protocols -> engine, never
 * back, and no import cycles in the production code. `npm test` runs the
 * check on the tree (npm run lint:deps); this test shows that the check
 * refuses each kind of violation, on a throwaway tree with the same config.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const depcruise = join(root, "node_modules", ".bin", "depcruise");
const config = join(root, ".dependency-cruiser.cjs");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Cruises a tree of the given files (path -> source) with the project's rules. */
function cruise(files: Record<string, string>): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "umbra-layers-"));
  dirs.push(dir);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022" } }));
  for (const [path, source] of Object.entries({ "engine/base.ts": "export const base = 1;\n", "protocols/p.ts": "export const p = 1;\n", "node/n.ts": "export const n = 1;\n", ...files })) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  const r = spawnSync(depcruise, ["engine", "protocols", "node", "--config", config], { cwd: dir, encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe("the layering check", () => {
  it("passes imports that go node -> protocols -> engine", () => {
    const r = cruise({ "protocols/p.ts": 'import { base } from "../engine/base.js";\nexport const p = base;\n', "node/n.ts": 'import { p } from "../protocols/p.js";\nexport const n = p;\n' });
    expect(r.out).toMatch(/no dependency violations/);
    expect(r.status).toBe(0);
  });

  it("refuses engine importing node", () => {
    const r = cruise({ "engine/x.ts": 'import { n } from "../node/n.js";\nexport const x = n;\n' });
    expect(r.out).toMatch(/error engine-not-to-protocols-or-node: engine\/x\.ts → node\/n\.ts/);
    expect(r.status).not.toBe(0);
  });

  it("refuses protocols importing node", () => {
    const r = cruise({ "protocols/q.ts": 'import { n } from "../node/n.js";\nexport const q = n;\n' });
    expect(r.out).toMatch(/error protocols-not-to-node: protocols\/q\.ts → node\/n\.ts/);
    expect(r.status).not.toBe(0);
  });

  it("refuses an import cycle inside one layer", () => {
    const r = cruise({ "node/a.ts": 'import { b } from "./b.js";\nexport const a = 1 + b;\n', "node/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n' });
    expect(r.out).toMatch(/error no-circular: node\/a\.ts →/);
    expect(r.status).not.toBe(0);
  });
});
