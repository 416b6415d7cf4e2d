/**
 * This party's own products (docs/venue.md): each with its version, datasets,
 * protocols, prices and state, withdrawn after a confirmation; and the form
 * that publishes one over one of its own datasets, its terms offered only
 * within that dataset's policy, its prices typed in the currency's major unit
 * and sent in integer minor units. The form is checked as the user types;
 * the agent's refusal is shown next to each field it names.
 */
import { useRef, useState } from "preact/hooks";
import { ApiError, fieldIssues, post } from "../../shared/api.js";
import { ConfirmButton, ErrorNote, Field, Loading, PageTitle, Section, StatusBadge, Table } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useI18n, type T } from "../../shared/i18n/index.js";
import type { MessageKey } from "../../shared/i18n/en.js";
import { CURRENCIES, minorDigits, parseAmount, PRICE_FIELDS, type AmountProblem, type PriceField } from "../money.js";
import { PriceLines } from "../prices.js";
import { keyLabel, type MyDataset, type ProductView } from "../types.js";

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_QUOTA_JOBS = 1_000_000;

/** The form fields a refusal may name (server field → form field: {@link productFieldOf}). */
const FORM_FIELDS: readonly string[] = ["id", "title", "description", "datasets", "protocols", "outputColumns", "currency", ...PRICE_FIELDS, "share", "maxQuotaJobs"];

/** The publish form's field a server field names: "prices.perJob" → "perJob", "datasets[0]" → "datasets", "autoApprove.maxQuotaJobs" → "maxQuotaJobs". */
export function productFieldOf(f: string): string {
  const g = f.replace(/^product(?:\.|$)/, "");
  if (g.startsWith("prices.")) return g.slice("prices.".length).replace(/[[.].*$/, "");
  if (g.startsWith("autoApprove.maxQuotaJobs")) return "maxQuotaJobs";
  return g.replace(/[[.].*$/, "") || "form";
}

const asApiError = (e: unknown): ApiError => (e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)));
const toggle = (xs: readonly string[], x: string, on: boolean): string[] => (on ? [...xs, x] : xs.filter((y) => y !== x));
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

/** What a dataset's policy lets a product offer: its protocols and output columns; its key columns, shown (a product does not name them). */
function termsOf(d: MyDataset | undefined): { protocols: string[]; outputs: string[]; keys: string[] } {
  if (d === undefined || d.policy === null || typeof d.policy !== "object") return { protocols: [], outputs: [], keys: [] };
  const p = d.policy;
  const keys = Array.isArray(p["keyColumns"]) ? (p["keyColumns"] as (string | string[])[]).map(keyLabel) : [];
  return { protocols: strings(p["allowedProtocols"]), outputs: strings(p["outputColumns"]), keys };
}

interface Form {
  readonly slug: string;
  readonly title: string;
  readonly description: string;
  readonly dataset: string;
  readonly protocols: readonly string[];
  readonly outputs: readonly string[];
  readonly currency: string;
  readonly prices: Readonly<Record<PriceField, string>>;
  readonly share: string;
  readonly autoApprove: boolean;
  readonly maxQuotaJobs: string;
}

const EMPTY: Form = {
  slug: "",
  title: "",
  description: "",
  dataset: "",
  protocols: [],
  outputs: [],
  currency: CURRENCIES[0],
  prices: { perJob: "", perKey: "", perMatchedRow: "", perCell: "" },
  share: "equal",
  autoApprove: false,
  maxQuotaJobs: "",
};

const AMOUNT_PROBLEM: Record<AmountProblem, MessageKey> = {
  required: "form.required",
  format: "price.format",
  negative: "price.negative",
  decimals: "price.decimals",
  tooLarge: "price.tooLarge",
};

