/**
 * The README's library examples are the API: every ```ts block of README.md
 * is written, as it stands, into dist/readme-examples/src/ (inside the package,
 * so `import … from "umbra"` resolves to the built package through its
 * `exports`, as it does for a user), with a prelude defining only the
 * variables it uses without defining them (`masterSeed`, `seed`, …), then
 * type-checked and compiled by tsc against the package's .d.ts files, and
 * each compiled block run on small generated CSV files in a temporary folder.
 * A block that stops compiling or running fails here. Needs `npm run build`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "dist", "readme-examples");
const SRC = join(OUT, "src");
const BUILT = join(OUT, "out");
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

/** What a block may use without defining it: each entry's code is added before the block when it does. */
const PRELUDE: Record<string, { readonly imports?: string; readonly code: string }> = {
  seed: { code: "const seed = new Uint8Array(32).fill(1);" },
  input: { code: 'const input = new TextEncoder().encode("alice@example.com");' },
  dst: { code: 'const dst = new TextEncoder().encode("umbra-readme-example");' },
  myScalar: { imports: 'import { createGroup as preludeCreateGroup } from "umbra";', code: 'const myScalar = (await preludeCreateGroup({ group: "x25519" })).randomScalar();' },
  masterSeed: { code: "const masterSeed = new Uint8Array(32).fill(7);" },
};
/** After every block: the worker pool closed, so the process ends. */
const POSTLUDE = { imports: 'import { closePool as postludeClosePool } from "umbra";', code: "await postludeClosePool();" };

/** The ```ts blocks of README.md, in order. */
function readmeBlocks(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
}

function uses(block: string, name: string): boolean {
  const declared = new RegExp(`(?:const|let|var)\\s+(?:\\{[^}]*\\b${name}\\b[^}]*\\}|${name}\\b)`);
  return new RegExp(`\\b${name}\\b`).test(block) && !declared.test(block);
}

/** The block with the prelude entries it needs and the postlude. */
function wrapped(block: string): string {
  const needed = Object.entries(PRELUDE).filter(([name]) => uses(block, name)).map(([, p]) => p);
  const imports = [...new Set([...needed.flatMap((p) => (p.imports ? [p.imports] : [])), POSTLUDE.imports])];
  return [...imports, ...needed.map((p) => p.code), "// ---- README block ----", block, "// ---- end ----", POSTLUDE.code, ""].join("\n");
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** Small data of the README's shapes: 1,000 customers (formatted phones, risk grades A–C), 1,200 subscribers (bare digits, monthly spend with 2 decimals), 600 shared. */
function writeData(dir: string): void {
  const grades = ["A", "B", "C"];
  const customers = ["customer_id,phone,risk_grade"];
  for (let i = 0; i < 1000; i++) customers.push(`c${i},+1 (555) ${String(100 + (i % 900)).padStart(3, "0")}-${String(1000 + i)},${grades[i % 3]}`);
  const subscribers = ["phone,monthly_spend"];
  for (let i = 400; i < 1600; i++) subscribers.push(`1555${String(100 + (i % 900)).padStart(3, "0")}${String(1000 + i)},${(10 + (i % 97) + (i % 100) / 100).toFixed(2)}`);
  writeFileSync(join(dir, "customers.csv"), customers.join("\n") + "\n");
  writeFileSync(join(dir, "subscribers.csv"), subscribers.join("\n") + "\n");
}

const blocks = readmeBlocks();
const data = mkdtempSync(join(tmpdir(), "umbra-readme-"));
let compiled: { code: number; output: string };

beforeAll(async () => {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(SRC, { recursive: true });
  blocks.forEach((block, i) => writeFileSync(join(SRC, `block-${i + 1}.ts`), wrapped(block)));
  const compilerOptions = {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2023"],
    types: ["node"],
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    rootDir: "src",
    outDir: "out",
  };
  writeFileSync(join(OUT, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["src/*.ts"] }, null, 2));
  writeData(data);
  compiled = await run(process.execPath, [TSC, "-p", join(OUT, "tsconfig.json")], ROOT);
}, 120_000);

afterAll(() => rmSync(data, { recursive: true, force: true }));

describe("the README's ```ts blocks", () => {
  it("there are library examples to check (the engine's and the protocols')", () => {
    expect(blocks.length).toBe(2);
  });

  it("type-check against the built package's types, as a user imports them", () => {
    expect(compiled.output).toBe("");
  });

  it.each(blocks.map((_, i) => i + 1))("block %i runs to the end on small generated data", async (n) => {
    const r = await run(process.execPath, [join(BUILT, `block-${n}.js`)], data);
    expect({ code: r.code, stack: /\n\s+at /.test(r.output) }, r.output).toEqual({ code: 0, stack: false });
  }, 120_000);
});
