/**
 * Every page of both consoles, in both locales, in a real browser against
 * real processes (test/console/venue.ts) holding a registered dataset and a
 * finished join-aggregate job:
 *
 *  - axe-core, run in each page, finds no serious or critical violation;
 *  - each page is reached with the keyboard alone (Tab to its link, Enter),
 *    the sign-in form works from the keyboard, and so does the ledger's
 *    "Verify in browser";
 *  - the language switch turns the page into 简体中文 (html lang zh-CN);
 *  - at a phone's width (390 px) no page scrolls sideways;
 *  - each page is photographed: into a temporary folder here, into
 *    docs/console/ when `npm run console:shots` sets UMBRA_SHOTS_DIR.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, newContext, seriousViolations, tabTo } from "./browser.js";
import { waitUntil } from "../helpers/nodes.js";
import { startVenue, type Venue } from "./venue.js";

let venue: Venue;
let browser: Browser;
let jobId: string;
const shots = process.env["UMBRA_SHOTS_DIR"] ?? mkdtempSync(join(tmpdir(), "umbra-shots-"));

/** A call to a party agent's local API with its token. */
async function partyApi<T>(url: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  [venue, browser] = await Promise.all([startVenue(), launchBrowser()]);
  // Something on every page: a dataset, a finished job with a result, a refused one.
  const policy = { allowedProtocols: ["join-aggregate", "psi"], keyColumns: ["phone"], outputColumns: ["monthly_spend"], allowedBuyers: ["bank"], minGroupSize: 5, queryBudget: 20, budgetUnit: "jobs", expiresAt: null };
  await partyApi(venue.telco.url, venue.tokens.telco, "POST", "/v1/datasets", { file: "spend.csv", policy });
  // A product, the bank's order for it, the telco's approval: the job runs under that contract (a receipt, quota used).
  const telco = (method: string, path: string, body?: unknown) => partyApi<{ id: string }>(venue.telco.url, venue.tokens.telco, method, path, body);
  await telco("POST", "/v1/products", { product: { id: "telco.spend", title: "Monthly spend per risk grade", datasets: ["telco.spend.csv"], protocols: ["join-aggregate"], outputColumns: ["monthly_spend"], prices: { currency: "CNY", perJob: 50, perKey: 0, perMatchedRow: 1, perCell: 0 }, share: "equal" } });
  const order = await partyApi<{ id: string }>(venue.bank.url, venue.tokens.bank, "POST", "/v1/orders", { product: "telco.spend", purpose: "risk pricing", quotaJobs: 5, days: 30 });
  await telco("POST", `/v1/orders/${order.id}/approve`, {});
  const job = await partyApi<{ id: string }>(venue.bank.url, venue.tokens.bank, "POST", "/v1/jobs", {
    contracts: [order.id],
    protocol: "join-aggregate",
    buyerDataset: "risk.csv",
    providerDataset: "telco.spend.csv",
    params: { keyColumns: ["phone"], aggregate: { groupBy: { column: "risk_grade" }, aggregates: [{ fn: "count" }, { fn: "sum", column: "monthly_spend" }] }, minGroupSize: 5 },
  });
  jobId = job.id;
  await waitUntil(async () => {
    const { state } = await partyApi<{ state: string }>(venue.bank.url, venue.tokens.bank, "GET", `/v1/jobs/${jobId}`);
    if (!["submitted", "running", "succeeded"].includes(state)) throw new Error(`the seeding job ended ${state}`);
    return state === "succeeded";
  }, "the seeding job's success", 120_000);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await venue?.close();
  if (process.env["UMBRA_SHOTS_DIR"] === undefined) rmSync(shots, { recursive: true, force: true });
});

/** The nav links of the page now: [testid, href]. */
async function navLinks(page: Page): Promise<[string, string][]> {
  return page.locator('nav [data-testid^="nav-"]').evaluateAll((links) => links.map((l) => [l.getAttribute("data-testid") as string, l.getAttribute("href") as string]));
}

/** Visits every page of a console in a locale: axe finds nothing serious; a screenshot of each. */
async function everyPage(who: "exchange" | "bank", locale: "en" | "zh-CN"): Promise<string[]> {
  const page = await (await newContext(browser, locale)).newPage();
  await page.goto(venue.consoleUrl(who));
  await page.getByRole("navigation").waitFor();
  expect(await page.locator("html").getAttribute("lang")).toBe(locale);
  const visited: string[] = [];
  const kind = who === "exchange" ? "exchange" : "party";
  const pages = await navLinks(page);
  // The party's job page too: the finished job's result, its chart and downloads.
  if (who === "bank") pages.push(["job", `#/jobs/${jobId}`]);
  for (const [id, href] of pages) {
    await page.goto(`${venue.consoleUrl(who, false)}${href}`);
    await page.locator("main h1").waitFor();
    await page.waitForLoadState("networkidle");
    if (id === "job") await page.getByTestId("result-table").waitFor();
    const violations = await seriousViolations(page);
    expect(violations, `${kind} ${id} (${locale}): ${JSON.stringify(violations, null, 1)}`).toEqual([]);
    await page.screenshot({ path: join(shots, `${kind}-${id.replace(/^nav-/, "")}-${locale}.png`), fullPage: true });
    visited.push(id);
  }
  await page.context().close();
  return visited;
}

