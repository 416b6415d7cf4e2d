/**
 * The console's shell, shared by both consoles: sign-in (a `#token=` moved to
 * sessionStorage, else a form), the header with the language switch, the nav
 * (the current page marked aria-current="page"), the main landmark and the
 * hash routing.
 */
import { render, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { clearToken, getToken, setToken, takeTokenFromAddress } from "./api.js";
import { I18nProvider, LanguageSwitch, useT } from "./i18n/index.js";
import type { MessageKey } from "./i18n/en.js";
import { useRoute } from "./router.js";
import "./console.css";

export interface NavPage {
  readonly id: string;
  readonly label: MessageKey;
  /** Also current for these first route parts (e.g. "job" under "jobs"). */
  readonly also?: readonly string[];
}

export interface ConsoleSpec {
  readonly kind: "party" | "exchange";
  readonly pages: readonly NavPage[];
  readonly page: (route: string[]) => ComponentChildren;
}

function SignIn({ kind }: { kind: "party" | "exchange" }) {
  const t = useT();
  const [value, setValue] = useState("");
  return (
    <main id="main" class="signin">
      <h1>{t("signin.title")}</h1>
      <p>{t(kind === "party" ? "signin.intro.party" : "signin.intro.exchange")}</p>
      <form
        data-testid="signin"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim() !== "") setToken(value.trim());
        }}
      >
        <div class="field">
          <label for="token">{t("signin.token")}</label>
          <input id="token" name="token" type="password" autocomplete="off" required value={value} onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="primary">
          {t("signin.submit")}
        </button>
      </form>
    </main>
  );
}

function Shell({ spec }: { spec: ConsoleSpec }) {
  const t = useT();
  const [token, setTok] = useState(getToken);
  const route = useRoute();
  useEffect(() => {
    const on = () => setTok(getToken());
    window.addEventListener("umbra:token", on);
    return () => window.removeEventListener("umbra:token", on);
  }, []);
  const first = route[0] ?? spec.pages[0]?.id ?? "";
  // Focus the page's heading on navigation, so a screen reader announces the new page.
  useEffect(() => {
    document.getElementById("page-title")?.focus({ preventScroll: true });
  }, [route.join("/")]);
  const title = t(spec.kind === "party" ? "app.party" : "app.exchange");
  useEffect(() => {
    document.title = title;
  }, [title]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        {t("app.skip")}
      </a>
      <header class="top">
        <span class="brand">{title}</span>
        <div class="top-tools">
          <LanguageSwitch />
          {token !== null ? (
            <button type="button" onClick={() => clearToken()}>
              {t("common.signOut")}
            </button>
          ) : null}
        </div>
      </header>
      {token === null ? (
        <SignIn kind={spec.kind} />
      ) : (
        <div class="layout">
          <nav aria-label={t("nav.label")}>
            <ul>
              {spec.pages.map((p) => {
                const current = p.id === first || (p.also ?? []).includes(first);
                return (
                  <li key={p.id}>
                    <a href={`#/${p.id}`} data-testid={`nav-${p.id}`} aria-current={current ? "page" : undefined}>
                      {t(p.label)}
                    </a>
                  </li>
                );
              })}
            </ul>
          </nav>
          <main id="main" tabIndex={-1}>
            {spec.page(route.length === 0 ? [first] : route)}
          </main>
        </div>
      )}
    </>
  );
}

export function startConsole(spec: ConsoleSpec): void {
  takeTokenFromAddress();
  render(
    <I18nProvider>
      <Shell spec={spec} />
    </I18nProvider>,
    document.getElementById("app") as HTMLElement,
  );
}
