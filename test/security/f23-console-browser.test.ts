/**
 * Finding 23, in the browser (the web console red team; the routes' side is
 * f23-console-red-team.test.ts). Debian's chromium, driven by
 * playwright-core, against an exchange and three party agents on loopback
 * serving the built console (npm run build). Attacked here, each with its
 * outcome:
 *
 *  - stored XSS through what another party publishes, rendered by the
 *    consoles: a data file named `<img src=x onerror=…>.csv` whose header
 *    names a column the same way, registered by the telco; a product whose
 *    title is a `<script>`, whose description is an `<img onerror>` and a
 *    `javascript:` URL; an order whose purpose is an `<img onerror>`; a job
 *    whose buyer file's key column is one (its refusal's reason). Every page
 *    of the telco's, the bank's and the operator's consoles that shows them
 *    is loaded with the CSP bypassed (so only the rendering stands between
 *    the payload and the page): no payload ran (its flag stays unset, no
 *    dialog), no <img src=x> or <script> element was made, the text shows
 *    literally;
 *  - the CSP itself: with it in force an injected inline script
 *    (addScriptTag) and an inline event handler (innerHTML) do not run;
 *  - the hash router: `#/jobs/<script>…` renders as text; a malformed escape
 *    (`#/jobs/%E0%A4%A`, `#token=%E0`) used to throw in decodeURIComponent
 *    and leave a blank page — now the page renders (defect 3);
 *  - the token: after `#token=` it leaves the address bar, is never in a
 *    request's URL, no request carries a Referer, it is in sessionStorage
 *    only (not localStorage, no cookie), sign-out and a 401 clear it;
 *  - clickjacking: a page on another loopback origin framing either console
 *    gets nothing (the frame is blocked: no console asset is ever fetched
 *    into it);
 *  - cross-origin reads: a page on another loopback origin calling the
 *    party's and the admin API with fetch — with a token (preflighted) or
 *    without — cannot read an answer; its no-cors text/plain POSTs to
 *    /v1/datasets, /v1/jobs and /v1/orders and a form POST change nothing
 *    at the agent or the exchange.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { consoleDir } from "../../node/server/console-assets.js";
import { api, startNodes, waitForJob, type TestNodes, type TestParty } from "../helpers/nodes.js";
import { launchBrowser } from "../console/browser.js";
import { exchangeSnapshot, snapshot } from "./kit.js";

const built = consoleDir() !== undefined;
const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let bank: TestParty;
let telco: TestParty;
let browser: Browser;

/** Payloads that set window.__pwned when they run. */
const FILE = "<img src=x onerror=window.__pwned=1>.csv";
const COLUMN = "<img src=x onerror=window.__pwned=2>";
const TITLE = "<script>window.__pwned=3</script>";
const DESCRIPTION = "<img src=x onerror=window.__pwned=4> javascript:window.__pwned=5";
const PURPOSE = "<img src=x onerror=window.__pwned=6>";
const BUYER_KEY = "<img src=x onerror=window.__pwned=7>";
let refusedJob: string;

const party = (who: TestParty, hash = "#/") => `${who.url}/console/party/#token=${who.agent.token}&${hash.replace(/^#/, "")}`;
const exchange = (hash = "#/") => `${nodes.x.url}/console/exchange/#token=${nodes.x.app.adminToken}&${hash.replace(/^#/, "")}`;

/** A page's window as the tests read it (the tests' TypeScript has no DOM types). */
type Win = { __pwned?: unknown; __inline?: unknown; document: { querySelectorAll(s: string): { length: number }; body: { innerText: string; insertAdjacentHTML(w: string, h: string): void } } };

/** A page that counts the dialogs it opens. */
async function watched(ctx: BrowserContext): Promise<{ page: Page; dialogs: string[] }> {
  const page = await ctx.newPage();
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  return { page, dialogs };
}