describe("every page of both consoles", () => {
  it("the party console (the bank's), in English and in 简体中文: no serious accessibility violation on any page", async () => {
    const en = await everyPage("bank", "en");
    expect(en).toEqual(expect.arrayContaining(["nav-overview", "nav-datasets", "nav-register", "nav-new-job", "nav-jobs", "job"]));
    expect(await everyPage("bank", "zh-CN")).toEqual(en);
  });

  it("the exchange console, in English and in 简体中文: no serious accessibility violation on any page", async () => {
    const en = await everyPage("exchange", "en");
    expect(en).toEqual(expect.arrayContaining(["nav-overview", "nav-parties", "nav-catalogue", "nav-jobs", "nav-ledger"]));
    expect(await everyPage("exchange", "zh-CN")).toEqual(en);
  });

  it("at a phone's width (390 px) no page of either console scrolls sideways: wide tables scroll inside their own box", async () => {
    const overflowing: string[] = [];
    for (const who of ["bank", "exchange"] as const) {
      const page = await (await newContext(browser, "en", { width: 390 })).newPage();
      await page.goto(venue.consoleUrl(who));
      await page.getByRole("navigation").waitFor();
      const pages = await navLinks(page);
      if (who === "bank") pages.push(["job", `#/jobs/${jobId}`]);
      for (const [id, href] of pages) {
        await page.goto(`${venue.consoleUrl(who, false)}${href}`);
        await page.locator("main h1").waitFor();
        await page.waitForLoadState("networkidle");
        const [scroll, client] = await page.evaluate(() => {
          const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
          return [d.scrollWidth, d.clientWidth];
        });
        if (scroll > client) overflowing.push(`${who} ${id}: ${scroll} px in ${client} px`);
      }
      await page.context().close();
    }
    expect(overflowing).toEqual([]);
  });

  it("the language switch turns an English page into 简体中文 and back", async () => {
    const page = await (await newContext(browser, "en")).newPage();
    await page.goto(venue.consoleUrl("bank"));
    const heading = await page.locator("main h1").innerText();
    await page.getByTestId("lang").selectOption("zh-CN");
    await page.locator('html[lang="zh-CN"]').waitFor();
    expect(await page.locator("main h1").innerText()).not.toBe(heading);
    await page.getByTestId("lang").selectOption("en");
    await page.locator('html[lang="en"]').waitFor();
    expect(await page.locator("main h1").innerText()).toBe(heading);
    await page.context().close();
  });
});

describe("the keyboard alone", () => {
  it("signs in to the party console, reaches every page by Tab and Enter, and opens the finished job", async () => {
    const page = await (await newContext(browser)).newPage();
    await page.goto(venue.consoleUrl("bank", false));
    await page.getByTestId("signin").waitFor();
    await tabTo(page, 'input[type="password"]');
    await page.keyboard.type(venue.tokens.bank);
    await page.keyboard.press("Enter");
    await page.getByRole("navigation").waitFor();
    for (const [id, href] of await navLinks(page)) {
      await tabTo(page, `[data-testid="${id}"]`);
      await page.keyboard.press("Enter");
      await page.locator(`[data-testid="${id}"][aria-current="page"]`).waitFor();
      // The new page's heading takes the focus (a screen reader announces it); Tab goes on from there.
      await page.locator("main h1:focus").waitFor();
      expect(new URL(page.url()).hash).toBe(href);
    }
    await page.goto(`${venue.consoleUrl("bank", false)}#/jobs`);
    await page.locator("main h1:focus").waitFor();
    await tabTo(page, `a[href="#/jobs/${jobId}"]`);
    await page.keyboard.press("Enter");
    await page.getByTestId("result-table").waitFor();
    await page.context().close();
  });

  it("the operator signs in and verifies the ledger from the keyboard: every check passes", async () => {
    const page = await (await newContext(browser)).newPage();
    await page.goto(venue.consoleUrl("exchange", false));
    await page.getByTestId("signin").waitFor();
    await tabTo(page, 'input[type="password"]');
    await page.keyboard.type(venue.tokens.exchange);
    await page.keyboard.press("Enter");
    await tabTo(page, '[data-testid="nav-ledger"]');
    await page.keyboard.press("Enter");
    await page.locator("main h1:focus").waitFor();
    await tabTo(page, '[data-testid="verify-ledger"]');
    await page.keyboard.press("Enter");
    for (const c of ["check-chain", "check-signatures", "check-root", "check-proofs"]) {
      await page.locator(`[data-testid="${c}"][data-status="passed"], [data-testid="${c}"][data-status="failed"]`).waitFor({ timeout: 60_000 });
      expect(await page.getByTestId(c).getAttribute("data-status"), c).toBe("passed");
    }
    await page.context().close();
  });
});
