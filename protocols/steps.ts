/**
 * What every protocol's state machine does with a message before it looks at
 * the content: bind it to the job, protocol and version; check it is the
 * step and chunk expected next; cut element buffers into chunks. One place,
 * so every protocol refuses the same things with the same errors.
 */
import { InvalidPointError } from "../engine/errors.js";
import type { ElementBatch, Header, ProtocolId } from "./codec.js";
import { InvalidMessageError, ProtocolError, WrongJobError, WrongStepError } from "./errors.js";

/** What a state must name to bind messages to it. */
export interface Binding {
  readonly job: string;
  readonly protocol: ProtocolId;
  readonly version: number;
}

export const chunkCount = (n: number, per: number): number => Math.ceil(n / per);

export function header(s: Binding, step: number, chunk: number, chunks: number): Header {
  return { job: s.job, protocol: s.protocol, version: s.version, step, chunk, chunks };
}

/** Checks job, protocol and version; throws WrongJobError / ProtocolError. */
export function checkBinding(s: Binding, h: Header): void {
  if (h.job !== s.job) throw new WrongJobError("message belongs to another job");
  if (h.protocol !== s.protocol) throw new WrongJobError(`message belongs to protocol ${h.protocol}, not ${s.protocol}`);
  if (h.version !== s.version) throw new ProtocolError(`unsupported protocol version ${h.version}`);
}

/** Checks the message is chunk `chunk` of `chunks` of step `step`, of the right kind. */
export function expectStep(h: Header, step: number, chunk: number, chunks: number, kind: string, actualKind: string): void {
  if (h.step !== step) throw new WrongStepError(`expected step ${step}, got step ${h.step}`);
  if (h.chunk !== chunk) {
    throw new WrongStepError(h.chunk < chunk ? `chunk ${h.chunk} of step ${step} was already received` : `expected chunk ${chunk} of step ${step}, got ${h.chunk}`);
  }
  if (h.chunks !== chunks) throw new InvalidMessageError(`step ${step} must have ${chunks} chunks, the message says ${h.chunks}`);
  if (actualKind !== kind) throw new InvalidMessageError(`step ${step} carries ${kind}, not ${actualKind}`);
}

/** Checks an element batch holds exactly the elements its chunk must (n elements in chunks of `per`). */
export function checkBatch(m: ElementBatch, n: number, per: number, step: number, elementSize: number): void {
  if (m.elementSize !== elementSize) throw new InvalidMessageError(`step ${step}: elements must be ${elementSize} bytes`);
  const want = Math.min(per, n - m.header.chunk * per);
  if (m.count !== want) throw new InvalidMessageError(`step ${step} chunk ${m.header.chunk} must hold ${want} elements, holds ${m.count}`);
}

/** n elements of `size` bytes as the chunks of one step. */
export function batches(s: Binding, step: number, elements: Uint8Array, per: number, size: number): ElementBatch[] {
  const n = elements.length / size;
  const chunks = chunkCount(n, per);
  const out: ElementBatch[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c * per;
    const count = Math.min(per, n - start);
    out.push({ kind: "elementBatch", header: header(s, step, c, chunks), elementSize: size, count, elements: elements.subarray(start * size, (start + count) * size) });
  }
  return out;
}

/** Re-throws a point error of a chunk with the element's index within its step. */
export function pointError(e: unknown, chunk: number, per: number): never {
  if (e instanceof InvalidPointError && e.index !== undefined) throw new InvalidPointError(e.message.replace(/ \(element \d+\)$/, ""), chunk * per + e.index);
  throw e;
}

/**
 * `buf`, or a larger copy of it, with room for `need` more items after the
 * `used` ones in use: the same buffer when it has the room, else a new one
 * (the used items copied) of twice the size or more, never more than `max`
 * items. Buffers that collect a peer's chunks grow with this as the chunks
 * arrive, so memory follows what was received, never a peer's announced
 * size alone. The caller writes the new items at `used` (past the end of
 * what an older state of the same buffer uses, so that state is unchanged).
 */
export function withRoom<A extends Uint8Array | Uint32Array>(buf: A, used: number, need: number, max: number): A {
  const want = used + need;
  if (want <= buf.length) return buf;
  if (want > max) throw new InvalidMessageError(`more items than the ${max} announced`);
  const out = new (buf.constructor as new (n: number) => A)(Math.min(max, Math.max(want, 2 * buf.length)));
  out.set(buf.subarray(0, used));
  return out;
}
