/** "What each party learns": per protocol, from the protocols' doc comments (protocols/NAME/index.ts, docs/protocols). */
import { useT } from "../../shared/i18n/index.js";
import type { MessageKey } from "../../shared/i18n/en.js";
import type { Protocol } from "../types.js";

export function Learns({ protocol }: { protocol: Protocol }) {
  const t = useT();
  const k = (who: "buyer" | "provider" | "exchange") => `learns.${protocol}.${who}` as MessageKey;
  return (
    <aside class="card learns" data-testid="learns" data-protocol={protocol} aria-labelledby="learns-h" aria-live="polite">
      <h2 id="learns-h">
        {t("learns.title")}: {protocol}
      </h2>
      <dl>
        <dt>{t("learns.buyer")}</dt>
        <dd>{t(k("buyer"))}</dd>
        <dt>{t("learns.provider")}</dt>
        <dd>{t(k("provider"))}</dd>
        <dt>{t("learns.exchange")}</dt>
        <dd>{t(k("exchange"))}</dd>
      </dl>
    </aside>
  );
}
