// The convoy board: sign-in, pages by address (#/board, #/convoys/<id>,
// #/municipalities/<id>, #/audit), and the live stream for the signed-in key.

import { ApiError, loadConfig, onSignedOut, session, whoami } from "./api.js";
import { auditPage } from "./audit.js";
import { boardPage } from "./board.js";
import { convoyPage } from "./convoy.js";
import { errorBox, h, offsetName, replace } from "./dom.js";
import { field } from "./forms.js";
import { LANGUAGES, ZONES, browserZone, currentLanguage, loadLanguage, remember, t, term, translateStatic, zone } from "./i18n.js";
import { showLive, startLive, stopLive } from "./live.js";
import { municipalityPage } from "./municipality.js";

const ROUTES = [
  [/^\/board$/, boardPage, "board"],
  [/^\/convoys\/([^/]+)$/, convoyPage, "board"],
  [/^\/municipalities(?:\/([^/]+))?$/, municipalityPage, "municipality"],
  [/^\/audit$/, auditPage, "audit"],
];

const main = () => document.getElementById("main");
let cleanup = null;
let generation = 0;

function signInPage(message) {
  document.title = `${t("signin.title")} · ${t("page.title")}`;
  const form = h(
    "form",
    { class: "record signin", novalidate: true, "aria-labelledby": "signin-h" },
    h("h1", { id: "signin-h", tabindex: "-1" }, t("signin.title")),
    h("p", {}, t("signin.intro")),
    h("div", { class: "form-errors", tabindex: "-1", hidden: true }),
    field({ name: "key", label: t("signin.key"), type: "password", required: true, autocomplete: "off", spellcheck: "false", hint: t("signin.key_hint") }),
    h("button", { type: "submit" }, t("signin.button")),
  );
  const input = form.querySelector("input");
  const error = form.querySelector(".field-error");
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  if (message) setTimeout(() => fail(message), 0);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return fail(t("signin.empty"));
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      session.who = await whoami(key);
      session.key = key;
    } catch (e) {
      const detail = e instanceof ApiError ? e.problem.detail || e.message : String(e);
      fail(e instanceof ApiError && e.status === 401 ? t("signin.refused", { detail }) : t("signin.failed", { detail }));
      return;
    } finally {
      button.disabled = false;
    }
    signedIn();
    if (!location.hash || location.hash === "#/" || location.hash === "#/signin") location.hash = "#/board";
    else render();
  });
  replace(main(), form);
  input.focus();
}

function signedIn({ live = true } = {}) {
  const who = session.who;
  const nav = document.getElementById("nav");
  nav.hidden = false;
  for (const link of nav.querySelectorAll("[data-role]")) link.hidden = !session.has(link.dataset.role);
  replace(
    document.getElementById("who"),
    h("span", { class: "org" }, who.organisation),
    h("span", { class: "roles" }, ` · ${who.roles.map(term).join(", ")}`),
    " ",
    h("button", { type: "button", class: "link", onclick: signOut }, t("signin.sign_out")),
  );
  if (live) startLive();
}

function signOut(message) {
  session.key = null;
  session.who = null;
  stopLive();
  if (cleanup) cleanup();
  cleanup = null;
  document.getElementById("nav").hidden = true;
  replace(document.getElementById("who"));
  signInPage(typeof message === "string" ? message : null);
}

async function render() {
  if (!session.who) {
    signInPage();
    return;
  }
  const [path, search] = (location.hash.slice(1) || "/board").split("?");
  const params = new URLSearchParams(search || "");
  const found = ROUTES.map(([pattern, page, tab]) => [path.match(pattern), page, tab]).find(([m]) => m);
  if (cleanup) cleanup();
  cleanup = null;
  const mine = ++generation;
  for (const link of document.querySelectorAll("#nav a")) {
    if (found && link.dataset.tab === found[2]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!found) {
    replace(main(), h("h1", { tabindex: "-1" }, t("notfound.title")), h("p", {}, h("a", { href: "#/board" }, t("notfound.back"))));
    return;
  }
  document.title = t("page.title");
  const [match, page] = found;
  try {
    const done = await page(main(), params, match[1] ? decodeURIComponent(match[1]) : null);
    if (mine !== generation) {
      if (done) done();
      return;
    }
    cleanup = done;
  } catch (error) {
    if (mine === generation) replace(main(), errorBox(error));
  }
}

function focusHeading() {
  // after a page change, screen readers and keyboards start at its heading
  const heading = main().querySelector("h1");
  if (heading) heading.focus({ preventScroll: false });
}

/** The language and time zone choices in the header; a change is remembered and redraws. */
function preferences() {
  const language = h(
    "select",
    { id: "pref-language" },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, lang: code, selected: code === currentLanguage() }, name)),
  );
  const zones = [...new Set([browserZone(), zone(), ...ZONES])];
  const timeZone = h(
    "select",
    { id: "pref-zone" },
    zones.map((z) => h("option", { value: z, selected: z === zone() }, z)),
  );
  const redraw = async () => {
    remember(language.value, timeZone.value);
    await loadLanguage(language.value);
    translateStatic();
    showLive();
    preferences();
    if (session.who) signedIn({ live: false });
    await render();
  };
  language.addEventListener("change", redraw);
  timeZone.addEventListener("change", redraw);
  replace(
    document.getElementById("prefs"),
    h("label", { for: "pref-language", class: "visually-hidden" }, t("prefs.language")),
    language,
    h("label", { for: "pref-zone", class: "pref-zone-label" }, t("prefs.times_in")),
    timeZone,
    h("span", { id: "zone-offset", class: "zone-offset" }, offsetName()),
  );
}

async function start() {
  try {
    await loadLanguage();
  } catch (error) {
    replace(main(), errorBox(error));
    return;
  }
  translateStatic();
  showLive();
  preferences();
  // the skip link must not change the address: the address is the page
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  try {
    await loadConfig();
  } catch (error) {
    replace(main(), errorBox(error, t("what.configuration")));
    return;
  }
  onSignedOut(() => signOut(t("signin.expired")));
  if (session.key) {
    try {
      session.who = await whoami(session.key);
      signedIn();
    } catch (error) {
      session.key = null;
      signInPage(error instanceof ApiError && error.status === 401 ? t("signin.expired") : null);
      return;
    }
  }
  window.addEventListener("hashchange", async () => {
    await render();
    focusHeading();
  });
  await render();
}

start();
