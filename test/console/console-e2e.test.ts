/**
 * The consoles in a real browser (Debian's chromium, driven by
 * playwright-core) against real processes: an exchange and two party agents
 * started by the CLI (test/console/venue.ts).
 *
 * In order, as a person would use them:
 *  1. the telco opens the address its agent printed (the token after "#"
 *     leaves the address bar), registers spend.csv through the form — an
 *     invalid expiry is flagged as it is typed, next to its field — and sees
 *     the dataset listed, then publishes it as a priced product;
 *  2. the bank orders that product from the catalogue, the telco approves
 *     the order on its contracts page, and the bank submits a join-aggregate
 *     job under the contract through the form (the panel says what each
 *     party learns), watches it to the end over the stream, sees
 *     the result table — equal to the plain join computed here — and
 *     downloads it as CSV, equal too;
 *  3. a job the telco's policy refuses (k below its minimum) is shown with
 *     the rule that refused it;
 *  4. the operator verifies the ledger in the page: every check passes;
 *  5. an entry of the exchange's database changed behind its back: the
 *     page's check fails, naming that entry.
 */
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, newContext } from "./browser.js";
import { expectedPerGrade, startVenue, type Venue } from "./venue.js";

const K = 5;
/** The contract the bank's order became (scenario 2), under which its jobs run. */
let contract = "";
let venue: Venue;
let browser: Browser;

