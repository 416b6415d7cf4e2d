/**
 * Bit matrices on flat typed arrays, and their transpose.
 *
 * IKNP OT extension (Ishai, Kilian, Nissim, Petrank, CRYPTO 2003, §3) builds
 * its matrices column by column (one PRG stream per base OT) and uses them
 * row by row (one row per extended OT), so every extension transposes a
 * w × m bit matrix. Layout: row-major, each row a whole number of 32-bit
 * words, bit k of a row being bit (k & 31) of word (k >> 5) (least
 * significant first). On a little-endian machine (every platform Node ships
 * on; checked at load) this is also bit (k & 7) of byte (k >> 3), so a row's
 * bytes are its bits in the order the wire carries them.
 *
 * The transpose works on 32 × 32 blocks, each transposed in registers by the
 * recursive block swap of Warren, "Hacker's Delight" (2nd ed., §7-3,
 * transpose32), adapted to least-significant-bit-first rows: five passes of
 * 32/2 masked swaps instead of 1,024 single-bit moves. Partial blocks at the
 * edges read missing rows as zero and store only the output rows that exist,
 * so any shape works.
 */
import { endianness } from "node:os";
import { InvalidArgumentError, UnsupportedBackendError } from "../errors.js";

if (endianness() !== "LE") throw new UnsupportedBackendError("engine/ot needs a little-endian machine");

/** 32-bit words per row of `bits` bits. */
export function wordsFor(bits: number): number {
  return (bits + 31) >>> 5;
}

function assertShape(words: Uint32Array, rows: number, cols: number, what: string): void {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0) {
    throw new InvalidArgumentError(`${what}: bad shape ${rows} × ${cols}`);
  }
  if (!(words instanceof Uint32Array) || words.length !== rows * wordsFor(cols)) {
    throw new InvalidArgumentError(`${what}: a ${rows} × ${cols} bit matrix needs ${rows * wordsFor(cols)} words`);
  }
}

/** In-place transpose of the 32 × 32 bit block a[0..32) (a[i] bit j ↔ a[j] bit i). */
export function transpose32(a: Uint32Array): void {
  let m = 0x0000ffff;
  for (let j = 16; j !== 0; j >>>= 1, m ^= m << j) {
    for (let k = 0; k < 32; k = (k + j + 1) & ~j) {
      const x = a[k] as number;
      const y = a[k + j] as number;
      const t = ((x >>> j) ^ y) & m;
      a[k] = x ^ (t << j);
      a[k + j] = y ^ t;
    }
  }
}

/**
 * Transposes a rows × cols bit matrix `src` into `dst` (cols × rows),
 * both row-major with rows padded to whole 32-bit words. Bits of `src`
 * beyond `cols` in a row's last word are ignored; `dst`'s padding bits are
 * zero. Returns `dst`.
 */
export function transposeBits(src: Uint32Array, rows: number, cols: number, dst: Uint32Array = new Uint32Array(cols * wordsFor(rows))): Uint32Array {
  assertShape(src, rows, cols, "transpose source");
  assertShape(dst, cols, rows, "transpose destination");
  const sw = wordsFor(cols);
  const dw = wordsFor(rows);
  const block = new Uint32Array(32);
  for (let rb = 0; rb < dw; rb++) {
    const r0 = rb << 5;
    const rn = Math.min(32, rows - r0);
    for (let cb = 0; cb < sw; cb++) {
      for (let i = 0; i < rn; i++) block[i] = src[(r0 + i) * sw + cb] as number;
      for (let i = rn; i < 32; i++) block[i] = 0;
      transpose32(block);
      const c0 = cb << 5;
      const cn = Math.min(32, cols - c0);
      for (let i = 0; i < cn; i++) dst[(c0 + i) * dw + rb] = block[i] as number;
    }
  }
  return dst;
}

/** A Uint32Array view of a Uint8Array whose offset and length are multiples of 4 (copies otherwise). */
export function wordsView(bytes: Uint8Array): Uint32Array {
  if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  if (bytes.length % 4 !== 0) throw new InvalidArgumentError(`${bytes.length} bytes are not whole 32-bit words`);
  return new Uint32Array(Uint8Array.from(bytes).buffer);
}

/** The bytes of a Uint32Array (a view). */
export function bytesView(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}
