/**
 * runPsiOt: plays psi-ot's buyer and provider in this process over the
 * serialising in-memory transport. Arrow tables in, the buyer's matching
 * rows out — the same result as runPsi in mode "intersection".
 */
import { randomUUID } from "node:crypto";
import { keysFromTable, takeRows } from "../../engine/columns/index.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import type { PsiIntersectionResult, PsiRunStats, PsiSide } from "../psi/run.js";
import { checkOptions, SIDE_KEY_OPTIONS, SIDE_RENAMED, type OptionShape } from "../options.js";
import { withToJson } from "../results.js";
import { player, runRoles } from "../role.js";
import { psiOtBuyer, type PsiOtBuyerState } from "./buyer.js";
import type { PsiOtContext } from "./common.js";
import { psiOtProvider } from "./provider.js";

export interface RunPsiOtOptions {
  readonly buyer: PsiSide;
  readonly provider: PsiSide;
  readonly job?: string;
  /** The worker pool for the bulk stages (default: the process-wide pool on every core). */
  readonly pool?: CryptoPool;
  /** Tags per chunk the provider sends (default 65,536). */
  readonly chunkElements?: number;
  /** Columns of the extension matrix per buyer message (default: as many as fit in 4 MiB). */
  readonly matrixColumns?: number;
  /** The result is released only when at least this many distinct buyer keys matched (default 1). */
  readonly minIntersection?: number;
  /** The provider refuses a buyer announcing more distinct keys (KeyLimitExceededError); default 10^8. */
  readonly maxBuyerKeys?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Sees every encoded frame (tests). */
  readonly tap?: (from: "buyer" | "provider", to: "buyer" | "provider", frame: Uint8Array) => void;
}

const SIDE: OptionShape = { names: SIDE_KEY_OPTIONS, required: ["table", "keys"], renamed: SIDE_RENAMED };
export const RUN_PSI_OT_OPTIONS: OptionShape = {
  names: ["buyer", "provider", "job", "pool", "chunkElements", "matrixColumns", "minIntersection", "maxBuyerKeys", "onProgress", "tap"],
  required: ["buyer", "provider"],
  nested: { buyer: SIDE, provider: SIDE },
};

/**
 * OT-extension PSI of the buyer's and the provider's key columns, both roles
 * played here: the buyer's matching rows.
 *
 * @throws UnknownOptionError, MissingColumnError, BelowMinimumError as runPsi;
 *   UnsupportedSizeError for more than 2^24 distinct buyer keys.
 */
export async function runPsiOt(options: RunPsiOtOptions): Promise<PsiIntersectionResult> {
  checkOptions("runPsiOt", options, RUN_PSI_OT_OPTIONS);
  const { buyer, provider } = options;
  if (buyer.keys.length === 0 || buyer.keys.length !== provider.keys.length) throw new InvalidArgumentError("both sides need the same number of key columns (at least one)");
  const job = options.job ?? `local-${randomUUID()}`;
  const params = {
    job,
    ...(options.chunkElements ? { chunkElements: options.chunkElements } : {}),
    ...(options.matrixColumns ? { matrixColumns: options.matrixColumns } : {}),
    ...(options.minIntersection !== undefined ? { minIntersection: options.minIntersection } : {}),
  };
  const providerParams = { ...params, ...(options.maxBuyerKeys !== undefined ? { maxPeerSetSize: options.maxBuyerKeys } : {}) };
  const pool = options.pool ?? getPool();
  // The workers start while this thread reads the keys (a fresh pool's start-up is a few hundred ms).
  const warming = pool.warm().catch(() => undefined);
  const ctx: PsiOtContext = { pool, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
  const buyerKeys = keysFromTable(buyer.table, buyer.keys, { ...buyer.normalise, source: "buyer table" });
  const providerKeys = keysFromTable(provider.table, provider.keys, { ...provider.normalise, source: "provider table" });
  await warming;
  const run = await runRoles(
    { buyer: player(psiOtBuyer, { params, keys: buyerKeys }, ctx), provider: player(psiOtProvider, { params: providerParams, keys: providerKeys }, ctx) },
    options.tap ? { tap: options.tap as (from: string, to: string, frame: Uint8Array) => void } : {},
  );
  const result = psiOtBuyer.result(run.states["buyer"] as PsiOtBuyerState);
  const s = run.stats;
  const stats: PsiRunStats = {
    job,
    buyerSetSize: result.buyerSetSize,
    providerSetSize: result.providerSetSize,
    bytesBuyerToProvider: s.bytesSent["buyer"] ?? 0,
    bytesProviderToBuyer: s.bytesSent["provider"] ?? 0,
    messagesBuyerToProvider: s.messagesSent["buyer"] ?? 0,
    messagesProviderToBuyer: s.messagesSent["provider"] ?? 0,
  };
  return withToJson({ mode: "intersection", table: takeRows(buyer.table, result.matchedRows), matchedRows: result.matchedRows, stats });
}
