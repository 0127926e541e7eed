// Recording from the page: a checkpoint, and the recipient's proof of delivery. The API is
// the judge: what it refuses is shown next to the field it names.

import { ApiError, api, session } from "./api.js";
import { announce, fromLocalInput, h, localInput, offsetName, quantity, utc } from "./dom.js";
import { t, unitName, zone } from "./i18n.js";
import { busy, clearProblems, digest, field, sha256, showProblems, summary } from "./forms.js";

/** Mirrors services/shipments/access.py, to offer only forms the key may use. */
export function mayRecordRoad(c) {
  const who = session.who;
  if (!who) return false;
  if (session.has("registry_admin")) return true;
  if (who.organisation === c.carrier_id && session.has("member", "logistics")) return true;
  return [c.origin_id, c.destination_id].includes(who.organisation) && session.has("logistics");
}

export function mayConfirmDelivery(c) {
  const who = session.who;
  if (!who) return false;
  return session.has("registry_admin") || (who.organisation === c.destination_id && session.has("member", "logistics"));
}

function newId() {
  return globalThis.crypto?.randomUUID ? crypto.randomUUID() : `board-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function done(form, text) {
  const status = form.querySelector(".form-done");
  status.textContent = text;
  announce(text);
}

function value(form, name) {
  const control = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  return control ? control.value.trim() : "";
}

/** One write's Idempotency-Key: a retry of it (same route, same record, same body) is the same
 * key; the same form content sent to another convoy is another write, so another key. */
async function keyFor(prefix, convoyId, body) {
  return `board-${prefix}-${(await digest(JSON.stringify([convoyId, body]))).slice(0, 24)}`;
}

/** "entries.0.checkpoint.place" and "entries[<id>].occurred_at" name the inputs "place", "occurred_at". */
function entryField(name) {
  return name.replace(/^entries(\.\d+(\.checkpoint)?|\[[^\]]*\])\.?/, "");
}

/** "When": a wall time in the page's one time zone (named), and the UTC instant it is sent as. */
function whenField() {
  const wrap = field({ name: "occurred_at", label: t("record.when"), type: "text", autocomplete: "off", pattern: "\\d{4}-\\d{2}-\\d{2}[ T]\\d{2}:\\d{2}", placeholder: t("record.when_format"), value: localInput(), hint: t("record.when_hint", { zone: zone(), offset: offsetName() }) });
  const input = wrap.querySelector("input");
  const sent = h("p", { class: "hint utc-preview", "aria-live": "polite" });
  const show = () => {
    const at = fromLocalInput(input.value);
    sent.textContent = at && !Number.isNaN(new Date(at).getTime()) ? t("record.sent_as", { utc: utc(at) }) : "";
  };
  input.addEventListener("input", show);
  input.addEventListener("change", show);
  show();
  input.after(sent);
  return wrap;
}

function setWhen(form, value) {
  const input = form.querySelector('[data-field="occurred_at"]');
  input.value = value;
  input.dispatchEvent(new Event("change"));
}

export function checkpointForm(getConvoy, reload) {
  // one id per entry: re-sent unchanged after a lost answer, it is recorded once
  let entryId = newId();
  const form = h(
    "form",
    { class: "record", id: "checkpoint-form", novalidate: true, "aria-labelledby": "checkpoint-h" },
    h("h3", { id: "checkpoint-h" }, t("record.checkpoint_title")),
    summary(),
    field({ name: "place", label: t("record.place"), required: true, autocomplete: "off" }),
    whenField(),
    h(
      "div",
      { class: "pair" },
      field({ name: "coordinates.lat", label: t("record.latitude"), type: "number", step: "any", inputmode: "decimal", hint: t("record.latitude_hint") }),
      field({ name: "coordinates.lon", label: t("record.longitude"), type: "number", step: "any", inputmode: "decimal", hint: t("record.longitude_hint") }),
    ),
    field({ name: "note", label: t("record.note"), type: "textarea" }),
    h("button", { type: "submit" }, t("record.checkpoint_button")),
    h("p", { class: "form-done", role: "status" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const convoy = getConvoy();
    const entry = { entry_id: entryId, kind: "checkpoint", occurred_at: fromLocalInput(value(form, "occurred_at")) };
    if (value(form, "place")) entry.place = value(form, "place");
    const lat = value(form, "coordinates.lat");
    const lon = value(form, "coordinates.lon");
    if (lat || lon) {
      entry.coordinates = {};
      if (lat) entry.coordinates.lat = Number(lat);
      if (lon) entry.coordinates.lon = Number(lon);
    }
    if (value(form, "note")) entry.note = value(form, "note");
    const body = { entries: [entry] };
    await busy(form, async () => {
      clearProblems(form);
      form.querySelector(".form-done").textContent = "";
      try {
        await api("shipments", `/v1/convoys/${encodeURIComponent(convoy.convoy_id)}/entries`, {
          method: "POST",
          body,
          headers: { "Idempotency-Key": await keyFor("entries", convoy.convoy_id, body) },
        });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        // refused: nothing was stored, so the next try is a new entry
        if (error.status >= 400 && error.status < 500) entryId = newId();
        showProblems(form, error, { normalise: entryField });
        return;
      }
      entryId = newId();
      form.reset();
      setWhen(form, localInput());
      done(form, t("record.checkpoint_done", { place: entry.place }));
      await reload().catch(() => {});
    });
  });
  return form;
}

/** The API's arithmetic (received + damaged + short = loaded - lost) next to each wrong line. */
function arithmetic(error, lines) {
  const index = new Map(lines.map((line, i) => [line.manifest_line_id, i]));
  return (error.problem.lines || [])
    .filter((x) => x.total !== x.expected)
    .map((x) => ({
      name: `lines.${index.get(x.manifest_line_id)}.received`,
      reason: t("record.arithmetic", { received: x.received, damaged: x.damaged, short: x.short, total: x.total, unit: x.unit, loaded: x.loaded, lost: x.lost, expected: x.expected }),
    }));
}

export function deliveryForm(getConvoy, reload) {
  const convoy = getConvoy();
  const lines = convoy.manifest.filter((line) => line.state === "loaded");
  let receipt = null; // {name, sha256} of a chosen file: only its digest leaves the browser
  const fileInput = h("input", { id: "receipt-file", type: "file", "aria-describedby": "receipt-hint receipt-digest" });
  const fileDigest = h("p", { id: "receipt-digest", class: "hint", "aria-live": "polite" });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    receipt = null;
    fileDigest.textContent = "";
    if (!file) return;
    if (!globalThis.crypto?.subtle) {
      fileDigest.textContent = t("record.no_digest");
      return;
    }
    const hex = await sha256(await file.arrayBuffer());
    receipt = { name: file.name.slice(0, 200), sha256: hex };
    fileDigest.textContent = `sha256 ${hex}`;
  });
  const rows = lines.map((line, i) => {
    const expected = Number(line.quantity) - Number(line.lost);
    return h(
      "fieldset",
      { class: "line" },
      h("legend", {}, t(Number(line.lost) ? "record.line_legend_lost" : "record.line_legend", { item: line.item, line: line.manifest_line_id, vehicle: line.vehicle, loaded: quantity(line.quantity, line.unit), lost: quantity(line.lost) })),
      h(
        "div",
        { class: "triple" },
        field({ name: `lines.${i}.received`, label: t("record.received", { unit: unitName(line.unit) }), value: String(expected), inputmode: "decimal", autocomplete: "off" }),
        field({ name: `lines.${i}.damaged`, label: t("record.damaged", { unit: unitName(line.unit) }), value: "0", inputmode: "decimal", autocomplete: "off" }),
        field({ name: `lines.${i}.short`, label: t("record.short", { unit: unitName(line.unit) }), value: "0", inputmode: "decimal", autocomplete: "off" }),
      ),
    );
  });
  const form = h(
    "form",
    { class: "record", id: "delivery-form", novalidate: true, "aria-labelledby": "delivery-h" },
    h("h3", { id: "delivery-h" }, t("record.delivery_title")),
    h("p", { class: "hint" }, t("record.delivery_rule")),
    summary(),
    h("div", { "data-field": "lines", id: "delivery-lines", tabindex: "-1", "aria-label": t("convoy.manifest_caption"), "aria-describedby": "delivery-lines-error" }, rows),
    h("p", { id: "delivery-lines-error", class: "field-error", hidden: true }),
    h("div", { class: "pair" }, field({ name: "receiver.name", label: t("record.received_by"), required: true }), field({ name: "receiver.role", label: t("record.their_role"), required: true })),
    whenField(),
    h("div", { class: "field" }, h("label", { for: "receipt-file" }, t("record.receipt")), h("p", { id: "receipt-hint", class: "hint" }, t("record.receipt_hint")), fileInput, fileDigest),
    h("button", { type: "submit" }, t("record.delivery_button")),
    h("p", { class: "form-done", role: "status" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const current = getConvoy();
    const body = {
      receiver: { name: value(form, "receiver.name"), role: value(form, "receiver.role") },
      lines: lines.map((line, i) => ({
        manifest_line_id: line.manifest_line_id,
        received: value(form, `lines.${i}.received`),
        damaged: value(form, `lines.${i}.damaged`) || "0",
        short: value(form, `lines.${i}.short`) || "0",
      })),
    };
    const at = fromLocalInput(value(form, "occurred_at"));
    if (at) body.occurred_at = at;
    if (receipt) body.document = receipt;
    await busy(form, async () => {
      clearProblems(form);
      try {
        await api("shipments", `/v1/convoys/${encodeURIComponent(current.convoy_id)}/delivery`, {
          method: "POST",
          body,
          headers: { "If-Match": String(current.version), "Idempotency-Key": await keyFor("delivery", current.convoy_id, body) },
        });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const extra = error.problem.type?.endsWith("/delivery-arithmetic") ? arithmetic(error, lines) : [];
        showProblems(form, error, { extra });
        if (error.status === 412) await reload().catch(() => {});
        return;
      }
      done(form, t("record.delivery_done"));
      await reload().catch(() => {});
    });
  });
  return form;
}
