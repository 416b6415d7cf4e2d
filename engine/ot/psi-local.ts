/**
 * The OT-extension PSI run in one process: both roles' steps in order, the
 * messages passed as plain byte arrays. It shows the pipeline (KKRT16 §5:
 * cuckoo hashing + batched OPRF + comparison of tags) gives exactly the
 * plaintext intersection, and it is what bench/ot.bench.ts times stage by
 * stage. The protocol role (protocols/) and the pooled, chunked run are
 * issue 14's next steps; they reuse these stages.
 *
 * Roles: the buyer is the OPRF receiver (cuckoo hashing, learns which of
 * its keys the provider also holds); the provider is the OPRF sender (simple
 * hashing, sends its shuffled tags). Semi-honest; set sizes are public.
 */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { createGroup } from "../group/index.js";
import { GroupId } from "../group/types.js";
import type { PackedBytes } from "../packed.js";
import { cuckooInsert, cuckooParams, cuckooRowInputs, ITEM_BYTES, itemDigests, simpleHashQueries } from "../psi/cuckoo.js";
import { distinctKeys, permuteFixed, shuffledOrder } from "../psi/distinct.js";
import { ElementIndex } from "../psi/element-index.js";
import { baseOtReceiverRespond, baseOtSenderFinish, baseOtSenderStart } from "./base-ot.js";
import { loadBlake2b } from "./blake2.js";
import { CODE_SEED_BYTES, CODE_WIDTH, codeKeys, encodeInto } from "./code.js";
import { extensionReceive, extensionSend, oprfReceiverTags, oprfSenderEvaluate, TAG_BYTES } from "./kkrt.js";

/** Names of the stages `onStage` reports, in order. */
export const OT_PSI_STAGES = ["distinct", "digests", "cuckoo", "base-ot", "extension", "receiver-tags", "sender-tags", "match"] as const;
export type OtPsiStage = (typeof OT_PSI_STAGES)[number];

export interface OtPsiLocalOptions {
  /** The shared 16-byte hashing seed (default: random). */
  readonly seed?: Uint8Array;
  /** Called with each stage's wall time in seconds. */
  readonly onStage?: (stage: OtPsiStage, seconds: number) => void;
}

export interface OtPsiLocalResult {
  /** The buyer's rows whose key the provider holds, ascending. */
  readonly rows: Uint32Array;
  /** Bytes each way: to the provider C ‖ R and u; to the buyer the base-OT reply (32·w), the code seed and the tags. */
  readonly bytesToProvider: number;
  readonly bytesToBuyer: number;
}

/** Keys with an optional validity byte per row (0 = null, never matches), like engine/columns' KeyColumn. */
export type OtPsiKeys = PackedBytes & { readonly valid?: Uint8Array };

function keyColumn(keys: OtPsiKeys) {
  const length = Math.max(0, keys.offsets.length - 1);
  if (keys.valid !== undefined && keys.valid.length < length) throw new InvalidArgumentError(`${length} keys but ${keys.valid.length} validity bytes`);
  return { data: keys.data, offsets: keys.offsets, valid: keys.valid ?? new Uint8Array(length).fill(1), length };
}

/** Runs both roles of the OT-extension PSI in this thread and returns the buyer's matching rows. */
export async function otPsiLocal(buyerKeys: OtPsiKeys, providerKeys: OtPsiKeys, options: OtPsiLocalOptions = {}): Promise<OtPsiLocalResult> {
  let t0 = performance.now();
  const stage = (name: OtPsiStage): void => {
    const t1 = performance.now();
    options.onStage?.(name, (t1 - t0) / 1000);
    t0 = t1;
  };
  const seed = options.seed ?? randomBytes(16);
  const hash = await loadBlake2b();
  const group = await createGroup({ group: GroupId.Ristretto255 });
  const width = CODE_WIDTH;

  const buyer = distinctKeys(keyColumn(buyerKeys));
  const provider = distinctKeys(keyColumn(providerKeys));
  stage("distinct");

  // Both: the public parameters from the buyer's distinct count, the elements' digests.
  const params = cuckooParams(buyer.count);
  const m = params.rows;
  const bd = itemDigests(hash, buyer.distinct, seed, params.bins);
  const pd = itemDigests(hash, provider.distinct, seed, params.bins);
  stage("digests");

  // Buyer: cuckoo hashing, one OPRF input per OT row.
  const table = cuckooInsert(bd.positions, params, seed);
  const rowInputs = cuckooRowInputs(table, bd, randomBytes(m * ITEM_BYTES));
  stage("cuckoo");

  // Base OTs: the buyer (OT-extension receiver) is the base-OT sender; the provider chooses s.
  const s = randomBytes(width >>> 3);
  const np = baseOtSenderStart(group, width);
  const reply = baseOtReceiverRespond(group, width, s, np.message);
  const base = baseOtSenderFinish(group, np.state, reply.message);
  const ck = codeKeys(randomBytes(CODE_SEED_BYTES)); // the provider's choice, sent with its base-OT reply
  stage("base-ot");

  // Buyer: codewords and u; provider: q.
  const codewords = new Uint8Array(m * (width >>> 3));
  encodeInto(ck, rowInputs, codewords, width);
  const ext = extensionReceive(base.keys0, base.keys1, codewords, m, width);
  const q = extensionSend(reply.keys, s, ext.message, m, width);
  stage("extension");

  const buyerTags = oprfReceiverTags(hash, ext.rows, m, width);
  stage("receiver-tags");

  const queries = simpleHashQueries(pd, params);
  const providerTags = oprfSenderEvaluate(hash, ck, q, m, s, queries.rowOf, queries.inputs, width);
  const sent = permuteFixed(providerTags, TAG_BYTES, shuffledOrder(queries.rowOf.length));
  stage("sender-tags");

  // Buyer: which rows' tags the provider sent → which distinct keys → which rows.
  const hit = new Uint8Array(buyer.count);
  if (sent.length > 0) {
    const match = ElementIndex.build(sent, TAG_BYTES).matchAll(buyerTags);
    for (let b = 0; b < params.bins; b++) {
      const e = table.bins[b] as number;
      if (e >= 0 && (match[b] as number) >= 0) hit[e] = 1;
    }
    for (let t = 0; t < params.stash; t++) {
      const e = table.stash[t] as number;
      if (e >= 0 && (match[params.bins + t] as number) >= 0) hit[e] = 1;
    }
  }
  const r2d = buyer.rowToDistinct;
  let count = 0;
  for (let i = 0; i < r2d.length; i++) if ((r2d[i] as number) >= 0 && hit[r2d[i] as number] === 1) count++;
  const rows = new Uint32Array(count);
  for (let i = 0, k = 0; i < r2d.length; i++) if ((r2d[i] as number) >= 0 && hit[r2d[i] as number] === 1) rows[k++] = i;
  stage("match");

  return {
    rows,
    bytesToProvider: np.message.length + ext.message.length,
    bytesToBuyer: reply.message.length + CODE_SEED_BYTES + sent.length,
  };
}
