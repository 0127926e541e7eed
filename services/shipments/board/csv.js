// CSV of what a page shows, made in the browser from the data it already fetched: RFC 4180
// quoting, CRLF line ends, UTF-8 with a byte order mark (spreadsheet apps then read Ukrainian
// names right), dates as ISO 8601 instants in UTC and numbers as the API gives them (no
// thousands separators), so that any locale's spreadsheet reads them back.

import { h } from "./dom.js";
import { t } from "./i18n.js";

// A text cell a spreadsheet would read as a formula (OWASP "CSV injection": beginning with
// = + - @, a tab or a carriage return) gets a single quote before it, so the text is shown;
// numbers, and text that is a plain number ("-20000.00"), stay as they are (as shared/hxl.py).
const FORMULA_START = /^[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

export function cell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value !== "number" && typeof value !== "bigint" && FORMULA_START.test(text) && !PLAIN_NUMBER.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The CSV text of a header row and data rows (arrays of values). */
export function toCsv(header, rows) {
  return [header, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

/** Saves `text` as `filename` (a Blob download: nothing leaves the browser). */
export function download(filename, text) {
  const blob = new Blob(["\uFEFF", text], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A button that downloads what `make()` returns ([header, rows]) as `filename`. */
export function csvButton(filename, make, { id, what } = {}) {
  const button = h("button", { type: "button", class: "csv secondary", id, "data-csv": filename }, t("csv.download", { what: what || "" }).trim());
  button.addEventListener("click", () => {
    const [header, rows] = make();
    download(filename, toCsv(header, rows));
  });
  return button;
}

/** "lille-kharkiv-2022-06.csv": a file name from ids, safe on every system. */
export function fileName(...parts) {
  return `${parts.filter(Boolean).join("-").replace(/[^A-Za-z0-9._-]+/g, "_")}.csv`;
}
