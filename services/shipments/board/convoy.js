// A convoy: summary, route sketch, manifest, timeline, incidents, delivery, and the forms.

import { ApiError, api, loadDirectory, nameOf, query, session } from "./api.js";
import { csvButton, fileName } from "./csv.js";
import { ago, announce, day, duration, errorBox, h, hashValue, label, loading, quantity, replace, stackedTable, time, utc, when } from "./dom.js";
import { t, zone } from "./i18n.js";
import { ON_THE_ROAD, eventName, eventSummary, party, place, statusBadge } from "./labels.js";
import { subscribe } from "./live.js";
import { checkpointForm, deliveryForm, mayConfirmDelivery, mayRecordRoad } from "./record.js";
import { routeSketch } from "./route.js";

const LATE_AFTER_MS = 60_000;
const MANIFEST_COLUMNS = ["col.line", "col.item", "col.donor", "col.pledge_line", "col.quantity", "col.weight", "col.vehicle", "col.state", "col.lost", "col.in_transit", "col.delivered"];

/** The convoy's events as its service's chain holds them (position, hash), for auditor keys;
 * null for other keys (the audit history is an auditor's). */
async function chainOfConvoy(convoyId) {
  if (!session.has("auditor")) return null;
  try {
    const events = [];
    let after = 0; // the history comes a page at a time
    for (;;) {
      const path = `/v1/audit/streams/convoy-${encodeURIComponent(convoyId)}?after=${after}&limit=1000`;
      const answer = await api("shipments", path);
      events.push(...answer.events);
      if (answer.next_after == null) break;
      after = answer.next_after;
    }
    return new Map(events.map((e) => [e.event_id, e]));
  } catch (error) {
    if (error instanceof ApiError) return null;
    throw error;
  }
}

/** Every entry of a convoy's timeline, in order: its pages followed to the last. */
async function timelineOf(path) {
  const entries = [];
  let cursor = null;
  do {
    const page = await api("shipments", `${path}/timeline${query({ limit: 1000, cursor })}`);
    entries.push(...page.entries);
    cursor = page.next_cursor;
  } while (cursor);
  return entries;
}

function chainNote(chain) {
  return chain ? null : h("p", { class: "muted" }, t("convoy.chain_for_auditors"));
}

/** An event's place in its service's chain: position, when recorded (UTC) and full hash. */
function chainOf(chain, entry) {
  const event = chain?.get(entry.event_id);
  if (!event) return null;
  return h(
    "span",
    { class: "chain", "data-position": event.position },
    h("span", {}, t("chain.position", { position: event.position })),
    " · ",
    h("span", {}, t("chain.recorded_utc", { at: utc(event.recorded_at) })),
    " · ",
    event.hash ? [h("span", {}, t("chain.hash")), " ", hashValue(event.hash, { label: t("chain.hash_of", { position: event.position }) })] : h("span", { class: "muted" }, t("chain.not_sealed")),
  );
}

const iso = (value) => (value ? new Date(value).toISOString() : "");

function manifestCsv(c) {
  const header = [...MANIFEST_COLUMNS.slice(0, 5).map((key) => t(key)), t("col.unit"), ...MANIFEST_COLUMNS.slice(5).map((key) => t(key))];
  const rows = c.manifest.map((line) => [
    line.manifest_line_id,
    line.item,
    nameOf(line.donor_id),
    `${line.pledge_id} / ${line.line_id}`,
    line.quantity,
    line.unit,
    line.weight_kg,
    line.vehicle,
    line.state,
    line.lost,
    line.in_transit,
    line.delivered ? t("convoy.delivered_line", { received: line.delivered.received, damaged: line.delivered.damaged, short: line.delivered.short }) : "",
  ]);
  return [header, rows];
}

function timelineCsv(entries, chain) {
  const header = [t("col.occurred_utc"), t("col.event"), t("col.what"), t("col.recorded_utc"), t("col.position"), t("col.hash")];
  const rows = entries.map((e) => {
    const event = chain?.get(e.event_id);
    return [iso(e.occurred_at), eventName(e.event_type), eventSummary(e.event_type, e.data), iso(e.recorded_at), event?.position ?? "", event?.hash ?? ""];
  });
  return [header, rows];
}

