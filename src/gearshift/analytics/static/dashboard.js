// gearshift FinOps dashboard: fetches /api/dashboard and draws every chart as inline SVG.
// No libraries and no network beyond this gateway, so it works air-gapped.
"use strict";

const PALETTE = ["#2f5bea", "#f08a24", "#1a9e6e", "#c2379a", "#7b5bd6", "#d4a514",
  "#2aa3c7", "#d64545", "#8a94a6"];
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { loads: 0, data: null, colors: new Map() };
window.gearshiftDashboard = state;

const params = new URLSearchParams(window.location.search);
// The admin key travels in a header only, never in a URL (access logs and browser history keep
// URLs). It is asked for when the data needs it and kept for this tab only.
const KEY_STORE = "gearshift-admin-key";
if (params.has("admin_key")) {
  // An old bookmark: keep the key for this tab and take it out of the address bar.
  sessionStorage.setItem(KEY_STORE, params.get("admin_key"));
  params.delete("admin_key");
}
function adminKey() {
  return sessionStorage.getItem(KEY_STORE);
}

function colorFor(name) {
  if (name === "other") return PALETTE[PALETTE.length - 1];
  if (!state.colors.has(name)) state.colors.set(name, PALETTE[state.colors.size % (PALETTE.length - 1)]);
  return state.colors.get(name);
}

