/**
 * One role of one job, driven across processes: the party agent runs its
 * role with this, and so does the exchange where it plays one. It starts the
 * role, takes one encoded frame at a time from a named party, maps the party
 * to its role name (a party that plays no role of the job is refused), feeds
 * the role, and turns the role's addressed messages into encoded frames for
 * the parties that play those roles. The same loop for every protocol: what
 * differs lives in the protocol's roles and its node module.
 */
import { decodeMessage, encodeMessage, ProtocolError, WrongSenderError, type Outgoing, type RoleName } from "../../protocols/index.js";
import { TimeSlicer } from "../../engine/slices.js";
import type { JobPlayer } from "./protocol.js";

/** An encoded protocol message for one party of the job. */
export interface RoleFrame {
  readonly to: string;
  /** The message's step (what its envelope is labelled with), known before it was encoded. */
  readonly step: number;
  readonly frame: Uint8Array;
}

export class RoleRun {
  readonly #player: JobPlayer;
  readonly #parties: ReadonlyMap<RoleName, string>;
  /** Party name -> the roles it plays (a party may own several of a job's datasets). */
  readonly #roles: ReadonlyMap<string, readonly RoleName[]>;
  #state: unknown;
  #ended = false;

  private constructor(player: JobPlayer, parties: ReadonlyMap<RoleName, string>, state: unknown) {
    this.#player = player;
    this.#parties = parties;
    const roles = new Map<string, RoleName[]>();
    for (const [role, party] of parties) if (role !== player.name) roles.set(party, [...(roles.get(party) ?? []), role]);
    this.#roles = roles;
    this.#state = state;
  }

  /** Starts the role; returns the run and the frames it sends first. */
  static async start(player: JobPlayer, parties: ReadonlyMap<RoleName, string>): Promise<{ run: RoleRun; out: RoleFrame[] }> {
    if (parties.get(player.name) === undefined) throw new ProtocolError(`the job has no ${player.name}`);
    const step = await player.role.start(player.init, player.ctx);
    const run = new RoleRun(player, parties, step.state);
    return { run, out: await run.#frames(step.messages) };
  }

  /** Takes a role up again from a state it had reached (a checkpoint); it sends nothing on its own. */
  static resume(player: JobPlayer, parties: ReadonlyMap<RoleName, string>, state: unknown): RoleRun {
    if (parties.get(player.name) === undefined) throw new ProtocolError(`the job has no ${player.name}`);
    return new RoleRun(player, parties, state);
  }

  /** The role's name in the job. */
  get name(): RoleName {
    return this.#player.name;
  }

  /** The role's state (plain data). */
  get state(): unknown {
    return this.#state;
  }

  get done(): boolean {
    return this.#player.role.done(this.#state);
  }

  /**
   * Takes one frame from party `from`. A party that plays no role of the
   * job, a frame the role refuses, or a role that has ended throws, and the
   * state stays as it was.
   */
  async receive(from: string, frame: Uint8Array): Promise<RoleFrame[]> {
    if (this.#ended) throw new ProtocolError("the job's role has ended");
    const candidates = this.#roles.get(from);
    if (candidates === undefined) throw new WrongSenderError("a protocol message from a party that plays no other role of this job");
    const message = decodeMessage(frame);
    const role = candidates.length === 1 ? (candidates[0] as RoleName) : this.#player.senderRole ? this.#player.senderRole(candidates, message) : (candidates[0] as RoleName);
    const step = await this.#player.role.receive(this.#state, role, message, this.#player.ctx);
    this.#state = step.state;
    return this.#frames(step.messages);
  }

  /** The role's result (the buyer's answer). */
  result(): unknown {
    return this.#player.role.result(this.#state);
  }

  /** Ends the role and frees what its context owns. Idempotent. */
  dispose(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#player.dispose?.();
  }

  /** Encodes a step's messages for the parties that play their roles, letting the event loop run every ~20 ms (a step can be hundreds of MB). */
  async #frames(messages: readonly Outgoing[]): Promise<RoleFrame[]> {
    const out: RoleFrame[] = [];
    const slicer = new TimeSlicer();
    for (const o of messages) {
      const to = this.#parties.get(o.to);
      if (to === undefined || o.to === this.#player.name) throw new ProtocolError(`the ${this.#player.name} addressed a role the job does not have`);
      out.push({ to, step: o.message.header.step, frame: encodeMessage(o.message) });
      await slicer.maybeYield();
    }
    return out;
  }
}
