// The convoy board: sign-in, pages by address (#/board, #/convoys/<id>,
// #/municipalities/<id>, #/audit), and the live stream for the signed-in key.

import { ApiError, loadConfig, onSignedOut, session, whoami } from "./api.js";
import { auditPage } from "./audit.js";
import { boardPage } from "./board.js";
import { convoyPage } from "./convoy.js";
import { errorBox, h, replace } from "./dom.js";
import { field } from "./forms.js";
import { startLive, stopLive } from "./live.js";
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
  document.title = "Sign in · twinaid convoys";
  const form = h(
    "form",
    { class: "record signin", novalidate: true, "aria-labelledby": "signin-h" },
    h("h1", { id: "signin-h", tabindex: "-1" }, "Sign in"),
    h("p", {}, "Paste your twinaid API key. It stays in this browser tab only and is forgotten when the tab closes."),
    h("div", { class: "form-errors", tabindex: "-1", hidden: true }),
    field({ name: "key", label: "API key", type: "password", required: true, autocomplete: "off", spellcheck: "false", hint: "It looks like twa_<id>_<secret>." }),
    h("button", { type: "submit" }, "Sign in"),
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
    if (!key) return fail("Enter your API key.");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      session.who = await whoami(key);
      session.key = key;
    } catch (e) {
      const detail = e instanceof ApiError ? e.problem.detail || e.message : String(e);
      fail(e instanceof ApiError && e.status === 401 ? `This key was refused: ${detail}.` : `Could not sign in: ${detail}`);
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

function signedIn() {
  const who = session.who;
  const nav = document.getElementById("nav");
  nav.hidden = false;
  for (const link of nav.querySelectorAll("[data-role]")) link.hidden = !session.has(link.dataset.role);
  replace(
    document.getElementById("who"),
    h("span", { class: "org" }, who.organisation),
    h("span", { class: "roles" }, ` · ${who.roles.join(", ")}`),
    " ",
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
  startLive();
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
    replace(main(), h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/board" }, "Back to the board")));
    return;
  }
  document.title = "twinaid convoys";
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

async function start() {
  // the skip link must not change the address: the address is the page
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  try {
    await loadConfig();
  } catch (error) {
    replace(main(), errorBox(error, "the board's configuration"));
    return;
  }
  onSignedOut(() => signOut("Your key is no longer accepted: sign in again."));
  if (session.key) {
    try {
      session.who = await whoami(session.key);
      signedIn();
    } catch (error) {
      session.key = null;
      signInPage(error instanceof ApiError && error.status === 401 ? "Your key is no longer accepted: sign in again." : null);
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