/** No payload ran, no element was made of one. */
async function expectInert(page: Page, dialogs: string[], where: string): Promise<void> {
  // Give a broken image's onerror time to fire.
  await page.waitForTimeout(300);
  const r = await page.evaluate(() => {
    const w = globalThis as unknown as Win;
    return { pwned: w.__pwned ?? null, imgs: w.document.querySelectorAll('img[src="x"]').length, scripts: w.document.querySelectorAll("main script").length };
  });
  expect(r, where).toEqual({ pwned: null, imgs: 0, scripts: 0 });
  expect(dialogs, where).toEqual([]);
}

const POLICY = { allowedProtocols: ["psi"], outputColumns: [], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100_000, budgetUnit: "keys", expiresAt: null };

beforeAll(async () => {
  if (!built) return;
  [nodes, browser] = await Promise.all([startNodes(pool, ["bank", "telco"]), launchBrowser()]);
  [bank, telco] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, FILE), `id,${COLUMN}\n${Array.from({ length: 20 }, (_, i) => `k-${i},v`).join("\n")}\n`);
  writeFileSync(join(bank.dataDir, "mine.csv"), `${BUYER_KEY}\n${Array.from({ length: 20 }, (_, i) => `k-${i}`).join("\n")}\n`);
  const reg = await api<{ id: string }>(telco.url, "POST", "/v1/datasets", { file: FILE, policy: POLICY });
  expect(reg.status).toBe(201);
  const pub = await api(telco.url, "POST", "/v1/products", {
    product: { id: "telco.xss", title: TITLE, description: DESCRIPTION, datasets: [reg.body.id], protocols: ["psi"], outputColumns: [], prices: { currency: "CNY", perJob: 1 } },
  });
  expect(pub.status).toBe(201);
  expect((await api(bank.url, "POST", "/v1/orders", { product: "telco.xss", purpose: PURPOSE, quotaJobs: 1 })).status).toBe(201);
  // A job whose key column (the buyer's) is a payload: its refusal's reason shows in both consoles.
  const job = await api<{ id: string; error?: unknown }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "mine.csv", providerDataset: reg.body.id, params: { keyColumns: [BUYER_KEY], queryCount: 20 } });
  if (job.status === 201) {
    refusedJob = job.body.id;
    await waitForJob(bank.url, refusedJob);
  }
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await nodes?.close();
  await pool.close();
});

describe.runIf(built)("stored XSS through what another party publishes", () => {
  it("the telco's, the bank's and the operator's pages render every payload as text: nothing runs", async () => {
    // The CSP is bypassed: the rendering alone must keep the payloads inert.
    const ctx = await browser.newContext({ bypassCSP: true });
    const { page, dialogs } = await watched(ctx);
    const visits: [string, string, string | undefined][] = [
      [party(telco, "#/datasets"), "telco datasets", FILE],
      [party(telco, "#/register"), "telco register", undefined],
      [party(telco, "#/products"), "telco products", TITLE],
      [party(telco, "#/contracts"), "telco contracts", PURPOSE],
      [party(bank, "#/catalogue"), "bank catalogue", TITLE],
      [party(bank, "#/contracts"), "bank contracts", PURPOSE],
      [party(bank, "#/jobs"), "bank jobs", undefined],
      [exchange("#/catalogue"), "exchange catalogue", COLUMN],
      [exchange("#/jobs"), "exchange jobs", undefined],
      [exchange("#/ledger"), "exchange ledger", undefined],
      [exchange("#/parties"), "exchange parties", undefined],
    ];
    if (refusedJob !== undefined) visits.push([party(bank, `#/jobs/${encodeURIComponent(refusedJob)}`), "bank job", undefined]);
    for (const [url, where, literal] of visits) {
      await page.goto("about:blank");
      await page.goto(url);
      await page.getByRole("navigation").waitFor();
      await page.locator("main h1").waitFor();
      await page.waitForLoadState("networkidle");
      if (literal !== undefined) await page.getByText(literal, { exact: false }).first().waitFor({ timeout: 10_000 });
      await expectInert(page, dialogs, where);
    }
    // The register form lists the file by its name, as text.
    await page.goto("about:blank");
    await page.goto(party(telco, "#/register"));
    const options = await page.locator("select option").allInnerTexts();
    expect(options.some((o) => o.includes(FILE))).toBe(true);
    await expectInert(page, dialogs, "register options");
    await ctx.close();
  });
});

