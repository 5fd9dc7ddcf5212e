// Overview: spend and requests over time for a range, error rate, top keys, models and
// projects, and how far budgets have burned.

import { api } from "../api.js";
import { h, clear, empty, load, table } from "../dom.js";
import { usd, count, compact, percent, dayLabel, hourLabel, timeZone } from "../format.js";
import { columns, ranking } from "../chart.js";

const RANGES = { "24h": { hours: 24, label: "Last 24 hours" }, "7d": { hours: 168, label: "Last 7 days" }, "30d": { hours: 720, label: "Last 30 days" } };

// Hourly points into the browser's hours (24h) or days, gaps filled with zeros.
function buckets(points, range, now) {
  const byHour = range.hours <= 24;
  const slots = [];
  const index = new Map();
  const keyOf = (date) => (byHour ? `${date.toDateString()} ${date.getHours()}` : date.toDateString());
  const count_ = byHour ? range.hours : range.hours / 24;
  for (let i = count_ - 1; i >= 0; i -= 1) {
    const date = new Date(now.getTime() - i * (byHour ? 3600000 : 86400000));
    const slot = { date, label: byHour ? hourLabel(date) : dayLabel(date), requests: 0, errors: 0, cost: 0, tokens: 0 };
    index.set(keyOf(date), slot);
    slots.push(slot);
  }
  for (const point of points) {
    const slot = index.get(keyOf(new Date(point.start)));
    if (!slot) continue;
    slot.requests += point.requests;
    slot.errors += point.error_requests;
    slot.cost += Number(point.cost_usd);
    slot.tokens += point.input_tokens + point.output_tokens;
  }
  return slots;
}

function card(label, value, note) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), note ? h("div", { class: "muted" }, note) : null);
}

function top(title, groups, name, link) {
  const rows = groups.slice(0, 5);
  const body = rows.length
    ? [ranking(rows.map((g) => ({ label: name(g), value: Number(g.cost_usd) })), { format: usd, label: title }),
      table([
        { label: "Name", value: (g) => (link ? h("a", { href: link(g) }, name(g)) : name(g)) },
        { label: "Requests", value: (g) => count(g.requests), num: true },
        { label: "Cost", value: (g) => usd(g.cost_usd), num: true },
      ], rows)]
    : empty("Nothing yet", "No calls in this range.");
  return h("section", { class: "panel" }, h("h2", {}, title), body);
}

function burn(items) {
  if (!items.length) {
    return empty("No budgets set", "Give a project or a key a budget (Projects → Edit, or when creating a key) to follow it here.");
  }
  return h("div", {}, items.map((item) => {
    const limit = Number(item.max_budget_usd);
    const spent = Number(item.spend_usd ? item.spend_usd.current_period : 0);
    const period = item.budget_period ? `this ${item.budget_period}` : "lifetime";
    return h("div", { class: "burn" },
      h("span", {}, h("strong", {}, item.name), h("span", { class: "muted" }, ` · ${item.kind}`)),
      h("span", { class: "muted" }, `${usd(spent)} of ${usd(limit)} ${period} (${percent(spent, limit)})`),
      h("progress", { max: String(limit || 1), value: String(Math.min(spent, limit)), "aria-label": `${item.name}: ${percent(spent, limit)} of budget used` }));
  }));
}

