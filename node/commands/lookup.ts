/**
 * `umbra lookup` and `umbra lookup prepare`: labeled PSI / enrichment
 * (protocols/lookup.ts), both roles played in this process by `runLookup`.
 *
 * - `lookup prepare` seals the provider's columns under the product key,
 *   derived from a 32-byte seed file with lookupKeyPair(seed, product,
 *   version), and writes the prepared table as Arrow IPC.
 * - `lookup --provider ... --columns ...` is the one-shot form: the provider's
 *   table is prepared in memory under a fresh random key, then looked up.
 * - `lookup --prepared FILE --seed-file FILE` looks up against a prepared table.
 *
 * The output is the buyer's rows with the provider's columns: a left join,
 * nulls where no provider row matches, one row per matching provider row.
 */
import { randomBytes } from "node:crypto";
import { open, stat, unlink, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { Field, RecordBatch, Schema, Table } from "apache-arrow";
import { FileFormat, openBatches, writeArrowIPC, writeTable, type KeyOptions } from "../../engine/columns/index.js";
import { InvalidArgumentError, InvalidInputError, UmbraError, UnreadableFileError, UnsupportedFormatError } from "../../engine/errors.js";
import { closePool, getPool } from "../../engine/pool/index.js";
import { lookupKeyPair, preparedTableInfo, prepareLookupTable, runLookup } from "../../protocols/index.js";
import { createProgress } from "../progress.js";
import { checkOutput, count, parseOptions, processIO, requireColumns, seconds, UsageError, type CommandIO, type OptionSpec } from "./args.js";
import { readInput, warnKeyShapes, warnUnmatchable, type InputFile } from "./data-checks.js";
import { JSON_USAGE_NOTE, Report } from "./report.js";

export const LOOKUP_USAGE = `  lookup --buyer FILE --provider FILE --columns C1[,C2...] --key COL[,COL...] --out FILE
      [--product NAME] [--product-version N] [--budget N] [--prefix P]
      [--digits-only] [--case-fold] [--delimiter C] [--json] [--quiet]
                 enrich the buyer's rows with the provider's columns (a left join:
                 null where no match), the provider's table prepared in memory
                 under a fresh key (product "local", product version 1 by default);
                 --prefix P names the provider's columns P<column> in the output
                 (needed when the buyer has a column of the same name)
  lookup --buyer FILE --prepared FILE --seed-file FILE --key COL[,COL...] --out FILE
      [--product NAME] [--product-version N] [--budget N] [--prefix P]
      [--digits-only] [--case-fold] [--delimiter C] [--json] [--quiet]
                 the same against a table made by "lookup prepare"
  lookup prepare --provider FILE --key COL[,COL...] --columns C1[,C2...] --product NAME
      --product-version N --seed-file FILE --out PREPARED.arrow
      [--digits-only] [--case-fold] [--delimiter C] [--quiet]
                 seal the provider's columns under the product key derived from a
                 32-byte seed file (created, mode 0600, if missing); Arrow IPC out

                 --delimiter sets the CSV inputs' field delimiter (default ",";
                 "tab" for a tab); a buyer file with no rows or a key column
                 blank in every row gets a warning;
                 ${JSON_USAGE_NOTE}
                 (lookup: "buyerRows", "matchedRows", "rows", "preparedRows",
                 "buyerDistinctKeys", "bytes")
`;

const USAGE = `Usage:\n${LOOKUP_USAGE}`;
const SEED_BYTES = 32;
const MAX_VERSION = 0xffffffff;

/** Extra metadata the CLI keeps in a prepared file, so a later lookup can check it uses the same keys. */
const META_KEY_COLUMNS = "umbra.cli.keyColumns";
const META_NORMALISE = "umbra.cli.normalise";

const PREPARE_OPTIONS: OptionSpec = {
  "--provider": "string",
  "--key": "string",
  "--columns": "string",
  "--product": "string",
  "--product-version": "string",
  "--seed-file": "string",
  "--out": "string",
  "--digits-only": "flag",
  "--case-fold": "flag",
  "--delimiter": "string",
  "--quiet": "flag",
};

const LOOKUP_OPTIONS: OptionSpec = {
  "--buyer": "string",
  "--provider": "string",
  "--columns": "string",
  "--prepared": "string",
  "--seed-file": "string",
  "--key": "string",
  "--out": "string",
  "--product": "string",
  "--product-version": "string",
  "--budget": "string",
  "--prefix": "string",
  "--digits-only": "flag",
  "--case-fold": "flag",
  "--delimiter": "string",
  "--json": "flag",
  "--quiet": "flag",
};

/** `umbra lookup ...` / `umbra lookup prepare ...`; returns the exit code. */
export async function lookupCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  if (args[0] === "prepare") return prepareCommand(args.slice(1), io);
  const o = parseOptions(args, LOOKUP_OPTIONS, USAGE);
  if (o === undefined) {
    io.out(USAGE.trimEnd());
    return 0;
  }
  const buyerPath = o.require("--buyer");
  const keys = o.requireList("--key");
  const out = o.require("--out");
  const preparedPath = o.get("--prepared");
  const budget = o.integer("--budget");
  const wantProduct = o.get("--product");
  const wantVersion = o.integer("--product-version", MAX_VERSION);
  const normalise = o.keyOptions();
  const prefix = o.get("--prefix") ?? "";
  const delimiter = o.delimiter();
  const report = new Report(io, o.has("--json"), o.has("--quiet"));
  const buyerFile: InputFile = { role: "buyer", path: buyerPath, delimiter };
  let providerPath: string | undefined;
  let labels: string[] | undefined;
  let seedPath: string | undefined;
  if (preparedPath !== undefined) {
    if (o.has("--provider") || o.has("--columns")) throw new UsageError("--prepared replaces --provider and --columns", USAGE);
    seedPath = o.require("--seed-file", "is required with --prepared");
  } else {
    providerPath = o.require("--provider", "is required (or --prepared with --seed-file)");
    labels = o.requireList("--columns");
    if (o.has("--seed-file")) throw new UsageError("--seed-file goes with --prepared (the one-shot form uses a fresh random key)", USAGE);
    const both = labels.find((c) => keys.includes(c));
    if (both !== undefined) throw new UsageError(`column "${both}" is in both --key and --columns`, USAGE);
  }
  checkOutput(out, [buyerPath, providerPath, preparedPath, seedPath], USAGE);

  const progress = createProgress({ quiet: o.has("--quiet") });
  const t0 = performance.now();
  let prepareMs: number | undefined;
  let lookupMs: number;
  let result: Awaited<ReturnType<typeof runLookup>>;
  let buyerRows: number;
  let buyerNames: string[];
  try {
    let prepared: Table;
    let secretKey: Uint8Array;
    let buyer: Table;
    if (providerPath !== undefined && labels !== undefined) {
      const labelColumns = labels;
      const providerFile: InputFile = { role: "provider", path: providerPath, delimiter };
      const [b, provider] = await Promise.all([readInput(buyerFile), readInput(providerFile, { columns: [...keys, ...labelColumns] })]);
      buyer = b;
      requireColumns(buyer, keys, "buyer", buyerPath, delimiter);
      warnUnmatchable(report, buyer, keys, buyerFile);
      warnUnmatchable(report, provider, keys, providerFile);
      warnKeyShapes(report, buyer, provider, { buyer: keys, provider: keys }, normalise);
      checkNoClash(buyer, labelColumns, prefix);
      const product = wantProduct ?? "local";
      const version = wantVersion ?? 1;
      const t1 = performance.now();
      // A fresh key: the prepared table lives for this run only.
      secretKey = lookupKeyPair(randomBytes(SEED_BYTES), product, version).secretKey;
      prepared = await prepareLookupTable({
        table: provider,
        keys,
        labels: labelColumns,
        normalise,
        secretKey,
        product,
        version,
        pool: getPool(),
        onProgress: progress.onProgress,
      });
      prepareMs = performance.now() - t1;
    } else {
      const [b, p] = await Promise.all([readInput(buyerFile), readInput({ role: "prepared", path: preparedPath as string })]);
      buyer = b;
      prepared = p;
      requireColumns(buyer, keys, "buyer", buyerPath, delimiter);
      warnUnmatchable(report, buyer, keys, buyerFile);
      const info = preparedTableInfo(prepared);
      if (wantProduct !== undefined && wantProduct !== info.product) {
        throw new InvalidArgumentError(`the prepared table is for product "${info.product}", not "${wantProduct}"`);
      }
      if (wantVersion !== undefined && wantVersion !== info.version) {
        throw new InvalidArgumentError(`the prepared table is for version ${info.version}, not ${wantVersion}`);
      }
      checkNoClash(buyer, info.labelSchema.fields.map((f) => f.name), prefix);
      checkPreparedKeys(prepared, keys, normalise, report);
      const { seed } = await loadSeed(seedPath as string, { create: false, io });
      secretKey = lookupKeyPair(seed, info.product, info.version).secretKey;
    }
    buyerRows = buyer.numRows;
    buyerNames = buyer.schema.fields.map((f) => f.name);
    const t2 = performance.now();
    result = await runLookup({
      // With --prefix, the buyer's other columns run under placeholder names, so a name both sides use is no clash.
      buyer: { table: prefix === "" ? buyer : renamed(buyer, (f, i) => (keys.includes(f.name) ? f.name : `\u0001buyer column ${i}`)), keys, normalise },
      provider: { prepared, secretKey, ...(budget !== undefined ? { budgetRemaining: budget } : {}) },
      onProgress: progress.onProgress,
    });
    lookupMs = performance.now() - t2;
  } finally {
    progress.finish();
    await closePool();
  }

  await writeTable(out, withPrefix(result.table, buyerNames, prefix));
  const s = result.stats;
  if (preparedPath !== undefined && result.matchedRows === 0 && buyerRows > 0) {
    report.warning("no buyer row matched; check that --seed-file, --key and the key normalisation are those of the \"lookup prepare\" run");
  }
  report.finish(
    [
      `buyer rows: ${count(buyerRows)}; matched rows: ${count(result.matchedRows)}; rows written: ${count(result.table.numRows)} to ${out}; ` +
        `prepared rows: ${count(s.preparedRows)}; buyer distinct keys: ${count(s.queries)}; ` +
        `bytes buyer->provider: ${count(s.bytesBuyerToProvider)}, provider->buyer: ${count(s.bytesProviderToBuyer)}; ` +
        (budget !== undefined ? `budget remaining: ${count(s.budgetRemaining)}; ` : "") +
        `lookup ${seconds(lookupMs)}; ` +
        (prepareMs !== undefined ? `preparation ${seconds(prepareMs)}; ` : "preparation: prepared file; ") +
        `total ${seconds(performance.now() - t0)}`,
    ],
    {
      command: "lookup",
      buyerRows,
      matchedRows: result.matchedRows,
      rows: result.table.numRows,
      preparedRows: s.preparedRows,
      buyerDistinctKeys: s.queries,
      bytes: { buyerToProvider: s.bytesBuyerToProvider, providerToBuyer: s.bytesProviderToBuyer },
      ...(budget !== undefined ? { budgetRemaining: s.budgetRemaining } : {}),
      out,
      seconds: (performance.now() - t0) / 1000,
    },
  );
  return 0;
}

