// Projects: budgets with what they have spent, limits, policies; create, edit,
// (de)activate, revoke every key.

import { api } from "../api.js";
import { h, clear, empty, errorBox, table, badge, dialog, confirm, toast, field, load } from "../dom.js";
import { usd, count, timeCell } from "../format.js";
import * as forms from "../forms.js";

function projectForm(values = {}) {
  const creating = !values.id;
  const fields = [];
  if (creating) {
    fields.push(field("Name", forms.text("name", "", { required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", maxlength: 200 }), "Letters, digits, dot, dash, underscore."));
  }
  fields.push(forms.scopeField(values), ...forms.limitFields(values), forms.metadataField(values));
  const origins = forms.text("cors_origins", (values.cors_origins || []).join(", "), { placeholder: "https://app.example.com", "data-wide": "1" });
  fields.push(field("Browser origins (CORS)", origins, "Origins allowed to call with this project's keys, comma-separated."));
  const capture = h("input", { type: "checkbox", name: "capture", checked: Boolean(values.capture && values.capture.enabled) });
  fields.push(h("div", {}, h("label", {}, capture, " Capture request and response bodies in the request log")));
  if (!creating) {
    const active = h("input", { type: "checkbox", name: "active", checked: values.active !== false });
    fields.push(h("div", {}, h("label", {}, active, " Active (a deactivated project's keys are refused)")));
  }
  fields.push(h("details", { class: "wide" }, h("summary", {}, "Guards (advanced)"), forms.guardsField(values)));
  return h("div", { class: "form-grid" }, fields);
}

function readProject(form, before) {
  const origins = form.elements.cors_origins.value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = {
    models: forms.readScope(form),
    ...forms.readLimits(form),
    metadata: forms.parseMetadata(form.elements.metadata.value),
    cors_origins: origins.length ? origins : null,
    guards: forms.readGuards(form),
  };
  const capture = form.elements.capture.checked;
  if (capture !== Boolean(before.capture && before.capture.enabled)) body.capture = { enabled: capture };
  if (form.elements.name) body.name = form.elements.name.value.trim();
  if (form.elements.active) body.active = form.elements.active.checked;
  return body;
}

function budgetCell(project) {
  if (project.max_budget_usd === null || project.max_budget_usd === undefined) return "—";
  const limit = Number(project.max_budget_usd);
  const spent = project.spend_usd ? Number(project.spend_usd.current_period) : null;
  const period = project.budget_period ? ` / ${project.budget_period}` : "";
  if (spent === null) return `${usd(limit)}${period}`;
  const bar = h("progress", { max: String(limit || 1), value: String(Math.min(spent, limit)), "aria-label": `${project.name} budget used` });
  return h("div", {}, `${usd(spent)} of ${usd(limit)}${period}`, bar);
}

export async function render(main, ctx) {
  const list = h("div", {});
  const create = ctx.can("operator") ? h("button", { type: "button", on: { click: () => createProject() } }, "Create project") : null;
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Projects"), create),
    h("p", { class: "muted" }, "Keys belong to projects; a project's budget, limits and policies apply to all of its keys."), list);

  async function draw() {
    const projects = await api.get("/projects");
    // Spend against each budget (one request per project with a budget, at most 50).
    const budgeted = projects.filter((p) => p.max_budget_usd !== null).slice(0, 50);
    const details = await Promise.all(budgeted.map((p) => api.get(`/projects/${encodeURIComponent(p.id)}`).catch(() => p)));
    const detailed = Object.fromEntries(details.map((p) => [p.id, p]));
    const rows = projects.map((p) => detailed[p.id] || p);
    if (!rows.length) return empty("No projects yet", "Create a project to group keys under one budget and one set of limits.");
    const columns = [
      { label: "Name", value: (p) => h("div", {}, h("strong", {}, p.name), h("div", { class: "muted mono" }, p.id)) },
      { label: "Status", value: (p) => badge(p.active ? "active" : "deactivated", p.active ? "ok" : "bad") },
      { label: "Budget", value: budgetCell },
      { label: "Limits", value: (p) => [p.rpm && `${count(p.rpm)} rpm`, p.tpm && `${count(p.tpm)} tpm`, p.max_parallel && `${count(p.max_parallel)} parallel`].filter(Boolean).join(", ") || "—", narrow: true },
      { label: "Models", value: (p) => (p.models ? p.models.join(", ") : "all"), narrow: true },
      { label: "Capture", value: (p) => (p.capture && p.capture.enabled ? "on" : "off"), narrow: true },
      { label: "Created", value: (p) => timeCell(p.created_at), narrow: true },
      { label: "Links", value: (p) => h("div", { class: "actions" },
        h("a", { href: `/ui/keys?project=${encodeURIComponent(p.id)}` }, "Keys"),
        h("a", { href: `/ui/spend?project=${encodeURIComponent(p.id)}&group_by=key` }, "Spend"),
        h("a", { href: `/ui/requests?project=${encodeURIComponent(p.id)}` }, "Requests")) },
    ];
    if (ctx.can("operator")) {
      columns.push({ label: "Actions", value: (p) => h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", "aria-label": `Edit ${p.name}`, on: { click: () => editProject(p) } }, "Edit"),
        h("button", { type: "button", class: "danger", "aria-label": `Revoke all keys of ${p.name}`, on: { click: () => revokeKeys(p) } }, "Revoke keys")) });
    }
    return table(columns, rows);
  }

  async function createProject() {
    const body = projectForm();
    const created = await dialog("Create project", body, {
      submit: "Create project",
      onSubmit: () => {
        const wanted = readProject(body.closest("form"), {});
        for (const name of Object.keys(wanted)) if (wanted[name] === null) delete wanted[name];
        return api.post("/projects", wanted);
      },
    });
    if (created) {
      toast(`Created ${created.name}`);
      await load(list, draw);
    }
  }

  async function editProject(project) {
    const body = projectForm(project);
    const saved = await dialog(`Edit ${project.name}`, body, {
      onSubmit: () => {
        const wanted = forms.changes(project, readProject(body.closest("form"), project));
        return Object.keys(wanted).length ? api.patch(`/projects/${encodeURIComponent(project.id)}`, wanted) : project;
      },
    });
    if (saved) {
      toast(`Saved ${saved.name}`);
      await load(list, draw);
    }
  }

  async function revokeKeys(project) {
    if (!(await confirm(`Revoke every key of ${project.name}?`, "All of the project's keys stop working on their next request. This cannot be undone.", "Revoke all keys"))) return;
    try {
      const result = await api.post(`/projects/${encodeURIComponent(project.id)}/revoke-keys`);
      toast(`Revoked ${result.revoked} key(s) of ${project.name}`);
    } catch (error) {
      clear(list).append(errorBox(error, () => load(list, draw)));
      return;
    }
    await load(list, draw);
  }

  await load(list, draw);
}
