/** The console's two locales, the t() function, the language switch (kept in localStorage, sets <html lang>). */
import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useEffect, useMemo, useState } from "preact/hooks";
import { en, type Dictionary, type MessageKey } from "./en.js";
import { zhCN } from "./zh-CN.js";

export type Locale = "en" | "zh-CN";
export const LOCALES: readonly { id: Locale; name: string }[] = [
  { id: "en", name: "English" },
  { id: "zh-CN", name: "简体中文" },
];
const DICTS: Record<Locale, Dictionary> = { en, "zh-CN": zhCN };
const KEY = "umbra.console.lang";

export type Vars = Record<string, string | number>;
export type T = (key: MessageKey, vars?: Vars) => string;

function initialLocale(): Locale {
  try {
    const kept = localStorage.getItem(KEY);
    if (kept === "en" || kept === "zh-CN") return kept;
  } catch {
    /* storage unavailable */
  }
  return navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export function translate(locale: Locale, key: MessageKey, vars?: Vars): string {
  const s = DICTS[locale][key] ?? en[key];
  return vars === undefined ? s : s.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

/** Whether a string is a key of the dictionaries (for codes and rules from the server). */
export function hasKey(key: string): key is MessageKey {
  return key in en;
}

interface I18n {
  locale: Locale;
  t: T;
  setLocale: (l: Locale) => void;
}
const Ctx = createContext<I18n>({ locale: "en", t: (k, v) => translate("en", k, v), setLocale: () => {} });

export function I18nProvider({ children }: { children: ComponentChildren }) {
  const [locale, setLocaleState] = useState<Locale>(initialLocale);
  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);
  const setLocale = useCallback((l: Locale) => {
    try {
      localStorage.setItem(KEY, l);
    } catch {
      /* storage unavailable */
    }
    setLocaleState(l);
  }, []);
  const value = useMemo<I18n>(() => ({ locale, setLocale, t: (k, v) => translate(locale, k, v) }), [locale, setLocale]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useI18n(): I18n {
  return useContext(Ctx);
}

export function useT(): T {
  return useContext(Ctx).t;
}

export function LanguageSwitch() {
  const { locale, setLocale, t } = useI18n();
  return (
    <label class="lang">
      <span>{t("lang.label")}</span>
      <select data-testid="lang" value={locale} onChange={(e) => setLocale((e.currentTarget as HTMLSelectElement).value as Locale)}>
        {LOCALES.map((l) => (
          <option key={l.id} value={l.id} lang={l.id}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
}