describe.runIf(built)("the CSP in force", () => {
  it("an injected inline script and an inline event handler do not run", async () => {
    const ctx = await browser.newContext();
    const { page, dialogs } = await watched(ctx);
    const res = await page.goto(party(bank));
    expect(res?.headers()["content-security-policy"]).toContain("script-src 'self'");
    await page.getByRole("navigation").waitFor();
    await page.addScriptTag({ content: "window.__inline = 1" }).catch(() => undefined);
    await page.evaluate(() => (globalThis as unknown as Win).document.body.insertAdjacentHTML("beforeend", '<img src="x" onerror="window.__pwned=1">'));
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => [(globalThis as unknown as Win).__inline ?? null, (globalThis as unknown as Win).__pwned ?? null])).toEqual([null, null]);
    expect(dialogs).toEqual([]);
    await ctx.close();
  });
});

describe.runIf(built)("the hash router", () => {
  it("#/jobs/<script> renders as text; a malformed escape in the route or the token still renders a page", async () => {
    const ctx = await browser.newContext({ bypassCSP: true });
    const { page, dialogs } = await watched(ctx);
    await page.goto(party(bank, "#/jobs/<script>window.__pwned=1<%2Fscript>"));
    await page.getByRole("navigation").waitFor();
    await page.locator("main h1").waitFor();
    await expectInert(page, dialogs, "jobs/<script>");
    await page.goto("about:blank");
    await page.goto(party(bank, "#/jobs/%E0%A4%A"));
    await page.getByRole("navigation").waitFor({ timeout: 10_000 });
    // A token that is not an escape: not taken, the sign-in form shown.
    const fresh = await (await browser.newContext()).newPage();
    await fresh.goto(`${bank.url}/console/party/#token=%E0`);
    await fresh.getByTestId("signin").waitFor({ timeout: 10_000 });
    expect(fresh.url()).not.toContain("token=");
    await ctx.close();
  });
});

describe.runIf(built)("the token", () => {
  it("leaves the address bar, is never sent in a URL or a Referer, lives in sessionStorage only; sign-out and a 401 clear it", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const seen: { url: string; referer: string | undefined; cookie: string | undefined }[] = [];
    page.on("request", (r) => {
      void r.allHeaders().then((h) => seen.push({ url: r.url(), referer: h["referer"], cookie: h["cookie"] }));
    });
    const token = bank.agent.token;
    await page.goto(party(bank, "#/overview"));
    await page.getByRole("navigation").waitFor();
    await page.waitForLoadState("networkidle");
    expect(page.url()).not.toContain(token);
    expect(page.url()).toMatch(/#\/overview$/);
    expect(seen.length).toBeGreaterThan(3);
    for (const r of seen) {
      expect(r.url).not.toContain(token);
      expect(r.referer, r.url).toBeUndefined();
      expect(r.cookie, r.url).toBeUndefined();
    }
    const stores = async () =>
      page.evaluate(() => {
        const g = globalThis as unknown as { sessionStorage: { getItem(k: string): string | null }; localStorage: { length: number; key(i: number): string | null; getItem(k: string): string | null } };
        const local: string[] = [];
        for (let i = 0; i < g.localStorage.length; i++) local.push(`${g.localStorage.key(i)}=${g.localStorage.getItem(g.localStorage.key(i) as string)}`);
        return { session: g.sessionStorage.getItem("umbra.console.token"), local: local.join("\n") };
      });
    const s = await stores();
    expect(s.session).toBe(token);
    expect(s.local).not.toContain(token);
    expect(await ctx.cookies()).toEqual([]);
    // Sign out: gone.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("signin").waitFor();
    expect((await stores()).session).toBeNull();
    // A token the agent refuses (401) is cleared too, and the sign-in form shown.
    await page.goto(`${bank.url}/console/party/#token=${"A".repeat(43)}`);
    await page.getByTestId("signin").waitFor({ timeout: 10_000 });
    expect((await stores()).session).toBeNull();
    await ctx.close();
  });
});

