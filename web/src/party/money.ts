/**
 * Money in the venue's prices (docs/venue.md): integer minor units of one
 * currency (cents, fen). The forms take an amount in the currency's major
 * unit as typed ("0.05") and turn it into minor units exactly, with strings
 * and BigInt, never with floating point ("0.05" CNY → 5).
 */

/** The currencies the publish form offers (the first is the default). */
export const CURRENCIES = ["CNY", "USD", "EUR"] as const;

/** The price fields of a product, in the order they are shown. */
export const PRICE_FIELDS = ["perJob", "perKey", "perMatchedRow", "perCell"] as const;
export type PriceField = (typeof PRICE_FIELDS)[number];

export interface Prices {
  readonly currency: string;
  readonly perJob: number;
  readonly perKey?: number;
  readonly perMatchedRow?: number;
  readonly perCell?: number;
}

/** The decimal digits of a currency's minor unit (2 for CNY, USD, EUR; 0 for JPY); 2 for a code the browser does not know. */
export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

export type AmountProblem = "required" | "format" | "negative" | "decimals" | "tooLarge";

/**
 * An amount typed in the major unit as integer minor units: "0.05" with 2
 * digits is 5, "12" is 1200. Empty is "required" (the caller decides whether
 * an empty optional price is 0). At most `digits` decimals; not negative; at
 * most Number.MAX_SAFE_INTEGER minor units.
 */
export function parseAmount(text: string, digits: number): { readonly minor: number } | { readonly problem: AmountProblem } {
  const s = text.trim();
  if (s === "") return { problem: "required" };
  const m = /^([-+]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (m === null || ((m[2] ?? "") === "" && (m[3] ?? "") === "")) return { problem: "format" };
  const frac = m[3] ?? "";
  if (m[1] === "-" && /[1-9]/.test((m[2] ?? "") + frac)) return { problem: "negative" };
  if (frac.length > digits) return { problem: "decimals" };
  const minor = BigInt(m[2] || "0") * 10n ** BigInt(digits) + BigInt(frac.padEnd(digits, "0") || "0");
  if (minor > BigInt(Number.MAX_SAFE_INTEGER)) return { problem: "tooLarge" };
  return { minor: Number(minor) };
}

/** Minor units as an exact decimal string in the major unit: 5 with 2 digits is "0.05". */
export function majorOf(minor: bigint | number, digits: number): string {
  const v = BigInt(minor);
  const neg = v < 0n;
  const abs = (neg ? -v : v).toString().padStart(digits + 1, "0");
  const int = abs.slice(0, abs.length - digits);
  const frac = digits > 0 ? `.${abs.slice(abs.length - digits)}` : "";
  return `${neg ? "-" : ""}${int}${frac}`;
}

/** Minor units formatted in the locale with the currency's symbol ("¥0.05", "€5.00"); "0.05 XYZ" for a code the browser does not know. */
export function money(minor: bigint | number, currency: string, locale: string): string {
  const digits = minorDigits(currency);
  const exact = majorOf(minor, digits);
  try {
    // A decimal string is formatted exactly (Intl.NumberFormat v3), beyond 2^53 too.
    return new Intl.NumberFormat(locale, { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits }).format(exact as unknown as number);
  } catch {
    return `${exact} ${currency}`;
  }
}
