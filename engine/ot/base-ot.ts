/**
 * Batched base OTs: Naor–Pinkas 1-out-of-2 random OT over ristretto255.
 *
 * Source: M. Naor, B. Pinkas, "Efficient oblivious transfer protocols",
 * SODA 2001 (the two-message 1-out-of-2 OT in the random-oracle model, under
 * CDH), with one sender exponent r and one public element C shared by all
 * OTs of a batch, the index i hashed into each key (as in the paper's
 * amortised form, and as the base OTs of OT-extension implementations
 * following Asharov, Lindell, Schneider, Zohner, CCS 2013, do). Random-OT
 * output: the sender gets two 16-byte keys per OT, the receiver the one it
 * chose.
 *
 * Flow (g the ristretto255 generator, H a hash with the transcript and the
 * index i in its input, count OTs, choice bits σ_i):
 *
 *   sender   → receiver : C = g^c, R = g^r                        (64 bytes)
 *   receiver → sender   : PK0_i = g^{k_i} if σ_i = 0,
 *                         PK0_i = C · g^{−k_i} if σ_i = 1          (32 bytes each)
 *   sender:   K_i^0 = H(i, 0, PK0_i^r),  K_i^1 = H(i, 1, C^r · PK0_i^{−r})
 *   receiver: K_i^{σ_i} = H(i, σ_i, R^{k_i})
 *
 * Why it is sound for semi-honest security (the setting of every Umbra
 * protocol): the receiver's message PK0_i is a uniformly random element
 * whatever σ_i is (g^{k} and C·g^{−k} are both uniform), so the sender
 * learns nothing about the choices, information-theoretically. The key the
 * receiver did not choose is H(i, 1−σ_i, X^r) with X = C/PK_{σ_i}, and
 * computing X^r from g^r means knowing log_g(X) = c − k_i, i.e. solving
 * CDH(C, R); with H a random oracle that key is uniform to the receiver
 * (NP01's security argument). We do not use Chou–Orlandi's "simplest OT"
 * (LATINCRYPT 2015): its UC claim does not hold (Genç, Iovino, Rial, "'The
 * simplest protocol for oblivious transfer' revisited", ePrint 2017/370;
 * Hauck, Loss, "Efficient and universally composable protocols for
 * oblivious transfer from the CDH assumption", ePrint 2017/1011), whereas
 * Naor–Pinkas has a standard proof of exactly the property we need at the
 * same cost (two messages, about three scalar multiplications per OT and
 * side).
 *
 * Received elements are strictly decoded (engine/group: canonical
 * ristretto255 encoding, not the identity) before any use; a PK0_i equal to
 * C (which would make PK1_i the identity) is refused too.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError, InvalidLengthError, InvalidPointError } from "../errors.js";
import { ORDER, scalarFromBytes, scalarToBytes } from "../group/scalar.js";
import { GroupId, type AdditiveGroup, type Group, type RandomSource, type ScalarBytes } from "../group/types.js";
import { isZero } from "../group/validate.js";

/** Bytes of each OT key. */
export const OT_KEY_BYTES = 16;
/** Fewest and most base OTs in one batch. */
export const BASE_OT_MIN = 1;
export const BASE_OT_MAX = 4096;

const DST = new TextEncoder().encode("umbra/ot/base/naor-pinkas/v1");

/** What the base-OT sender keeps between its two steps (plain data). */
export interface BaseOtSenderState {
  readonly count: number;
  /** The sender's exponent r. */
  readonly r: ScalarBytes;
  /** Its first message C ‖ R (64 bytes), kept for the key derivation. */
  readonly first: Uint8Array;
}

export interface BaseOtSenderKeys {
  /** count × 16 bytes: K_i^0. */
  readonly keys0: Uint8Array;
  /** count × 16 bytes: K_i^1. */
  readonly keys1: Uint8Array;
}

export interface BaseOtReceiverResult {
  /** The reply to the sender: count × 32 bytes (PK0_i). */
  readonly message: Uint8Array;
  /** count × 16 bytes: K_i^{σ_i}. */
  readonly keys: Uint8Array;
}

function ristretto<E>(group: Group<E>): AdditiveGroup<E> {
  if (group.id !== GroupId.Ristretto255 || !("add" in group)) throw new InvalidArgumentError("base OT needs ristretto255 (a group with addition)");
  return group as AdditiveGroup<E>;
}

function assertCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < BASE_OT_MIN || count > BASE_OT_MAX) {
    throw new InvalidArgumentError(`base OT count must be an integer in [${BASE_OT_MIN}, ${BASE_OT_MAX}], got ${count}`);
  }
}