/** Every problem the form has as typed (field → message), before anything is sent. */
function checkForm(f: Form, t: T): Record<string, string> {
  const e: Record<string, string> = {};
  if (f.slug.trim() === "") e["id"] = t("form.required");
  else if (!SLUG.test(f.slug.trim())) e["id"] = t("products.slugInvalid");
  if (f.title.trim() === "") e["title"] = t("form.required");
  else if (f.title.length > 200) e["title"] = t("form.tooLong", { max: 200 });
  else if (CONTROL.test(f.title)) e["title"] = t("form.control");
  if (f.description.length > 4000) e["description"] = t("form.tooLong", { max: 4000 });
  else if (CONTROL.test(f.description.replace(/\r?\n/g, " "))) e["description"] = t("form.control");
  if (f.dataset === "") e["datasets"] = t("form.required");
  if (f.protocols.length === 0) e["protocols"] = t("products.chooseProtocol");
  const digits = minorDigits(f.currency);
  for (const p of PRICE_FIELDS) {
    const text = f.prices[p];
    if (p !== "perJob" && text.trim() === "") continue;
    const r = parseAmount(text, digits);
    if ("problem" in r) e[p] = t(AMOUNT_PROBLEM[r.problem], { digits });
  }
  const perMatchedRow = parseAmount(f.prices.perMatchedRow, digits);
  if (e["perMatchedRow"] === undefined && "minor" in perMatchedRow && perMatchedRow.minor > 0 && f.protocols.includes("psi-cardinality")) e["perMatchedRow"] = t("products.matchedRowsCardinality");
  if (f.autoApprove && f.maxQuotaJobs.trim() !== "") {
    const n = Number(f.maxQuotaJobs.trim());
    if (!/^\d+$/.test(f.maxQuotaJobs.trim()) || n < 1 || n > MAX_QUOTA_JOBS) e["maxQuotaJobs"] = t("form.integer", { min: 1, max: MAX_QUOTA_JOBS.toLocaleString() });
  }
  return e;
}

/** The product document the form describes (call only when {@link checkForm} found nothing). */
function productOf(f: Form, owner: string): Record<string, unknown> {
  const digits = minorDigits(f.currency);
  const minor = (p: PriceField): number => {
    const r = parseAmount(f.prices[p], digits);
    return "minor" in r ? r.minor : 0;
  };
  return {
    id: `${owner}.${f.slug.trim()}`,
    title: f.title.trim(),
    ...(f.description.trim() !== "" ? { description: f.description.trim() } : {}),
    datasets: [f.dataset],
    protocols: [...f.protocols],
    outputColumns: [...f.outputs],
    prices: { currency: f.currency, perJob: minor("perJob"), perKey: minor("perKey"), perMatchedRow: minor("perMatchedRow"), perCell: minor("perCell") },
    share: f.share,
    ...(f.autoApprove ? { autoApprove: f.maxQuotaJobs.trim() !== "" ? { maxQuotaJobs: Number(f.maxQuotaJobs.trim()) } : {} } : {}),
  };
}

const PRICE_LABEL: Record<PriceField, MessageKey> = {
  perJob: "products.perJob",
  perKey: "products.perKey",
  perMatchedRow: "products.perMatchedRow",
  perCell: "products.perCell",
};

function autoApproveText(p: ProductView, t: T): string {
  const a = p.autoApprove;
  if (a === undefined) return t("common.no");
  const parts = [a.maxQuotaJobs !== undefined ? t("products.autoUpTo", { n: a.maxQuotaJobs.toLocaleString() }) : "", a.purposes ? t("products.autoPurposes", { n: a.purposes.length }) : "", a.buyers ? t("products.autoBuyers", { buyers: a.buyers.join(", ") }) : ""].filter((x) => x !== "");
  return parts.length === 0 ? t("products.autoEvery") : `${t("common.yes")}: ${parts.join("; ")}`;
}

