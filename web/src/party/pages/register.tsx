/**
 * Register a dataset: a file of the agent's data folder and its policy,
 * checked as the user types by POST /v1/datasets/check (debounced 300 ms),
 * the error shown next to the field it names; then POST /v1/datasets.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, post } from "../../shared/api.js";
import { ErrorNote, Field, PageTitle, Section } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";
import { INTERSECTION_PROTOCOLS, K_PROTOCOLS, PROTOCOLS, type Field as Col, type MyDataset } from "../types.js";

interface FileInfo {
  name: string;
  bytes: number;
  modifiedAt: string | number;
}
type CheckState = { kind: "idle" } | { kind: "checking" } | { kind: "ok"; rows: number; schema: Col[] } | { kind: "error"; error: ApiError };

/** The form's field a server `field` names: "policy.keyColumns[0]" → "keyColumns". */
export function fieldOf(f: string | undefined): string {
  if (f === undefined) return "form";
  return f.replace(/^policy\.?/, "").replace(/[[.].*$/, "") || "form";
}

const list = (s: string): string[] => s.split(",").map((x) => x.trim()).filter((x) => x !== "");
const toggle = (xs: string[], x: string, on: boolean): string[] => (on ? [...xs, x] : xs.filter((y) => y !== x));

export function Register() {
  const t = useT();
  const files = useApi<{ files: FileInfo[] }>("/v1/files");
  const mine = useApi<{ datasets: MyDataset[] }>("/v1/datasets/mine");
  const [file, setFile] = useState("");
  const [protocols, setProtocols] = useState<string[]>([]);
  const [keys, setKeys] = useState<string[]>([]);
  const [outputs, setOutputs] = useState<string[]>([]);
  const [buyers, setBuyers] = useState("");
  const [budget, setBudget] = useState("100");
  const [unit, setUnit] = useState("jobs");
  const [minIntersection, setMinIntersection] = useState("");
  const [k, setK] = useState("");
  const [expiresAt, setExpiresAt] = useState("");
  const [check, setCheck] = useState<CheckState>({ kind: "idle" });
  const [done, setDone] = useState<string | undefined>(undefined);
  const [submitError, setSubmitError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const registered = (mine.data?.datasets ?? []).some((d) => d.name === file);
  const usesK = protocols.some((p) => K_PROTOCOLS.includes(p));
  const usesMin = protocols.some((p) => INTERSECTION_PROTOCOLS.includes(p));

  const policy = useMemo(() => {
    const p: Record<string, unknown> = {
      allowedProtocols: protocols,
      keyColumns: keys,
      outputColumns: outputs,
      allowedBuyers: buyers.trim() === "any" ? "any" : list(buyers),
      queryBudget: Number(budget),
      budgetUnit: unit,
    };
    if (usesK && k.trim() !== "") p["minGroupSize"] = Number(k);
    if (usesMin && minIntersection.trim() !== "") p["minIntersection"] = Number(minIntersection);
    if (expiresAt.trim() !== "") p["expiresAt"] = expiresAt.trim();
    return p;
  }, [protocols, keys, outputs, buyers, budget, unit, k, minIntersection, expiresAt, usesK, usesMin]);

  // Checked as the user types: the last answer wins, an older one is aborted.
  useEffect(() => {
    if (file === "") return setCheck({ kind: "idle" });
    setCheck({ kind: "checking" });
    let live = true;
    const timer = setTimeout(() => {
      post<{ ok: true; schema: Col[]; rowCount: number }>("/v1/datasets/check", { file, policy })
        .then((r) => live && setCheck({ kind: "ok", rows: r.rowCount, schema: r.schema }))
        .catch((e: unknown) => live && setCheck({ kind: "error", error: e instanceof ApiError ? e : new ApiError(0, "UMBRA_INTERNAL", String(e)) }));
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [file, JSON.stringify(policy)]);

  // The schema: from the last good check, else from the registered dataset of that name.
  const [schema, setSchema] = useState<Col[]>([]);
  useEffect(() => {
    if (check.kind === "ok") setSchema(check.schema);
  }, [check]);
  useEffect(() => {
    const d = (mine.data?.datasets ?? []).find((x) => x.name === file);
    setSchema(d ? [...d.schema] : []);
    setKeys((ks) => ks.filter((x) => d === undefined || d.schema.some((f) => f.name === x)));
  }, [file]);

  const errorFor = (f: string): string | undefined => {
    const e = submitError ?? (check.kind === "error" ? check.error : undefined);
    return e && fieldOf(e.field) === f ? `${e.code}: ${e.message}` : undefined;
  };
  const generalError = (() => {
    const e = submitError ?? (check.kind === "error" ? check.error : undefined);
    const known = ["file", "allowedProtocols", "keyColumns", "outputColumns", "allowedBuyers", "queryBudget", "budgetUnit", "minIntersection", "minGroupSize", "expiresAt"];
    return e && !known.includes(fieldOf(e.field)) ? e : undefined;
  })();

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setSubmitError(undefined);
    setDone(undefined);
    try {
      const r = await post<{ id: string; policyVersion: number }>("/v1/datasets", { file, policy, ...(registered ? { update: true } : {}) });
      setDone(t("register.done", { id: r.id, version: r.policyVersion }));
      mine.reload();
    } catch (err) {
      setSubmitError(err instanceof ApiError ? err : new ApiError(0, "UMBRA_INTERNAL", String(err)));
    } finally {
      setBusy(false);
    }
  };

  const checkboxes = (id: string, legend: string, options: readonly string[], value: string[], set: (v: string[]) => void, hint?: string) => {
    const err = errorFor(id);
    const described = [hint ? `f-${id}-hint` : "", err ? `f-${id}-error` : ""].filter(Boolean).join(" ") || undefined;
    return (
      <fieldset class={err ? "invalid" : undefined} aria-describedby={described}>
        <legend>{legend}</legend>
        {options.length === 0 ? <p class="hint">{t("register.schemaFirst")}</p> : null}
        <div class="checks">
          {options.map((o) => (
            <label key={o}>
              <input type="checkbox" name={id} value={o} checked={value.includes(o)} aria-invalid={err ? "true" : undefined} onChange={(e) => set(toggle(value, o, (e.currentTarget as HTMLInputElement).checked))} />
              {o}
            </label>
          ))}
        </div>
        {hint ? <p class="hint" id={`f-${id}-hint`}>{hint}</p> : null}
        {err ? <p class="field-error" id={`f-${id}-error`} data-testid={`error-${id}`}>{err}</p> : null}
      </fieldset>
    );
  };
  const columns = schema.map((f) => f.name);

  return (
    <>
      <PageTitle>{t("page.register")}</PageTitle>
      <p>{t("register.intro")}</p>
      <Section title={t("page.register")}>
        <ErrorNote error={files.error} />
        <form data-testid="register-form" onSubmit={submit} noValidate>
          <Field id="f-file" label={t("register.file")} error={errorFor("file")}>
            {(a) => (
              <select {...a} name="file" value={file} onChange={(e) => setFile((e.currentTarget as HTMLSelectElement).value)} required>
                <option value="">{t("register.chooseFile")}</option>
                {(files.data?.files ?? []).map((f) => (
                  <option key={f.name} value={f.name}>
                    {f.name} ({f.bytes.toLocaleString()} B)
                  </option>
                ))}
              </select>
            )}
          </Field>
          {checkboxes("allowedProtocols", t("register.protocols"), PROTOCOLS, protocols, setProtocols)}
          {checkboxes("keyColumns", t("register.keyColumns"), columns, keys, setKeys, t("register.keyHint"))}
          {checkboxes("outputColumns", t("register.outputColumns"), columns, outputs, setOutputs)}
          <Field id="f-allowedBuyers" label={t("register.buyers")} hint={t("register.buyersHint")} error={errorFor("allowedBuyers")}>
            {(a) => <input {...a} name="allowedBuyers" value={buyers} onInput={(e) => setBuyers((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <div class="form-row">
            <Field id="f-queryBudget" label={t("register.budget")} error={errorFor("queryBudget")}>
              {(a) => <input {...a} name="queryBudget" type="number" min="0" inputMode="numeric" value={budget} onInput={(e) => setBudget((e.currentTarget as HTMLInputElement).value)} />}
            </Field>
            <Field id="f-budgetUnit" label={t("register.unit")} error={errorFor("budgetUnit")}>
              {(a) => (
                <select {...a} name="budgetUnit" value={unit} onChange={(e) => setUnit((e.currentTarget as HTMLSelectElement).value)}>
                  <option value="jobs">{t("register.unit.jobs")}</option>
                  <option value="keys">{t("register.unit.keys")}</option>
                </select>
              )}
            </Field>
            {usesMin ? (
              <Field id="f-minIntersection" label={t("register.minIntersection")} hint={t("register.minIntersectionHint")} error={errorFor("minIntersection")}>
                {(a) => <input {...a} name="minIntersection" type="number" min="1" inputMode="numeric" value={minIntersection} onInput={(e) => setMinIntersection((e.currentTarget as HTMLInputElement).value)} />}
              </Field>
            ) : null}
            {usesK ? (
              <Field id="f-minGroupSize" label={t("register.k")} hint={t("register.kHint")} error={errorFor("minGroupSize")}>
                {(a) => <input {...a} name="minGroupSize" type="number" min="1" inputMode="numeric" value={k} onInput={(e) => setK((e.currentTarget as HTMLInputElement).value)} />}
              </Field>
            ) : null}
            <Field id="f-expiresAt" label={t("register.expiresAt")} error={errorFor("expiresAt")}>
              {(a) => <input {...a} name="expiresAt" placeholder="2030-01-01T00:00:00Z" value={expiresAt} onInput={(e) => setExpiresAt((e.currentTarget as HTMLInputElement).value)} />}
            </Field>
          </div>
          {registered ? <p class="hint">{t("register.update")}</p> : null}
          <div role="status" aria-live="polite">
            {check.kind === "checking" ? <p class="loading">{t("register.checking")}</p> : null}
            {check.kind === "ok" ? <p class="ok-note">{t("register.ok", { rows: check.rows.toLocaleString() })}</p> : null}
            {done ? <p class="ok-note">{done}</p> : null}
          </div>
          <ErrorNote error={generalError} />
          <button type="submit" class="primary" data-testid="register-submit" disabled={busy || file === "" || check.kind !== "ok"}>
            {t("register.submit")}
          </button>
        </form>
      </Section>
    </>
  );
}