function deliveryCsv(c) {
  const d = c.delivery;
  const header = ["col.line", "col.item", "col.donor", "col.loaded", "col.unit", "col.received", "col.damaged", "col.short", "col.lost", "convoy.outcome", "convoy.confirmed", "convoy.by"].map((key) => t(key));
  const rows = c.manifest
    .filter((line) => line.state === "loaded")
    .map((line) => [
      line.manifest_line_id,
      line.item,
      nameOf(line.donor_id),
      line.quantity,
      line.unit,
      line.delivered?.received ?? "",
      line.delivered?.damaged ?? "",
      line.delivered?.short ?? "",
      line.lost,
      d ? d.outcome : "",
      d ? iso(d.occurred_at) : "",
      d?.confirmed_by ? `${d.confirmed_by.name} (${d.confirmed_by.role})` : "",
    ]);
  return [header, rows];
}

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
    [t("convoy.from"), nameOf(c.origin_id)],
    [t("convoy.to"), nameOf(c.destination_id)],
    [t("convoy.carrier"), nameOf(c.carrier_id)],
    [t("convoy.planned_departure"), time(c.planned_departure)],
    [t("convoy.dispatched"), c.dispatched_at ? time(c.dispatched_at) : null],
    [t("convoy.arrived"), c.arrived_at ? time(c.arrived_at) : null],
    [t("convoy.delivered"), c.delivered_at ? time(c.delivered_at) : null],
    [t("convoy.closed"), c.closed_at ? time(c.closed_at) : null],
    [t("convoy.cancelled"), c.cancelled_at ? [time(c.cancelled_at), c.cancel_reason ? ` — ${c.cancel_reason}` : ""] : null],
    [t("convoy.weight"), c.weight_kg ? t("unit.weight_kg", { n: Number(c.weight_kg) }) : null],
    [t("col.last_checkpoint"), c.position ? [place(c.position), " · ", time(c.position.occurred_at)] : "—"],
    [t("col.custody"), party(c.custody)],
    [t("col.last_news"), c.last_news ? `${label(c.last_news.kind)}, ${ago(age)}` : t("convoy.no_news")],
    [t("convoy.planned_route"), c.route && c.route.length ? c.route.join(" → ") : null],
    [t("convoy.note"), c.note],
    [t("convoy.version"), String(c.version)],
  ]);
}

function manifest(c) {
  if (!c.manifest.length) return h("p", { class: "muted" }, t("convoy.nothing_loaded"));
  const rows = c.manifest.map((line) =>
    h(
      "tr",
      { class: line.state !== "loaded" ? "muted" : null },
      h("td", { "data-label": t("col.line") }, line.manifest_line_id),
      h("td", { "data-label": t("col.item") }, line.item, h("span", { class: "sub" }, label(line.category))),
      h("td", { "data-label": t("col.donor") }, nameOf(line.donor_id)),
      h(
        "td",
        { "data-label": t("col.pledge_line") },
        session.has("auditor")
          ? h("a", { href: `#/audit?trace=${encodeURIComponent(line.pledge_id)}` }, `${line.pledge_id} / ${line.line_id}`)
          : `${line.pledge_id} / ${line.line_id}`,
      ),
      h("td", { "data-label": t("col.quantity"), class: "num" }, quantity(line.quantity, line.unit)),
      h("td", { "data-label": t("col.weight"), class: "num" }, quantity(line.weight_kg, "kg")),
      h("td", { "data-label": t("col.vehicle") }, line.vehicle),
      h("td", { "data-label": t("col.state") }, label(line.state)),
      h("td", { "data-label": t("col.lost"), class: "num" }, quantity(line.lost)),
      h("td", { "data-label": t("col.in_transit"), class: "num" }, quantity(line.in_transit)),
      h(
        "td",
        { "data-label": t("col.delivered") },
        line.delivered
          ? t("convoy.delivered_line", { received: quantity(line.delivered.received), damaged: quantity(line.delivered.damaged), short: quantity(line.delivered.short) })
          : "—",
      ),
    ),
  );
  const heads = MANIFEST_COLUMNS.map((key) => t(key));
  return [
    stackedTable("manifest", t("convoy.manifest_caption"), heads, rows),
    h(
      "p",
      { class: "muted" },
      t("convoy.vehicles"),
      " ",
      c.vehicles.map((v, i) => [i ? "; " : "", t("convoy.vehicle", { registration: v.registration, type: v.type, load: quantity(v.load_kg), capacity: quantity(v.capacity_kg, "kg") })]),
    ),
  ];
}