/** `umbra lookup prepare ...`. */
async function prepareCommand(args: readonly string[], io: CommandIO): Promise<number> {
  const o = parseOptions(args, PREPARE_OPTIONS, USAGE);
  if (o === undefined) {
    io.out(USAGE.trimEnd());
    return 0;
  }
  const providerPath = o.require("--provider");
  const keys = o.requireList("--key");
  const labels = o.requireList("--columns");
  const product = o.require("--product");
  o.require("--product-version");
  const version = o.integer("--product-version", MAX_VERSION) as number;
  const seedPath = o.require("--seed-file");
  const out = o.require("--out");
  const both = labels.find((c) => keys.includes(c));
  if (both !== undefined) throw new UsageError(`column "${both}" is in both --key and --columns`, USAGE);
  const format = checkOutput(out, [providerPath, seedPath], USAGE);
  if (format !== FileFormat.ArrowIpc && format !== FileFormat.ArrowStream) {
    throw new UnsupportedFormatError(`file "${basename(out)}": a prepared table is written as Arrow IPC (.arrow, .feather, .ipc or .arrows)`);
  }
  const normalise = o.keyOptions();
  const delimiter = o.delimiter();
  // Checks the product name and version before any work.
  lookupKeyPair(new Uint8Array(SEED_BYTES), product, version);

  const progress = createProgress({ quiet: o.has("--quiet") });
  const t0 = performance.now();
  let prepared: Table;
  let providerRows: number;
  try {
    const provider = await readInput({ role: "provider", path: providerPath, delimiter }, { columns: [...keys, ...labels] });
    providerRows = provider.numRows;
    const { seed } = await loadSeed(seedPath, { create: true, io });
    const { secretKey } = lookupKeyPair(seed, product, version);
    prepared = await prepareLookupTable({ table: provider, keys, labels, normalise, secretKey, product, version, pool: getPool(), onProgress: progress.onProgress });
  } finally {
    progress.finish();
    await closePool();
  }
  const withMeta = withMetadata(prepared, [
    [META_KEY_COLUMNS, String(keys.length)],
    [META_NORMALISE, normaliseTag(normalise)],
  ]);
  await writeArrowIPC(out, withMeta, { format: format === FileFormat.ArrowStream ? "stream" : "file" });
  await checkWritten(out, product, version, labels);
  io.out(
    `prepared rows: ${count(prepared.numRows)} (distinct keys) from ${count(providerRows)} provider rows; columns: ${labels.join(", ")}; ` +
      `product "${product}" version ${version}; written to ${out}; ${seconds(performance.now() - t0)}`,
  );
  return 0;
}

