// A convoy: summary, route sketch, manifest, timeline, incidents, delivery, and the forms.

import { api, loadDirectory, nameOf, session } from "./api.js";
import { ago, announce, day, duration, errorBox, h, label, loading, quantity, replace, short, time } from "./dom.js";
import { ON_THE_ROAD, eventName, eventSummary, party, place, statusBadge } from "./labels.js";
import { subscribe } from "./live.js";
import { checkpointForm, deliveryForm, mayConfirmDelivery, mayRecordRoad } from "./record.js";
import { routeSketch } from "./route.js";

const LATE_AFTER_MS = 60_000;

function dl(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

function section(id, title, ...content) {
  return h("section", { "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), ...content);
}

function summary(c) {
  const age = c.last_news ? (Date.now() - new Date(c.last_news.occurred_at).getTime()) / 1000 : null;
  return dl([
    ["From", nameOf(c.origin_id)],
    ["To", nameOf(c.destination_id)],
    ["Carrier", nameOf(c.carrier_id)],
    ["Planned departure", time(c.planned_departure)],
    ["Dispatched", c.dispatched_at ? time(c.dispatched_at) : null],
    ["Arrived", c.arrived_at ? time(c.arrived_at) : null],
    ["Delivered", c.delivered_at ? time(c.delivered_at) : null],
    ["Closed", c.closed_at ? time(c.closed_at) : null],
    ["Cancelled", c.cancelled_at ? [time(c.cancelled_at), c.cancel_reason ? ` — ${c.cancel_reason}` : ""] : null],
    ["Weight", c.weight_kg ? `${Number(c.weight_kg).toLocaleString("en-GB")} kg` : null],
    ["Last checkpoint", c.position ? [place(c.position), " · ", time(c.position.occurred_at)] : "—"],
    ["Custody", party(c.custody)],
    ["Last news", c.last_news ? `${label(c.last_news.kind)}, ${ago(age)}` : "none yet"],
    ["Planned route", c.route && c.route.length ? c.route.join(" → ") : null],
    ["Note", c.note],
    ["Version", String(c.version)],
  ]);
}

function manifest(c) {
  if (!c.manifest.length) return h("p", { class: "muted" }, "Nothing loaded.");
  const rows = c.manifest.map((line) =>
    h(
      "tr",
      { class: line.state !== "loaded" ? "muted" : null },
      h("td", { "data-label": "Line" }, line.manifest_line_id),
      h("td", { "data-label": "Item" }, line.item, h("span", { class: "sub" }, label(line.category))),
      h("td", { "data-label": "Donor" }, nameOf(line.donor_id)),
      h(
        "td",
        { "data-label": "Pledge line" },
        session.has("auditor")
          ? h("a", { href: `#/audit?trace=${encodeURIComponent(line.pledge_id)}` }, `${line.pledge_id} / ${line.line_id}`)
          : `${line.pledge_id} / ${line.line_id}`,
      ),
      h("td", { "data-label": "Quantity", class: "num" }, quantity(line.quantity, line.unit)),
      h("td", { "data-label": "Weight", class: "num" }, quantity(line.weight_kg, "kg")),
      h("td", { "data-label": "Vehicle" }, line.vehicle),
      h("td", { "data-label": "State" }, label(line.state)),
      h("td", { "data-label": "Lost", class: "num" }, quantity(line.lost)),
      h("td", { "data-label": "In transit", class: "num" }, quantity(line.in_transit)),
      h(
        "td",
        { "data-label": "Delivered" },
        line.delivered
          ? `${quantity(line.delivered.received)} received, ${quantity(line.delivered.damaged)} damaged, ${quantity(line.delivered.short)} short`
          : "—",
      ),
    ),
  );
  const heads = ["Line", "Item", "Donor", "Pledge line", "Quantity", "Weight", "Vehicle", "State", "Lost", "In transit", "Delivered"];
  return [
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "stacked" }, h("caption", { class: "visually-hidden" }, "Manifest lines"), h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)),
    ),
    h(
      "p",
      { class: "muted" },
      "Vehicles: ",
      c.vehicles.map((v, i) => [i ? "; " : "", `${v.registration} (${v.type}, ${quantity(v.load_kg)} of ${quantity(v.capacity_kg, "kg")})`]),
    ),
  ];
}

function timeline(entries) {
  if (!entries.length) return h("p", { class: "muted" }, "No event yet.");
  return h(
    "ol",
    { class: "timeline" },
    entries.map((e) => {
      const late = new Date(e.recorded_at) - new Date(e.occurred_at);
      return h(
        "li",
        { class: `event ${e.event_type.replace(/^shipments\./, "")}` },
        h("span", { class: "when" }, time(e.occurred_at)),
        h("span", { class: "what" }, h("strong", {}, eventName(e.event_type)), " ", eventSummary(e.event_type, e.data)),
        e.data && e.data.note ? h("span", { class: "note" }, e.data.note) : null,
        Math.abs(late) > LATE_AFTER_MS
          ? h("span", { class: "recorded" }, "recorded ", time(e.recorded_at), ` (${duration(late / 1000)} later)`)
          : null,
      );
    }),
  );
}

function incidents(c) {
  if (!c.incidents.length) return h("p", { class: "muted" }, "None reported.");
  return h(
    "ul",
    { class: "incidents" },
    c.incidents.map((i) =>
      h(
        "li",
        {},
        h("strong", {}, label(i.kind)),
        `: ${i.description}`,
        i.place ? ` at ${i.place}` : "",
        i.delay_minutes ? ` (${i.delay_minutes} min delay)` : "",
        i.lines.length ? ` — lines ${i.lines.map((l) => `${l.manifest_line_id}: ${quantity(l.quantity)}`).join(", ")}` : "",
        " · ",
        time(i.occurred_at),
      ),
    ),
  );
}

