/**
 * The relay: a party's signed (and, to another party, sealed) protocol
 * envelopes go to the recipient's mailbox, or to the exchange's own role;
 * each party long-polls its mailbox. The exchange sees sizes and digests
 * only.
 */
import { createHash } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { DEFAULT_MAX_SKEW_MS, openEnvelope } from "../../../envelope.js";
import { ForbiddenError, ReplayError, WrongJobError } from "../../../errors.js";
import { LedgerKind } from "../../../ledger.js";
import { MailboxFullError, packDeliveries } from "../../mailbox.js";
import { MailboxAckSchema } from "../../../schemas/routes.js";
import { documentBodyValidator } from "../../validation.js";
import type { ExchangeServices } from "../services.js";
import { chattyLogLevel } from "../../log-level.js";

export const relayRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx, jobs, roles }) => {
  const { store, identity, mailboxes } = ctx;

  /**
   * Relay: verify the sender's signature and freshness (not the payload,
   * which may be sealed to the recipient), check both ends belong to the
   * running job, check there is room (finding 10: the recipient's queue, the
   * job's share, the exchange's total), then record the step and queue it.
   * Every refusal — 429 with Retry-After when there is no room — changes
   * nothing: no step, no ledger entry, no activity, and not even the
   * envelope's nonce, so its sender can send the same bytes again.
   */
  app.post("/v1/relay", { preValidation: ctx.auth, logLevel: chattyLogLevel(app), bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
    const frame = req.rawBody ?? Buffer.alloc(0);
    let nonce: { sender: string; nonce: Uint8Array; time: number } | undefined;
    const env = openEnvelope(frame, {
      self: identity,
      relay: true,
      lookupSender: (name) => {
        const p = store.getParty(name);
        return p && p.boxPublicKey ? { signingPublicKey: p.signingPublicKey, boxPublicKey: p.boxPublicKey } : undefined;
      },
      // Checked now, remembered only with the accepted step below.
      replay: { seen: (s, n) => store.nonceSeen(s, n), remember: (s, n, t) => void (nonce = { sender: s, nonce: Uint8Array.from(n), time: t }) },
      // The nonce table keeps nonces for NONCE_RETENTION_MS (node/server/auth.ts), which covers this window.
      maxSkewMs: DEFAULT_MAX_SKEW_MS,
      now: ctx.now,
    });
    if (env.sender !== req.party) throw new ForbiddenError("the envelope's sender is not the requesting party");
    const j = store.getJob(env.job);
    const parties = j ? [j.buyer, ...j.providers] : [];
    const rj = j ? jobs.roleJobs.get(j.id) : undefined;
    // In a job with an exchange-side role, a party sends to the exchange, or straight to another
    // party only where the protocol allows it; the exchange itself is a recipient of no other job.
    const toExchange = env.recipient === identity.name;
    const routed = rj ? (toExchange ? rj.started : rj.protocol.directRoute(rj.job, env.sender, env.recipient)) : !toExchange;
    if (!j || j.state !== "running" || !parties.includes(env.sender) || (!toExchange && !parties.includes(env.recipient)) || env.sender === env.recipient || !routed) {
      throw new WrongJobError("the envelope does not belong to a running job between these parties");
    }
    // Sent again (its sender restarted, or lost the answer): taken already — answered so, nothing recorded twice.
    if (store.durable.relayed(j.id, env.sender, env.recipient, env.sequence)) return reply.code(202).send({ queued: true, duplicate: true });
    const size = frame.length;
    const room = toExchange && rj ? mailboxes.canHold(j.id, size) : mailboxes.fits(env.recipient, j.id, size);
    if (!room) throw new MailboxFullError();
    const digest = createHash("sha256").update(frame).digest("hex");
    // Committed before the answer: the envelope, its step and its ledger entry, and its nonce, together.
    mailboxes.commit((relay) => {
      if (nonce === undefined || !store.checkAndRememberNonce(nonce.sender, nonce.nonce, nonce.time)) throw new ReplayError();
      store.recordStep(j.id, { step: `step-${env.step}`, direction: "in", size, digest });
      ctx.ledger(LedgerKind.JobStep, { step: env.step, from: env.sender, to: env.recipient, size, digest }, j.id);
      relay.insert({ recipient: env.recipient, job: j.id, sender: env.sender, sequence: env.sequence, kind: "data", frame: Uint8Array.from(frame) });
    });
    jobs.touch(j.id);
    if (toExchange && rj) roles.wake(rj);
    return reply.code(202).send({ queued: true });
  });

  /** A party's poll: the envelopes queued for it after delivery number `after` (what it has seen), waiting up to `wait` ms for some. */
  app.get("/v1/mailbox", { preValidation: ctx.auth, logLevel: chattyLogLevel(app) }, async (req, reply) => {
    const q = req.query as { wait?: string; after?: string };
    const wait = Math.min(30_000, Math.max(0, Number(q.wait ?? 0) || 0));
    const after = Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(Number(q.after ?? 0) || 0)));
    const deliveries = await mailboxes.take(req.party as string, after, wait);
    return reply.type("application/octet-stream").send(packDeliveries(deliveries));
  });

  /** A party has durably processed its envelopes of each job up to a delivery number: they are deleted (and their bytes leave the caps). */
  app.post("/v1/mailbox/ack", { preValidation: ctx.auth, logLevel: chattyLogLevel(app), schema: { body: MailboxAckSchema }, validatorCompiler: documentBodyValidator }, async (req) => {
    for (const a of req.body.acks) mailboxes.ack(req.party as string, a.job, a.upTo);
    return { acknowledged: req.body.acks.length };
  });
};