// ------------------------------------------------------------- helpers

/** The output would hold a buyer column and a provider column (named with --prefix) of the same name. */
function checkNoClash(buyer: Table, labels: readonly string[], prefix: string): void {
  const names = new Set(buyer.schema.fields.map((f) => f.name));
  const clash = labels.find((c) => names.has(`${prefix}${c}`));
  if (clash === undefined) return;
  const named = prefix === "" ? `column "${clash}" is both a buyer column and a provider column` : `the provider's column "${clash}" with --prefix is "${prefix}${clash}", a buyer column too`;
  throw new InvalidArgumentError(`${named}; give --prefix P to name the provider's columns P<column> in the output (e.g. --prefix provider_)`);
}

/** The lookup's output with the buyer's columns under their names and the provider's (those after them) named `prefix` + name. */
function withPrefix(table: Table, buyerNames: readonly string[], prefix: string): Table {
  if (prefix === "") return table;
  return renamed(table, (f, i) => (i < buyerNames.length ? (buyerNames[i] as string) : `${prefix}${f.name}`));
}

/** The table with its columns renamed (the batches re-labelled, not copied). */
function renamed(table: Table, name: (f: Field, i: number) => string): Table {
  const schema = new Schema(table.schema.fields.map((f, i) => new Field(name(f, i), f.type, f.nullable, f.metadata)), table.schema.metadata);
  return new Table(schema, table.batches.map((b) => new RecordBatch(schema, b.data)));
}

