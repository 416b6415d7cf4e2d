/**
 * `umbra psi`: private set intersection of two files, both roles played in
 * this process by `runPsi` (the real protocol, every message serialised).
 * Nothing here prints a key or a cell value: summaries hold counts, byte
 * sizes, times, file names and column names only.
 */
import { writeTable } from "../../engine/columns/index.js";
import { GroupId } from "../../engine/group/index.js";
import { closePool } from "../../engine/pool/index.js";
import { CLUSTER_OPTIONS, clusterPoolOption } from "./worker.js";
import { CUCKOO_MAX_ITEMS } from "../../engine/psi/index.js";
import { PsiMode, runNoisyCardinality, runPsi, runPsiOt, type NoisyCardinalityResult } from "../../protocols/index.js";
import { dpRhoOption } from "./aggregate.js";
import { createProgress } from "../progress.js";
import { checkOutput, count, parseOptions, processIO, requireColumns, seconds, UsageError, type CommandIO, type OptionSpec } from "./args.js";
import { readInput, warnKeyShapes, warnUnmatchable, type InputFile } from "./data-checks.js";
import { JSON_USAGE_NOTE, Report } from "./report.js";

// ------------------------------------------------------------------ psi

export const PSI_USAGE = `  psi --buyer FILE --provider FILE --key COL[,COL...] (--out FILE | --cardinality)
      [--engine ecdh|ot] [--group x25519|ristretto255] [--digits-only]
      [--rho R | --epsilon E [--delta D]] [--case-fold] [--delimiter C] [--json] [--quiet]
      [--cluster REDIS_URL --cluster-key FILE]
                 private set intersection: writes the buyer's rows whose key the
                 provider also holds to --out (.csv/.arrow/.parquet), or with
                 --cardinality prints only the number of distinct shared keys;
                 --engine ot runs psi-ot (OT-extension PSI, semi-honest, at most
                 2^24 distinct buyer keys; not with --cardinality or --group),
                 ecdh the ECDH psi; the default is ot, and ecdh with
                 --cardinality or --group or more than 2^24 buyer rows;
                 --cardinality with --rho R or --epsilon E releases a noisy count
                 (differential privacy, ρ-zCDP; sensitivity 1): the provider and
                 the exchange each add a noise share under the buyer's
                 encryption (join-aggregate's COUNT over distinct keys; the
                 exchange learns the exact count; docs/differential-privacy.md);
                 --cluster runs the ECDH work on umbra worker processes through that
                 Redis (--engine ecdh; docs/scale.md);
                 --delimiter sets the CSV inputs' field delimiter (default ",",
                 "tab" for a tab); a file with no rows or a key column blank in
                 every row gets a warning;
                 ${JSON_USAGE_NOTE}
                 (psi: "rows", or "intersectionSize" with --cardinality,
                 "buyerDistinctKeys", "providerDistinctKeys", "bytes")
`;

const PSI_OPTIONS: OptionSpec = {
  ...CLUSTER_OPTIONS,
  "--buyer": "string",
  "--provider": "string",
  "--key": "string",
  "--out": "string",
  "--cardinality": "flag",
  "--group": "string",
  "--engine": "string",
  "--rho": "string",
  "--epsilon": "string",
  "--delta": "string",
  "--digits-only": "flag",
  "--case-fold": "flag",
  "--delimiter": "string",
  "--json": "flag",
  "--quiet": "flag",
};