function delivery(c) {
  const d = c.delivery;
  const parts = [];
  if (!d) {
    parts.push(h("p", { class: "muted" }, c.status === "arrived" ? "Arrived; the recipient has not confirmed the delivery yet." : "Not delivered yet."));
  } else {
    parts.push(
      dl([
        ["Outcome", d.outcome === "partial" ? "partial: not everything arrived in good condition" : "full"],
        ["Confirmed", time(d.occurred_at)],
        ["By", d.confirmed_by ? `${d.confirmed_by.name} (${d.confirmed_by.role})` : "—"],
        ["Receipt", d.document ? [d.document.name, h("span", { class: "muted" }, ` sha256 ${short(d.document.sha256)}`)] : null],
      ]),
    );
  }
  if (c.discrepancies.length) {
    const heads = ["Line", "Item", "Donor", "Loaded", "Received", "Damaged", "Short", "Lost"];
    parts.push(
      h("h3", {}, "Discrepancies"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "stacked discrepancies" },
          h("caption", { class: "visually-hidden" }, "Lines where less arrived in good condition than was loaded"),
          h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            c.discrepancies.map((x) =>
              h(
                "tr",
                {},
                h("td", { "data-label": "Line" }, x.manifest_line_id),
                h("td", { "data-label": "Item" }, x.item),
                h("td", { "data-label": "Donor" }, nameOf(x.donor_id)),
                h("td", { "data-label": "Loaded", class: "num" }, quantity(x.loaded, x.unit)),
                h("td", { "data-label": "Received", class: "num" }, quantity(x.received)),
                h("td", { "data-label": "Damaged", class: "num" }, quantity(x.damaged)),
                h("td", { "data-label": "Short", class: "num" }, quantity(x.short)),
                h("td", { "data-label": "Lost", class: "num" }, quantity(x.lost)),
              ),
            ),
          ),
        ),
      ),
    );
  }
  return parts;
}

export async function convoyPage(main, _params, convoyId) {
  const path = `/v1/convoys/${encodeURIComponent(convoyId)}`;
  const heading = h("h1", { tabindex: "-1" }, `Convoy ${convoyId}`);
  const body = h("div", { class: "convoy" }, loading("the convoy"));
  const actions = h("section", { "aria-labelledby": "actions-h", class: "actions", hidden: true });
  replace(main, h("p", {}, h("a", { href: "#/board" }, "← Board")), heading, body, actions);
  const current = { convoy: null, entries: [], forms: "" };

  function render() {
    const c = current.convoy;
    replace(heading, c.reference || c.convoy_id, " ", statusBadge(c.status));
    replace(
      body,
      h("p", { class: "muted" }, `${c.convoy_id} · planned ${day(c.planned_at)}`),
      section("summary", "Summary", summary(c)),
      section("route", "Route", routeSketch(current.entries)),
      section("manifest", "Manifest", manifest(c)),
      section("timeline", "Timeline", h("p", { class: "muted" }, "In the order things happened, with when each was recorded where that was later."), timeline(current.entries)),
      section("incidents", "Incidents", incidents(c)),
      section("delivery", "Delivery", delivery(c)),
    );
    const road = ON_THE_ROAD.includes(c.status) && mayRecordRoad(c);
    const deliver = c.status === "arrived" && mayConfirmDelivery(c);
    const forms = `${road}|${deliver}`;
    if (forms !== current.forms) {
      current.forms = forms;
      const why = !road && !deliver ? h("p", { class: "muted" }, whyNoForms(c)) : null;
      replace(
        actions,
        h("h2", { id: "actions-h" }, "Record"),
        why,
        road ? checkpointForm(() => current.convoy, reload) : null,
        deliver ? deliveryForm(() => current.convoy, reload) : null,
      );
      actions.hidden = false;
    }
  }

  async function reload() {
    const [convoy, timelineAnswer] = await Promise.all([api("shipments", path), api("shipments", `${path}/timeline`)]);
    current.convoy = convoy;
    current.entries = timelineAnswer.entries;
    render();
  }

  let pendingReload = null;
  const unsubscribe = subscribe((update) => {
    if (update.resync) {
      reload().catch(() => {});
      return;
    }
    if (update.convoy_id !== convoyId) return;
    clearTimeout(pendingReload);
    pendingReload = setTimeout(async () => {
      try {
        await reload();
        announce(`This convoy: ${eventName(update.event_type)}${eventSummary(update.event_type, update.data) ? `, ${eventSummary(update.event_type, update.data)}` : ""}.`);
      } catch {
        /* the next update or a reload tries again */
      }
    }, 200);
  });

  try {
    await loadDirectory();
    await reload();
    document.title = `${current.convoy.reference || convoyId} · twinaid convoys`;
  } catch (error) {
    replace(body, errorBox(error, "this convoy"));
  }
  return () => {
    unsubscribe();
    clearTimeout(pendingReload);
  };
}

function whyNoForms(c) {
  const who = session.who ? `${session.who.organisation} (${session.who.roles.join(", ")})` : "this key";
  if (["delivered", "closed", "cancelled", "lost"].includes(c.status)) return `Nothing left to record: the convoy is ${label(c.status)}.`;
  if (["planned", "loading"].includes(c.status)) return "Checkpoints are recorded once the convoy is on the road.";
  if (c.status === "arrived") return `Only the recipient (${nameOf(c.destination_id)}) confirms the delivery; ${who} may not.`;
  return `Road events are recorded by the carrier or the logistics team of the origin or the recipient; ${who} may not.`;
}
