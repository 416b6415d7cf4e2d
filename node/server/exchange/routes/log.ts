/**
 * The ledger as a transparency log (node/log/): its signed tree head, the
 * inclusion proof of any entry and the consistency proof between two sizes.
 * They show hashes and sizes, never an entry's body (GET /v1/audit shows a
 * party the bodies it may read). Registered parties only, unless the
 * exchange serves its log publicly (ExchangeOptions.publicLog, `umbra
 * exchange start --public-log`) for outside witnesses.
 */
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { BadRequestError } from "../../../errors.js";
import { consistencyProofOf, inclusionProofOf } from "../../../log/head.js";
import type { ExchangeContext } from "../context.js";
import type { ExchangeServices } from "../services.js";
import { AUTH_HEADERS } from "../../auth.js";

const SIZE = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

export const logRoutes: FastifyPluginAsync<ExchangeServices> = async (app, { ctx }) => {
  // A public log answers anyone; a party's signed request is still authenticated there, so its answer carries the head it checks.
  const guard = { preValidation: ctx.options.publicLog === true ? async (req: FastifyRequest) => (req.headers[AUTH_HEADERS.party] !== undefined ? ctx.auth(req) : undefined) : ctx.auth };

  /** The signed tree head now: {size, root, at, signature}. */
  app.get("/v1/log/head", { ...guard }, async () => ctx.treeHead());

  /** The consistency proof from the tree of `first` entries to that of `second` (default: the current head's size). */
  app.get(
    "/v1/log/consistency",
    {
      ...guard,
      schema: { querystring: { type: "object", additionalProperties: false, required: ["first"], properties: { first: SIZE, second: SIZE } } },
    },
    async (req: FastifyRequest) => consistencyAnswer(ctx, req.query as { first: number; second?: number }),
  );

  /** The audit path of entry `seq` in the tree of `size` entries (default: the current head's size). */
  app.get(
    "/v1/log/inclusion",
    {
      ...guard,
      schema: { querystring: { type: "object", additionalProperties: false, required: ["seq"], properties: { seq: { ...SIZE, minimum: 1 }, size: SIZE } } },
    },
    async (req: FastifyRequest) => inclusionAnswer(ctx, req.query as { seq: number; size?: number }),
  );
};

/** The consistency proof from the tree of `first` entries to that of `second` (default: the current head's size): the answer of /v1/log/consistency and /v1/admin/log/consistency. */
export function consistencyAnswer(ctx: ExchangeContext, q: { readonly first: number; readonly second?: number }): { first: number; second: number; proof: string[] } {
  const head = ctx.treeHead();
  const second = q.second ?? head.size;
  if (q.first > second) throw new BadRequestError("first must be at most second");
  if (second > head.size) throw new BadRequestError("the log is not that large");
  return { first: q.first, second, proof: consistencyProofOf(ctx.store, q.first, second) };
}

/** The audit path of entry `seq` in the tree of `size` entries (default: the current head's size): the answer of /v1/log/inclusion and /v1/admin/log/inclusion. */
export function inclusionAnswer(ctx: ExchangeContext, q: { readonly seq: number; readonly size?: number }): { seq: number; size: number; proof: string[] } {
  const head = ctx.treeHead();
  const size = q.size ?? head.size;
  if (size > head.size) throw new BadRequestError("the log is not that large");
  if (q.seq > size) throw new BadRequestError("the entry is not in a tree of that size");
  return { seq: q.seq, size, proof: inclusionProofOf(ctx.store, q.seq, size) };
}