/** `umbra psi ...`; returns the exit code. */
export async function psiCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${PSI_USAGE}`;
  const o = parseOptions(args, PSI_OPTIONS, usage);
  if (o === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  const buyerPath = o.require("--buyer");
  const providerPath = o.require("--provider");
  const keys = o.requireList("--key");
  const cardinality = o.has("--cardinality");
  const out = o.get("--out");
  const chosen = o.get("--engine");
  if (chosen !== undefined && chosen !== "ecdh" && chosen !== "ot") throw new UsageError("--engine must be ecdh or ot", usage);
  const clustered = o.has("--cluster");
  if (clustered && chosen === "ot") throw new UsageError("--cluster runs the ECDH psi: drop --engine ot (psi-ot runs in this process)", usage);
  let engine = chosen ?? (cardinality || clustered || o.get("--group") !== undefined ? "ecdh" : "ot");
  if (engine === "ot" && cardinality) throw new UsageError("--engine ot computes the intersection only: drop --cardinality, or use --engine ecdh", usage);
  if (engine === "ot" && o.get("--group") !== undefined) throw new UsageError("--group applies to --engine ecdh only", usage);
  const groupName = o.get("--group") ?? GroupId.X25519;
  if (groupName !== GroupId.X25519 && groupName !== GroupId.Ristretto255) throw new UsageError(`--group must be x25519 or ristretto255`, usage);
  const group: GroupId = groupName;
  if (!cardinality && out === undefined) throw new UsageError("--out FILE is required (or --cardinality for the count alone)", usage);
  const rho = dpRhoOption(o, usage);
  if (rho !== undefined && !cardinality) throw new UsageError("--rho / --epsilon apply to --cardinality only (an intersection's rows cannot be noised)", usage);
  if (rho !== undefined && (chosen !== undefined || o.get("--group") !== undefined)) throw new UsageError("a noisy count runs join-aggregate's mechanism: drop --engine and --group", usage);
  const delimiter = o.delimiter();
  const report = new Report(io, o.has("--json"), o.has("--quiet"));
  if (cardinality && out !== undefined) report.warning("--out is ignored with --cardinality (nothing is written)");
  if (!cardinality && out !== undefined) checkOutput(out, [buyerPath, providerPath], usage);
  const normalise = o.keyOptions();
  const buyerFile: InputFile = { role: "buyer", path: buyerPath, delimiter };
  const providerFile: InputFile = { role: "provider", path: providerPath, delimiter };

  const pool = await clusterPoolOption(o, usage);
  const progress = createProgress({ quiet: o.has("--quiet") });
  const t0 = performance.now();
  let result: Awaited<ReturnType<typeof runPsi>> | undefined;
  let noisy: NoisyCardinalityResult | undefined;
  let protocolMs: number;
  try {
    const [buyer, provider] = await Promise.all([readInput(buyerFile), readInput(providerFile, { columns: keys })]);
    requireColumns(buyer, keys, "buyer", buyerPath, delimiter);
    warnUnmatchable(report, buyer, keys, buyerFile);
    warnUnmatchable(report, provider, keys, providerFile);
    warnKeyShapes(report, buyer, provider, { buyer: keys, provider: keys }, normalise);
    // psi-ot's cuckoo table holds at most 2^24 distinct buyer keys: more rows than that go to ECDH unless ot was asked for.
    if (chosen === undefined && engine === "ot" && buyer.numRows > CUCKOO_MAX_ITEMS) engine = "ecdh";
    const t1 = performance.now();
    const sides = { buyer: { table: buyer, keys, normalise }, provider: { table: provider, keys, normalise }, onProgress: progress.onProgress };
    if (rho !== undefined) noisy = await runNoisyCardinality({ buyer: sides.buyer, provider: sides.provider, dp: { rho }, onProgress: progress.onProgress, ...(pool ? { pool } : {}) });
    else
      result =
        engine === "ot"
          ? await runPsiOt(sides)
          : await runPsi({ ...sides, mode: cardinality ? PsiMode.Cardinality : PsiMode.Intersection, group, ...(pool ? { pool } : {}) });
    protocolMs = performance.now() - t1;
  } finally {
    progress.finish();
    await pool?.close();
    await closePool();
  }

  if (noisy !== undefined) {
    const n = noisy;
    const sigma = n.dp.statistics[0]?.sigma ?? 0;
    const shown = n.clamped ? "0 (the noisy count was below 1)" : String(n.count);
    report.finish(
      [
        `noisy intersection size: ${shown}; 95% interval [${n.interval.low}, ${n.interval.high}]`,
        `differential privacy: ρ = ${n.dp.rho} zCDP (ε = ${n.dp.epsilonAtDelta1e6.toPrecision(3)} at δ = 1e-6), noise σ = ${sigma.toFixed(2)} added by the provider and the exchange; ${seconds(performance.now() - t0)} (protocol ${seconds(protocolMs)})`,
      ],
      {
        command: "psi",
        engine: "dp",
        noisyIntersectionSize: Number(n.count),
        clamped: n.clamped,
        interval: { low: Number(n.interval.low), high: Number(n.interval.high), level: n.interval.level },
        dp: { rho: n.dp.rho, epsilonAtDelta1e6: n.dp.epsilonAtDelta1e6, sigma },
        bytes: { sent: Object.values(n.stats.bytesSent).reduce((a, b) => a + b, 0) },
        out: null,
        seconds: (performance.now() - t0) / 1000,
      },
    );
    return 0;
  }
  const done = result as NonNullable<typeof result>; // set whenever noisy is not
  const s = done.stats;
  const traffic = `bytes buyer->provider: ${count(s.bytesBuyerToProvider)}, provider->buyer: ${count(s.bytesProviderToBuyer)}`;
  const sizes = `buyer distinct keys: ${count(s.buyerSetSize)}; provider distinct keys: ${count(s.providerSetSize)}`;
  const fields = {
    command: "psi",
    engine,
    buyerDistinctKeys: s.buyerSetSize,
    providerDistinctKeys: s.providerSetSize,
    bytes: { buyerToProvider: s.bytesBuyerToProvider, providerToBuyer: s.bytesProviderToBuyer },
  };
  if (done.mode === "cardinality") {
    const time = `${seconds(performance.now() - t0)} (protocol ${seconds(protocolMs)})`;
    report.finish([`intersection size: ${done.count}`, `${sizes}; ${traffic}; ${time}`], { ...fields, intersectionSize: done.count, out: null, seconds: (performance.now() - t0) / 1000 });
    return 0;
  }
  await writeTable(out as string, done.table);
  report.finish(
    [`rows written: ${count(done.table.numRows)} to ${out as string}; ${sizes}; ${traffic}; ${seconds(performance.now() - t0)} (protocol ${seconds(protocolMs)})`],
    { ...fields, rows: done.table.numRows, out: out as string, seconds: (performance.now() - t0) / 1000 },
  );
  return 0;
}
