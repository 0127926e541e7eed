// Building the page without innerHTML (data from the APIs is only ever text), and formatting.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("p", {class: "x"}, "text", h("b", {}, "bold")) */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

/** Says `message` to screen readers (the page's polite live region). */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // a fresh text node is announced even when it repeats the last message
  setTimeout(() => (region.textContent = message), 30);
}

export function loading(what) {
  return h("p", { class: "loading", role: "status" }, `Loading ${what}…`);
}

export function errorBox(error, what) {
  const problem = error && error.problem ? error.problem : {};
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("p", {}, h("strong", {}, what ? `Could not load ${what}: ` : ""), error.message || String(error)),
    problem.detail && problem.detail !== error.message ? h("p", {}, problem.detail) : null,
    problem.correlation_id ? h("p", { class: "muted" }, `Correlation id: ${problem.correlation_id}`) : null,
  );
}

// -- formatting -------------------------------------------------------------------------------

const WHEN = new Intl.DateTimeFormat("en-GB", {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZoneName: "short",
});
const DAY = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "short", day: "numeric" });

export function when(iso) {
  return iso ? WHEN.format(new Date(iso)) : "—";
}

export function day(iso) {
  return iso ? DAY.format(new Date(iso)) : "—";
}

/** <time> with the instant in its datetime attribute. */
export function time(iso, format = when) {
  return iso ? h("time", { datetime: iso }, format(iso)) : h("span", {}, "—");
}

/** "3 h 20 min", "2 d 4 h", "1 y 3 mo" */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return "just now";
  const units = [
    ["y", 365 * 86400],
    ["mo", 30 * 86400],
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
  ];
  const parts = [];
  let rest = s;
  for (const [name, size] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)} ${name}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** "just now", "3 h 20 min ago" */
export function ago(seconds) {
  const text = duration(seconds);
  return text === "just now" ? text : `${text} ago`;
}

export function label(value) {
  return value ? String(value).replaceAll("_", " ") : "—";
}

export function quantity(value, unit) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  const shown = Number.isFinite(n) ? n.toLocaleString("en-GB", { maximumFractionDigits: 3 }) : value;
  return unit ? `${shown} ${unit}` : shown;
}

/** Minor units (as the pledges API counts money) in their currency. */
export function money(minor, currency, digits = 2) {
  if (minor === null || minor === undefined) return "—";
  const major = Number(minor) / 10 ** digits;
  try {
    return new Intl.NumberFormat("en-GB", {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(major);
  } catch {
    return `${major.toFixed(digits)} ${currency}`;
  }
}

export function short(hash) {
  return hash ? `${hash.slice(0, 12)}…` : "—";
}

/** "2026-11-24T10:30" for <input type="datetime-local"> from a Date, in local time. */
export function localInput(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** The ISO instant (with offset) of a datetime-local value, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}
