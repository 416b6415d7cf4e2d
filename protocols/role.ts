/**
 * The one shape of every protocol role, and the one loop that runs them.
 *
 * A protocol exports each of its roles (the buyer, a provider, the
 * exchange) as a {@link Role}: `start` from the role's input, then
 * `receive` one message at a time, each returning the role's new state and
 * the messages it sends, addressed by role name. State is plain data
 * (protocols/state.ts turns it into bytes), so a node can persist it after
 * every step. A role checks every message against the step it expects and
 * the role it expects it from, and refuses anything else with a typed error,
 * its state unchanged.
 *
 * {@link runRoles} plays every role of one job in this process over the
 * serialising {@link MemoryTransport}; the node's job runner drives the same
 * interface across processes (node/jobs/).
 */
import type { ProtocolMessage } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { refusalFor } from "./refusal.js";
import { MemoryTransport, type TransportStats } from "./transport.js";

/** The role names messages are addressed by: one per role of a job. */
export const RoleName = { Buyer: "buyer", Provider: "provider", Exchange: "exchange" } as const;
/** "buyer", "provider" (the one provider of a two-party job or join-aggregate), "provider-<i>" (provider i of several), "exchange". */
export type RoleName = "buyer" | "provider" | "exchange" | `provider-${number}`;

/** Provider i of a protocol with several providers. */
export const providerRole = (i: number): RoleName => `provider-${i}`;

/** The index of a "provider-<i>" role name, or undefined. */
export function providerIndex(name: string): number | undefined {
  const m = /^provider-(0|[1-9][0-9]{0,5})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** One message and the role it is for. */
export interface Outgoing {
  readonly to: RoleName;
  readonly message: ProtocolMessage;
}

/** What a role's `start` and `receive` return. */
export interface Step<S> {
  /** The role's new state (plain data). */
  readonly state: S;
  /** The messages to send, in order. */
  readonly messages: readonly Outgoing[];
}

/**
 * One role of a protocol.
 *
 * - `start(init, ctx)`: the role's first state from its input (its keys, its
 *   table, the job's parameters) and the messages it sends first.
 * - `receive(state, from, message, ctx)`: one message from role `from`. A
 *   message that is not the step this role expects next, or not from the
 *   role that sends that step, is refused with a typed error and the state
 *   passed in stays valid (states are never changed in place).
 * - `done(state)`: whether the role has received and sent everything.
 * - `result(state)`: what the role takes away once done (the buyer's answer;
 *   `undefined` for a role that learns nothing).
 *
 * `Ctx` holds local resources that are not state: the crypto pool, progress
 * callbacks, an HE library handle.
 */
export interface Role<S, Init, Ctx, R = undefined> {
  start(init: Init, ctx: Ctx): Promise<Step<S>>;
  receive(state: S, from: RoleName, message: ProtocolMessage, ctx: Ctx): Promise<Step<S>>;
  done(state: S): boolean;
  result(state: S): R;
}

/** A role of a job and what it starts from, for {@link runRoles}. */
export interface Player<S = unknown, Init = unknown, Ctx = unknown, R = unknown> {
  readonly role: Role<S, Init, Ctx, R>;
  readonly init: Init;
  readonly ctx: Ctx;
}

/** Builds a {@link Player} with its types checked against each other. */
export const player = <S, Init, Ctx, R>(role: Role<S, Init, Ctx, R>, init: Init, ctx: Ctx): Player => ({ role, init, ctx }) as Player;

export interface RunRolesOptions {
  /** Sees every encoded frame (tests use it to inspect what a role receives). */
  readonly tap?: (from: string, to: string, frame: Uint8Array) => void;
}

export interface RolesRun {
  /** Each role's final state, by role name. */
  readonly states: Readonly<Record<string, unknown>>;
  readonly stats: TransportStats;
}

/**
 * Plays every role of one job in this process, over a transport that encodes
 * and strictly decodes every message as it would between processes. All
 * roles start at once; then each role takes its messages one at a time, in
 * order, while the others take theirs (so the crypto pool's workers stay
 * busy), until no message is left. A role that refuses a message sends the
 * sender a refusal (a code and a rule, no data) and runRoles throws its
 * error. Throws ProtocolError when the messages run out before every role is
 * done.
 */
export async function runRoles(players: Readonly<Record<string, Player>>, options: RunRolesOptions = {}): Promise<RolesRun> {
  const names = Object.keys(players) as RoleName[];
  const t = new MemoryTransport();
  if (options.tap) t.tap(options.tap);
  const states: Record<string, unknown> = {};
  const send = (from: RoleName, messages: readonly Outgoing[]): void => {
    for (const o of messages) {
      if (!(o.to in players)) throw new ProtocolError(`${from} addressed a message to ${o.to}, which is not a role of this job`);
      t.send(from, o.to, [o.message]);
    }
  };
  const started = await Promise.all(names.map((n) => players[n]!.role.start(players[n]!.init, players[n]!.ctx)));
  names.forEach((n, i) => (states[n] = started[i]!.state));
  names.forEach((n, i) => send(n, started[i]!.messages));
  const one = async (n: RoleName): Promise<boolean> => {
    const next = t.receiveFrom(n);
    if (!next) return false;
    const p = players[n]!;
    let step: Step<unknown>;
    try {
      step = await p.role.receive(states[n], next.from as RoleName, next.message, p.ctx);
    } catch (err) {
      if (next.message.kind !== "refusal") t.send(n, next.from, [refusalFor(err, next.message.header)]);
      throw err;
    }
    states[n] = step.state;
    send(n, step.messages);
    return true;
  };
  for (;;) {
    const moved = await Promise.all(names.map(one));
    if (!moved.some(Boolean)) break;
  }
  const unfinished = names.filter((n) => !players[n]!.role.done(states[n]));
  if (unfinished.length > 0) throw new ProtocolError(`the protocol ended before ${unfinished.join(", ")} had finished`);
  return { states, stats: t.stats() };
}
