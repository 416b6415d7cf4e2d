/**
 * The web console's static pages and assets (docs/console.md), served by the
 * node itself under /console/ from the folder `npm run build` fills
 * (dist/console): the party agent serves its own page (/console/party/), the
 * exchange its own (/console/exchange/), both the shared /console/assets/.
 * Nothing else of that folder, and nothing outside it (@fastify/static
 * refuses a path that leaves its root; `allowedPath` limits it to the page
 * and the assets).
 *
 * They hold no data: the pages ask for the token and send it with each API
 * call. Every answer under /console/ carries a Content-Security-Policy
 * (scripts, styles and connections from this origin only; no inline script),
 * X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer; a page's
 * HTML is never cached (its asset names change with every build).
 *
 * Without the built folder (tsc run alone) the node still starts, and
 * /console/ answers 404 UMBRA_CONSOLE_NOT_BUILT saying to run `npm run build`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fastifyStatic from "@fastify/static";
import { ConsoleNotBuiltError } from "../errors.js";

/** Which console a node serves. */
export type ConsolePage = "party" | "exchange";

/** The prefix every console route is under. */
export const CONSOLE_PREFIX = "/console";

/** What the console pages allow: everything from this origin only, no inline script, no framing. */
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * The built console's folder: dist/console beside the compiled node
 * (dist/node/server/ → ../../console/), or, when run from the sources
 * (node/server/, as the tests do), the repository's dist/console; undefined
 * when neither holds a build.
 */
export function consoleDir(): string | undefined {
  for (const rel of ["../../console/", "../../dist/console/"]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}party/index.html`) || existsSync(`${dir}exchange/index.html`)) return dir;
  }
  return undefined;
}

/** Whether a route (its pattern, as `req.routeOptions.url` gives it) is one of the console's static routes. */
export function isConsoleRoute(url: string | undefined): boolean {
  return url !== undefined && (url === CONSOLE_PREFIX || url.startsWith(`${CONSOLE_PREFIX}/`));
}

/** The address of a node's console page, from the node's base URL. */
export function consoleUrl(base: string, page: ConsolePage): string {
  return `${base.replace(/\/+$/, "")}${CONSOLE_PREFIX}/${page}/`;
}

function securityHeaders(reply: FastifyReply): void {
  void reply.header("content-security-policy", CONSOLE_CSP).header("x-content-type-options", "nosniff").header("referrer-policy", "no-referrer").header("x-frame-options", "DENY");
}

/**
 * Registers the console's routes on `app`: the page `page` and the shared
 * assets from `dir` (default {@link consoleDir}); /console and /console/
 * redirect to the page. Register it in its own context (it adds a hook).
 */
export async function registerConsole(app: FastifyInstance, o: { readonly page: ConsolePage; readonly dir?: string }): Promise<void> {
  const dir = o.dir !== undefined ? (existsSync(`${o.dir}/${o.page}/index.html`) ? o.dir : undefined) : consoleDir();
  const pagePath = `${CONSOLE_PREFIX}/${o.page}/`;
  await app.register(async (scope) => {
    scope.addHook("onSend", async (_req, reply, payload) => {
      securityHeaders(reply);
      return payload;
    });
    const toPage = async (_req: FastifyRequest, reply: FastifyReply) => reply.header("cache-control", "no-store").redirect(pagePath, 302);
    for (const url of [CONSOLE_PREFIX, `${CONSOLE_PREFIX}/`, `${CONSOLE_PREFIX}/${o.page}`]) scope.get(url, { schema: { hide: true } }, toPage);
    if (dir === undefined) {
      scope.get(`${CONSOLE_PREFIX}/*`, { schema: { hide: true } }, async () => {
        throw new ConsoleNotBuiltError();
      });
      return;
    }
    await scope.register(fastifyStatic, {
      root: dir,
      prefix: `${CONSOLE_PREFIX}/`,
      wildcard: true,
      index: ["index.html"],
      redirect: false,
      list: false,
      dotfiles: "deny",
      decorateReply: false,
      cacheControl: false,
      // Only this node's page and the shared assets: the other node's page is not served here.
      allowedPath: (pathName) => pathName.startsWith(`/${o.page}/`) || pathName.startsWith("/assets/"),
      setHeaders: (reply, path) => {
        // A page's HTML names this build's assets: never cached. The assets' names carry their content's hash.
        void reply.header("cache-control", path.endsWith(".html") ? "no-store" : "public, max-age=31536000, immutable");
      },
    });
  });
}
