/**
 * The browser the console's tests drive: Debian's chromium through
 * playwright-core (no browser is downloaded: `.ci/run` installs chromium
 * with apt-get), and axe-core run inside the page for the accessibility check.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const CHROMIUM = process.env["UMBRA_CHROMIUM"] ?? "/usr/bin/chromium";

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** A fresh browser context (its own storage) in `locale`; the page's CSP is bypassed only so that axe can be injected. */
export function newContext(browser: Browser, locale: "en" | "zh-CN" = "en", o: { readonly width?: number; readonly downloads?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext({ locale, bypassCSP: true, acceptDownloads: o.downloads ?? true, viewport: { width: o.width ?? 1280, height: 900 } });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: string[];
}

/** The accessibility violations axe-core finds in the page as it is now, of impact serious or critical. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  if (!(await page.evaluate(() => "axe" in globalThis))) await page.addScriptTag({ content: axeSource });
  // (Run in the page: globalThis is its window; the tests' TypeScript has no DOM types.)
  const found = await page.evaluate(async () => {
    const g = globalThis as unknown as { document: unknown; axe: { run(ctx: unknown, o: object): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] }> } };
    const r = await g.axe.run(g.document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** The page's document as these helpers use it (the tests' TypeScript has no DOM types). */
type PageDocument = { readonly document: { readonly activeElement: { matches(s: string): boolean; readonly outerHTML: string } | null } };

/** Presses Tab until the focused element matches `selector` (at most `max` presses); throws naming what was focused. */
export async function tabTo(page: Page, selector: string, max = 60): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => (globalThis as unknown as PageDocument).document.activeElement?.matches(s) ?? false, selector)) return;
  }
  const at = await page.evaluate(() => (globalThis as unknown as PageDocument).document.activeElement?.outerHTML.slice(0, 120) ?? "nothing");
  throw new Error(`${max} presses of Tab did not reach ${selector} (focus is on ${at})`);
}
