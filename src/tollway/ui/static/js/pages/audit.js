// The audit log: filters, pages newest first, and a check of the whole hash chain.

import { api } from "../api.js";
import { h, clear, empty, load, table, field, progress, errorBox } from "../dom.js";
import { count, timeCell, isoFromLocal, localFromIso, timeZone } from "../format.js";

const PAGE = 100;

export async function render(main, ctx) {
  if (!ctx.can("admin")) {
    main.append(h("h1", {}, "Audit"), empty("The audit log needs the admin role", "Sign in with the master key or an admin key whose role is admin."));
    return;
  }
  const params = ctx.params;
  const input = (name, placeholder) => h("input", { name, id: `au-${name}`, value: params.get(name) || "", placeholder });
  const actor = input("actor", "master");
  const action = input("action", "key.created");
  const target = input("target", "key_…");
  const from = h("input", { type: "datetime-local", name: "from", value: localFromIso(params.get("from") || "") });
  const to = h("input", { type: "datetime-local", name: "to", value: localFromIso(params.get("to") || "") });
  const result = h("div", { id: "verify-result", "aria-live": "polite" });
  const verify = h("button", { type: "button" }, "Verify chain");
  const results = h("div", {});
  const pager = h("div", { class: "actions" });
  let offset = Number(params.get("offset") || 0);

  main.append(h("div", { class: "page-head" }, h("h1", {}, "Audit"), verify),
    result,
    h("form", { class: "toolbar", role: "search", on: { submit: (e) => { e.preventDefault(); offset = 0; refresh(); } } },
      field("Actor", actor), field("Action", action), field("Target id", target), field("From", from), field("To", to),
      h("div", {}, h("button", { type: "submit" }, "Filter"))),
    h("p", { class: "hint" }, `Every admin action and key event, chained by keyed hashes; times in your time zone (${timeZone}).`),
    results, pager);

  async function page() {
    const query = { actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim(), from: isoFromLocal(from.value), to: isoFromLocal(to.value) };
    ctx.setParams({ ...query, offset: offset || "" });
    const entries = await api.get("/audit", { ...query, limit: PAGE, offset });
    clear(pager);
    if (offset > 0) pager.append(h("button", { type: "button", class: "secondary", on: { click: () => { offset = Math.max(0, offset - PAGE); refresh(); } } }, "Newer"));
    if (entries.length === PAGE) pager.append(h("button", { type: "button", class: "secondary", on: { click: () => { offset += PAGE; refresh(); } } }, "Older"));
    if (!entries.length) return empty("No audit entries match", "Clear the filters; every change made through the API, the CLI or this UI is recorded here.");
    return table([
      { label: "#", value: (e) => count(e.seq), num: true },
      { label: "Time", value: (e) => timeCell(e.ts, true) },
      { label: "Actor", value: (e) => h("span", { class: "mono" }, e.actor) },
      { label: "Action", value: (e) => e.action },
      { label: "Target", value: (e) => h("span", { class: "mono" }, [e.target_type, e.target_id].filter(Boolean).join(" ")), narrow: true },
      { label: "Details", value: (e) => h("code", {}, JSON.stringify(e.details)), narrow: true },
    ], entries);
  }

  function refresh() {
    return load(results, page);
  }

  verify.addEventListener("click", async () => {
    verify.disabled = true;
    clear(result).append(progress("Verifying every link of the chain…"));
    try {
      const outcome = await api.get("/audit/verify");
      clear(result).append(outcome.ok
        ? h("p", { class: "success", role: "status" }, `Chain intact: ${count(outcome.entries)} entries verified.`)
        : h("p", { class: "error", role: "alert" }, `Chain broken at entry #${outcome.broken_at}: ${outcome.reason} (${count(outcome.entries)} entries verified before it).`));
    } catch (error) {
      clear(result).append(errorBox(error));
    } finally {
      verify.disabled = false;
    }
  });
  for (const control of [from, to]) control.addEventListener("change", () => { offset = 0; refresh(); });
  await refresh();
}
