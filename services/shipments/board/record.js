// Recording from the page: a checkpoint, and the recipient's proof of delivery. The API is
// the judge: what it refuses is shown next to the field it names.

import { ApiError, api, session } from "./api.js";
import { announce, fromLocalInput, h, localInput, quantity } from "./dom.js";
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

async function keyFor(prefix, body) {
  return `board-${prefix}-${(await digest(JSON.stringify(body))).slice(0, 24)}`;
}

/** "entries.0.checkpoint.place" and "entries[<id>].occurred_at" name the inputs "place", "occurred_at". */
function entryField(name) {
  return name.replace(/^entries(\.\d+(\.checkpoint)?|\[[^\]]*\])\.?/, "");
}

export function checkpointForm(getConvoy, reload) {
  // one id per entry: re-sent unchanged after a lost answer, it is recorded once
  let entryId = newId();
  const form = h(
    "form",
    { class: "record", id: "checkpoint-form", novalidate: true, "aria-labelledby": "checkpoint-h" },
    h("h3", { id: "checkpoint-h" }, "Record a checkpoint"),
    summary(),
    field({ name: "place", label: "Place", required: true, autocomplete: "off" }),
    field({ name: "occurred_at", label: "When", type: "datetime-local", value: localInput(), hint: "Your local time; may be in the past for an entry made later." }),
    h(
      "div",
      { class: "pair" },
      field({ name: "coordinates.lat", label: "Latitude", type: "number", step: "any", inputmode: "decimal", hint: "−90 to 90, optional" }),
      field({ name: "coordinates.lon", label: "Longitude", type: "number", step: "any", inputmode: "decimal", hint: "−180 to 180, optional" }),
    ),
    field({ name: "note", label: "Note", type: "textarea" }),
    h("button", { type: "submit" }, "Record checkpoint"),
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
          headers: { "Idempotency-Key": await keyFor("entries", body) },
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
      form.querySelector('[data-field="occurred_at"]').value = localInput();
      done(form, `Checkpoint at ${entry.place} recorded.`);
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
      reason: `received ${x.received} + damaged ${x.damaged} + short ${x.short} = ${x.total} ${x.unit}, but loaded ${x.loaded} − lost ${x.lost} = ${x.expected}`,
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
      fileDigest.textContent = "This page cannot compute a digest here (it needs https or this machine).";
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
      h("legend", {}, `${line.item} — ${line.manifest_line_id} (${line.vehicle}): loaded ${quantity(line.quantity, line.unit)}${Number(line.lost) ? `, lost ${quantity(line.lost)}` : ""}`),
      h(
        "div",
        { class: "triple" },
        field({ name: `lines.${i}.received`, label: `Received in good condition (${line.unit})`, value: String(expected), inputmode: "decimal", autocomplete: "off" }),
        field({ name: `lines.${i}.damaged`, label: `Damaged (${line.unit})`, value: "0", inputmode: "decimal", autocomplete: "off" }),
        field({ name: `lines.${i}.short`, label: `Short (${line.unit})`, value: "0", inputmode: "decimal", autocomplete: "off" }),
      ),
    );
  });
  const form = h(
    "form",
    { class: "record", id: "delivery-form", novalidate: true, "aria-labelledby": "delivery-h" },
    h("h3", { id: "delivery-h" }, "Confirm the delivery"),
    h("p", { class: "hint" }, "Per line, received + damaged + short must equal what was loaded less what was lost on the road."),
    summary(),
    h("div", { "data-field": "lines", id: "delivery-lines", tabindex: "-1", "aria-label": "Manifest lines", "aria-describedby": "delivery-lines-error" }, rows),
    h("p", { id: "delivery-lines-error", class: "field-error", hidden: true }),
    h("div", { class: "pair" }, field({ name: "receiver.name", label: "Received by", required: true }), field({ name: "receiver.role", label: "Their role", required: true })),
    field({ name: "occurred_at", label: "When", type: "datetime-local", value: localInput() }),
    h("div", { class: "field" }, h("label", { for: "receipt-file" }, "Scanned receipt (optional)"), h("p", { id: "receipt-hint", class: "hint" }, "Only its SHA-256 digest and name are sent."), fileInput, fileDigest),
    h("button", { type: "submit" }, "Confirm delivery"),
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
          headers: { "If-Match": String(current.version), "Idempotency-Key": await keyFor("delivery", body) },
        });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const extra = error.problem.type?.endsWith("/delivery-arithmetic") ? arithmetic(error, lines) : [];
        showProblems(form, error, { extra });
        if (error.status === 412) await reload().catch(() => {});
        return;
      }
      done(form, "Delivery confirmed.");
      await reload().catch(() => {});
    });
  });
  return form;
}