function negate(s: ScalarBytes): ScalarBytes {
  return scalarToBytes(ORDER - scalarFromBytes(s));
}

/** K = H(DST ‖ C ‖ R ‖ PK0_i ‖ i ‖ b ‖ P)[0..16), SHA-256. */
function deriveKey(first: Uint8Array, pk0: Uint8Array, i: number, b: number, p: Uint8Array, out: Uint8Array, at: number): void {
  const idx = new Uint8Array(5);
  new DataView(idx.buffer).setUint32(0, i, true);
  idx[4] = b;
  const h = createHash("sha256").update(DST).update(first).update(pk0).update(idx).update(p).digest();
  out.set(h.subarray(0, OT_KEY_BYTES), at);
}

/** The sender's first step: picks r and C, returns its state and the 64-byte message C ‖ R. */
export function baseOtSenderStart<E>(g: Group<E>, count: number, rng?: RandomSource): { state: BaseOtSenderState; message: Uint8Array } {
  const group = ristretto(g);
  assertCount(count);
  const c = group.randomScalar(rng);
  const r = group.randomScalar(rng);
  const first = new Uint8Array(64);
  first.set(group.encode(group.multiplyBase(c)), 0);
  first.set(group.encode(group.multiplyBase(r)), 32);
  return { state: { count, r, first }, message: first.slice() };
}

/**
 * The receiver's step: `choices` holds count bits, least significant first
 * (bit i = (choices[i >> 3] >> (i & 7)) & 1). Strictly decodes C and R.
 */
export function baseOtReceiverRespond<E>(g: Group<E>, count: number, choices: Uint8Array, message: Uint8Array, rng?: RandomSource): BaseOtReceiverResult {
  const group = ristretto(g);
  assertCount(count);
  if (!(choices instanceof Uint8Array) || choices.length !== (count + 7) >>> 3) throw new InvalidLengthError("base OT choice bits", String((count + 7) >>> 3), choices instanceof Uint8Array ? choices.length : 0);
  if (!(message instanceof Uint8Array) || message.length !== 64) throw new InvalidLengthError("base OT sender message", "64", message instanceof Uint8Array ? message.length : 0);
  const first = message.slice();
  const C = group.decode(first.subarray(0, 32));
  const R = group.decode(first.subarray(32, 64));
  const out = new Uint8Array(count * 32);
  const keys = new Uint8Array(count * OT_KEY_BYTES);
  for (let i = 0; i < count; i++) {
    const sigma = ((choices[i >>> 3] as number) >>> (i & 7)) & 1;
    const k = group.randomScalar(rng);
    const pk0 = sigma === 0 ? group.encode(group.multiplyBase(k)) : group.encode(group.add(C, group.multiplyBase(negate(k))));
    if (isZero(pk0)) throw new InvalidPointError("base OT receiver drew a degenerate element; retry", i);
    out.set(pk0, i * 32);
    deriveKey(first, pk0, i, sigma, group.encode(group.multiply(k, R)), keys, i * OT_KEY_BYTES);
  }
  return { message: out, keys };
}

/** The sender's second step: strictly decodes every PK0_i and derives both keys of each OT. */
export function baseOtSenderFinish<E>(g: Group<E>, state: BaseOtSenderState, message: Uint8Array): BaseOtSenderKeys {
  const group = ristretto(g);
  const { count, r, first } = state;
  assertCount(count);
  if (!(message instanceof Uint8Array) || message.length !== count * 32) throw new InvalidLengthError("base OT receiver message", String(count * 32), message instanceof Uint8Array ? message.length : 0);
  // multiplyBatch strictly decodes every element (identity refused) and names the failing index.
  const a = group.multiplyBatch(r, message); // PK0_i^r
  const b = group.multiplyBatch(negate(r), message); // PK0_i^{-r}
  const C = group.decode(first.subarray(0, 32));
  const rC = group.multiply(r, C);
  const keys0 = new Uint8Array(count * OT_KEY_BYTES);
  const keys1 = new Uint8Array(count * OT_KEY_BYTES);
  for (let i = 0; i < count; i++) {
    const pk0 = message.subarray(i * 32, i * 32 + 32);
    const p1 = group.encode(group.add(rC, group.decode(b.subarray(i * 32, i * 32 + 32))));
    if (isZero(p1)) throw new InvalidPointError("base OT receiver element equals C", i);
    deriveKey(first, pk0, i, 0, a.subarray(i * 32, i * 32 + 32), keys0, i * OT_KEY_BYTES);
    deriveKey(first, pk0, i, 1, p1, keys1, i * OT_KEY_BYTES);
  }
  return { keys0, keys1 };
}
