// Spend: totals grouped by any dimension over a date range, as a chart and a table, and
// as a CSV file.

import { api } from "../api.js";
import { h, clear, empty, load, table, field, select } from "../dom.js";
import { usd, count, isoFromLocal, localFromIso, timeZone } from "../format.js";
import { ranking } from "../chart.js";

const GROUPS = [["model", "Model"], ["key", "Key"], ["project", "Project"], ["provider", "Provider"], ["day", "Day (UTC)"], ["endpoint", "Endpoint"], ["metadata", "Metadata field…"]];
const COLUMNS = ["requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "unpriced_requests", "estimated_requests"];

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(report, names) {
  const lines = [["group", "name", ...COLUMNS].join(",")];
  for (const group of report.groups) {
    lines.push([group.group, names[group.group] || "", ...COLUMNS.map((c) => group[c])].map(csvCell).join(","));
  }
  lines.push(["total", "", ...COLUMNS.map((c) => report.totals[c])].map(csvCell).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

export async function render(main, ctx) {
  const params = ctx.params;
  const [projects] = await Promise.all([api.get("/projects")]);
  const names = Object.fromEntries(projects.map((p) => [p.id, p.name]));
  const initial = params.get("group_by") || "model";
  const isMeta = initial.startsWith("metadata.");
  const groupBy = select("group_by", GROUPS, isMeta ? "metadata" : initial);
  const metaField = h("input", { name: "meta_field", value: isMeta ? initial.slice(9) : "", placeholder: "org", id: "spend-meta", hidden: !isMeta });
  const weekAgo = new Date(Date.now() - 7 * 86400000).toISOString();
  const from = h("input", { type: "datetime-local", name: "from", value: localFromIso(params.get("from") || weekAgo) });
  const to = h("input", { type: "datetime-local", name: "to", value: localFromIso(params.get("to") || "") });
  const project = select("project", [["", "All projects"], ...projects.map((p) => [p.id, p.name])], params.get("project") || "");
  const key = h("input", { name: "key", value: params.get("key") || "", placeholder: "key_…", id: "spend-key" });
  const download = h("button", { type: "button", class: "secondary", disabled: true }, "Download CSV");
  const results = h("div", {});
  let last = null;

  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Spend"), download),
    h("form", { class: "toolbar", on: { submit: (e) => { e.preventDefault(); refresh(); } } },
      field("Group by", groupBy),
      h("div", { hidden: !isMeta, id: "spend-meta-box" }, h("label", { for: "spend-meta" }, "Metadata field"), metaField),
      field("From", from), field("To", to),
      field("Project", project),
      h("div", {}, h("label", { for: "spend-key" }, "Key id"), key),
      h("div", {}, h("button", { type: "submit" }, "Show"))),
    h("p", { class: "hint" }, `Times are in your time zone (${timeZone}); leave "To" empty for now.`),
    results);

  function group() {
    return groupBy.value === "metadata" ? `metadata.${metaField.value.trim()}` : groupBy.value;
  }

  async function report() {
    const query = { group_by: group(), from: isoFromLocal(from.value), to: isoFromLocal(to.value), project: project.value, key: key.value.trim() };
    ctx.setParams(query);
    const found = await api.get("/spend", query);
    if (found.group_by === "key" && found.groups.length) {
      // Key names for the first groups (the report names keys by id).
      const shown = found.groups.slice(0, 50).filter((g) => g.group);
      const keys = await Promise.all(shown.map((g) => api.get(`/keys/${encodeURIComponent(g.group)}`).catch(() => null)));
      for (const k of keys) if (k) names[k.id] = k.name;
    }
    last = found;
    download.disabled = !found.groups.length;
    if (!found.groups.length) {
      return empty("No spend in this range", "Widen the dates or clear the filters; calls made with a key appear here within seconds.");
    }
    const label = (g) => (g.group === null ? "(none)" : names[g.group] ? `${names[g.group]} (${g.group})` : g.group);
    const top = found.groups.slice(0, 15).map((g) => ({ label: label(g), value: Number(g.cost_usd) }));
    const chart = h("div", { class: "panel" }, h("h2", {}, `Cost by ${group()}`),
      h("div", { class: "grid2" },
        ranking(top, { format: usd, label: `Cost by ${group()}` }),
        h("ol", { class: "muted" }, top.map((row) => h("li", {}, `${row.label}: ${usd(row.value)}`)))));
    const columns = [
      { label: group(), value: label },
      { label: "Requests", value: (g) => count(g.requests), num: true },
      { label: "Input tokens", value: (g) => count(g.input_tokens), num: true },
      { label: "Output tokens", value: (g) => count(g.output_tokens), num: true },
      { label: "Cache read", value: (g) => count(g.cache_read_tokens), num: true, narrow: true },
      { label: "Cache write", value: (g) => count(g.cache_write_tokens), num: true, narrow: true },
      { label: "Cost", value: (g) => usd(g.cost_usd), num: true },
      { label: "Unpriced", value: (g) => count(g.unpriced_requests), num: true, narrow: true },
    ];
    const totals = found.totals;
    const footer = (c) => (c.label === group() ? "Total" : c.value(totals));
    return h("div", {}, chart, table(columns, found.groups, { caption: `${found.groups.length} groups`, footer }));
  }

  function refresh() {
    return load(results, report);
  }

  groupBy.addEventListener("change", () => {
    const meta = groupBy.value === "metadata";
    document.getElementById("spend-meta-box").hidden = !meta;
    metaField.hidden = !meta;
    if (meta) metaField.focus();
    else refresh();
  });
  for (const control of [from, to, project]) control.addEventListener("change", refresh);
  download.addEventListener("click", () => {
    if (!last) return;
    const blob = new Blob([toCsv(last, names)], { type: "text/csv" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `tollway-spend-${group()}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  clear(results);
  await refresh();
}