export function Products() {
  const { t } = useI18n();
  const status = useApi<{ name: string }>("/v1/status");
  const list = useApi<{ products: ProductView[] }>("/v1/products");
  const me = status.data?.name;
  const [note, setNote] = useState<string | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const mine = me === undefined ? [] : (list.data?.products ?? []).filter((p) => p.owner === me);

  const withdraw = async (p: ProductView) => {
    setError(undefined);
    setNote(undefined);
    try {
      await post(`/v1/products/${encodeURIComponent(p.id)}/withdraw`, {});
      setNote(t("products.withdrawn", { id: p.id }));
      list.reload();
    } catch (e) {
      setError(asApiError(e));
    }
  };

  return (
    <>
      <PageTitle>{t("page.products")}</PageTitle>
      <p>{t("products.intro")}</p>
      <Section title={t("products.mine")} id="products-mine">
        <Loading when={list.loading || status.loading} />
        <ErrorNote error={list.error ?? status.error ?? error} />
        <p role="status" class="ok-note">
          {note}
        </p>
        {list.data && me !== undefined ? (
          <Table
            caption={t("products.mine")}
            testid="products-table"
            rows={mine}
            empty={t("products.none")}
            columns={[
              { key: "id", label: t("col.id"), render: (p) => <span class="mono id" id={`product-${p.id}`}>{p.id}</span> },
              { key: "title", label: t("col.title") },
              { key: "version", label: t("col.version"), numeric: true },
              { key: "datasets", label: t("col.datasets"), render: (p) => p.datasets.join(", ") },
              { key: "protocols", label: t("col.protocols"), render: (p) => p.protocols.join(", ") },
              { key: "outputColumns", label: t("col.outputColumns"), render: (p) => (p.outputColumns.length > 0 ? p.outputColumns.join(", ") : "—") },
              { key: "prices", label: t("col.prices"), render: (p) => <PriceLines prices={p.prices} /> },
              { key: "autoApprove", label: t("col.autoApprove"), render: (p) => autoApproveText(p, t) },
              { key: "state", label: t("col.state"), render: (p) => <StatusBadge state={p.state} testid={`product-state-${p.id}`} /> },
              {
                key: "actions",
                label: t("col.actions"),
                render: (p) =>
                  p.state === "active" ? (
                    <div class="actions">
                      <ConfirmButton danger label={t("products.withdraw")} testid={`withdraw-${p.id}`} describedBy={`product-${p.id}`} onConfirm={() => withdraw(p)} />
                    </div>
                  ) : null,
              },
            ]}
          />
        ) : null}
      </Section>
      {me !== undefined ? <PublishForm me={me} existing={mine} onPublished={list.reload} /> : null}
    </>
  );
}

