// Building the page: elements, tables, empty states, errors, progress, dialogs, copying.
// Text is always set as text (never parsed as HTML), so nothing a caller stored can run.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else if (name in node && !name.includes("-") && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function empty(title, text, action) {
  return h("div", { class: "empty" }, h("strong", { text: title }), h("p", { text }), action);
}

export function errorBox(error, retry) {
  const message = error && error.message ? error.message : String(error);
  return h("div", { class: "error", role: "alert" }, message, " ",
    retry ? h("button", { type: "button", class: "link", on: { click: retry } }, "Try again") : null);
}

export function progress(text = "Loading…") {
  return h("p", { class: "progress", role: "status" }, text);
}

// Shows progress in `node` while `work` runs, then what it returns (or the error where
// it happened, with a way to try again).
export async function load(node, work) {
  clear(node).append(progress());
  try {
    const result = await work();
    clear(node);
    append(node, [result]);
  } catch (error) {
    if (error && error.redirected) return;
    clear(node).append(errorBox(error, () => load(node, work)));
  }
}

// columns: [{label, value: row => text|Node, num: bool, narrow: bool (hidden on phones)}]
export function table(columns, rows, { caption, footer } = {}) {
  const cls = (column) => [column.num ? "num" : "", column.narrow ? "hide-narrow" : ""].join(" ").trim() || undefined;
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: cls(c) }, c.label)));
  const body = rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: cls(c) }, c.value(row)))));
  const foot = footer ? h("tfoot", {}, h("tr", {}, columns.map((c) => h("td", { class: cls(c) }, footer(c))))) : null;
  return h("div", { class: "table-wrap" },
    h("table", {}, caption ? h("caption", { text: caption }) : null, h("thead", {}, head), h("tbody", {}, body), foot));
}

export function badge(text, tone) {
  return h("span", { class: tone ? `badge ${tone}` : "badge" }, text);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintNode = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) input.setAttribute("aria-describedby", hintNode.id);
  return h("div", { class: input.dataset.wide ? "wide" : undefined }, h("label", { for: id }, label), input, hintNode);
}

// A modal dialog (native <dialog>: focus moves in, Escape closes); resolves with what
// `onSubmit` returns, or null when closed. An error `onSubmit` throws is shown in it.
export function dialog(title, content, { submit = "Save", onSubmit, danger = false } = {}) {
  return new Promise((resolve) => {
    const error = h("div", {});
    const button = h("button", { type: "submit", class: danger ? "danger" : undefined }, submit);
    const cancel = h("button", { type: "button", class: "secondary" }, onSubmit ? "Cancel" : "Close");
    // novalidate: every problem is reported the same way, in the dialog, next to its field.
    const form = h("form", { method: "dialog", novalidate: true }, h("h2", { text: title }), content, error,
      h("div", { class: "dialog-actions" }, cancel, onSubmit ? button : null));
    const box = h("dialog", { "aria-label": title }, form);
    let result = null;
    cancel.addEventListener("click", () => box.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!onSubmit) return box.close();
      clear(error);
      button.disabled = true;
      button.textContent = "Working…";
      try {
        result = await onSubmit();
        if (result !== undefined) box.close();
      } catch (problem) {
        error.append(errorBox(problem));
        markField(form, problem);
      } finally {
        button.disabled = false;
        button.textContent = submit;
      }
    });
    box.addEventListener("close", () => { box.remove(); resolve(result); });
    document.body.append(box);
    box.showModal();
  });
}

function markField(form, problem) {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const param = problem && problem.param ? String(problem.param).split(".")[0] : null;
  const input = param ? form.querySelector(`[name="${CSS.escape(param)}"]`) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

export async function confirm(title, text, action = "Confirm") {
  const done = await dialog(title, h("p", { text }), { submit: action, danger: true, onSubmit: async () => true });
  return done === true;
}

export function toast(message) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const note = h("div", { class: "toast" }, message);
  box.append(note);
  setTimeout(() => note.remove(), 3500);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without the asynchronous clipboard (an insecure origin): select and copy.
    const area = h("textarea", { class: "skip" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied");
}

export function copyButton(label, text) {
  return h("button", { type: "button", class: "secondary", on: { click: () => copy(typeof text === "function" ? text() : text) } }, label);
}

export function input(props = {}) {
  return h("input", props);
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}
