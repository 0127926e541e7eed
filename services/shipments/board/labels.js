// How convoys, parties and road events read on the page.

import { nameOf } from "./api.js";
import { h, label, quantity } from "./dom.js";

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

export function party(p) {
  if (!p) return "—";
  const parts = [];
  if (p.organisation_id) parts.push(nameOf(p.organisation_id));
  if (p.name) parts.push(p.name);
  if (p.person) parts.push(p.person.role ? `${p.person.name} (${p.person.role})` : p.person.name);
  return parts.join(" · ") || "—";
}

export function place(position) {
  if (!position || !position.place) return "—";
  return position.source === "border_crossing" ? `${position.place} (border)` : position.place;
}

const EVENTS = {
  "shipments.convoy-planned": "Planned",
  "shipments.manifest-line-loaded": "Line loaded",
  "shipments.manifest-line-unloaded": "Line unloaded",
  "shipments.convoy-dispatched": "Dispatched",
  "shipments.checkpoint-recorded": "Checkpoint",
  "shipments.border-crossed": "Border",
  "shipments.custody-handed-off": "Custody handed off",
  "shipments.incident-reported": "Incident",
  "shipments.convoy-arrived": "Arrived",
  "shipments.delivery-confirmed": "Delivery confirmed",
  "shipments.convoy-closed": "Closed",
  "shipments.convoy-cancelled": "Cancelled",
};

export function eventName(type) {
  return EVENTS[type] || label(String(type).replace(/^[a-z]+\./, "").replaceAll("-", " "));
}

/** One line saying what a road event recorded. */
export function eventSummary(type, data) {
  const d = data || {};
  switch (type) {
    case "shipments.convoy-planned":
      return `${d.reference || ""}${d.route && d.route.length ? ` via ${d.route.join(", ")}` : ""}`;
    case "shipments.manifest-line-loaded":
      return `${quantity(d.quantity, d.unit)} ${d.item || ""} on ${d.vehicle || "?"} (pledge ${d.pledge_id}/${d.line_id}, ${nameOf(d.donor_id)})`;
    case "shipments.manifest-line-unloaded":
      return `line ${d.manifest_line_id}${d.reason ? `: ${d.reason}` : ""}`;
    case "shipments.convoy-dispatched":
      return `custody: ${party(d.custody)}`;
    case "shipments.checkpoint-recorded":
      return d.place || "";
    case "shipments.border-crossed":
      return `${d.crossing_point || ""}${d.from_country || d.to_country ? ` (${d.from_country || "?"} → ${d.to_country || "?"})` : ""}: ${label(d.outcome)}${d.customs_document ? `, customs ${d.customs_document}` : ""}`;
    case "shipments.custody-handed-off":
      return `${party(d.from_party)} → ${party(d.to_party)}`;
    case "shipments.incident-reported":
      return `${label(d.kind)}: ${d.description || ""}${d.delay_minutes ? ` (${d.delay_minutes} min)` : ""}${d.place ? ` at ${d.place}` : ""}`;
    case "shipments.convoy-arrived":
      return d.place || "";
    case "shipments.delivery-confirmed":
      return d.confirmed_by ? `by ${d.confirmed_by.name} (${d.confirmed_by.role})` : "";
    case "shipments.convoy-closed":
      return label(d.outcome);
    case "shipments.convoy-cancelled":
      return d.reason || "";
    default:
      return "";
  }
}
