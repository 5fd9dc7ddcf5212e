// Providers: each deployment's circuit state, latency and error rate (as this gateway
// process sees them), and the kill switches.

import { api } from "../api.js";
import { h, clear, empty, load, table, badge, confirm, toast, errorBox } from "../dom.js";
import { count, ms } from "../format.js";

const STATE_TONE = { closed: "ok", half_open: "warn", open: "bad" };

function switchButton(ctx, label, on, change, after) {
  if (!ctx.can("operator")) return badge(on ? "on" : "off", on ? "ok" : "bad");
  return h("div", { class: "actions" }, badge(on ? "on" : "off", on ? "ok" : "bad"),
    h("button", {
      type: "button",
      class: on ? "danger" : "secondary",
      "aria-label": `${on ? "Turn off" : "Turn on"} ${label}`,
      on: {
        click: async (event) => {
          const verb = on ? "Turn off" : "Turn on";
          const text = on ? `Calls to ${label} get 503 switched_off on every gateway until it is turned back on.` : `${label} serves calls again.`;
          if (!(await confirm(`${verb} ${label}?`, text, verb))) return;
          try {
            await api.patch("/switches", change(!on));
            toast(`${label} turned ${on ? "off" : "on"}`);
            await after();
          } catch (error) {
            event.target.closest("td, .panel").append(errorBox(error));
          }
        },
      },
    }, on ? "Turn off" : "Turn on"));
}

export async function render(main, ctx) {
  const body = h("div", {});
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Providers"),
    h("button", { type: "button", class: "secondary", on: { click: () => load(body, draw) } }, "Refresh")),
  h("p", { class: "muted" }, "Health is what this gateway process has seen since it started: circuit state, latency (moving average) and recent error rate per deployment."),
  body);

  async function draw() {
    const [report, switches] = await Promise.all([api.get("/providers"), api.get("/switches")]);
    const refresh = () => load(body, draw);
    if (!report.providers.length) {
      return empty("No providers configured", "Add providers and models to tollway.yaml (or set OPENAI_API_KEY / ANTHROPIC_API_KEY) and restart the gateway.");
    }
    const proxy = h("div", { class: "panel" }, h("h2", {}, "Whole proxy"),
      switchButton(ctx, "the whole proxy", switches.proxy, (v) => ({ proxy: v }), refresh));
    const cards = report.providers.map((provider) => {
      const providerOn = switches.providers[provider.name] !== false;
      const rows = provider.deployments;
      const columns = [
        { label: "Model", value: (d) => h("div", {}, h("strong", {}, d.model_name), h("div", { class: "muted mono" }, d.model)) },
        { label: "Circuit", value: (d) => badge(d.state.replace("_", " "), STATE_TONE[d.state]) },
        { label: "In flight", value: (d) => count(d.in_flight), num: true, narrow: true },
        { label: "Requests", value: (d) => count(d.requests), num: true },
        { label: "Failures", value: (d) => count(d.failures), num: true, narrow: true },
        { label: "Error rate", value: (d) => `${(100 * d.error_rate).toFixed(1)}%`, num: true },
        { label: "Latency", value: (d) => ms(d.latency_ewma_ms), num: true },
        { label: "Weight", value: (d) => count(d.weight), num: true, narrow: true },
        { label: "Last error", value: (d) => d.last_error || "—", narrow: true },
        { label: "Switch", value: (d) => {
          const label = `${d.provider}/${d.model}`;
          const on = switches.deployments[label] !== false;
          return switchButton(ctx, label, on, (v) => ({ deployments: { [label]: v } }), refresh);
        } },
      ];
      return h("section", { class: "panel", "aria-label": provider.name },
        h("div", { class: "page-head" },
          h("h2", {}, provider.name, " ", h("span", { class: "muted" }, `${provider.type} · ${provider.dialect}`)),
          switchButton(ctx, `provider ${provider.name}`, providerOn, (v) => ({ providers: { [provider.name]: v } }), refresh)),
        h("p", { class: "muted mono" }, provider.base_url),
        rows.length ? table(columns, rows) : empty("No models use this provider", "Name it in a model's provider or deployments in the config."));
    });
    return h("div", {}, proxy, cards);
  }

  clear(body);
  await load(body, draw);
}