function el(tag, attrs, parent, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, cls, parent, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function usd(v) {
  const n = Number(v);
  if (n === 0) return "$0";
  const a = Math.abs(n);
  if (a >= 1000) return "$" + n.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (a >= 1) return "$" + n.toFixed(2);
  if (a >= 0.01) return "$" + n.toFixed(3);
  return "$" + n.toPrecision(2);
}

function axisUsd(v) {
  return usd(v).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
}

function periodLabel(ts, width) {
  const d = new Date(ts * 1000);
  const iso = d.toISOString();
  return width < 86400 ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(5, 10);
}

function empty(container, message) {
  container.replaceChildren();
  html("div", "empty", container, message || "No requests in this range.");
}

function legend(container, names) {
  const box = html("div", "legend", container);
  for (const name of names) {
    const item = html("span", "", box);
    const swatch = html("i", "", item);
    swatch.style.background = colorFor(name);
    item.appendChild(document.createTextNode(name));
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Stacked bars over time: series = {name: [values per period]}.
function stackedBars(container, periods, series, width) {
  container.replaceChildren();
  const names = Object.keys(series);
  if (!periods.length || !names.length) return empty(container);
  const W = 720, H = 250, L = 62, R = 10, T = 10, B = 28;
  const totals = periods.map((_, i) => names.reduce((s, n) => s + series[n][i], 0));
  const max = niceMax(Math.max(...totals));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  axisY(svg, max, L, W - R, T, H - B, axisUsd);
  const step = (W - L - R) / periods.length;
  const bw = Math.max(1, step * 0.78);
  for (const name of names) {
    const g = el("g", { class: "series", "data-series": name, fill: colorFor(name) }, svg);
    periods.forEach((_, i) => {
      const below = names.slice(0, names.indexOf(name)).reduce((s, n) => s + series[n][i], 0);
      const v = series[name][i];
      if (v <= 0) return;
      const y0 = H - B - (below / max) * (H - B - T);
      const h = (v / max) * (H - B - T);
      const rect = el("rect", { x: L + i * step + (step - bw) / 2, y: y0 - h, width: bw, height: Math.max(h, 0.5) }, g);
      el("title", {}, rect, `${name} · ${periodLabel(periods[i], width)}: ${usd(v)}`);
    });
  }
  axisX(svg, periods, width, L, step, H - B);
  legend(container, names);
}

function axisY(svg, max, x0, x1, top, bottom, fmt) {
  const g = el("g", { class: "axis" }, svg);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    const y = bottom - (k / 4) * (bottom - top);
    el("line", { x1: x0, x2: x1, y1: y, y2: y, class: "gridline" }, g);
    el("text", { x: x0 - 6, y: y + 4, "text-anchor": "end" }, g, fmt(v));
  }
}

function axisX(svg, periods, width, x0, step, y) {
  const g = el("g", { class: "axis" }, svg);
  const every = Math.max(1, Math.ceil(periods.length / 8));
  periods.forEach((p, i) => {
    if (i % every) return;
    el("text", { x: x0 + i * step + step / 2, y: y + 16, "text-anchor": "middle" }, g, periodLabel(p, width));
  });
}

// Savings: spend and counterfactual as lines, the gap between them shaded.
function savingsChart(container, s, width) {
  container.replaceChildren();
  if (!s.periods.length) return empty(container);
  const W = 720, H = 250, L = 62, R = 10, T = 10, B = 28;
  const max = niceMax(Math.max(...s.counterfactual, ...s.cost));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  axisY(svg, max, L, W - R, T, H - B, axisUsd);
  const step = (W - L - R) / s.periods.length;
  const x = (i) => L + i * step + step / 2;
  const y = (v) => H - B - (v / max) * (H - B - T);
  const top = s.counterfactual.map((v, i) => `${x(i)},${y(v)}`);
  const bottom = s.cost.map((v, i) => `${x(i)},${y(v)}`).reverse();
  const gap = el("g", { class: "series", "data-series": "savings" }, svg);
  el("polygon", { points: [...top, ...bottom].join(" "), fill: "#1a9e6e", "fill-opacity": 0.18 }, gap);
  const lines = [["would have cost", s.counterfactual, "#8a94a6"], ["spend", s.cost, "#2f5bea"]];
  for (const [name, values, color] of lines) {
    const g = el("g", { class: "series", "data-series": name }, svg);
    el("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2.2 }, g);
    values.forEach((v, i) => el("title", {}, el("circle", { cx: x(i), cy: y(v), r: 2.5, fill: color }, g), `${name} ${periodLabel(s.periods[i], width)}: ${usd(v)}`));
  }
  axisX(svg, s.periods, width, L, step, H - B);
  state.colors.set("would have cost", "#8a94a6");
  state.colors.set("spend", "#2f5bea");
  state.colors.set("savings", "#1a9e6e");
  legend(container, ["spend", "would have cost", "savings"]);
}

// Horizontal bars: rows = [{name, value, label}].
function hbars(container, rows, fmt, seriesName) {
  container.replaceChildren();
  if (!rows.length) return empty(container);
  const W = 520, rowH = 26, L = 130, R = 90;
  const H = rows.length * rowH + 8;
  const max = Math.max(...rows.map((r) => r.value)) || 1;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  rows.forEach((r, i) => {
    const g = el("g", { class: "series", "data-series": seriesName ? seriesName(r) : r.name }, svg);
    const y = 4 + i * rowH;
    el("text", { x: L - 8, y: y + 16, "text-anchor": "end" }, g, r.name);
    el("rect", { x: L, y: y + 4, width: Math.max(1, (r.value / max) * (W - L - R)), height: rowH - 10, rx: 3, fill: colorFor(r.name) }, g);
    el("text", { x: L + (r.value / max) * (W - L - R) + 6, y: y + 16, class: "value" }, g, fmt(r));
  });
}

function latencyChart(container, groups) {
  container.replaceChildren();
  const rows = groups.filter((g) => g.latency_p50_ms !== null);
  if (!rows.length) return empty(container);
  const W = 520, rowH = 44, L = 130, R = 70;
  const H = rows.length * rowH + 8;
  const max = niceMax(Math.max(...rows.map((g) => g.latency_p95_ms)));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  const shades = [["p50", "latency_p50_ms", 1], ["p80", "latency_p80_ms", 0.65], ["p95", "latency_p95_ms", 0.35]];
  rows.forEach((g, i) => {
    const y = 4 + i * rowH;
    el("text", { x: L - 8, y: y + 24, "text-anchor": "end" }, svg, g.model);
    shades.forEach(([label, key, opacity], k) => {
      const grp = el("g", { class: "series", "data-series": `${g.model} ${label}` }, svg);
      const w = Math.max(1, (g[key] / max) * (W - L - R));
      el("rect", { x: L, y: y + 4 + k * 12, width: w, height: 10, rx: 2, fill: colorFor(g.model), "fill-opacity": opacity }, grp);
      el("text", { x: L + w + 5, y: y + 13 + k * 12, class: "value" }, grp, `${label} ${ms(g[key])}`);
    });
  });
}

function budgetsChart(container, budgets) {
  container.replaceChildren();
  for (const b of budgets) {
    const W = 1100, H = 160, L = 62, R = 120, T = 12, B = 24;
    const limit = Number(b.limit_usd);
    const max = niceMax(Math.max(limit, ...b.cumulative_usd));
    const box = html("div", "budget", container);
    html("div", "", box, `${b.name} — ${Object.entries(b.scope).map(([k, v]) => k + "=" + v).join(", ") || "all traffic"}: ` +
      `${usd(b.spent_usd)} of ${usd(limit)} (${b.spent_pct.toFixed(1)}%), resets ${b.resets}`);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, box);
    axisY(svg, max, L, W - R, T, H - B, axisUsd);
    const step = (W - L - R) / b.days_in_period;
    const y = (v) => H - B - (v / max) * (H - B - T);
    const g = el("g", { class: "series", "data-series": `budget ${b.name}` }, svg);
    el("line", { x1: L, x2: W - R, y1: y(limit), y2: y(limit), stroke: "#b42318", "stroke-dasharray": "5 4" }, g);
    el("text", { x: W - R + 4, y: y(limit) + 4, class: "value" }, g, "limit " + usd(limit));
    el("line", { x1: L, x2: W - R, y1: y(0), y2: y(limit), stroke: "#8a94a6", "stroke-dasharray": "2 4" }, g);
    if (b.soft_limit_usd) {
      el("line", { x1: L, x2: W - R, y1: y(b.soft_limit_usd), y2: y(b.soft_limit_usd), stroke: "#b26a00", "stroke-dasharray": "3 3" }, g);
      el("text", { x: W - R + 4, y: y(b.soft_limit_usd) + 4, class: "value" }, g, "soft " + usd(b.soft_limit_usd));
    }
    const ticks = el("g", { class: "axis" }, svg);
    el("text", { x: L, y: H - B + 16, "text-anchor": "start" }, ticks, b.period_start);
    el("text", { x: W - R, y: H - B + 16, "text-anchor": "end" }, ticks, "resets " + b.resets);
    const todayX = L + b.cumulative_usd.length * step;
    el("line", { x1: todayX, x2: todayX, y1: T, y2: H - B, class: "gridline" }, ticks);
    el("text", { x: todayX, y: T + 10, "text-anchor": "middle" }, ticks, "today");
    const pts = b.cumulative_usd.map((v, i) => `${L + (i + 1) * step},${y(v)}`);
    el("polyline", { points: [`${L},${y(0)}`, ...pts].join(" "), fill: "none", stroke: "#2f5bea", "stroke-width": 2.4 }, g);
  }
}

function drivers(container, top) {
  container.replaceChildren();
  const titles = { kind: "Prompt kinds", feature: "Features", key: "Keys", model: "Models" };
  for (const [dim, rows] of Object.entries(top)) {
    if (!rows.length) continue;
    const table = html("table", "drivers", container);
    table.dataset.dimension = dim;
    html("caption", "", table, titles[dim] || dim);
    for (const r of rows) {
      const tr = html("tr", "", table);
      html("td", "", tr, r.name);
      const bar = html("td", "bar", tr);
      html("div", "fill", bar).style.width = Math.max(1, r.share_pct) + "%";
      html("td", "num", tr, usd(r.cost_usd));
      html("td", "num", tr, r.share_pct.toFixed(1) + "%");
    }
  }
  if (!container.children.length) empty(container);
}

function kpis(container, t) {
  container.replaceChildren();
  const tiles = [
    ["Spend", usd(t.cost_usd), `${Number(t.requests).toLocaleString("en-US")} requests`, ""],
    ["Would have cost", usd(t.counterfactual_cost_usd), "all on the most capable model", ""],
    ["Saved by routing", usd(t.savings_usd), `${t.savings_pct.toFixed(1)}% of the counterfactual`, "good"],
    ["Avg cost / request", usd(t.avg_cost_usd), `p95 ${usd(t.p95_cost_usd)}`, ""],
    ["Latency p95", ms(t.latency_p95_ms), `p50 ${ms(t.latency_p50_ms)} · p80 ${ms(t.latency_p80_ms)}`, ""],
    ["Could have been lighter", Number(t.lighter_requests).toLocaleString("en-US"), `${usd(t.lighter_cost_usd)} on heavier models`, t.lighter_requests ? "warn" : ""],
    ["Errors · fallbacks", `${t.errors} · ${t.fallbacks}`, "failed requests · failed-over", t.errors ? "warn" : ""],
  ];
  for (const [label, value, sub, cls] of tiles) {
    const tile = html("div", "kpi " + cls, container);
    tile.dataset.kpi = label;
    html("div", "label", tile, label);
    html("div", "value", tile, value);
    html("div", "sub", tile, sub);
  }
}

function fillSelect(select, values, current, placeholder) {
  select.replaceChildren();
  const first = html("option", "", select, placeholder);
  first.value = "";
  for (const v of values) {
    const o = html("option", "", select, v);
    o.value = v;
  }
  if (current && !values.includes(current)) {
    const o = html("option", "", select, current);
    o.value = current;
  }
  select.value = current || "";
}

function render(data) {
  const width = data.range.period_seconds;
  kpis(document.getElementById("kpis"), data.totals);
  stackedBars(document.getElementById("chart-spend-model"), data.series.periods, data.series.spend_by_model, width);
  stackedBars(document.getElementById("chart-spend-feature"), data.series.periods, data.series.spend_by_feature, width);
  savingsChart(document.getElementById("chart-savings"), data.series, width);
  const answered = data.by_model.filter((g) => g.model !== "(none)")
    .sort((a, b) => b.requests - a.requests);
  const total = answered.reduce((s, g) => s + g.requests, 0) || 1;
  hbars(document.getElementById("chart-mix"),
    answered.map((g) => ({ name: g.model, value: g.requests, tier: Object.keys(g.tier_share)[0] })),
    (r) => `${(100 * r.value / total).toFixed(1)}%` + (r.tier && r.tier !== "unknown" ? ` · tier ${r.tier}` : ""));
  latencyChart(document.getElementById("chart-latency"), data.by_model);
  drivers(document.getElementById("drivers"), data.totals.top_cost_drivers);
  const card = document.getElementById("budgets-card");
  card.hidden = !data.budgets.length;
  if (data.budgets.length) budgetsChart(document.getElementById("chart-budgets"), data.budgets);
  // Filter lists come from the data; keep the current choice even when it is not in the range.
  const tagSelect = document.getElementById("f-tag");
  const tagNames = Object.keys(data.tags);
  const chosenTag = Object.keys(data.filters).find((k) => k !== "model") || tagSelect.value;
  fillSelect(tagSelect, tagNames, chosenTag, "any tag");
  const valueSelect = document.getElementById("f-value");
  valueSelect.disabled = !tagSelect.value;
  fillSelect(valueSelect, data.tags[tagSelect.value] || [], data.filters[tagSelect.value] || "", "—");
  fillSelect(document.getElementById("f-model"), answered.map((g) => g.model), data.filters.model || "", "all models");
}

function currentQuery() {
  const q = new URLSearchParams();
  const since = document.getElementById("f-range").value;
  if (since) q.set("since", since);
  const tag = document.getElementById("f-tag").value;
  const value = document.getElementById("f-value").value;
  if (tag && value) q.set(tag, value);
  const model = document.getElementById("f-model").value;
  if (model) q.set("model", model);
  return q;
}

async function load() {
  const status = document.getElementById("status");
  const q = currentQuery();
  window.history.replaceState(null, "", "?" + q.toString());
  status.className = "";
  status.textContent = "Loading…";
  const key = adminKey();
  const headers = key ? { Authorization: "Bearer " + key } : {};
  try {
    const response = await fetch("/api/dashboard?" + q.toString(), { headers });
    const body = await response.json();
    const keyForm = document.getElementById("admin-key-form");
    keyForm.hidden = response.status !== 401;
    if (response.status === 401) sessionStorage.removeItem(KEY_STORE);
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    state.data = body;
    render(body);
    const r = body.range;
    status.textContent = `${r.since ? r.since.replace("T", " ").replace("Z", " UTC") : "start of ledger"} → ${r.until || "now"}` +
      (Object.keys(body.filters).length ? " · filtered by " + Object.entries(body.filters).map(([k, v]) => `${k}=${v}`).join(", ") : "");
  } catch (err) {
    status.className = "error";
    status.textContent = "Could not load the dashboard data: " + err.message;
  }
  state.loads += 1;
  document.body.dataset.loads = String(state.loads);
}

function init() {
  const range = document.getElementById("f-range");
  if (params.has("since")) range.value = params.get("since");
  for (const [k, v] of params) {
    if (k === "model") {
      fillSelect(document.getElementById("f-model"), [v], v, "all models");
    } else if (!["since", "until"].includes(k)) {
      fillSelect(document.getElementById("f-tag"), [k], k, "any tag");
      const value = document.getElementById("f-value");
      fillSelect(value, [v], v, "—");
      value.disabled = false;
    }
  }
  range.addEventListener("change", load);
  document.getElementById("f-model").addEventListener("change", load);
  document.getElementById("f-value").addEventListener("change", load);
  document.getElementById("f-tag").addEventListener("change", () => {
    const value = document.getElementById("f-value");
    value.value = "";
    value.disabled = !document.getElementById("f-tag").value;
    const values = state.data ? state.data.tags[document.getElementById("f-tag").value] || [] : [];
    fillSelect(value, values, "", "—");
    load();
  });
  document.getElementById("admin-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("admin-key");
    sessionStorage.setItem(KEY_STORE, input.value);
    input.value = "";
    load();
  });
  document.getElementById("f-reset").addEventListener("click", () => {
    range.value = "7d";
    fillSelect(document.getElementById("f-tag"), [], "", "any tag");
    fillSelect(document.getElementById("f-value"), [], "", "—");
    fillSelect(document.getElementById("f-model"), [], "", "all models");
    load();
  });
  load();
}

document.addEventListener("DOMContentLoaded", init);