function PublishForm({ me, existing, onPublished }: { me: string; existing: readonly ProductView[]; onPublished: () => void }) {
  const { t } = useI18n();
  const datasets = useApi<{ datasets: MyDataset[] }>("/v1/datasets/mine");
  const [form, setForm] = useState<Form>(EMPTY);
  const [touched, setTouched] = useState<ReadonlySet<string>>(new Set());
  const [submitted, setSubmitted] = useState(false);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<ApiError | undefined>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const own = datasets.data?.datasets ?? [];
  const chosen = own.find((d) => d.id === form.dataset);
  const terms = termsOf(chosen);
  const clientErrors = checkForm(form, t);
  const digits = minorDigits(form.currency);
  const id = `${me}.${form.slug.trim()}`;
  const previous = existing.find((p) => p.id === id);

  /** Sets fields; each one changed is touched, and the agent's refusal of it is cleared. */
  const change = (patch: Partial<Form>, fields: readonly string[]) => {
    setForm((f) => ({ ...f, ...patch }));
    setTouched((s) => new Set([...s, ...fields]));
    setServerErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => !fields.includes(k))));
    setDone(undefined);
  };
  const chooseDataset = (dsId: string) => {
    const next = termsOf(own.find((d) => d.id === dsId));
    change({ dataset: dsId, protocols: form.protocols.filter((p) => next.protocols.includes(p)), outputs: form.outputs.filter((c) => next.outputs.includes(c)) }, ["datasets", "protocols", "outputColumns"]);
  };
  const errorFor = (field: string): string | undefined => serverErrors[field] ?? (submitted || touched.has(field) ? clientErrors[field] : undefined);
  const focusFirstInvalid = () => setTimeout(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);

  const submit = async (e: Event) => {
    e.preventDefault();
    setSubmitted(true);
    setGeneral(undefined);
    setDone(undefined);
    if (Object.keys(clientErrors).length > 0) return focusFirstInvalid();
    setBusy(true);
    try {
      const r = await post<{ id: string; version: number; digest: string }>("/v1/products", { product: productOf(form, me) });
      setServerErrors({});
      setDone(t("products.published", { id: r.id, version: r.version }));
      onPublished();
    } catch (err) {
      const apiError = asApiError(err);
      const named: Record<string, string> = {};
      for (const i of fieldIssues(apiError)) {
        const f = productFieldOf(i.field);
        if (FORM_FIELDS.includes(f)) named[f] = named[f] === undefined ? `${apiError.code}: ${i.field}: ${i.problem}` : `${named[f]}; ${i.field}: ${i.problem}`;
      }
      setServerErrors(named);
      // What names no field of the form (or nothing at all) is shown above the button.
      if (Object.keys(named).length === 0) setGeneral(apiError);
      else focusFirstInvalid();
    } finally {
      setBusy(false);
    }
  };

  const checks = (field: string, legend: string, options: readonly string[], value: readonly string[], set: (v: string[]) => void, empty: string, hint?: string) => {
    const err = errorFor(field);
    const described = [hint ? `f-${field}-hint` : "", err ? `f-${field}-error` : ""].filter(Boolean).join(" ") || undefined;
    return (
      <fieldset class={err ? "invalid" : undefined} aria-describedby={described}>
        <legend>{legend}</legend>
        {options.length === 0 ? <p class="hint">{empty}</p> : null}
        <div class="checks">
          {options.map((o) => (
            <label key={o}>
              <input type="checkbox" name={field} value={o} checked={value.includes(o)} aria-invalid={err ? "true" : undefined} aria-describedby={err ? `f-${field}-error` : undefined} onChange={(e) => set(toggle(value, o, (e.currentTarget as HTMLInputElement).checked))} />
              {o}
            </label>
          ))}
        </div>
        {hint ? (
          <p class="hint" id={`f-${field}-hint`}>
            {hint}
          </p>
        ) : null}
        {err ? (
          <p class="field-error" id={`f-${field}-error`} data-testid={`error-${field}`}>
            {err}
          </p>
        ) : null}
      </fieldset>
    );
  };
  /** An input's handler: sets `field` of the form, touching the form field `touches` (what errors and refusals name). */
  const input = (field: "slug" | "title" | "description" | "maxQuotaJobs", touches: string) => (e: Event) => change({ [field]: (e.currentTarget as HTMLInputElement).value }, [touches]);

  return (
    <Section title={t("products.publish")} id="products-publish">
      <ErrorNote error={datasets.error} />
      {datasets.data && own.length === 0 ? (
        <p class="empty">
          {t("products.noDatasets")} <a href="#/register">{t("page.register")}</a>
        </p>
      ) : null}
      <form data-testid="product-form" ref={formRef} onSubmit={submit} noValidate>
        <div class="form-row">
          <Field id="f-id" label={t("products.slug")} hint={t("products.slugHint", { id })} error={errorFor("id")}>
            {(a) => (
              <span class="prefixed">
                <span class="prefix" aria-hidden="true">
                  {me}.
                </span>
                <input {...a} name="slug" required autocomplete="off" spellcheck={false} value={form.slug} onInput={input("slug", "id")} />
              </span>
            )}
          </Field>
          <Field id="f-title" label={t("products.title")} error={errorFor("title")}>
            {(a) => <input {...a} name="title" required maxLength={200} value={form.title} onInput={input("title", "title")} />}
          </Field>
        </div>
        {previous !== undefined ? (
          <p class="hint" data-testid="product-new-version">
            {t("products.newVersion", { id, version: previous.version + 1 })}
          </p>
        ) : null}
        <Field id="f-description" label={t("products.description")} error={errorFor("description")}>
          {(a) => <textarea {...a} name="description" rows={2} maxLength={4000} value={form.description} onInput={input("description", "description")} />}
        </Field>
        <Field id="f-datasets" label={t("products.dataset")} error={errorFor("datasets")}>
          {(a) => (
            <select {...a} name="dataset" required value={form.dataset} onChange={(e) => chooseDataset((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">{t("products.chooseDataset")}</option>
              {own.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.id} ({t("products.rows", { rows: d.rowCount.toLocaleString() })})
                </option>
              ))}
            </select>
          )}
        </Field>
        {checks("protocols", t("products.protocols"), terms.protocols, form.protocols, (v) => change({ protocols: v }, ["protocols", "perMatchedRow"]), t("products.datasetFirst"), t("products.protocolsHint"))}
        {chosen !== undefined ? (
          <p class="hint" data-testid="product-key-columns">
            {t("products.keyColumns", { keys: terms.keys.length > 0 ? terms.keys.join(", ") : "—" })}
          </p>
        ) : null}
        {checks("outputColumns", t("products.outputColumns"), terms.outputs, form.outputs, (v) => change({ outputs: v }, ["outputColumns"]), chosen === undefined ? t("products.datasetFirst") : t("products.noOutputs"), t("products.outputColumnsHint"))}
        <fieldset>
          <legend>{t("products.prices")}</legend>
          <p class="hint">{t("products.pricesHint", { digits })}</p>
          <div class="form-row">
            <Field id="f-currency" label={t("products.currency")} error={errorFor("currency")}>
              {(a) => (
                <select {...a} name="currency" value={form.currency} onChange={(e) => change({ currency: (e.currentTarget as HTMLSelectElement).value }, ["currency", ...PRICE_FIELDS])}>
                  {CURRENCIES.map((c) => (
                    <option key={c} value={c}>
                      {c}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {PRICE_FIELDS.map((p) => (
              <Field key={p} id={`f-${p}`} label={t(PRICE_LABEL[p], { currency: form.currency })} error={errorFor(p)}>
                {(a) => <input {...a} name={p} inputMode="decimal" autocomplete="off" required={p === "perJob"} placeholder={p === "perJob" ? "0.05" : "0"} value={form.prices[p]} onInput={(e) => change({ prices: { ...form.prices, [p]: (e.currentTarget as HTMLInputElement).value } }, [p])} />}
              </Field>
            ))}
          </div>
        </fieldset>
        <div class="form-row">
          <Field id="f-share" label={t("products.share")} hint={t("products.shareHint")} error={errorFor("share")}>
            {(a) => (
              <select {...a} name="share" value={form.share} onChange={(e) => change({ share: (e.currentTarget as HTMLSelectElement).value }, ["share"])}>
                <option value="equal">{t("products.share.equal")}</option>
                <option value="rows">{t("products.share.rows")}</option>
              </select>
            )}
          </Field>
          <div class="field">
            <label class="check">
              <input type="checkbox" name="autoApprove" data-testid="product-auto-approve" aria-describedby="f-autoApprove-hint" checked={form.autoApprove} onChange={(e) => change({ autoApprove: (e.currentTarget as HTMLInputElement).checked }, ["maxQuotaJobs"])} />
              {t("products.autoApprove")}
            </label>
            <p class="hint" id="f-autoApprove-hint">
              {t("products.autoApproveHint")}
            </p>
          </div>
          {form.autoApprove ? (
            <Field id="f-maxQuotaJobs" label={t("products.maxQuotaJobs")} hint={t("products.maxQuotaJobsHint")} error={errorFor("maxQuotaJobs")}>
              {(a) => <input {...a} name="maxQuotaJobs" inputMode="numeric" autocomplete="off" value={form.maxQuotaJobs} onInput={input("maxQuotaJobs", "maxQuotaJobs")} />}
            </Field>
          ) : null}
        </div>
        <div role="status" aria-live="polite">
          {done ? (
            <p class="ok-note" data-testid="product-done">
              {done}
            </p>
          ) : null}
        </div>
        <ErrorNote error={general} />
        <button type="submit" class="primary" data-testid="product-submit" disabled={busy}>
          {t("products.submit")}
        </button>
      </form>
    </Section>
  );
}
