/**
 * Ordering a product (docs/venue.md): the purpose, the quota of jobs and the
 * contract's days — what POST /v1/orders takes; the agent writes and signs
 * the contract, copying the product's prices. The cost is shown as it is
 * typed: the fees of the quota's jobs, and the usage prices at the buyer's
 * own estimates (those estimates are not sent). Once ordered, the pending
 * contract is shown with a link to the contracts page.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, fieldIssues, post } from "../../shared/api.js";
import { ErrorNote, Field, StatusBadge } from "../../shared/components.js";
import { useI18n, type T } from "../../shared/i18n/index.js";
import type { MessageKey } from "../../shared/i18n/en.js";
import { money } from "../money.js";
import { PriceLines } from "../prices.js";
import type { ContractView, ProductView } from "../types.js";

const MAX_PURPOSE = 500;
const MAX_QUOTA_JOBS = 1_000_000;
const MAX_DAYS = 5 * 365;
const CONTROL = /[\u0000-\u001f\u007f]/;
const ORDER_FIELDS: readonly string[] = ["purpose", "quotaJobs", "days"];

/** The usage prices an order's cost is estimated with: the buyer's guess of each unit per job. */
const USAGE = [
  { price: "perKey", label: "order.estimateKeys" },
  { price: "perMatchedRow", label: "order.estimateRows" },
  { price: "perCell", label: "order.estimateCells" },
] as const satisfies readonly { price: "perKey" | "perMatchedRow" | "perCell"; label: MessageKey }[];
type UsagePrice = (typeof USAGE)[number]["price"];

