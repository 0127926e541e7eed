// Labelled inputs, and the API's problem+json shown next to the fields it names.

import { h } from "./dom.js";
import { t } from "./i18n.js";

let counter = 0;

/**
 * A labelled input whose `data-field` is the body path the API names in `invalid_params`
 * (e.g. "place", "coordinates.lat", "lines.0.received").
 */
export function field({ name, label, type = "text", value = "", required = false, hint, ...attrs }) {
  const id = `f${++counter}-${name.replace(/[^A-Za-z0-9]+/g, "-")}`;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  const control =
    type === "textarea"
      ? h("textarea", { id, name, rows: 2, "data-field": name, "aria-describedby": described, ...attrs }, value)
      : h("input", {
          id,
          name,
          type,
          value,
          "data-field": name,
          "aria-describedby": described,
          "aria-required": required ? "true" : null,
          ...attrs,
        });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label, required ? h("span", { class: "required" }, ` ${t("form.required")}`) : null),
    hint ? h("p", { id: `${id}-hint`, class: "hint" }, hint) : null,
    control,
    h("p", { id: `${id}-error`, class: "field-error", hidden: true }),
  );
}

export function summary() {
  return h("div", { class: "form-errors", tabindex: "-1", hidden: true });
}

/** A friendlier sentence for the validation messages people meet most. */
export function reasonText(reason) {
  const text = String(reason || t("form.not_valid"));
  if (text.includes("should match pattern") && text.includes("\\d+(\\.\\d+)?$")) {
    return t("form.decimal");
  }
  if (text.includes("should match pattern")) return t("form.format");
  if (text === "Field required" || text === "String should have at least 1 character") return t("form.is_required");
  if (text.startsWith("Value error, ")) return text.slice("Value error, ".length);
  return text;
}

export function clearProblems(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const box = form.querySelector(".form-errors");
  if (box) {
    box.replaceChildren();
    box.hidden = true;
  }
}

function labelOf(form, control) {
  const label = form.querySelector(`label[for="${CSS.escape(control.id)}"]`);
  return label ? label.firstChild.textContent.trim() : control.getAttribute("aria-label") || control.id;
}

/**
 * Shows `error` (an ApiError) on `form`: each invalid param next to its input, found by
 * `normalise(name)` matching an input's data-field; the rest in the summary above the form.
 * `extra` adds [{name, reason}] the caller derived from the problem. Focuses the first field.
 */
export function showProblems(form, error, { normalise = (n) => n, extra = [] } = {}) {
  clearProblems(form);
  const problem = error.problem || {};
  const placed = [];
  const unplaced = [];
  for (const param of [...(error.invalid || []), ...extra]) {
    const path = normalise(String(param.name || ""));
    const control = path ? form.querySelector(`[data-field="${CSS.escape(path)}"]`) : null;
    if (!control) {
      unplaced.push(param);
      continue;
    }
    const message = form.querySelector(`#${CSS.escape(control.id)}-error`);
    const text = reasonText(param.reason);
    message.textContent = message.textContent ? `${message.textContent}; ${text}` : text;
    message.hidden = false;
    control.setAttribute("aria-invalid", "true");
    if (!placed.includes(control)) placed.push(control);
  }
  const box = form.querySelector(".form-errors");
  const links = placed.map((control) =>
    h(
      "li",
      {},
      h(
        "a",
        {
          href: `#${control.id}`,
          onclick: (event) => {
            event.preventDefault();
            control.focus();
          },
        },
        `${labelOf(form, control)}: ${form.querySelector(`#${CSS.escape(control.id)}-error`).textContent}`,
      ),
    ),
  );
  box.replaceChildren(
    h("p", { class: "problem-title" }, problem.title || error.message),
    !placed.length || !problem.invalid_params ? h("p", {}, problem.detail || "") : null,
    unplaced.length
      ? h("ul", {}, unplaced.map((p) => h("li", {}, `${p.name}: ${reasonText(p.reason)}`)))
      : null,
    links.length ? h("ul", { class: "error-links" }, links) : null,
    problem.correlation_id ? h("p", { class: "muted" }, t("error.correlation", { id: problem.correlation_id })) : null,
  );
  box.hidden = false;
  box.setAttribute("role", "alert");
  (placed[0] || box).focus();
}

/** Runs `submit` with the form's button disabled; returns its result or undefined. */
export async function busy(form, submit) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    return await submit();
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

/** The SHA-256 of bytes or text, in hex. Needs a secure context (https, or this machine). */
export async function sha256(input) {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const hash = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A digest of a request body, so a retry of the same body re-uses its Idempotency-Key. */
export async function digest(text) {
  if (!globalThis.crypto?.subtle) {
    // not a secure context (plain http to another host): a random key still avoids doubles
    return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
  }
  return sha256(text);
}
