/**
 * Small SVG charts, accessible: role="img" with an aria-label summarising
 * the data, and the numbers in a visually-hidden table. Colours come from
 * classes in console.css (no inline style, for the CSP).
 */
import { useI18n } from "./i18n/index.js";

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** A bar of its own scale (a quota, a budget): drawn as value of max, over a track. */
  readonly max?: number;
}

const fmt = (n: number, locale: string) => (Number.isInteger(n) ? n.toLocaleString(locale) : n.toLocaleString(locale, { maximumFractionDigits: 3 }));

export function BarChart({ title, bars, unit = "", testid }: { title: string; bars: readonly Bar[]; unit?: string; testid?: string }) {
  const { t, locale } = useI18n();
  if (bars.length === 0) return <p class="empty">{t("chart.empty")}</p>;
  const max = Math.max(...bars.map((b) => b.value), 0) || 1;
  const rowH = 28;
  const labelW = 140;
  const W = 600;
  const H = bars.length * rowH + 8;
  const shown = (b: Bar) => `${fmt(b.value, locale)}${b.max !== undefined ? ` / ${fmt(b.max, locale)}` : ""}${unit}`;
  const summary = bars.slice(0, 12).map((b) => `${b.label} ${shown(b)}`).join("; ") + (bars.length > 12 ? "; …" : "");
  return (
    <figure class="chart" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}. ${t("chart.bars", { n: bars.length, summary })}`} preserveAspectRatio="xMinYMin meet">
        {bars.map((b, i) => {
          const span = W - labelW - 90;
          const w = Math.max(0, b.max !== undefined ? (Math.min(b.value, b.max) / (b.max || 1)) * span : (b.value / max) * span);
          const y = i * rowH + 4;
          return (
            <g key={i}>
              <text x={labelW - 6} y={y + rowH / 2 + 4} text-anchor="end" class="chart-label">
                {b.label.length > 18 ? `${b.label.slice(0, 17)}…` : b.label}
              </text>
              {b.max !== undefined ? <rect x={labelW} y={y + 3} width={span} height={rowH - 8} class="chart-track" rx="2" /> : null}
              <rect x={labelW} y={y + 3} width={w} height={rowH - 8} class="chart-bar" rx="2" />
              <text x={labelW + (b.max !== undefined ? span : w) + 6} y={y + rowH / 2 + 4} class="chart-value">
                {shown(b)}
              </text>
            </g>
          );
        })}
      </svg>
      <div class="visually-hidden">
        <table>
        <caption>{t("common.dataTable")}: {title}</caption>
        <thead>
          <tr>
            <th scope="col">{t("common.label")}</th>
            <th scope="col">{t("common.value")}</th>
          </tr>
        </thead>
        <tbody>
          {bars.map((b, i) => (
            <tr key={i}>
              <th scope="row">{b.label}</th>
              <td>{shown(b)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </figure>
  );
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

/** A line over time: x in ms since the epoch (shown relative to the first point, in seconds). */
export function LineChart({ title, points, unit = "", testid }: { title: string; points: readonly Point[]; unit?: string; testid?: string }) {
  const { t, locale } = useI18n();
  if (points.length === 0) return <p class="empty">{t("chart.empty")}</p>;
  const W = 600;
  const H = 200;
  const pad = { l: 56, r: 12, t: 10, b: 28 };
  const x0 = (points[0] as Point).x;
  const xs = points.map((p) => (p.x - x0) / 1000);
  const ys = points.map((p) => p.y);
  const xMax = Math.max(...xs, 1);
  const yMax = Math.max(...ys, 0) || 1;
  const sx = (x: number) => pad.l + (x / xMax) * (W - pad.l - pad.r);
  const sy = (y: number) => H - pad.b - (y / yMax) * (H - pad.t - pad.b);
  const d = xs.map((x, i) => `${i === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(ys[i] as number).toFixed(1)}`).join(" ");
  const label = t("chart.line", { n: points.length, min: fmt(Math.min(...ys), locale) + unit, max: fmt(yMax, locale) + unit, last: fmt(ys[ys.length - 1] as number, locale) + unit });
  return (
    <figure class="chart" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}. ${label}`} preserveAspectRatio="xMinYMin meet">
        <line x1={pad.l} y1={H - pad.b} x2={W - pad.r} y2={H - pad.b} class="chart-axis" />
        <line x1={pad.l} y1={pad.t} x2={pad.l} y2={H - pad.b} class="chart-axis" />
        <text x={pad.l - 6} y={pad.t + 8} text-anchor="end" class="chart-label">{fmt(yMax, locale)}</text>
        <text x={pad.l - 6} y={H - pad.b} text-anchor="end" class="chart-label">0</text>
        <text x={W - pad.r} y={H - 8} text-anchor="end" class="chart-label">{`${fmt(Math.round(xMax), locale)} s`}</text>
        <path d={d} class="chart-line" />
      </svg>
      <div class="visually-hidden">
        <table>
        <caption>{t("common.dataTable")}: {title}</caption>
        <thead>
          <tr>
            <th scope="col">s</th>
            <th scope="col">{t("common.value")}</th>
          </tr>
        </thead>
        <tbody>
          {points.map((p, i) => (
            <tr key={i}>
              <th scope="row">{fmt(Math.round((xs[i] as number) * 10) / 10, locale)}</th>
              <td>{fmt(p.y, locale)}{unit}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </figure>
  );
}
