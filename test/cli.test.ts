/** The `umbra` command as a user runs it: help, errors, and the demo end to end (small sizes). */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { umbra } from "./helpers/cli.js";

const run = (...args: string[]) => umbra(args);

describe("umbra CLI", () => {
  const dir = join(mkdtempSync(join(tmpdir(), "umbra-cli-test-")), "not-yet-there");
  afterAll(() => rmSync(join(dir, ".."), { recursive: true, force: true }));

  it("prints help and the version", async () => {
    const help = await run("help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: umbra <command>/);
    expect((await run("version")).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("refuses an unknown command and a bad option with exit code 2", async () => {
    const r = await run("frobnicate");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
    expect((await run("demo", "--buyer-rows", "lots")).status).toBe(2);
  });

  it("lists the protocols and what each role learns", async () => {
    const r = await run("protocols");
    expect(r.status).toBe(0);
    for (const id of ["psi", "psi-cardinality", "lookup", "join-aggregate", "federated-aggregate"]) expect(r.stdout).toContain(id);
  });

  it("resolves the package's subpath exports from dist", () => {
    const script = `
      const engine = await import("umbra");
      const sub = await import("umbra/engine");
      const protocols = await import("umbra/protocols");
      const node = await import("umbra/node");
      console.log([engine.oprf === sub.oprf, typeof engine.oprf.blindEvaluate, protocols.PROTOCOLS.length, typeof node.runDemo].join(" "));
    `;
    const root = fileURLToPath(new URL("..", import.meta.url));
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("true function 6 function");
  });

  it("runs the demo: secure results agree with the plaintext join", async () => {
    const r = await run("demo", "--buyer-rows", "600", "--provider-rows", "1500", "--dir", dir);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/the secure results agree/);
    const shared = Number(/Plaintext join of the same files: ([\d,]+)/.exec(r.stdout)?.[1]?.replace(/,/g, ""));
    expect(shared).toBeGreaterThan(0);
    const matched = readFileSync(join(dir, "bank-matched-phones.csv"), "utf8").trim().split(/\r?\n/);
    expect(matched[0]).toBe("phone");
    expect(matched.length - 1).toBe(shared);
  });
});

/**
 * One name per concept: an option renamed is refused, on every command that
 * took it, with a usage error (exit 2) naming the new one — before any file
 * is read or any party is asked.
 */
describe("renamed options", () => {
  const AGGREGATE = ["aggregate", "--provider", "a.csv", "--provider", "b.csv", "--agg", "count", "--out", "out.csv"];
  const FA_JOB = ["job", "submit", "--protocol", "federated-aggregate", "--provider-dataset", "a.x", "--provider-dataset", "b.y", "--agg", "count"];
  const PSI_JOB = ["job", "submit", "--protocol", "psi", "--provider-dataset", "telco.subscribers.csv", "--key", "phone"];
  const JA_JOB = ["job", "submit", "--protocol", "join-aggregate", "--input", "risk.csv", "--key", "phone", "--agg", "count"];

  it.each([
    ["umbra aggregate --min-count", [...AGGREGATE, "--min-count", "5"], "--min-count is now --min-group-size"],
    ["umbra aggregate --max-abs", [...AGGREGATE, "--max-abs", "1000"], "--max-abs is now --max-abs-value"],
    ["umbra aggregate --max-abs=V", [...AGGREGATE, "--max-abs=1000"], "--max-abs is now --max-abs-value"],
    ["umbra job submit (federated-aggregate) --min-count", [...FA_JOB, "--min-count", "5"], "--min-count is now --min-group-size"],
    ["umbra job submit (federated-aggregate) --max-abs", [...FA_JOB, "--max-abs", "1000"], "--max-abs is now --max-abs-value"],
    ["umbra job submit (federated-aggregate) --max-rows", [...FA_JOB, "--max-rows", "5000"], "--max-rows is now --max-rows-per-provider"],
    ["umbra job submit (psi) --dataset MY_FILE", [...PSI_JOB, "--dataset", "customers.csv"], "--dataset is now --input (your own file, in your data folder) or --provider-dataset (a provider's dataset ID, once per provider)"],
    ["umbra job submit (join-aggregate) --dataset ID", [...JA_JOB, "--dataset", "telco.spend.csv"], "--dataset is now --input (your own file, in your data folder) or --provider-dataset (a provider's dataset ID, once per provider)"],
    ["umbra lookup --version", ["lookup", "--buyer", "b.csv", "--prepared", "p.arrow", "--seed-file", "s.seed", "--key", "k", "--out", "o.csv", "--version", "3"], "--version is now --product-version (the product key's version; umbra version prints the CLI's)"],
    ["umbra lookup prepare --version", ["lookup", "prepare", "--provider", "p.csv", "--key", "k", "--columns", "c", "--product", "p", "--version", "1", "--seed-file", "s.seed", "--out", "p.arrow"], "--version is now --product-version (the product key's version; umbra version prints the CLI's)"],
    ["umbra audit verify --public-key", ["audit", "verify", "--db", "exchange.db", "--public-key", "ab".repeat(32)], "--public-key is now --exchange-key (the exchange's signing key, as umbra party start takes it)"],
  ])("%s: exit 2, the message names the new option", async (_name, args, message) => {
    const r = await umbra(args);
    expect({ status: r.status, first: r.stderr.split("\n")[0] }).toEqual({ status: 2, first: `umbra: ${message}` });
  });

  it("job submit refuses --approximate for join-aggregate (it was ignored)", async () => {
    const r = await umbra([...JA_JOB, "--provider-dataset", "telco.spend.csv", "--approximate"], { UMBRA_TOKEN: "t" });
    expect({ status: r.status, first: r.stderr.split("\n")[0] }).toEqual({ status: 2, first: "umbra: --approximate applies to federated-aggregate only" });
  });

  it("an old name on a command that never took the concept is an unknown option", async () => {
    const r = await umbra(["psi", "--buyer", "a.csv", "--provider", "b.csv", "--key", "k", "--cardinality", "--min-count", "3"]);
    expect({ status: r.status, first: r.stderr.split("\n")[0] }).toEqual({ status: 2, first: 'umbra: unknown option "--min-count"' });
  });
});