function timeline(entries, chain) {
  if (!entries.length) return h("p", { class: "muted" }, t("convoy.no_event"));
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
          ? h("span", { class: "recorded" }, t("convoy.recorded"), " ", time(e.recorded_at), ` (${t("convoy.later", { duration: duration(late / 1000) })})`)
          : null,
        chainOf(chain, e),
      );
    }),
  );
}

function incidents(c) {
  if (!c.incidents.length) return h("p", { class: "muted" }, t("convoy.no_incident"));
  // the view embeds the latest incidents only; the timeline (every page) has them all
  const more = c.incidents_total > c.incidents.length ? h("p", { class: "muted" }, t("convoy.incidents_recent", { shown: c.incidents.length, total: c.incidents_total })) : null;
  return [more, h(
    "ul",
    { class: "incidents" },
    c.incidents.map((i) =>
      h(
        "li",
        {},
        h("strong", {}, label(i.kind)),
        `: ${i.description}`,
        i.place ? ` ${t("summary.at_place", { place: i.place })}` : "",
        i.delay_minutes ? ` (${t("summary.delay", { minutes: i.delay_minutes })})` : "",
        i.lines.length ? ` — ${t("convoy.incident_lines", { lines: i.lines.map((l) => `${l.manifest_line_id}: ${quantity(l.quantity)}`).join(", ") })}` : "",
        " · ",
        time(i.occurred_at),
      ),
    ),
  )];
}

function delivery(c) {
  const d = c.delivery;
  const parts = [];
  if (!d) {
    parts.push(h("p", { class: "muted" }, c.status === "arrived" ? t("convoy.awaiting_confirmation") : t("convoy.not_delivered")));
  } else {
    parts.push(
      dl([
        [t("convoy.outcome"), d.outcome === "partial" ? t("convoy.outcome_partial") : t("convoy.outcome_full")],
        [t("convoy.confirmed"), time(d.occurred_at)],
        [t("convoy.by"), d.confirmed_by ? `${d.confirmed_by.name} (${d.confirmed_by.role})` : "—"],
        [t("convoy.receipt"), d.document ? [d.document.name, h("span", { class: "muted" }, " sha256 "), hashValue(d.document.sha256, { label: t("convoy.receipt") })] : null],
      ]),
    );
  }
  if (c.discrepancies.length) {
    const heads = ["col.line", "col.item", "col.donor", "col.loaded", "col.received", "col.damaged", "col.short", "col.lost"].map((key) => t(key));
    parts.push(
      h("h3", {}, t("convoy.discrepancies")),
      stackedTable(
        "discrepancies",
        t("convoy.discrepancies_caption"),
        heads,
        c.discrepancies.map((x) =>
          h(
            "tr",
            {},
            h("td", { "data-label": t("col.line") }, x.manifest_line_id),
            h("td", { "data-label": t("col.item") }, x.item),
            h("td", { "data-label": t("col.donor") }, nameOf(x.donor_id)),
            h("td", { "data-label": t("col.loaded"), class: "num" }, quantity(x.loaded, x.unit)),
            h("td", { "data-label": t("col.received"), class: "num" }, quantity(x.received)),
            h("td", { "data-label": t("col.damaged"), class: "num" }, quantity(x.damaged)),
            h("td", { "data-label": t("col.short"), class: "num" }, quantity(x.short)),
            h("td", { "data-label": t("col.lost"), class: "num" }, quantity(x.lost)),
          ),
        ),
      ),
    );
  }
  return parts;
}