beforeAll(async () => {
  [venue, browser] = await Promise.all([startVenue(), launchBrowser()]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await venue?.close();
});

/** A new page (its own storage) signed in to `who`'s console from the address with the token. */
async function signedIn(who: "exchange" | "telco" | "bank"): Promise<Page> {
  const page = await (await newContext(browser)).newPage();
  await page.goto(venue.consoleUrl(who));
  await page.getByRole("navigation").waitFor();
  return page;
}

/** The rows of the table with `testid`: header cells, then each row's cells, as text. */
async function tableText(page: Page, testid: string): Promise<{ header: string[]; rows: string[][] }> {
  const table = page.getByTestId(testid);
  const header = (await table.locator("thead th").allInnerTexts()).map((s) => s.trim());
  const rows: string[][] = [];
  for (const row of await table.locator("tbody tr").all()) rows.push((await row.locator("td, th").allInnerTexts()).map((s) => s.trim()));
  return { header, rows };
}

/** The expected answer as {grade: sum} (groups below k dropped). */
const expectedSums = (): Record<string, number> => Object.fromEntries([...expectedPerGrade(K)].map(([g, v]) => [g, v.sum]));

describe("the consoles in a real browser", () => {
  it("1. the telco signs in from its printed address, registers spend.csv through the form (an error shown as typed, next to its field), sees it listed and publishes it as a priced product", async () => {
    const page = await signedIn("telco");
    expect(page.url()).not.toContain("token=");
    await page.getByTestId("nav-register").click();
    const form = page.getByTestId("register-form");
    await form.getByLabel("File").selectOption("spend.csv");
    await form.getByRole("group", { name: "Allowed protocols" }).getByLabel("join-aggregate").check();
    await form.getByRole("group", { name: /Key columns/ }).getByLabel("phone").check();
    await form.getByRole("group", { name: /Output columns/ }).getByLabel("monthly_spend").check();
    await form.getByLabel("Allowed buyers").fill("bank");
    await form.getByLabel("Minimum group size (k)").fill(String(K));
    // Typed wrong: the server's check names the field, and the form will not submit.
    await form.getByLabel(/Expires at/).fill("next tuesday");
    await page.getByTestId("error-expiresAt").waitFor();
    expect(await form.getByLabel(/Expires at/).getAttribute("aria-invalid")).toBe("true");
    expect(await page.getByTestId("register-submit").isDisabled()).toBe(true);
    await form.getByLabel(/Expires at/).fill("");
    await page.getByText("The policy is valid for this file (600 rows).").waitFor();
    expect(await page.getByTestId("error-expiresAt").count()).toBe(0);
    await page.getByTestId("register-submit").click();
    await page.getByText("Registered telco.spend.csv, policy version 1.").waitFor();
    await page.getByTestId("nav-datasets").click();
    await page.getByRole("cell", { name: /^spend\.csv telco\.spend\.csv$/ }).waitFor();

    // And publishes it as a product: 0.50 CNY per job, 0.01 per matched row.
    await page.getByTestId("nav-products").click();
    const product = page.getByTestId("product-form");
    await product.getByLabel("Product ID").fill("spend");
    await product.getByLabel("Title").fill("Monthly spend per risk grade");
    await product.getByLabel("Dataset").selectOption("telco.spend.csv");
    await product.getByRole("group", { name: /Protocols a buyer may run/ }).getByLabel("join-aggregate").check();
    await product.getByRole("group", { name: /Output columns a job may release/ }).getByLabel("monthly_spend").check();
    await product.getByLabel("Price per job (CNY)").fill("0.50");
    await page.getByTestId("product-submit").click();
    expect(await page.getByTestId("product-done").innerText()).toBe("Published telco.spend, version 1.");
    await page.locator('[data-testid="product-state-telco.spend"]').waitFor();
  });

  it("2. the bank orders the product from the catalogue, the telco approves it, the bank submits a join-aggregate job under the contract through the form, watches it finish, and its result and CSV download equal the plain join", async () => {
    const bankPage = await signedIn("bank");
    await bankPage.getByTestId("nav-catalogue").click();
    await bankPage.getByTestId("order-telco.spend").click();
    const order = bankPage.getByTestId("order-form");
    await order.getByLabel("Purpose").fill("risk pricing");
    await order.getByLabel("Jobs (quota)").fill("3");
    await bankPage.getByTestId("order-submit").click();
    const ordered = await bankPage.getByTestId("order-done").innerText();
    contract = /contract (contract-[0-9a-f-]{36})/.exec(ordered)?.[1] ?? "";
    expect(contract, ordered).not.toBe("");

    // The telco approves the order on its contracts page (a confirmation first).
    const telcoPage = await signedIn("telco");
    await telcoPage.getByTestId("nav-contracts").click();
    await telcoPage.getByTestId(`approve-${contract}`).click();
    await telcoPage.getByTestId(`approve-${contract}-confirm`).click();
    await telcoPage.locator(`[data-testid="contract-state-${contract}"]`).filter({ hasText: "active" }).waitFor();

    const page = bankPage;
    await page.getByTestId("nav-new-job").click();
    const form = page.getByTestId("job-form");
    await form.getByLabel("Protocol").selectOption("join-aggregate");
    expect(await page.getByTestId("learns").getAttribute("data-protocol")).toBe("join-aggregate");
    await form.getByLabel("My input file").selectOption("risk.csv");
    await form.getByLabel("Provider dataset").selectOption("telco.spend.csv");
    await form.getByLabel("Key columns").selectOption({ label: "phone" });
    await form.getByLabel("Function").selectOption("sum");
    await form.getByRole("group", { name: /Aggregated column/ }).getByLabel("monthly_spend").check();
    await form.getByLabel(/Group by/).fill("risk_grade");
    await form.getByLabel(/Minimum group size k/).fill(String(K));
    await form.getByLabel(/Contracts/).fill(contract);
    await form.getByRole("button", { name: "Submit job" }).click();
    await page.waitForURL(/#\/jobs\/[^/]+$/);
    await page.locator('[data-testid="job-state"][data-state="succeeded"]').waitFor({ timeout: 120_000 });

    // The result table: one row per grade of at least k matched customers, with the sum of their spend.
    await page.getByTestId("result-table").waitFor();
    const { header, rows } = await tableText(page, "result-table");
    const g = header.indexOf("risk_grade");
    const s = header.findIndex((h) => /sum/.test(h));
    expect([g, s].every((i) => i >= 0), header.join(",")).toBe(true);
    expect(Object.fromEntries(rows.map((r) => [r[g], Number((r[s] as string).replace(/[, ]/g, ""))]))).toEqual(expectedSums());

    // The download: the same rows as a CSV file.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-csv").click()]);
    const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
    const cols = (csv[0] as string).split(",");
    const gi = cols.indexOf("risk_grade");
    const si = cols.findIndex((h) => /sum/.test(h));
    expect(Object.fromEntries(csv.slice(1).map((l) => l.split(",")).map((r) => [r[gi], Number(r[si])]))).toEqual(expectedSums());
  });

  it("3. a job the telco's policy refuses (k below its minimum) is shown with the rule that refused it", async () => {
    const page = await signedIn("bank");
    await page.getByTestId("nav-new-job").click();
    const form = page.getByTestId("job-form");
    await form.getByLabel("Protocol").selectOption("join-aggregate");
    await form.getByLabel("My input file").selectOption("risk.csv");
    await form.getByLabel("Provider dataset").selectOption("telco.spend.csv");
    await form.getByLabel("Key columns").selectOption({ label: "phone" });
    await form.getByLabel("Function").selectOption("count");
    await form.getByLabel(/Group by/).fill("risk_grade");
    await form.getByLabel(/Minimum group size k/).fill("2");
    await form.getByLabel(/Contracts/).fill(contract);
    await form.getByRole("button", { name: "Submit job" }).click();
    const failure = page.getByTestId("failure");
    await failure.waitFor();
    expect(await failure.innerText()).toContain("group-size-below-minimum");
    expect(await failure.innerText()).toContain("UMBRA_POLICY_DENIED");
  });

  it("4. the operator verifies the ledger in the page: chain, signatures, root and proofs all pass", async () => {
    const page = await signedIn("exchange");
    await page.getByTestId("nav-ledger").click();
    await page.getByTestId("verify-ledger").click();
    for (const c of ["check-chain", "check-signatures", "check-root", "check-proofs"]) {
      await page.locator(`[data-testid="${c}"][data-status="passed"], [data-testid="${c}"][data-status="failed"]`).waitFor({ timeout: 60_000 });
      expect(await page.getByTestId(c).getAttribute("data-status"), c).toBe("passed");
    }
  });

  it("5. an entry changed in the exchange's database behind its back: the page's check fails and names that entry", async () => {
    const db = new Database(venue.exchangeDb);
    const seq = (db.prepare("SELECT seq FROM ledger WHERE kind = 'dataset.registered' ORDER BY seq LIMIT 1").get() as { seq: number }).seq;
    // Its content hash claimed for another file: one character of the body changed.
    const body = (db.prepare("SELECT body FROM ledger WHERE seq = ?").get(seq) as { body: string }).body;
    const changed = body.replace(/"contentHash":"([0-9a-f])/, (_, c: string) => `"contentHash":"${c === "0" ? "1" : "0"}`);
    expect(changed).not.toBe(body);
    db.prepare("UPDATE ledger SET body = ? WHERE seq = ?").run(changed, seq);
    db.close();
    const page = await signedIn("exchange");
    await page.getByTestId("nav-ledger").click();
    await page.getByTestId("verify-ledger").click();
    const chain = page.locator('[data-testid="check-chain"][data-status="failed"]');
    await chain.waitFor({ timeout: 60_000 });
    expect(await chain.innerText()).toContain(`seq ${seq}`);
    await page.locator('[data-testid="check-root"][data-status="failed"]').waitFor();
  });
});