/** A whole number typed in [min, max], or undefined. */
function intIn(s: string, min: number, max: number): number | undefined {
  const v = s.trim();
  if (!/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}

function checkOrder(purpose: string, quota: string, days: string, t: T): Record<string, string> {
  const e: Record<string, string> = {};
  if (purpose.trim() === "") e["purpose"] = t("form.required");
  else if (purpose.trim().length > MAX_PURPOSE) e["purpose"] = t("form.tooLong", { max: MAX_PURPOSE });
  else if (CONTROL.test(purpose)) e["purpose"] = t("form.control");
  if (quota.trim() === "") e["quotaJobs"] = t("form.required");
  else if (intIn(quota, 1, MAX_QUOTA_JOBS) === undefined) e["quotaJobs"] = t("form.integer", { min: 1, max: MAX_QUOTA_JOBS.toLocaleString() });
  if (days.trim() !== "" && intIn(days, 1, MAX_DAYS) === undefined) e["days"] = t("form.integer", { min: 1, max: MAX_DAYS });
  return e;
}

/** Whether the product's auto-approve rule (as the exchange shows it to this buyer) lets the provider's agent sign the order on its own. */
function autoApproves(p: ProductView, me: string, purpose: string, quota: number | undefined): boolean {
  const a = p.autoApprove;
  if (a === undefined) return false;
  if (a.maxQuotaJobs !== undefined && (quota === undefined || quota > a.maxQuotaJobs)) return false;
  if (a.purposes !== undefined && !a.purposes.includes(purpose.trim())) return false;
  if (a.buyers !== undefined && !a.buyers.includes(me)) return false;
  return true;
}

export function OrderForm({ product: p, me, onClose }: { product: ProductView; me: string; onClose: () => void }) {
  const { t, locale } = useI18n();
  const [purpose, setPurpose] = useState("");
  const [quota, setQuota] = useState("1");
  const [days, setDays] = useState("30");
  const [usage, setUsage] = useState<Record<UsagePrice, string>>({ perKey: "", perMatchedRow: "", perCell: "" });
  const [touched, setTouched] = useState<ReadonlySet<string>>(new Set());
  const [submitted, setSubmitted] = useState(false);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [ordered, setOrdered] = useState<ContractView | undefined>(undefined);
  const formRef = useRef<HTMLFormElement>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);

  // Opening the form (or another product's) moves the focus to it.
  useEffect(() => headingRef.current?.focus(), [p.id]);

  const clientErrors = checkOrder(purpose, quota, days, t);
  const errorFor = (f: string): string | undefined => serverErrors[f] ?? (submitted || touched.has(f) ? clientErrors[f] : undefined);
  const touch = (f: string) => {
    setTouched((s) => new Set([...s, f]));
    setServerErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== f)));
  };

  // The cost as typed, exactly (BigInt): the quota's job fees, and the usage at the buyer's estimates.
  const jobs = intIn(quota, 1, MAX_QUOTA_JOBS);
  const priced = USAGE.filter((u) => (p.prices[u.price] ?? 0) > 0);
  const perJobUsage = priced.reduce((sum, u) => sum + BigInt(p.prices[u.price] ?? 0) * BigInt(intIn(usage[u.price], 0, Number.MAX_SAFE_INTEGER) ?? 0), 0n);
  const fees = jobs !== undefined ? BigInt(jobs) * BigInt(p.prices.perJob) : undefined;
  const usageTotal = jobs !== undefined ? BigInt(jobs) * perJobUsage : undefined;
  const cur = p.prices.currency;
  const auto = autoApproves(p, me, purpose, jobs);

  const submit = async (e: Event) => {
    e.preventDefault();
    setSubmitted(true);
    setGeneral(undefined);
    if (Object.keys(clientErrors).length > 0) {
      setTimeout(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
      return;
    }
    setBusy(true);
    try {
      const body = { product: p.id, purpose: purpose.trim(), quotaJobs: Number(quota.trim()), ...(days.trim() !== "" ? { days: Number(days.trim()) } : {}) };
      setOrdered(await post<ContractView>("/v1/orders", body));
    } catch (err) {
      const apiError = err instanceof ApiError ? err : new ApiError(0, "UMBRA_INTERNAL", String(err));
      const named: Record<string, string> = {};
      for (const i of fieldIssues(apiError)) if (ORDER_FIELDS.includes(i.field)) named[i.field] = `${apiError.code}: ${i.problem}`;
      setServerErrors(named);
      if (Object.keys(named).length === 0) setGeneral(apiError);
      else setTimeout(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card order-panel" id="order-panel">
      <h3 ref={headingRef} tabIndex={-1}>
        {t("order.title", { id: p.id, version: p.version })}
      </h3>
      <dl class="facts">
        <dt>{t("col.owner")}</dt>
        <dd>{p.owner}</dd>
        <dt>{t("col.prices")}</dt>
        <dd>
          <PriceLines prices={p.prices} />
        </dd>
        <dt>{t("order.protocols")}</dt>
        <dd>{p.protocols.join(", ")}</dd>
        <dt>{t("col.outputColumns")}</dt>
        <dd>{p.outputColumns.length > 0 ? p.outputColumns.join(", ") : "—"}</dd>
      </dl>
      {ordered !== undefined ? (
        <div class="order-done" data-testid="order-done" role="status">
          <p class="ok-note">
            {t("order.done", { id: ordered.id, product: ordered.product.id, version: ordered.product.version })} <StatusBadge state={ordered.state} testid="order-state" />
          </p>
          <p>{t(auto ? "order.pendingAuto" : "order.pending", { provider: ordered.provider, quota: ordered.quotaJobs.toLocaleString(locale) })}</p>
          <p class="actions">
            <a href="#/contracts" data-testid="order-contracts-link">
              {t("order.seeContracts")}
            </a>
            <button type="button" onClick={onClose}>
              {t("order.close")}
            </button>
          </p>
        </div>
      ) : (
        <form data-testid="order-form" ref={formRef} onSubmit={submit} noValidate>
          <Field id="f-purpose" label={t("order.purpose")} hint={t("order.purposeHint")} error={errorFor("purpose")}>
            {(a) => <input {...a} name="purpose" required maxLength={MAX_PURPOSE} value={purpose} onInput={(e) => (setPurpose((e.currentTarget as HTMLInputElement).value), touch("purpose"))} />}
          </Field>
          <div class="form-row">
            <Field id="f-quotaJobs" label={t("order.quotaJobs")} error={errorFor("quotaJobs")}>
              {(a) => <input {...a} name="quotaJobs" inputMode="numeric" autocomplete="off" required value={quota} onInput={(e) => (setQuota((e.currentTarget as HTMLInputElement).value), touch("quotaJobs"))} />}
            </Field>
            <Field id="f-days" label={t("order.days")} hint={t("order.daysHint")} error={errorFor("days")}>
              {(a) => <input {...a} name="days" inputMode="numeric" autocomplete="off" value={days} onInput={(e) => (setDays((e.currentTarget as HTMLInputElement).value), touch("days"))} />}
            </Field>
            {priced.map((u) => (
              <Field key={u.price} id={`f-estimate-${u.price}`} label={t(u.label)} hint={t("order.estimateHint")}>
                {(a) => <input {...a} name={`estimate-${u.price}`} inputMode="numeric" autocomplete="off" value={usage[u.price]} onInput={(e) => setUsage((x) => ({ ...x, [u.price]: (e.currentTarget as HTMLInputElement).value }))} />}
              </Field>
            ))}
          </div>
          <output class="order-cost" data-testid="order-cost" aria-live="polite" for={["f-quotaJobs", ...priced.map((u) => `f-estimate-${u.price}`)].join(" ")}>
            {fees !== undefined && usageTotal !== undefined ? (
              <>
                <span data-testid="order-cost-fees">{t("order.fees", { n: (jobs as number).toLocaleString(locale), price: money(p.prices.perJob, cur, locale), amount: money(fees, cur, locale) })}</span>
                {priced.length > 0 ? <span data-testid="order-cost-usage">{t("order.usage", { amount: money(usageTotal, cur, locale) })}</span> : null}
                <strong data-testid="order-cost-total" data-minor={String(fees + usageTotal)}>
                  {t(priced.length > 0 ? "order.totalEstimate" : "order.total", { amount: money(fees + usageTotal, cur, locale) })}
                </strong>
              </>
            ) : (
              <span>{t("order.costNeedsQuota")}</span>
            )}
          </output>
          <p class="hint">{t("order.costNote")}</p>
          <p class="hint" data-testid="order-approval">
            {t(auto ? "order.willAutoApprove" : "order.willApprove", { provider: p.owner })}
          </p>
          <ErrorNote error={general} />
          <div class="actions">
            <button type="submit" class="primary" data-testid="order-submit" disabled={busy}>
              {t("order.submit")}
            </button>
            <button type="button" data-testid="order-cancel" onClick={onClose}>
              {t("common.cancel")}
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
