/** New job: the request of node/job-request.ts per protocol, POST /v1/jobs, then the job's page. */
import { useMemo, useState } from "preact/hooks";
import { ApiError, post } from "../../shared/api.js";
import { ErrorNote, Field, PageTitle, Section } from "../../shared/components.js";
import { useApi } from "../../shared/hooks.js";
import { useT } from "../../shared/i18n/index.js";
import { go, href } from "../../shared/router.js";
import { INTERSECTION_PROTOCOLS, K_PROTOCOLS, keyLabel, PROTOCOLS, type CatalogEntry, type Protocol } from "../types.js";
import { Failure } from "./job.js";
import { Learns } from "./learns.js";

const FNS = ["count", "sum", "avg", "var", "stddev"] as const;
const list = (s: string): string[] => s.split(",").map((x) => x.trim()).filter((x) => x !== "");
const val = (e: Event) => (e.currentTarget as HTMLInputElement).value;

export function NewJob() {
  const t = useT();
  const files = useApi<{ files: { name: string }[] }>("/v1/files");
  const catalog = useApi<{ datasets: CatalogEntry[] }>("/v1/datasets");
  const me = useApi<{ name: string }>("/v1/status");
  const [protocol, setProtocol] = useState<Protocol>("psi");
  const [input, setInput] = useState("");
  const [provider, setProvider] = useState("");
  const [providers, setProviders] = useState<string[]>([]);
  const [key, setKey] = useState("");
  const [labels, setLabels] = useState<string[]>([]);
  const [aggCols, setAggCols] = useState<string[]>([]);
  const [fn, setFn] = useState<(typeof FNS)[number]>("count");
  const [groupBy, setGroupBy] = useState("");
  const [categories, setCategories] = useState("");
  const [k, setK] = useState("");
  const [minIntersection, setMinIntersection] = useState("");
  const [queryCount, setQueryCount] = useState("");
  const [contracts, setContracts] = useState("");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const multi = protocol === "federated-aggregate";
  const aggregate = protocol === "federated-aggregate" || protocol === "join-aggregate";
  const offered = (catalog.data?.datasets ?? []).filter((d) => d.owner !== me.data?.name && d.allowedProtocols.includes(protocol));
  const chosen = offered.find((d) => d.id === provider) ?? offered.find((d) => d.id === providers[0]);
  const keyOptions = chosen?.keyColumns ?? [];
  const columns = chosen?.outputColumns ?? [];

  const request = useMemo(() => {
    const keyColumns: string[] = key === "" ? [] : (JSON.parse(key) as string[]);
    const params: Record<string, unknown> = { keyColumns: multi ? [] : keyColumns };
    if (protocol === "lookup") params["outputColumns"] = labels;
    if (K_PROTOCOLS.includes(protocol) && k.trim() !== "") params["minGroupSize"] = Number(k);
    if (INTERSECTION_PROTOCOLS.includes(protocol) && minIntersection.trim() !== "") params["minIntersection"] = Number(minIntersection);
    if (!aggregate && queryCount.trim() !== "") params["queryCount"] = Number(queryCount);
    if (aggregate) {
      const aggregates = fn === "count" ? [{ fn: "count" }] : aggCols.map((column) => ({ fn, column }));
      const a: Record<string, unknown> = { aggregates };
      if (groupBy.trim() !== "") a["groupBy"] = multi ? { column: groupBy.trim(), categories: list(categories) } : { column: groupBy.trim() };
      params["aggregate"] = a;
    }
    const r: Record<string, unknown> = { protocol, params };
    if (multi) r["providerDatasets"] = providers;
    else {
      r["buyerDataset"] = input;
      r["providerDataset"] = provider;
    }
    if (list(contracts).length > 0) r["contracts"] = list(contracts);
    return r;
  }, [protocol, input, provider, providers, key, labels, aggCols, fn, groupBy, categories, k, minIntersection, queryCount, contracts, multi, aggregate]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const job = await post<{ id: string }>("/v1/jobs", request);
      go(href("jobs", job.id));
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, "UMBRA_INTERNAL", String(err)));
    } finally {
      setBusy(false);
    }
  };

  const checks = (name: string, legend: string, options: readonly string[], value: string[], set: (v: string[]) => void) => (
    <fieldset>
      <legend>{legend}</legend>
      <div class="checks">
        {options.map((o) => (
          <label key={o}>
            <input type="checkbox" name={name} value={o} checked={value.includes(o)} onChange={(e) => set((e.currentTarget as HTMLInputElement).checked ? [...value, o] : value.filter((x) => x !== o))} />
            {o}
          </label>
        ))}
      </div>
    </fieldset>
  );

  return (
    <>
      <PageTitle>{t("page.newJob")}</PageTitle>
      <div class="two-col">
        <Section title={t("page.newJob")}>
          <ErrorNote error={files.error ?? catalog.error} />
          <form data-testid="job-form" onSubmit={submit}>
            <Field id="f-protocol" label={t("job.protocol")}>
              {(a) => (
                <select {...a} value={protocol} onChange={(e) => { setProtocol(val(e) as Protocol); setKey(""); }}>
                  {PROTOCOLS.map((p) => <option key={p} value={p}>{p}</option>)}
                </select>
              )}
            </Field>
            {multi ? (
              checks("providerDatasets", t("job.providerDatasets"), offered.map((d) => d.id), providers, setProviders)
            ) : (
              <>
                <Field id="f-input" label={t("job.input")}>
                  {(a) => (
                    <select {...a} value={input} required onChange={(e) => setInput(val(e))}>
                      <option value="">{t("job.choose")}</option>
                      {(files.data?.files ?? []).map((f) => <option key={f.name} value={f.name}>{f.name}</option>)}
                    </select>
                  )}
                </Field>
                <Field id="f-providerDataset" label={t("job.providerDataset")}>
                  {(a) => (
                    <select {...a} value={provider} required onChange={(e) => { setProvider(val(e)); setKey(""); }}>
                      <option value="">{t("job.choose")}</option>
                      {offered.map((d) => <option key={d.id} value={d.id}>{d.id} ({d.owner})</option>)}
                    </select>
                  )}
                </Field>
                <Field id="f-keyColumns" label={t("job.keyColumns")}>
                  {(a) => (
                    <select {...a} value={key} required onChange={(e) => setKey(val(e))}>
                      <option value="">{t("job.choose")}</option>
                      {keyOptions.map((k2) => {
                        const v = JSON.stringify(typeof k2 === "string" ? [k2] : k2);
                        return <option key={v} value={v}>{keyLabel(k2)}</option>;
                      })}
                    </select>
                  )}
                </Field>
              </>
            )}
            {protocol === "lookup" ? checks("outputColumns", t("job.outputColumns"), columns, labels, setLabels) : null}
            {aggregate ? (
              <>
                <Field id="f-fn" label={t("job.fn")}>
                  {(a) => (
                    <select {...a} value={fn} onChange={(e) => setFn(val(e) as (typeof FNS)[number])}>
                      {FNS.map((f) => <option key={f} value={f}>{f}</option>)}
                    </select>
                  )}
                </Field>
                {fn !== "count" ? checks("aggColumns", t("job.aggColumns"), columns, aggCols, setAggCols) : null}
                <Field id="f-groupBy" label={t("job.groupBy")}>
                  {(a) => <input {...a} value={groupBy} onInput={(e) => setGroupBy(val(e))} />}
                </Field>
                {multi && groupBy.trim() !== "" ? (
                  <Field id="f-categories" label={t("job.categories")}>
                    {(a) => <input {...a} value={categories} onInput={(e) => setCategories(val(e))} />}
                  </Field>
                ) : null}
              </>
            ) : null}
            <div class="form-row">
              {K_PROTOCOLS.includes(protocol) ? (
                <Field id="f-k" label={t("job.k")}>
                  {(a) => <input {...a} type="number" min="1" inputMode="numeric" value={k} onInput={(e) => setK(val(e))} />}
                </Field>
              ) : null}
              {INTERSECTION_PROTOCOLS.includes(protocol) ? (
                <Field id="f-minIntersection" label={t("job.minIntersection")}>
                  {(a) => <input {...a} type="number" min="1" inputMode="numeric" value={minIntersection} onInput={(e) => setMinIntersection(val(e))} />}
                </Field>
              ) : null}
              {!aggregate ? (
                <Field id="f-queryCount" label={t("job.queryCount")}>
                  {(a) => <input {...a} type="number" min="1" inputMode="numeric" value={queryCount} onInput={(e) => setQueryCount(val(e))} />}
                </Field>
              ) : null}
            </div>
            <Field id="f-contracts" label={t("job.contracts")}>
              {(a) => <input {...a} value={contracts} onInput={(e) => setContracts(val(e))} />}
            </Field>
            {error?.rule !== undefined ? (
              // Refused by a policy (or a contract) when submitted: the same view a refused job shows, naming the rule.
              <Failure code={error.code} job={{ state: "refused", reason: error.rule, providers: chosen ? [chosen.owner] : [], by: undefined }} />
            ) : (
              <ErrorNote error={error} />
            )}
            <button type="submit" class="primary" disabled={busy}>
              {t("job.submit")}
            </button>
          </form>
        </Section>
        <Learns protocol={protocol} />
      </div>
    </>
  );
}
