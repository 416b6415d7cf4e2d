/**
 * engine/ot — oblivious transfer and the KKRT batched OPRF, the engine half
 * of the OT-extension PSI (issue 14; docs/ot-psi.md):
 *
 * - base-ot: Naor–Pinkas random OT over ristretto255 (SODA 2001)
 * - bits: bit matrices on typed arrays, the 32 × 32 block transpose
 * - prg: AES-128-CTR PRG and bulk AES-ECB (node:crypto)
 * - code: KKRT16's pseudorandom code (w = 448)
 * - kkrt: IKNP extension with the code, the OPRF's receiver and sender
 * - blake2: BLAKE2b-512, the random oracle of the digests and of H
 * - psi-local: the whole PSI in one process (tests, bench)
 *
 * Cuckoo and simple hashing are in engine/psi/cuckoo.ts.
 */
export { baseOtReceiverRespond, baseOtSenderFinish, baseOtSenderStart, OT_KEY_BYTES, BASE_OT_MAX, BASE_OT_MIN } from "./base-ot.js";
export type { BaseOtReceiverResult, BaseOtSenderKeys, BaseOtSenderState } from "./base-ot.js";
export { transpose32, transposeBits, wordsFor } from "./bits.js";
export { aesEcbInto, prgInto } from "./prg.js";
export { CODE_DISTANCE, CODE_INPUT_BYTES, CODE_SEED_BYTES, CODE_WIDTH, closePairLog2, codeFailureLog2, codeKeys, encodeInto } from "./code.js";
export { columnsOf, extensionMessageBytes, extensionReceive, extensionReceiveRange, extensionSend, extensionSendRange, MAX_OT_ROWS, OT_RANGE_ALIGN, placeColumns, oprfReceiverTags, oprfReceiverTagsFrom, oprfSenderEvaluate, oprfSenderTagsForItems, TAG_BYTES } from "./kkrt.js";
export type { ExtensionReceiverResult } from "./kkrt.js";
export { blake2bNode, loadBlake2b, type Blake2b512 } from "./blake2.js";
export { OT_PSI_STAGES, otPsiLocal } from "./psi-local.js";
export type { OtPsiKeys, OtPsiLocalOptions, OtPsiLocalResult, OtPsiStage } from "./psi-local.js";
