// The request log: filters, pages newest first, and one call in detail (its attempts,
// cost, tokens, guards and, when its project captures them, the bodies).

import { api } from "../api.js";
import { h, clear, empty, load, table, badge, field, select, errorBox, progress } from "../dom.js";
import { usd, count, ms, timeCell, json, isoFromLocal, localFromIso, timeZone } from "../format.js";
import * as forms from "../forms.js";

const STATUSES = [["", "Any status"], ["2xx", "Success (2xx)"], ["4xx", "Refused (4xx)"], ["5xx", "Failed (5xx)"], ["401", "401"], ["402", "402"], ["403", "403"], ["429", "429"]];

function statusBadge(status) {
  return badge(String(status), status < 400 ? "ok" : status < 500 ? "warn" : "bad");
}

function pretty(body) {
  if (body === null || body === undefined) return "(nothing)";
  try {
    return json(JSON.parse(body));
  } catch {
    return body;
  }
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
}

// Each upstream try in the order it ran: the failed ones, then the one that answered.
function attemptsView(entry) {
  const log = (entry.attempt_log || []).map((attempt, index) => ({ ...attempt, n: index + 1 }));
  if (!log.length) {
    const why = entry.attempts ? "This call was recorded before the gateway listed its attempts." : "No upstream call (refused, or answered from the cache).";
    return h("p", { class: "hint" }, why);
  }
  return table([
    { label: "#", value: (a) => String(a.n), num: true },
    { label: "Deployment", value: (a) => h("span", { class: "mono" }, `${a.provider || "—"}/${a.model || "—"}`) },
    { label: "Outcome", value: (a) => badge(a.outcome || "unknown", a.outcome === "ok" ? "ok" : "bad") },
    { label: "Upstream status", value: (a) => (a.status === null || a.status === undefined ? "—" : String(a.status)), num: true },
    { label: "Latency", value: (a) => ms(a.latency_ms), num: true },
  ], log, { caption: `${log.length} upstream ${log.length === 1 ? "attempt" : "attempts"}, in order` });
}

function detailView(entry, onClose) {
  const flags = entry.flags.length ? entry.flags.join(", ") : "none";
  const cost = entry.priced ? usd(entry.cost_usd) : "unpriced";
  const bodies = entry.bodies
    ? h("div", { class: "grid2" },
      h("div", {}, h("h3", {}, `Request (${count(entry.bodies.request_bytes)} bytes)`), h("pre", { tabindex: "0" }, pretty(entry.bodies.request))),
      h("div", {}, h("h3", {}, `Response (${count(entry.bodies.response_bytes)} bytes)`), h("pre", { tabindex: "0" }, pretty(entry.bodies.response))))
    : empty("Bodies were not captured", "Turn on capture for this call's project (Projects → Edit) to keep prompts and answers here.");
  return h("section", { class: "panel", id: "request-detail", "aria-labelledby": "request-detail-title" },
    h("div", { class: "page-head" }, h("h2", { id: "request-detail-title" }, `Request ${entry.id}`),
      h("button", { type: "button", class: "secondary", on: { click: onClose } }, "Close")),
    h("div", { class: "grid2" },
      h("dl", { class: "facts" },
        fact("Time", timeCell(entry.created_at, true)), fact("Status", statusBadge(entry.status)), fact("Error", entry.error),
        fact("Endpoint", entry.endpoint), fact("Model", entry.model), fact("Deployment", entry.deployment),
        fact("Attempts", `${count(entry.attempts)}${entry.attempts > 1 ? " (retries or fallbacks)" : ""}`),
        fact("Latency", ms(entry.latency_ms)), fact("First token", ms(entry.ttft_ms)), fact("Streamed", entry.stream ? "yes" : "no"),
        fact("Cached", entry.cached ? "yes (no upstream call, no charge)" : "no")),
      h("dl", { class: "facts" },
        fact("Cost", `${cost}${entry.estimated ? " (estimated)" : ""}`),
        fact("Input tokens", count(entry.input_tokens)), fact("Output tokens", count(entry.output_tokens)),
        fact("Cache read / write", `${count(entry.cache_read_tokens)} / ${count(entry.cache_write_tokens)}`),
        fact("Reasoning tokens", count(entry.reasoning_tokens)),
        fact("Key", entry.key_id), fact("Project", entry.project_id), fact("Flags", flags),
        fact("User agent", entry.user_agent))),
    h("h3", {}, "Attempts"), h("div", { id: "request-attempts" }, attemptsView(entry)),
    h("h3", {}, "Metadata"), h("pre", {}, json(entry.metadata)),
    entry.guards.length ? [h("h3", {}, "Guard decisions"), h("pre", {}, json(entry.guards))] : null,
    h("h3", {}, "Captured bodies"), bodies);
}