export async function render(main, ctx) {
  let chosen = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "24h";
  const body = h("div", {});
  const picker = h("div", { class: "segmented", role: "group", "aria-label": "Range" },
    Object.entries(RANGES).map(([name, range]) => h("button", {
      type: "button", "aria-pressed": String(name === chosen), "data-range": name,
      on: { click: () => { chosen = name; ctx.setParams({ range: name }); mark(); load(body, draw); } },
    }, range.label)));
  const mark = () => { for (const b of picker.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.range === chosen)); };
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Overview"), picker), body);

  async function draw() {
    const range = RANGES[chosen];
    const now = new Date();
    const from = new Date(now.getTime() - range.hours * 3600000).toISOString();
    const to = now.toISOString();
    const [series, byKey, byModel, byProject, projects] = await Promise.all([
      api.get("/series", { span: "hour", from, to }),
      api.get("/spend", { group_by: "key", from, to }),
      api.get("/spend", { group_by: "model", from, to }),
      api.get("/spend", { group_by: "project", from, to }),
      api.get("/projects"),
    ]);
    const names = Object.fromEntries(projects.map((p) => [p.id, p.name]));
    const topKeys = byKey.groups.filter((g) => g.group).slice(0, 5);
    const budgeted = projects.filter((p) => p.max_budget_usd !== null).slice(0, 8);
    const [keyDetails, projectDetails] = await Promise.all([
      Promise.all(topKeys.map((g) => api.get(`/keys/${encodeURIComponent(g.group)}`).catch(() => null))),
      Promise.all(budgeted.map((p) => api.get(`/projects/${encodeURIComponent(p.id)}`).catch(() => null))),
    ]);
    const keyNames = Object.fromEntries(keyDetails.filter(Boolean).map((k) => [k.id, k.name]));
    const slots = buckets(series.points, range, now);
    const totals = slots.reduce((sum, s) => ({ requests: sum.requests + s.requests, errors: sum.errors + s.errors, cost: sum.cost + s.cost, tokens: sum.tokens + s.tokens }), { requests: 0, errors: 0, cost: 0, tokens: 0 });
    const budgets = [
      ...projectDetails.filter(Boolean).map((p) => ({ ...p, kind: "project" })),
      ...keyDetails.filter((k) => k && k.max_budget_usd !== null).map((k) => ({ ...k, kind: "key" })),
    ];
    const unit = range.hours <= 24 ? "hour" : "day";
    const cards = h("div", { class: "cards" },
      card("Spend", usd(totals.cost), range.label.toLowerCase()),
      card("Requests", compact(totals.requests), `${count(totals.requests)} calls`),
      card("Error rate", percent(totals.errors, totals.requests), `${count(totals.errors)} answered 4xx/5xx`),
      card("Tokens", compact(totals.tokens), "input + output"),
      card("Unpriced calls", count(byModel.totals.unpriced_requests), "never counted as $0"));
    if (!totals.requests) {
      return h("div", {}, cards, h("div", { class: "panel" }, empty("No calls in this range",
        "Create a key on the Keys page and point a client at the gateway with it; its spend and requests show up here.",
        h("a", { class: "button", href: "/ui/keys" }, "Go to Keys"))), h("section", { class: "panel" }, h("h2", {}, "Budget burn"), burn(budgets)));
    }
    const spendChart = columns(slots.map((s) => ({ label: s.label, value: s.cost, title: s.date.toLocaleString() })), { format: usd, label: `Spend per ${unit}` });
    const requestChart = columns(slots.map((s) => ({ label: s.label, value: s.requests, alt: s.errors, title: s.date.toLocaleString() })), { format: compact, label: "Requests", altLabel: "Errors" });
    return h("div", {}, cards,
      h("div", { class: "grid2" },
        h("section", { class: "panel" }, h("h2", {}, `Spend per ${unit}`), spendChart),
        h("section", { class: "panel" }, h("h2", {}, `Requests per ${unit}`), requestChart,
          h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch" }), "Requests"), h("span", {}, h("span", { class: "swatch alt" }), "Errors")))),
      h("p", { class: "hint" }, `Times in your time zone (${timeZone}).`),
      h("div", { class: "grid3" },
        top("Top keys", byKey.groups.filter((g) => g.group), (g) => keyNames[g.group] || g.group, (g) => `/ui/requests?key=${encodeURIComponent(g.group)}`),
        top("Top models", byModel.groups, (g) => g.group || "(none)", (g) => `/ui/requests?model=${encodeURIComponent(g.group || "")}`),
        top("Top projects", byProject.groups, (g) => names[g.group] || g.group || "(master key)", null)),
      h("section", { class: "panel" }, h("h2", {}, "Budget burn"), burn(budgets)));
  }

  clear(body);
  await load(body, draw);
}
