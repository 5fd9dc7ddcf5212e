// Keys: search and filter, create (the secret shown once, with the env block), edit
// limits, revoke one, revoke every key of a project.

import { api } from "../api.js";
import { h, clear, empty, errorBox, progress, table, badge, dialog, confirm, toast, copyButton, field, select } from "../dom.js";
import { usd, count, timeCell } from "../format.js";
import * as forms from "../forms.js";

const STATUS_TONE = { active: "ok", inactive: "warn", revoked: "bad", expired: "bad" };
const PAGE = 100;

function limitsText(key) {
  const parts = [];
  if (key.rpm) parts.push(`${count(key.rpm)} rpm`);
  if (key.tpm) parts.push(`${count(key.tpm)} tpm`);
  if (key.max_parallel) parts.push(`${count(key.max_parallel)} parallel`);
  if (key.max_requests) parts.push(`${count(key.request_count)} / ${count(key.max_requests)} requests`);
  return parts.join(", ") || "—";
}

function budgetText(key) {
  if (key.max_budget_usd === null || key.max_budget_usd === undefined) return "—";
  return `${usd(key.max_budget_usd)}${key.budget_period ? ` / ${key.budget_period}` : ""}`;
}

function matches(key, words) {
  if (!words) return true;
  const haystack = [key.name, key.id, key.key_prefix, key.project_id, JSON.stringify(key.metadata)].join(" ").toLowerCase();
  return words.toLowerCase().split(/\s+/).every((word) => haystack.includes(word));
}

function keyForm(projects, key) {
  const creating = !key;
  const values = key || {};
  const fields = [
    field("Name", forms.text("name", values.name, { required: true, maxlength: 200 })),
  ];
  if (creating) {
    const choices = projects.map((p) => [p.name, p.active ? p.name : `${p.name} (deactivated)`]);
    fields.push(field("Project", select("project", choices.length ? choices : [["default", "default"]], "default")));
    fields.push(field("Lifetime", forms.text("ttl", "", { placeholder: "24h" }), "90m, 24h, 7d or seconds; empty: no expiry."));
    fields.push(field("Or expires at", h("input", { name: "expires_at", type: "datetime-local" }), "In your time zone."));
  }
  fields.push(forms.scopeField(values));
  fields.push(...forms.limitFields(values));
  fields.push(field("Max requests", forms.number("max_requests", values.max_requests), "Lifetime total; empty: no limit."));
  fields.push(forms.metadataField(values));
  if (!creating) {
    const active = h("input", { type: "checkbox", name: "active", checked: values.active !== false, disabled: values.status === "revoked" });
    fields.push(h("div", {}, h("label", {}, active, " Active (an inactive key is refused until reactivated)")));
  }
  const guards = h("details", { class: "wide" }, h("summary", {}, "Guards (advanced)"), forms.guardsField(values));
  return h("div", { class: "form-grid" }, fields, guards);
}

function readKey(form, creating) {
  const body = {
    name: form.elements.name.value.trim(),
    models: forms.readScope(form),
    ...forms.readLimits(form),
    max_requests: forms.readNumber(form, "max_requests"),
    metadata: forms.parseMetadata(form.elements.metadata.value),
    guards: forms.readGuards(form),
  };
  if (creating) {
    body.project = form.elements.project.value;
    const ttl = form.elements.ttl.value.trim();
    const expires = form.elements.expires_at.value;
    if (ttl) body.ttl = /^\d+$/.test(ttl) ? Number(ttl) : ttl;
    if (expires) body.expires_at = new Date(expires).toISOString();
    for (const name of Object.keys(body)) if (body[name] === null) delete body[name];
  } else {
    body.active = form.elements.active.checked;
  }
  return body;
}

function showSecret(ctx, created) {
  const secret = h("input", { id: "key-secret", readonly: true, value: created.key, "aria-label": "Secret key", spellcheck: "false" });
  const env = forms.envBlock(ctx.publicUrl, created.key);
  const content = h("div", {},
    h("p", { class: "success", role: "status" }, `Key "${created.name}" created (${created.id}).`),
    h("p", {}, h("strong", {}, "Copy the secret now: it is shown this once and never again.")),
    h("div", { class: "secret" }, secret, copyButton("Copy key", created.key)),
    h("h3", {}, "Environment for a sandbox or a shell"),
    h("pre", { id: "key-env", tabindex: "0" }, env),
    h("div", { class: "actions" }, copyButton("Copy env block", env)));
  return dialog("New key", content);
}

