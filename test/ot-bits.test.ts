/**
 * engine/ot/bits: the 32 × 32 block transpose against a bit-by-bit one, on
 * square, odd and OT-shaped matrices, and its shape checks.
 */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, transpose32, transposeBits, wordsFor } from "../engine/index.js";
import { mulberry32 } from "./helpers/data.js";

function randomMatrix(rows: number, cols: number, seed: number): Uint32Array {
  const r = mulberry32(seed);
  const m = new Uint32Array(rows * wordsFor(cols));
  for (let i = 0; i < m.length; i++) m[i] = Math.floor(r() * 2 ** 32);
  return m;
}

function bit(m: Uint32Array, rowWords: number, i: number, j: number): number {
  return ((m[i * rowWords + (j >>> 5)] as number) >>> (j & 31)) & 1;
}

/** The oracle: one bit at a time. */
function naiveTranspose(src: Uint32Array, rows: number, cols: number): Uint32Array {
  const sw = wordsFor(cols);
  const dw = wordsFor(rows);
  const out = new Uint32Array(cols * dw);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) if (bit(src, sw, i, j)) out[j * dw + (i >>> 5)] = ((out[j * dw + (i >>> 5)] as number) | (1 << (i & 31))) >>> 0;
  return out;
}

describe("bit-matrix transpose", () => {
  it("transpose32 swaps bit j of word i with bit i of word j", () => {
    const a = randomMatrix(32, 32, 1);
    const b = Uint32Array.from(a);
    transpose32(b);
    expect(b).toEqual(naiveTranspose(a, 32, 32));
  });

  it.each([
    [1, 1],
    [1, 70],
    [70, 1],
    [5, 37],
    [33, 31],
    [64, 96],
    [127, 129],
    [448, 1000],
    [1000, 448],
  ])("equals the bit-by-bit transpose on %i × %i", (rows, cols) => {
    const m = randomMatrix(rows, cols, rows * 7919 + cols);
    // Padding bits of the source rows are ignored: clear them for the oracle, keep them for the fast path.
    const clean = Uint32Array.from(m);
    const sw = wordsFor(cols);
    if (cols % 32 !== 0) for (let i = 0; i < rows; i++) clean[i * sw + sw - 1] = ((clean[i * sw + sw - 1] as number) & ((1 << (cols % 32)) - 1)) >>> 0;
    expect(transposeBits(m, rows, cols)).toEqual(naiveTranspose(clean, rows, cols));
  });

  it("transposing twice gives the matrix back", () => {
    const m = randomMatrix(448, 320, 5);
    expect(transposeBits(transposeBits(m, 448, 320), 320, 448)).toEqual(m);
  });

  it("refuses a buffer of the wrong length for its shape", () => {
    expect(() => transposeBits(new Uint32Array(31), 32, 32)).toThrow(InvalidArgumentError);
  });
});
