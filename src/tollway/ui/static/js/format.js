// Numbers, money, tokens and times as people read them; times in the browser's zone.

const usd2 = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const usdSmall = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumSignificantDigits: 3 });
const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compactNumber = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const whenSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const hour = new Intl.DateTimeFormat(undefined, { hour: "numeric" });

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

export function usd(value) {
  if (value === null || value === undefined || value === "") return "—";
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  if (number !== 0 && Math.abs(number) < 0.01) return usdSmall.format(number);
  return usd2.format(number);
}

export function count(value) {
  if (value === null || value === undefined) return "—";
  return whole.format(Number(value));
}

export function compact(value) {
  return compactNumber.format(Number(value || 0));
}

export function tokens(value) {
  return `${count(value)}`;
}

export function percent(part, total) {
  if (!total) return "—";
  const value = (100 * part) / total;
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)}%`;
}

export function dateTime(value, seconds = false) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return (seconds ? whenSeconds : when).format(date);
}

export function timeCell(value, seconds = false) {
  const node = document.createElement("time");
  node.dateTime = value || "";
  node.textContent = dateTime(value, seconds);
  if (value) node.title = new Date(value).toISOString();
  return node;
}

export function dayLabel(date) {
  return day.format(date);
}

export function hourLabel(date) {
  return hour.format(date);
}

export function ms(value) {
  if (value === null || value === undefined) return "—";
  const number = Number(value);
  return number >= 1000 ? `${(number / 1000).toFixed(2)} s` : `${number.toFixed(0)} ms`;
}

// An <input type="datetime-local"> value (the browser's zone) as an ISO instant.
export function isoFromLocal(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// An ISO instant as an <input type="datetime-local"> value in the browser's zone.
export function localFromIso(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
