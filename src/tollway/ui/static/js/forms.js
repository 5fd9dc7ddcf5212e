// Form fields shared by keys and projects: limits, model scopes, metadata, guards; and
// reading them back into an API body (a field left empty means "no limit": null).

import { h, field, select } from "./dom.js";
import { ApiError } from "./api.js";

export const PERIODS = [["", "No period (lifetime)"], ["day", "Per day (UTC)"], ["month", "Per month (UTC)"]];

export function text(name, value, props = {}) {
  return h("input", { name, value: value ?? "", autocomplete: "off", ...props });
}

export function number(name, value, props = {}) {
  return h("input", { name, type: "number", min: "0", inputmode: "numeric", value: value ?? "", ...props });
}

export function metadataText(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return "";
  const simple = entries.every(([, v]) => typeof v === "string" && !v.includes("\n"));
  return simple ? entries.map(([k, v]) => `${k}=${v}`).join("\n") : JSON.stringify(metadata, null, 2);
}

export function limitFields(values = {}) {
  return [
    field("Budget (USD)", number("max_budget_usd", values.max_budget_usd, { step: "any", inputmode: "decimal" }), "Empty: no budget."),
    field("Budget period", select("budget_period", PERIODS, values.budget_period || "")),
    field("Requests per minute", number("rpm", values.rpm)),
    field("Tokens per minute", number("tpm", values.tpm)),
    field("Parallel requests", number("max_parallel", values.max_parallel)),
  ];
}

export function scopeField(values = {}) {
  const input = text("models", (values.models || []).join(", "), { placeholder: "gpt-4o-mini, claude-*, group:cheap", "data-wide": "1" });
  return field("Models", input, "Names, globs or group:<name>, comma-separated. Empty: every model.");
}

export function metadataField(values = {}) {
  const area = h("textarea", { name: "metadata", rows: 3, placeholder: "org=acme\nsession=42", "data-wide": "1", spellcheck: "false" });
  area.value = metadataText(values.metadata);
  return field("Metadata", area, "One field=value per line, or a JSON object.");
}

export function guardsField(values = {}) {
  const area = h("textarea", { name: "guards", rows: 3, placeholder: '{"pii": {"action": "redact"}}', "data-wide": "1", spellcheck: "false" });
  const guards = values.guards || {};
  area.value = Object.keys(guards).length ? JSON.stringify(guards, null, 2) : "";
  return field("Guards", area, "A JSON object of guard settings replacing the gateway's (optional).");
}

function fail(name, message) {
  throw new ApiError(400, `${name}: ${message}`, name);
}

function numberValue(form, name) {
  const raw = form.elements[name].value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) fail(name, "enter a number of at least 0, or leave it empty");
  return name === "max_budget_usd" ? raw : value;
}

export function parseMetadata(raw, name = "metadata") {
  const textValue = raw.trim();
  if (!textValue) return {};
  if (textValue.startsWith("{")) {
    try {
      const value = JSON.parse(textValue);
      if (value && typeof value === "object" && !Array.isArray(value)) return value;
    } catch {
      // reported below
    }
    fail(name, "not a JSON object");
  }
  const out = {};
  for (const line of textValue.split(/\n|,(?=[^,=]+=)/)) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) fail(name, `"${line.trim()}" is not field=value`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

export function readLimits(form) {
  const body = {};
  for (const name of ["max_budget_usd", "rpm", "tpm", "max_parallel"]) body[name] = numberValue(form, name);
  body.budget_period = form.elements.budget_period.value || null;
  return body;
}

export function readScope(form) {
  const names = form.elements.models.value.split(",").map((s) => s.trim()).filter(Boolean);
  return names.length ? names : null;
}

export function readGuards(form) {
  const raw = form.elements.guards ? form.elements.guards.value.trim() : "";
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch {
    // reported below
  }
  return fail("guards", "not a JSON object");
}

export function readNumber(form, name) {
  return numberValue(form, name);
}

// Only what changed, so that an edit never rewrites a field nobody touched.
export function changes(before, after) {
  const out = {};
  for (const [name, value] of Object.entries(after)) {
    const old = before[name] ?? null;
    const same = JSON.stringify(normal(old)) === JSON.stringify(normal(value));
    if (!same) out[name] = value;
  }
  return out;
}

function normal(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" && value !== "" && !Number.isNaN(Number(value))) return Number(value);
  if (Array.isArray(value)) return value.length ? value : null;
  if (typeof value === "object") return Object.keys(value).length ? value : null;
  return value;
}

export function shellQuote(value) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

// What `tollway keys create --for env` prints: the OpenAI and Anthropic SDKs (and most
// tools) pointed at the gateway with the new key.
export function envBlock(base, secret) {
  const env = [
    ["OPENAI_BASE_URL", `${base}/v1`],
    ["OPENAI_API_KEY", secret],
    ["ANTHROPIC_BASE_URL", base],
    ["ANTHROPIC_API_KEY", secret],
    ["ANTHROPIC_AUTH_TOKEN", secret],
  ];
  return env.map(([name, value]) => `export ${name}=${shellQuote(value)}`).join("\n");
}
