/**
 * runPsi: plays the buyer and the provider of psi / psi-cardinality in this
 * process over the serialising in-memory transport. Arrow tables in, the
 * buyer's matching rows (an Arrow table) or the count out.
 */
import { randomUUID } from "node:crypto";
import type { Table } from "apache-arrow";
import { keysFromTable, takeRows, type KeyOptions } from "../../engine/columns/index.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import type { BackendId, GroupId } from "../../engine/group/index.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import { psiBuyer, psiProvider, PsiMode, type PsiBuyerResult, type PsiBuyerState, type PsiContext } from "./roles.js";
import { player, runRoles } from "../role.js";
import { checkOptions, SIDE_KEY_OPTIONS, SIDE_RENAMED, type OptionShape } from "../options.js";
import { withToJson, type JsonResult } from "../results.js";

export interface PsiSide {
  readonly table: Table;
  /** Key column names (several for a composite key), in the same order on both sides. */
  readonly keys: readonly string[];
  /** Key normalisation for this side (default: trim + NFC). */
  readonly normalise?: KeyOptions;
}

export interface RunPsiOptions {
  readonly buyer: PsiSide;
  readonly provider: PsiSide;
  readonly mode?: PsiMode;
  readonly group?: GroupId;
  readonly backend?: BackendId;
  readonly job?: string;
  readonly pool?: CryptoPool;
  readonly chunkElements?: number;
  /**
   * The buyer's result is released only when at least this many distinct
   * buyer keys matched (cardinality: the count); default 1 (nothing
   * withheld). Below it runPsi throws BelowMinimumError (see psi.ts Job limits).
   */
  readonly minIntersection?: number;
  /** The provider refuses a buyer announcing more distinct keys (KeyLimitExceededError); default 10^8. */
  readonly maxBuyerKeys?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Sees every encoded frame (tests). */
  readonly tap?: (from: "buyer" | "provider", to: "buyer" | "provider", frame: Uint8Array) => void;
}

export interface PsiRunStats {
  readonly job: string;
  readonly buyerSetSize: number;
  readonly providerSetSize: number;
  readonly bytesBuyerToProvider: number;
  readonly bytesProviderToBuyer: number;
  readonly messagesBuyerToProvider: number;
  readonly messagesProviderToBuyer: number;
}

/** runPsi's result in mode "intersection" (the default). */
export interface PsiIntersectionResult extends JsonResult {
  readonly mode: "intersection";
  /** The buyer's rows whose key the provider also holds (each matching buyer row once), in the buyer's order. */
  readonly table: Table;
  /** Their indices in the buyer's table. */
  readonly matchedRows: Uint32Array;
  readonly stats: PsiRunStats;
}

/** runPsi's result in mode "cardinality". */
export interface PsiCardinalityResult extends JsonResult {
  readonly mode: "cardinality";
  /** The number of distinct shared keys. */
  readonly count: number;
  readonly stats: PsiRunStats;
}

export type PsiRunResult = PsiIntersectionResult | PsiCardinalityResult;

const SIDE: OptionShape = { names: SIDE_KEY_OPTIONS, required: ["table", "keys"], renamed: SIDE_RENAMED };
/** The options runPsi takes (checked at run time: an unknown one is an UnknownOptionError). */
export const RUN_PSI_OPTIONS: OptionShape = {
  names: ["buyer", "provider", "mode", "group", "backend", "job", "pool", "chunkElements", "minIntersection", "maxBuyerKeys", "onProgress", "tap"],
  required: ["buyer", "provider"],
  nested: { buyer: SIDE, provider: SIDE },
};

/**
 * ECDH-PSI of the buyer's and the provider's key columns, both roles played
 * here. Mode "intersection" (default): the buyer's matching rows; mode
 * "cardinality": their number of distinct shared keys alone.
 *
 * @throws UnknownOptionError for an option runPsi does not take (e.g. `key` for `keys`).
 * @throws MissingColumnError for a key column a table lacks.
 * @throws BelowMinimumError when fewer than `minIntersection` keys matched.
 */
export function runPsi(options: RunPsiOptions & { readonly mode?: "intersection" }): Promise<PsiIntersectionResult>;
export function runPsi(options: RunPsiOptions & { readonly mode: "cardinality" }): Promise<PsiCardinalityResult>;
export function runPsi(options: RunPsiOptions): Promise<PsiRunResult>;
export async function runPsi(options: RunPsiOptions): Promise<PsiRunResult> {
  checkOptions("runPsi", options, RUN_PSI_OPTIONS);
  const { buyer, provider } = options;
  if (buyer.keys.length === 0 || buyer.keys.length !== provider.keys.length) {
    throw new InvalidArgumentError("both sides need the same number of key columns (at least one)");
  }
  const mode = options.mode ?? PsiMode.Intersection;
  const job = options.job ?? `local-${randomUUID()}`;
  const params = {
    job,
    mode,
    ...(options.group ? { group: options.group } : {}),
    ...(options.chunkElements ? { chunkElements: options.chunkElements } : {}),
    ...(options.minIntersection !== undefined ? { minIntersection: options.minIntersection } : {}),
  };
  const providerParams = { ...params, ...(options.maxBuyerKeys !== undefined ? { maxPeerSetSize: options.maxBuyerKeys } : {}) };
  const ctx: PsiContext = {
    pool: options.pool ?? getPool(),
    ...(options.backend ? { backend: options.backend } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
  const buyerKeys = keysFromTable(buyer.table, buyer.keys, { ...buyer.normalise, source: "buyer table" });
  const providerKeys = keysFromTable(provider.table, provider.keys, { ...provider.normalise, source: "provider table" });

  // Both roles work at the same time (the buyer raising the provider's elements while the
  // provider raises the buyer's), so the pool's workers stay busy.
  const run = await runRoles(
    { buyer: player(psiBuyer, { params, keys: buyerKeys }, ctx), provider: player(psiProvider, { params: providerParams, keys: providerKeys }, ctx) },
    options.tap ? { tap: options.tap as (from: string, to: string, frame: Uint8Array) => void } : {},
  );
  const result: PsiBuyerResult = psiBuyer.result(run.states["buyer"] as PsiBuyerState);
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
  if (result.mode === "cardinality") return withToJson({ mode: "cardinality", count: result.count, stats });
  return withToJson({ mode: "intersection", table: takeRows(buyer.table, result.matchedRows), matchedRows: result.matchedRows, stats });
}