describe.runIf(built)("another origin on this machine", () => {
  let evil: Server;
  let evilUrl: string;
  let html = "";

  beforeAll(async () => {
    evil = createServer((req, res) => {
      if (req.url === "/") {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(html);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    evilUrl = `http://127.0.0.1:${(evil.address() as { port: number }).port}/`;
  });
  afterAll(async () => {
    await new Promise((r) => evil?.close(r));
  });

  it("framing either console gets nothing: the frame is blocked before any console asset loads", async () => {
    for (const target of [`${bank.url}/console/party/`, `${nodes.x.url}/console/exchange/`]) {
      html = `<!doctype html><title>evil</title><iframe id="f" src="${target}"></iframe>`;
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      const assets: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("/console/assets/")) assets.push(r.url());
      });
      await page.goto(evilUrl);
      await page.waitForTimeout(1500);
      expect(assets, target).toEqual([]);
      const frame = page.frames().find((f) => f !== page.mainFrame());
      expect(frame?.url() ?? "", target).not.toContain("/console/");
      await ctx.close();
    }
  });

  it("its fetches cannot read the party's or the admin API; its no-cors and form POSTs change nothing", async () => {
    const before = { bank: snapshot(bank.store), telco: snapshot(telco.store), x: exchangeSnapshot(nodes.x) };
    html = `<!doctype html><title>evil</title><form id="f" method="POST" action="${bank.url}/v1/jobs" enctype="text/plain"><input name='{"protocol":"psi","x":"' value='"}'></form>`;
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(evilUrl);
    const reads = await page.evaluate(
      async ({ bankUrl, xUrl, bankToken, adminToken }) => {
        const out: Record<string, string> = {};
        const tries: [string, string, Record<string, string>][] = [
          ["party status", `${bankUrl}/v1/status`, {}],
          ["party status with token", `${bankUrl}/v1/status`, { authorization: `Bearer ${bankToken}` }],
          ["party files with token", `${bankUrl}/v1/files`, { authorization: `Bearer ${bankToken}` }],
          ["console page", `${bankUrl}/console/party/`, {}],
          ["admin overview", `${xUrl}/v1/admin/overview`, {}],
          ["admin overview with token", `${xUrl}/v1/admin/overview`, { authorization: `Bearer ${adminToken}` }],
        ];
        for (const [what, url, headers] of tries) {
          try {
            const r = await fetch(url, { headers });
            out[what] = `read ${r.status} ${await r.text()}`;
          } catch (e) {
            out[what] = `refused ${(e as Error).name}`;
          }
        }
        for (const path of ["/v1/datasets", "/v1/jobs", "/v1/orders"]) {
          const body = path === "/v1/datasets" ? '{"file":"mine.csv","policy":{}}' : path === "/v1/jobs" ? '{"protocol":"psi","buyerDataset":"mine.csv","providerDataset":"telco.x","params":{"keyColumns":["id"],"queryCount":1}}' : '{"product":"telco.xss","purpose":"p","quotaJobs":1}';
          try {
            const r = await fetch(`${bankUrl}${path}`, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body });
            out[`post ${path}`] = `opaque ${r.type} ${r.status}`;
          } catch (e) {
            out[`post ${path}`] = `refused ${(e as Error).name}`;
          }
        }
        return out;
      },
      { bankUrl: bank.url, xUrl: nodes.x.url, bankToken: bank.agent.token, adminToken: nodes.x.app.adminToken },
    );
    for (const [what, r] of Object.entries(reads)) {
      if (what.startsWith("post ")) expect(r, what).toMatch(/^(opaque opaque 0|refused)/);
      else expect(r, what).toBe("refused TypeError");
    }
    // And a plain form POST (no token can go with it): refused by the agent.
    const answer = page.waitForResponse((r) => r.url() === `${bank.url}/v1/jobs`);
    await page.evaluate(() => (globalThis as unknown as { document: { getElementById(i: string): { submit(): void } } }).document.getElementById("f").submit());
    expect((await answer).status()).toBe(401);
    await ctx.close();
    expect(snapshot(bank.store)).toBe(before.bank);
    expect(snapshot(telco.store)).toBe(before.telco);
    expect(exchangeSnapshot(nodes.x)).toBe(before.x);
  });
});
