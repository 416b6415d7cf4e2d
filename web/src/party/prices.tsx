/** A product's or contract's prices as lines of text in the locale ("¥0.05 per job"). */
import type { ComponentChildren } from "preact";
import { useI18n } from "../shared/i18n/index.js";
import type { MessageKey } from "../shared/i18n/en.js";
import { money, PRICE_FIELDS, type PriceField, type Prices } from "./money.js";

const PRICE_KEY: Record<PriceField, MessageKey> = {
  perJob: "price.perJob",
  perKey: "price.perKey",
  perMatchedRow: "price.perMatchedRow",
  perCell: "price.perCell",
};

/** A product's or contract's price lines: the fee per job always, each other price when it is not 0. */
export function PriceLines({ prices, testid }: { prices: Prices | undefined; testid?: string }): ComponentChildren {
  const { t, locale } = useI18n();
  if (prices === undefined) return "—";
  const lines = PRICE_FIELDS.filter((f) => f === "perJob" || (prices[f] ?? 0) > 0);
  return (
    <ul class="price-lines" data-testid={testid}>
      {lines.map((f) => (
        <li key={f} data-price={f}>
          {t(PRICE_KEY[f], { amount: money(prices[f] ?? 0, prices.currency, locale) })}
        </li>
      ))}
    </ul>
  );
}