export async function convoyPage(main, _params, convoyId) {
  const path = `/v1/convoys/${encodeURIComponent(convoyId)}`;
  const heading = h("h1", { tabindex: "-1" }, t("convoy.title", { id: convoyId }));
  const body = h("div", { class: "convoy" }, loading(t("what.convoy")));
  const printTitle = h("div", { class: "print-only print-title" });
  const actions = h("section", { "aria-labelledby": "actions-h", class: "actions", hidden: true });
  replace(main, h("p", { class: "back" }, h("a", { href: "#/board" }, t("convoy.back"))), printTitle, heading, body, actions);
  const current = { convoy: null, entries: [], chain: null, forms: "" };

  function render() {
    const c = current.convoy;
    replace(heading, c.reference || c.convoy_id, " ", statusBadge(c.status));
    replace(
      printTitle,
      h("p", { class: "print-heading" }, t("print.title", { id: c.convoy_id })),
      h("p", {}, `${nameOf(c.origin_id)} → ${nameOf(c.destination_id)}`),
      h("p", {}, t("print.printed", { date: when(new Date().toISOString()), zone: zone(), utc: utc(new Date().toISOString()) })),
    );
    const csv = (what, make) => csvButton(fileName(c.convoy_id, what), make, { id: `csv-${what}` });
    replace(
      body,
      h("p", { class: "muted" }, `${c.convoy_id} · ${t("convoy.planned_on", { day: day(c.planned_at) })}`),
      h("p", { class: "exports no-print" }, csv("manifest", () => manifestCsv(c)), csv("timeline", () => timelineCsv(current.entries, current.chain)), csv("delivery", () => deliveryCsv(c)), h("button", { type: "button", class: "secondary", id: "print", onclick: () => print() }, t("print.button"))),
      section("summary", t("convoy.summary"), summary(c)),
      section("route", t("convoy.route"), routeSketch(current.entries, { convoy: c })),
      section("manifest", t("convoy.manifest"), manifest(c)),
      section("timeline", t("convoy.timeline"), h("p", { class: "muted" }, t("convoy.timeline_intro")), chainNote(current.chain), timeline(current.entries, current.chain)),
      section("incidents", t("convoy.incidents"), incidents(c)),
      section("delivery", t("convoy.delivery"), delivery(c)),
    );
    const road = ON_THE_ROAD.includes(c.status) && mayRecordRoad(c);
    const deliver = c.status === "arrived" && mayConfirmDelivery(c);
    const forms = `${road}|${deliver}`;
    if (forms !== current.forms) {
      current.forms = forms;
      const why = !road && !deliver ? h("p", { class: "muted" }, whyNoForms(c)) : null;
      replace(
        actions,
        h("h2", { id: "actions-h" }, t("convoy.record")),
        why,
        road ? checkpointForm(() => current.convoy, reload) : null,
        deliver ? deliveryForm(() => current.convoy, reload) : null,
      );
      actions.hidden = false;
    }
  }

  async function reload() {
    const [convoy, entries, chain] = await Promise.all([api("shipments", path), timelineOf(path), chainOfConvoy(convoyId)]);
    current.convoy = convoy;
    current.entries = entries;
    current.chain = chain;
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
        const what = eventSummary(update.event_type, update.data);
        announce(t("announce.this_convoy", { event: what ? `${eventName(update.event_type)}, ${what}` : eventName(update.event_type) }));
      } catch {
        /* the next update or a reload tries again */
      }
    }, 200);
  });

  try {
    await loadDirectory();
    await reload();
    document.title = `${current.convoy.reference || convoyId} · ${t("page.title")}`;
  } catch (error) {
    replace(body, errorBox(error, t("what.convoy")));
  }
  return () => {
    unsubscribe();
    clearTimeout(pendingReload);
  };
}

function whyNoForms(c) {
  const who = session.who ? `${session.who.organisation} (${session.who.roles.map(label).join(", ")})` : t("convoy.this_key");
  if (["delivered", "closed", "cancelled", "lost"].includes(c.status)) return t("convoy.why_done", { status: label(c.status) });
  if (["planned", "loading"].includes(c.status)) return t("convoy.why_not_on_road");
  if (c.status === "arrived") return t("convoy.why_recipient", { recipient: nameOf(c.destination_id), who });
  return t("convoy.why_road", { who });
}