/** "digitsOnly=0,caseFold=1": the flags of the CLI that change key bytes. */
function normaliseTag(n: KeyOptions): string {
  return `digitsOnly=${n.digitsOnly ? 1 : 0},caseFold=${n.caseFold ? 1 : 0}`;
}

/** A table with extra schema metadata (the batches are re-labelled, not copied). */
function withMetadata(table: Table, extra: readonly (readonly [string, string])[]): Table {
  const schema = new Schema(table.schema.fields, new Map([...table.schema.metadata, ...extra]));
  return new Table(schema, table.batches.map((b) => new RecordBatch(schema, b.data)));
}

/** A prepared file made by this CLI records its key arity and normalisation: check the lookup uses the same. */
function checkPreparedKeys(prepared: Table, keys: readonly string[], normalise: KeyOptions, report: Report): void {
  const md = prepared.schema.metadata;
  const arity = md.get(META_KEY_COLUMNS);
  if (arity !== undefined && Number(arity) !== keys.length) {
    throw new InvalidArgumentError(`the prepared table has ${arity} key column(s) and --key names ${keys.length}: no key could match`);
  }
  const tag = md.get(META_NORMALISE);
  if (tag !== undefined && tag !== normaliseTag(normalise)) {
    report.warning(`the prepared table's keys were normalised with ${tag}, this lookup uses ${normaliseTag(normalise)}; keys written differently will not match`);
  }
}

