/**
 * The exchange's identity and its parties: who the exchange is, registration,
 * and a party's public keys.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { checkNewPartyName, InvalidInvitationError, InvitationRequiredError, invitationCodeHash } from "../../../admission.js";
import { AlreadyExistsError, NotFoundError, ReplayError } from "../../../errors.js";
import { publicIdentity } from "../../../identity.js";
import { LedgerKind } from "../../../ledger.js";
import { verifyRequest } from "../../auth.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { PartyRegistrationSchema } from "../../../schemas/routes.js";
import type { ExchangeServices } from "../services.js";

const fromHex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));

export const partyRoutes: FastifyPluginAsyncTypebox<ExchangeServices> = async (app, { ctx }) => {
  const { store, identity } = ctx;

  app.get("/v1/identity", { schema: { response: { 200: { type: "object", properties: { name: { type: "string" }, signingPublicKey: { type: "string" }, boxPublicKey: { type: "string" } } } } } }, async () => {
    const p = publicIdentity(identity);
    return { name: p.name, signingPublicKey: bytesToHex(p.signingPublicKey), boxPublicKey: bytesToHex(p.boxPublicKey) };
  });

  /**
   * Registration: the party proves it holds its signing key by signing this
   * request with it. A name registered already re-registers with the same key
   * (a restart; its box and mask keys may change) and needs no invitation; a
   * new name must be one a new party may take (node/admission.ts) and, unless
   * registration is open, present an unused, unexpired invitation for that
   * name, used up in the same transaction that registers it. A refused
   * registration changes nothing (its request's nonce included).
   */
  app.post(
    "/v1/parties",
    {
      schema: {
        body: PartyRegistrationSchema,
      },
    },
    async (req, reply) => {
      const b = req.body;
      // 32-byte keys as hex (PartyRegistrationSchema).
      const signing = fromHex(b.signingPublicKey);
      const box = fromHex(b.boxPublicKey);
      const mask = b.maskPublicKey === undefined ? null : fromHex(b.maskPublicKey);
      // The signature is checked now; its nonce is remembered only with the registration itself.
      let nonce: { name: string; nonce: Uint8Array; time: number } | undefined;
      verifyRequest(req.headers, req.method, req.url, req.rawBody ?? new Uint8Array(0), {
        lookup: (name) => (name === b.name ? signing : undefined),
        remember: (name, n, time) => {
          if (store.nonceSeen(name, n)) return false;
          nonce = { name, nonce: Uint8Array.from(n), time };
          return true;
        },
        now: ctx.now,
      });
      const existing = store.getParty(b.name);
      if (existing && bytesToHex(existing.signingPublicKey) !== b.signingPublicKey) throw new AlreadyExistsError("a party of that name is registered with another key");
      if (!existing) {
        checkNewPartyName(store, b.name, identity.name);
        if (b.invite === undefined && ctx.options.openRegistration !== true) throw new InvitationRequiredError();
      }
      const at = ctx.now();
      const party = store.transaction(() => {
        if (nonce === undefined || !store.checkAndRememberNonce(nonce.name, nonce.nonce, nonce.time)) throw new ReplayError();
        let admission: "invitation" | "open" | undefined;
        if (!existing) {
          if (b.invite !== undefined) {
            if (!store.consumeInvitation(b.name, invitationCodeHash(b.invite), signing, at)) throw new InvalidInvitationError();
            admission = "invitation";
          } else admission = "open";
        }
        const p = store.putParty({ name: b.name, role: b.role ?? "provider", signingPublicKey: signing, boxPublicKey: box, maskPublicKey: mask, endpoint: b.endpoint ?? null });
        if (admission !== undefined) ctx.ledger(LedgerKind.PartyRegistered, { name: b.name, signingKey: b.signingPublicKey.slice(0, 16), admission });
        return p;
      });
      return reply.code(existing ? 200 : 201).send({ name: party.name, registeredAt: party.registeredAt });
    },
  );

  app.get("/v1/parties/:name", { preValidation: ctx.auth }, async (req) => {
    const p = store.getParty((req.params as { name: string }).name);
    if (!p) throw new NotFoundError("no such party");
    return { name: p.name, signingPublicKey: bytesToHex(p.signingPublicKey), boxPublicKey: p.boxPublicKey ? bytesToHex(p.boxPublicKey) : null, maskPublicKey: p.maskPublicKey ? bytesToHex(p.maskPublicKey) : null };
  });
};
