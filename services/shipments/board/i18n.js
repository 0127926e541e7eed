// The board's words (message catalogues i18n-<lang>.json, the same keys in each), its
// language (the browser's, or the one chosen and remembered), and its one time zone.
//
// t(key, {name: value}) fills {name} placeholders; a message given as an object is chosen by
// Intl.PluralRules from params.count ({"one": ..., "few": ..., "many": ..., "other": ...}).
// A key missing from the catalogue shows as ⟦key⟧: visible on the page, and found by the tests.

export const LANGUAGES = { en: "English", uk: "Українська", fr: "Français" };
const LANGUAGE_KEY = "twinaid.board.language";
const ZONE_KEY = "twinaid.board.zone";
// where the browser names no region for the chosen language
const DEFAULT_LOCALES = { en: "en-GB", uk: "uk-UA", fr: "fr-FR" };
// zones offered beside the browser's own: the demo's partner cities and UTC
export const ZONES = ["UTC", "Europe/Kyiv", "Europe/Paris", "Europe/London", "Europe/Warsaw", "Europe/Vilnius", "Europe/Rome"];

let language = "en";
let messages = {};
let plurals = new Intl.PluralRules("en");

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** The language remembered in this browser, else the first of navigator.languages we speak. */
export function chooseLanguage(preferred = navigator.languages || [navigator.language]) {
  const kept = stored(LANGUAGE_KEY);
  if (kept && kept in LANGUAGES) return kept;
  for (const tag of preferred) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary in LANGUAGES) return primary;
  }
  return "en";
}

export async function loadLanguage(lang = chooseLanguage()) {
  const response = await fetch(`i18n-${lang}.json`);
  if (!response.ok) throw new Error(`i18n-${lang}.json: HTTP ${response.status}`);
  messages = await response.json();
  language = lang;
  plurals = new Intl.PluralRules(locale());
  document.documentElement.lang = lang;
  return lang;
}

export function currentLanguage() {
  return language;
}

/** The locale for Intl: the browser's own tag when it is of the chosen language (en-US, fr-CA). */
export function locale() {
  const tags = navigator.languages || [navigator.language];
  const own = tags.find((tag) => String(tag).toLowerCase().split("-")[0] === language && tag.includes("-"));
  return own || DEFAULT_LOCALES[language];
}

/** The one time zone of every date shown and typed: chosen, else the browser's. */
export function zone() {
  const kept = stored(ZONE_KEY);
  if (kept && validZone(kept)) return kept;
  return browserZone();
}

// older names some browsers still report: shown as Ukraine writes its capital today
const RENAMED = { "Europe/Kiev": "Europe/Kyiv", "Europe/Uzhgorod": "Europe/Kyiv", "Europe/Zaporozhye": "Europe/Kyiv" };

export function browserZone() {
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  return RENAMED[own] && validZone(RENAMED[own]) ? RENAMED[own] : own;
}

function validZone(name) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export function remember(languageChoice, zoneChoice) {
  if (languageChoice) localStorage.setItem(LANGUAGE_KEY, languageChoice);
  if (zoneChoice) localStorage.setItem(ZONE_KEY, zoneChoice);
}

export function has(key) {
  return Object.hasOwn(messages, key);
}

export function t(key, params = {}) {
  let message = messages[key];
  if (message === undefined) return `⟦${key}⟧`;
  if (typeof message === "object") {
    const n = Number(params.count ?? 0);
    message = message[plurals.select(n)] ?? message.other;
  }
  return message.replace(/\{(\w+)\}/g, (whole, name) => {
    const value = params[name];
    if (value === undefined || value === null) return whole;
    return typeof value === "number" ? number(value) : String(value);
  });
}

/** A value from the data (a status, a kind, a category) in words; unknown values as they are. */
export function term(value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = `term.${value}`;
  return has(key) ? messages[key] : String(value).replaceAll("_", " ");
}

/** A unit of the data ("tonnes", "pieces") as this language writes it after a number. */
export function unitName(unit) {
  const key = `unit.${unit}`;
  return has(key) ? messages[key] : unit;
}

export function number(value, options = {}) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 3, ...options }).format(value);
}

/** Sets the text of each [data-i18n] element of the static page (index.html). */
export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}
