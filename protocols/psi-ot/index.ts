/**
 * psi-ot: the OT-extension PSI between a buyer and a provider — KKRT16's
 * batched OPRF with cuckoo hashing (engine/ot, engine/psi/cuckoo.ts;
 * docs/ot-psi.md). Same result as `psi`: the buyer's rows whose key the
 * provider holds.
 *
 * ## Flow (version 1; w = 448 base OTs, m = bins + stash OT rows from the
 * buyer's distinct count n, cuckooParams)
 *
 *   step 1  buyer → provider   OtPsiHello {n, w, SHA-256 commitment to nonce_B}
 *   step 2  buyer → provider   OtBaseMessage C ‖ R (Naor–Pinkas, buyer = base-OT sender)
 *   step 3  provider → buyer   OtPsiHello {n_P, w, tag chunk size, nonce_P}
 *   step 4  provider → buyer   OtBaseMessage PK0_1..PK0_w (choices: the provider's secret s)
 *   step 5  buyer → provider   OtPsiReveal nonce_B (must open the commitment)
 *   step 6  buyer → provider   OtMatrixChunk: u, w columns of m bits, whole columns ≤ 4 MiB a chunk
 *   step 7  provider → buyer   ElementBatch of 12-byte tags, (3 + stash)·n_P of them, shuffled
 *
 * The hashing seed and the code seed are SHA-256(job ‖ nonce_B ‖ nonce_P):
 * the buyer commits to its nonce before it sees the provider's and opens it
 * after, so neither side chooses (or grinds) them. The buyer matches its
 * rows' tags against the provider's (engine/ot/psi-local.ts's pipeline, cut
 * at the messages).
 *
 * ## What each role learns (semi-honest)
 *
 * - The provider: the buyer's distinct-key count n (the cuckoo table's size
 *   follows from it) and nothing else — u is pseudorandom given s and its
 *   base keys (IKNP03, KKRT16 §3).
 * - The buyer: which of its rows match, and the provider's distinct-key
 *   count n_P (from the hello and the number of tags). The tags of the
 *   provider's other keys are pseudorandom to it (the code's minimum
 *   distance, KKRT16 §4), and they arrive shuffled, so their order says
 *   nothing about the provider's rows or bins.
 * - The exchange relays opaque envelopes: it sees message sizes.
 *
 * A buyer that deviates can put any keys in its m ≈ 1.5·max(n, 4096)
 * OT rows, so it may test up to m keys, not n: psi-ot's key count holds for a
 * semi-honest buyer only (ECDH psi bounds it against any buyer). That is why
 * a policy must name psi-ot to allow it.
 *
 * Every message is bound to its job, step and chunk; sizes are checked
 * against the hellos (the width, the base-OT counts, each matrix chunk's
 * columns, the tag count), points strictly decoded (the identity refused);
 * a refused message leaves the state unchanged. The job's limits come from
 * the job: the provider refuses a buyer announcing more than maxPeerSetSize
 * keys, the buyer withholds a result under minIntersection.
 *
 * References: Kolesnikov, Kumaresan, Rosulek, Trieu, CCS 2016 (KKRT16);
 * Ishai, Kilian, Nissim, Petrank, CRYPTO 2003; Naor, Pinkas, SODA 2001.
 */
export { columnBytes, jobSeeds, matrixChunking, maxMatrixColumns, nonceCommitment, PSI_OT_VERSION, PsiOtStep, type PsiOtContext, type PsiOtParams } from "./common.js";
export { psiOtBuyer, type PsiOtBuyerResult, type PsiOtBuyerState, type PsiOtInit } from "./buyer.js";
export { psiOtProvider, type PsiOtProviderState } from "./provider.js";
export { runPsiOt, RUN_PSI_OT_OPTIONS, type RunPsiOtOptions } from "./run.js";
