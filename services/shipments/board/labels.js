// How convoys, parties and road events read on the page (the words: i18n-<lang>.json).

import { nameOf } from "./api.js";
import { h, label, quantity } from "./dom.js";
import { has, t } from "./i18n.js";

export const ON_THE_ROAD = ["in_transit", "at_border", "held"];
export const STATUSES = [
  "planned",
  "loading",
  "in_transit",
  "at_border",
  "held",
  "arrived",
  "delivered",
  "closed",
  "cancelled",
  "lost",
];
// no news for this long on the road: the convoy stands out on the board
export const STALE_AFTER_SECONDS = 6 * 3600;

export function statusBadge(status) {
  const warn = ["held", "lost", "cancelled"].includes(status);
  return h("span", { class: `badge status-${status}${warn ? " warn" : ""}` }, label(status));
}

// A person's name as the API shows it ("(withheld)", "(erased)" included); in the raw feed a
// person is sealed: its subject id stands in for the name.
export function who(person) {
  return person.name || person.subject_id || "—";
}

export function party(p) {
  if (!p) return "—";
  const parts = [];
  if (p.organisation_id) parts.push(nameOf(p.organisation_id));
  if (p.name) parts.push(p.name);
  if (p.person) parts.push(p.person.role ? `${who(p.person)} (${p.person.role})` : who(p.person));
  return parts.join(" · ") || "—";
}

export function place(position) {
  if (!position || !position.place) return "—";
  return position.source === "border_crossing" ? t("place.border", { place: position.place }) : position.place;
}

export function eventName(type) {
  const key = `event.${String(type).replace(/^[a-z]+\./, "")}`;
  return has(key) ? t(key) : label(String(type).replace(/^[a-z]+\./, "").replaceAll("-", "_"));
}

/** One line saying what a road event recorded. */
export function eventSummary(type, data) {
  const d = data || {};
  switch (type) {
    case "shipments.convoy-planned":
      return d.route && d.route.length ? t("summary.planned_via", { reference: d.reference || "", route: d.route.join(", ") }) : d.reference || "";
    case "shipments.manifest-line-loaded":
      return t("summary.line_loaded", {
        quantity: quantity(d.quantity, d.unit),
        item: d.item || "",
        vehicle: d.vehicle || "?",
        pledge: `${d.pledge_id}/${d.line_id}`,
        donor: nameOf(d.donor_id),
      });
    case "shipments.manifest-line-unloaded":
      return d.reason ? t("summary.line_unloaded_reason", { line: d.manifest_line_id, reason: d.reason }) : t("summary.line_unloaded", { line: d.manifest_line_id });
    case "shipments.convoy-dispatched":
      return t("summary.custody", { party: party(d.custody) });
    case "shipments.checkpoint-recorded":
      return d.place || "";
    case "shipments.border-crossed": {
      const countries = d.from_country || d.to_country ? ` (${d.from_country || "?"} → ${d.to_country || "?"})` : "";
      const customs = d.customs_document ? t("summary.customs", { document: d.customs_document }) : "";
      return `${d.crossing_point || ""}${countries}: ${label(d.outcome)}${customs}`;
    }
    case "shipments.custody-handed-off":
      return `${party(d.from_party)} → ${party(d.to_party)}`;
    case "shipments.incident-reported":
      return [
        `${label(d.kind)}: ${d.description || ""}`,
        d.delay_minutes ? ` (${t("summary.delay", { minutes: d.delay_minutes })})` : "",
        d.place ? ` ${t("summary.at_place", { place: d.place })}` : "",
      ].join("");
    case "shipments.convoy-arrived":
      return d.place || "";
    case "shipments.delivery-confirmed":
      return d.confirmed_by ? t("summary.confirmed_by", { name: who(d.confirmed_by), role: d.confirmed_by.role }) : "";
    case "shipments.convoy-closed":
      return label(d.outcome);
    case "shipments.convoy-cancelled":
      return d.reason || "";
    default:
      return "";
  }
}