export async function render(main, ctx) {
  const params = ctx.params;
  const projects = await api.get("/projects");
  const names = Object.fromEntries(projects.map((p) => [p.id, p.name]));
  const input = (name, placeholder) => h("input", { name, id: `rq-${name}`, value: params.get(name) || "", placeholder });
  const key = input("key", "key_…");
  const model = input("model", "gpt-4o-mini");
  const provider = input("provider", "openai");
  const metadata = input("meta", "org=acme");
  const project = select("project", [["", "All projects"], ...projects.map((p) => [p.id, p.name])], params.get("project") || "");
  const status = select("status", STATUSES, params.get("status") || "");
  const from = h("input", { type: "datetime-local", name: "from", value: localFromIso(params.get("from") || "") });
  const to = h("input", { type: "datetime-local", name: "to", value: localFromIso(params.get("to") || "") });
  const detail = h("div", {});
  const results = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;
  let rows = [];

  main.append(h("h1", {}, "Requests"),
    h("form", { class: "toolbar", role: "search", on: { submit: (e) => { e.preventDefault(); refresh(); } } },
      field("Key id", key), field("Project", project), field("Model", model), field("Provider", provider),
      field("Status", status), field("From", from), field("To", to), field("Metadata", metadata),
      h("div", {}, h("button", { type: "submit" }, "Filter"))),
    h("p", { class: "hint" }, `Newest first; times in your time zone (${timeZone}).`),
    detail, results, h("p", {}, more));

  function filters() {
    const query = { key: key.value.trim(), project: project.value, model: model.value.trim(), provider: provider.value.trim(), status: status.value, from: isoFromLocal(from.value), to: isoFromLocal(to.value) };
    for (const [k, v] of Object.entries(forms.parseMetadata(metadata.value, "meta"))) query[`metadata.${k}`] = v;
    return query;
  }

  function draw() {
    if (!rows.length) {
      return empty("No requests match", "Calls appear here as soon as they finish. Send one with a key, or clear the filters.");
    }
    const link = (r) => {
      const search = new URLSearchParams(location.search);
      search.set("id", r.id);
      return h("a", { href: `${location.pathname}?${search}`, on: { click: (e) => { e.preventDefault(); show(r.id); } } }, timeCell(r.created_at, true));
    };
    return table([
      { label: "Time", value: link },
      { label: "Status", value: (r) => statusBadge(r.status) },
      { label: "Model", value: (r) => r.model || "—" },
      { label: "Deployment", value: (r) => r.deployment || "—", narrow: true },
      { label: "Key", value: (r) => h("span", { class: "mono" }, r.key_id || "master"), narrow: true },
      { label: "Project", value: (r) => names[r.project_id] || r.project_id || "—", narrow: true },
      { label: "Tokens in / out", value: (r) => `${count(r.input_tokens)} / ${count(r.output_tokens)}`, num: true },
      { label: "Cost", value: (r) => (r.priced ? usd(r.cost_usd) : "unpriced"), num: true },
      { label: "Latency", value: (r) => ms(r.latency_ms), num: true, narrow: true },
    ], rows, { caption: `${rows.length} requests${cursor ? " (more below)" : ""}` });
  }

  async function fetchPage(append) {
    const query = { ...filters(), limit: 50, cursor: append ? cursor : "" };
    const page = await api.get("/requests", query);
    rows = append ? rows.concat(page.data) : page.data;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    return draw();
  }

  async function refresh() {
    try {
      const query = filters();
      ctx.setParams({ key: query.key, project: query.project, model: query.model, provider: query.provider, status: query.status, from: query.from, to: query.to, meta: metadata.value });
    } catch (error) {
      clear(results).append(errorBox(error));
      return;
    }
    await load(results, () => fetchPage(false));
  }

  async function show(id) {
    ctx.setParams({ id });
    clear(detail).append(progress("Loading the request…"));
    try {
      const entry = await api.get(`/requests/${encodeURIComponent(id)}`);
      clear(detail).append(detailView(entry, () => { clear(detail); ctx.setParams({ id: "" }); }));
      detail.querySelector("h2").setAttribute("tabindex", "-1");
      detail.querySelector("h2").focus();
    } catch (error) {
      if (!error.redirected) clear(detail).append(errorBox(error));
    }
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const drawn = await fetchPage(true);
      clear(results).append(drawn);
    } catch (error) {
      results.append(errorBox(error));
    } finally {
      more.disabled = false;
    }
  });
  for (const control of [project, status, from, to]) control.addEventListener("change", refresh);
  if (params.get("id")) show(params.get("id"));
  await refresh();
}
