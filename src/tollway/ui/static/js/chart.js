// Charts drawn as SVG: columns over time, one or two series. Each bar has a <title>
// (its value on hover), and the chart a text description for screen readers.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

// points: [{label, value, alt?, title}]; format: value -> text (axis and titles).
export function columns(points, { format = String, label = "Chart", altLabel, height = 220 } = {}) {
  const width = 760;
  const pad = { top: 12, right: 8, bottom: 26, left: 64 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.value, p.alt || 0))));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
  const total = points.reduce((sum, p) => sum + p.value, 0);
  root.append(svg("desc", {}, `${label}: ${points.length} periods, total ${format(total)}.`));
  for (let i = 0; i <= 4; i += 1) {
    const y = pad.top + innerH - (innerH * i) / 4;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end" }, format((max * i) / 4)));
  }
  const slot = innerW / Math.max(points.length, 1);
  const barW = Math.max(1, slot * (altLabel ? 0.4 : 0.7));
  const every = Math.max(1, Math.ceil(points.length / 12));
  points.forEach((point, index) => {
    const x = pad.left + slot * index + (slot - barW * (altLabel ? 2 : 1)) / 2;
    const bar = (value, offset, cls, name) => {
      const barH = (innerH * value) / max;
      const rect = svg("rect", { x: x + offset, y: pad.top + innerH - barH, width: barW, height: Math.max(barH, value > 0 ? 1 : 0), class: cls });
      rect.append(svg("title", {}, `${point.title || point.label}: ${name ? `${name} ` : ""}${format(value)}`));
      root.append(rect);
    };
    bar(point.value, 0, "bar", altLabel ? label : "");
    if (altLabel) bar(point.alt || 0, barW, "bar alt", altLabel);
    if (index % every === 0) {
      root.append(svg("text", { x: pad.left + slot * index + slot / 2, y: height - 8, "text-anchor": "middle" }, point.label));
    }
  });
  return root;
}

// Horizontal bars for a ranking: rows [{label, value}].
export function ranking(rows, { format = String, label = "Ranking" } = {}) {
  const width = 420;
  const rowH = 24;
  const height = rows.length * rowH + 4;
  const max = Math.max(...rows.map((r) => r.value), 0) || 1;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
  rows.forEach((row, index) => {
    const y = index * rowH + 2;
    const barW = ((width - 150) * row.value) / max;
    const rect = svg("rect", { x: 0, y: y + 3, width: Math.max(barW, row.value > 0 ? 2 : 0), height: rowH - 8, rx: 3, class: "bar" });
    rect.append(svg("title", {}, `${row.label}: ${format(row.value)}`));
    root.append(rect);
    root.append(svg("text", { x: Math.max(barW, 2) + 6, y: y + rowH / 2 + 4 }, format(row.value)));
  });
  return root;
}