export async function render(main, ctx) {
  const projects = await api.get("/projects");
  const byId = Object.fromEntries(projects.map((p) => [p.id, p]));
  const params = ctx.params;
  const search = h("input", { type: "search", name: "q", value: params.get("q") || "", placeholder: "Name, id, prefix, metadata", id: "key-search" });
  const project = select("project", [["", "All projects"], ...projects.map((p) => [p.id, p.name])], params.get("project") || "");
  const status = select("status", [["", "Any status"], ["active", "Active"], ["inactive", "Inactive"], ["revoked", "Revoked"], ["expired", "Expired"]], params.get("status") || "");
  const metadata = h("input", { name: "metadata", value: params.get("meta") || "", placeholder: "org=acme", id: "key-meta" });
  const results = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const projectActions = h("div", { class: "actions" });
  let keys = [];
  let offset = 0;

  const create = ctx.can("operator") ? h("button", { type: "button", on: { click: () => createKey() } }, "Create key") : null;
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Keys"), create),
    h("div", { class: "toolbar", role: "search" },
      h("div", { class: "grow" }, h("label", { for: "key-search" }, "Search"), search),
      field("Project", project), field("Status", status),
      h("div", {}, h("label", { for: "key-meta" }, "Metadata"), metadata)),
    projectActions, results, h("p", {}, more));

  function draw() {
    const shown = keys.filter((k) => matches(k, search.value.trim()) && (!status.value || k.status === status.value));
    clear(results);
    if (!shown.length) {
      const filtered = search.value || project.value || status.value || metadata.value;
      results.append(filtered
        ? empty("No keys match these filters", "Clear the search or the filters to see every key.")
        : empty("No keys yet", ctx.can("operator") ? "Create a key for a client or a sandbox: it gets a budget, limits and an expiry." : "An operator or admin can create keys.", create ? h("button", { type: "button", on: { click: () => createKey() } }, "Create a key") : null));
      return;
    }
    const columns = [
      { label: "Name", value: (k) => h("div", {}, h("strong", {}, k.name), h("div", { class: "muted mono" }, `${k.key_prefix}… · ${k.id}`)) },
      { label: "Project", value: (k) => (byId[k.project_id] ? byId[k.project_id].name : k.project_id) },
      { label: "Status", value: (k) => badge(k.status, STATUS_TONE[k.status]) },
      { label: "Models", value: (k) => (k.models ? k.models.join(", ") : "all"), narrow: true },
      { label: "Budget", value: budgetText, num: true },
      { label: "Limits", value: limitsText, narrow: true },
      { label: "Expires", value: (k) => (k.expires_at ? timeCell(k.expires_at) : "never"), narrow: true },
      { label: "Created", value: (k) => timeCell(k.created_at), narrow: true },
    ];
    if (ctx.can("operator")) {
      columns.push({ label: "Actions", value: (k) => (k.status === "revoked" ? "—" : h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", "aria-label": `Edit ${k.name}`, on: { click: () => editKey(k) } }, "Edit"),
        h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, on: { click: () => revokeKey(k) } }, "Revoke"))) });
    }
    results.append(table(columns, shown, { caption: `${shown.length} of ${keys.length} loaded keys` }));
  }

  async function fetchKeys(append = false) {
    if (!append) {
      offset = 0;
      clear(results).append(progress("Loading keys…"));
    }
    more.disabled = true;
    const query = { limit: PAGE, offset };
    if (project.value) query.project = project.value;
    if (status.value === "active") query.active = true;
    else if (status.value) query.active = false;
    try {
      for (const [k, v] of Object.entries(forms.parseMetadata(metadata.value, "metadata"))) query[`metadata.${k}`] = v;
      const page = await api.get("/keys", query);
      keys = append ? keys.concat(page) : page;
      offset += page.length;
      more.hidden = page.length < PAGE;
      draw();
    } catch (error) {
      if (!error.redirected) clear(results).append(errorBox(error, () => fetchKeys(append)));
    } finally {
      more.disabled = false;
    }
  }

  function drawProjectActions() {
    clear(projectActions);
    const chosen = byId[project.value];
    if (chosen && ctx.can("operator")) {
      projectActions.append(h("button", { type: "button", class: "danger", on: { click: () => revokeProject(chosen) } }, `Revoke all keys of ${chosen.name}`));
    }
  }

  async function createKey() {
    const body = keyForm(projects);
    const created = await dialog("Create key", body, {
      submit: "Create key",
      onSubmit: () => api.post("/keys", readKey(body.closest("form"), true)),
    });
    if (created) {
      await showSecret(ctx, created);
      await fetchKeys();
    }
  }

  async function editKey(key) {
    const body = keyForm(projects, key);
    const saved = await dialog(`Edit ${key.name}`, body, {
      onSubmit: () => {
        const wanted = forms.changes(key, readKey(body.closest("form"), false));
        return Object.keys(wanted).length ? api.patch(`/keys/${encodeURIComponent(key.id)}`, wanted) : key;
      },
    });
    if (saved) {
      toast(`Saved ${saved.name}`);
      await fetchKeys();
    }
  }

  async function revokeKey(key) {
    if (!(await confirm(`Revoke ${key.name}?`, "The key stops working on its next request, on every gateway. This cannot be undone.", "Revoke key"))) return;
    try {
      await api.delete(`/keys/${encodeURIComponent(key.id)}`);
      toast(`Revoked ${key.name}`);
    } catch (error) {
      results.prepend(errorBox(error));
      return;
    }
    await fetchKeys();
  }

  async function revokeProject(chosen) {
    if (!(await confirm(`Revoke every key of ${chosen.name}?`, "All of the project's keys stop working on their next request. This cannot be undone.", "Revoke all keys"))) return;
    try {
      const result = await api.post(`/projects/${encodeURIComponent(chosen.id)}/revoke-keys`);
      toast(`Revoked ${result.revoked} key(s) of ${chosen.name}`);
    } catch (error) {
      projectActions.append(errorBox(error));
      return;
    }
    await fetchKeys();
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { ctx.setParams({ q: search.value }); draw(); }, 150);
  });
  for (const control of [project, status]) {
    control.addEventListener("change", () => {
      ctx.setParams({ project: project.value, status: status.value });
      drawProjectActions();
      fetchKeys();
    });
  }
  metadata.addEventListener("change", () => { ctx.setParams({ meta: metadata.value }); fetchKeys(); });
  more.addEventListener("click", () => fetchKeys(true));
  drawProjectActions();
  await fetchKeys();
}
