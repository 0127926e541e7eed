// Building the page without innerHTML (data from the APIs is only ever text), and formatting
// in the chosen language (Intl) and the one time zone of the page (i18n.js).

import { locale, number, t, term, unitName, zone } from "./i18n.js";

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

/**
 * A table that scrolls in its wrapper on wide screens and stacks into cards on narrow ones
 * (style.css `.stacked`, each cell labelled by its `data-label`): `caption` for screen readers,
 * a column header for each of `heads`, then `rows` (or a <tbody> the caller fills later).
 */
export function stackedTable(kind, caption, heads, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: kind ? `stacked ${kind}` : "stacked" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, heads.map((head) => h("th", { scope: "col" }, head)))),
      rows instanceof Node ? rows : h("tbody", {}, rows),
    ),
  );
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
  return h("p", { class: "loading", role: "status" }, t("loading.what", { what }));
}

export function errorBox(error, what) {
  const problem = error && error.problem ? error.problem : {};
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("p", {}, h("strong", {}, what ? t("error.could_not_load", { what }) : ""), error.message || String(error)),
    problem.detail && problem.detail !== error.message ? h("p", {}, problem.detail) : null,
    problem.correlation_id ? h("p", { class: "muted" }, t("error.correlation", { id: problem.correlation_id })) : null,
  );
}

// -- formatting: one locale, one time zone --------------------------------------------------

const formats = new Map();
function format(kind, timeZone = zone()) {
  const key = `${kind}|${locale()}|${timeZone}`;
  if (!formats.has(key)) {
    const options = {
      when: { dateStyle: "medium", timeStyle: "short" },
      day: { dateStyle: "medium" },
      utc: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" },
    }[kind];
    formats.set(key, new Intl.DateTimeFormat(locale(), { ...options, timeZone }));
  }
  return formats.get(key);
}

/** "14 Jun 2022, 10:30" in the page's time zone (named once on the page, next to the choice). */
export function when(iso) {
  return iso ? format("when").format(new Date(iso)) : "—";
}

export function day(iso) {
  return iso ? format("day").format(new Date(iso)) : "—";
}

/** "2022-06-14 08:30:00 UTC": for audit views and hashes, where UTC matters. */
export function utc(iso) {
  if (!iso) return "—";
  return `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** <time> with the instant in its datetime attribute. */
export function time(iso, formatter = when) {
  return iso ? h("time", { datetime: iso, title: utc(iso) }, formatter(iso)) : h("span", {}, "—");
}

/** "3 h 20 min", "2 d 4 h", "1 y 3 mo" */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("time.just_now");
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
      parts.push(t(`time.unit.${name}`, { n: Math.floor(rest / size) }));
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** "just now", "3 h 20 min ago" */
export function ago(seconds) {
  if (Math.round(seconds) < 60) return t("time.just_now");
  return t("time.ago", { duration: duration(seconds) });
}

/** A value from the data in words (statuses, kinds, categories). */
export function label(value) {
  return term(value);
}

export function quantity(value, unit) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  const shown = Number.isFinite(n) ? number(n) : value;
  return unit ? `${shown} ${unitName(unit)}` : shown;
}

/** Minor units (as the pledges API counts money) in their currency. */
export function money(minor, currency, digits = 2) {
  if (minor === null || minor === undefined) return "—";
  const major = Number(minor) / 10 ** digits;
  try {
    return new Intl.NumberFormat(locale(), {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(major);
  } catch {
    return `${number(major, { minimumFractionDigits: digits, maximumFractionDigits: digits })} ${currency}`;
  }
}

/** A full hash, never cut: wraps where it must, selectable, with a button that copies it. */
export function hashValue(hex, { label: name } = {}) {
  if (!hex) return h("span", { class: "muted" }, "—");
  const button = h("button", { type: "button", class: "copy", "aria-label": t("hash.copy_label", { what: name || t("hash.hash") }) }, t("hash.copy"));
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(hex);
      button.textContent = t("hash.copied");
    } catch {
      // no clipboard here (plain http to another host): select it for Ctrl+C
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = t("hash.selected");
    }
    setTimeout(() => (button.textContent = t("hash.copy")), 2000);
  });
  const code = h("code", { class: "hash-value", translate: "no" }, hex);
  return h("span", { class: "hash" }, code, " ", button);
}

// -- the page's time zone for typed dates ---------------------------------------------------

function wallParts(date, timeZone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(date);
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}

/** How far `timeZone` is ahead of UTC at `date`, in ms. */
export function offsetOf(date, timeZone = zone()) {
  const p = wallParts(date, timeZone);
  const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return wall - Math.floor(date.getTime() / 1000) * 1000;
}

/** "UTC+03:00" */
export function offsetName(date = new Date(), timeZone = zone()) {
  const minutes = Math.round(offsetOf(date, timeZone) / 60000);
  const sign = minutes < 0 ? "−" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** "2026-11-24 10:30", the wall time in the page's zone, for the "when" inputs (ISO order in
 * every language; "T" in place of the space is read too). */
export function zonedInput(date = new Date(), timeZone = zone()) {
  const p = wallParts(date, timeZone);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** The instant of a wall time ("2026-11-24T10:30", or a day "2026-11-24") in the page's zone. */
export function fromZoned(value, timeZone = zone()) {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec((value || "").trim());
  if (!match) return null;
  const [y, mo, d, hh = 0, mi = 0, ss = 0] = match.slice(1).map((v) => (v === undefined ? 0 : Number(v)));
  const wall = Date.UTC(y, mo - 1, d, hh, mi, ss);
  // the offset at the instant itself: twice, so a wall time next to a DST change settles
  let instant = wall - offsetOf(new Date(wall), timeZone);
  instant = wall - offsetOf(new Date(instant), timeZone);
  return new Date(instant);
}

/** The UTC ISO instant of a datetime-local value read in the page's zone, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const date = fromZoned(value);
  return date ? date.toISOString() : value;
}

export const localInput = zonedInput;