/** Reads the written file's schema back and checks the prepared table's metadata survived. */
async function checkWritten(out: string, product: string, version: number, labels: readonly string[]): Promise<void> {
  const source = await openBatches(out);
  try {
    const info = preparedTableInfo(new Table(source.schema));
    if (info.product !== product || info.version !== version || info.labelSchema.fields.map((f) => f.name).join("\n") !== labels.join("\n")) {
      throw new Error("metadata differs");
    }
  } catch (err) {
    throw new UmbraError("UMBRA_INTERNAL", `the prepared table's metadata did not survive writing file "${basename(out)}"`, { cause: err });
  } finally {
    await source.batches.return(undefined);
  }
}

function osCode(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? (err as { code: unknown }).code : undefined;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : "unknown reason";
}

/**
 * The 32-byte master seed of the product keys. With `create`, a missing file
 * is created with 32 random bytes and mode 0600 (and the user is told on
 * stderr). A seed file other users can read gets a warning.
 */
export async function loadSeed(path: string, o: { create: boolean; io: CommandIO }): Promise<{ seed: Uint8Array; created: boolean }> {
  const name = `seed file "${basename(path)}"`;
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if (osCode(err) !== "ENOENT" || !o.create) throw new UnreadableFileError(`cannot open ${name}: ${osCode(err)}`, { cause: err });
    const created = await createSeed(path, name);
    if (created) {
      o.io.err(`umbra: created ${name} with ${SEED_BYTES} random bytes (mode 0600): keep it secret and keep it safe; the product keys derive from it`);
      return { seed: created, created: true };
    }
    st = await stat(path); // created meanwhile by someone else: read it
  }
  if (!st.isFile()) throw new UnreadableFileError(`cannot read ${name}: not a regular file`);
  if (st.size !== SEED_BYTES) throw new InvalidInputError(`${name} must hold exactly ${SEED_BYTES} bytes (it holds ${st.size})`);
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
    o.io.err(`umbra: warning: ${name} is accessible to other users (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); chmod 600 it`);
  }
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    const seed = new Uint8Array(SEED_BYTES);
    const { bytesRead } = await handle.read(seed, 0, SEED_BYTES, 0);
    if (bytesRead !== SEED_BYTES) throw new InvalidInputError(`${name} must hold exactly ${SEED_BYTES} bytes`);
    return { seed, created: false };
  } catch (err) {
    if (err instanceof UmbraError) throw err;
    throw new UnreadableFileError(`cannot read ${name}: ${osCode(err)}`, { cause: err });
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Creates the seed file exclusively; undefined when it appeared meanwhile. */
async function createSeed(path: string, name: string): Promise<Uint8Array | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (err) {
    if (osCode(err) === "EEXIST") return undefined;
    throw new UnreadableFileError(`cannot create ${name}: ${osCode(err)}`, { cause: err });
  }
  const seed = new Uint8Array(randomBytes(SEED_BYTES));
  try {
    await handle.writeFile(seed);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new UnreadableFileError(`cannot write ${name}: ${osCode(err)}`, { cause: err });
  }
  await handle.close();
  return seed;
}
