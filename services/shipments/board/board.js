// The board: convoys with their last checkpoint, custody and age of news, updated live.

import { all, api, loadDirectory, nameOf, query } from "./api.js";
import { csvButton, fileName } from "./csv.js";
import { ago, announce, errorBox, fromZoned, h, label, loading, replace, time } from "./dom.js";
import { t, zone } from "./i18n.js";
import { ON_THE_ROAD, STALE_AFTER_SECONDS, STATUSES, eventName, eventSummary, party, place, statusBadge } from "./labels.js";
import { subscribe } from "./live.js";

const ROAD = "road";
const COLUMNS = ["col.convoy", "col.from_to", "col.status", "col.last_checkpoint", "col.custody", "col.last_news"];
const ALL = "all";
const MAX_ROWS = 1000; // as many convoys as the board lists (api.js `all`)

function readFilters(params) {
  return {
    status: params.get("status") || ROAD,
    organisation: params.get("organisation") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
  };
}

function startOfDay(value, plusDays = 0) {
  if (!value) return null;
  // a day of the page's time zone: its midnight, as an instant
  const date = fromZoned(value);
  if (!date) return null;
  if (!plusDays) return date;
  const next = new Date(Date.UTC(...value.split("-").map((v, i) => Number(v) - (i === 1 ? 1 : 0))) + plusDays * 86400_000);
  return fromZoned(next.toISOString().slice(0, 10));
}

function departs(convoy) {
  return convoy.dispatched_at || convoy.planned_departure;
}

/** Whether a convoy (a list item or a live update's summary) belongs on the board now. */
export function matches(convoy, filters) {
  if (filters.status === ROAD ? !ON_THE_ROAD.includes(convoy.status) : filters.status !== ALL && convoy.status !== filters.status) {
    return false;
  }
  const org = filters.organisation;
  if (org) {
    const involved = [convoy.origin_id, convoy.destination_id, convoy.carrier_id, ...(convoy.donors || [])];
    if (!involved.includes(org)) return false;
  }
  const from = startOfDay(filters.from);
  const to = startOfDay(filters.to, 1);
  const at = departs(convoy) ? new Date(departs(convoy)) : null;
  if (from && (!at || at < from)) return false;
  if (to && (!at || at >= to)) return false;
  return true;
}

/** Organisations of the convoys shown first, then every organisation the registry knows. */
function organisationOptions(select, selected, convoys, directory) {
  const seen = new Set();
  for (const c of convoys) {
    for (const id of [c.origin_id, c.destination_id, c.carrier_id, ...(c.donors || [])]) seen.add(id);
  }
  if (selected) seen.add(selected);
  const byName = (a, b) => nameOf(a).localeCompare(nameOf(b));
  const option = (id) => h("option", { value: id, selected: id === selected }, nameOf(id));
  const others = directory.map((o) => o.organisation_id).filter((id) => !seen.has(id)).sort(byName);
  select.append(
    h("optgroup", { label: t("board.in_these_convoys") }, [...seen].sort(byName).map(option)),
    others.length ? h("optgroup", { label: t("board.every_organisation") }, others.map(option)) : null,
  );
}

function newsAt(convoy) {
  const at = convoy.last_news?.occurred_at || convoy.dispatched_at;
  return at ? new Date(at).getTime() : null;
}

export async function boardPage(main, params) {
  const filters = readFilters(params);
  const rows = new Map(); // convoy_id -> {convoy, tr}
  let skew = 0; // server clock minus ours, from the in-transit answer
  let timer = null;

  const ageOf = (convoy) => {
    const at = newsAt(convoy);
    return at === null ? null : (Date.now() + skew - at) / 1000;
  };
  const isStale = (convoy) => ON_THE_ROAD.includes(convoy.status) && (ageOf(convoy) ?? 0) > STALE_AFTER_SECONDS;

  // -- filters ---------------------------------------------------------------------------
  const orgSelect = h("select", { id: "filter-organisation", name: "organisation" }, h("option", { value: "" }, t("board.any_organisation")));
  const statusSelect = h(
    "select",
    { id: "filter-status", name: "status" },
    h("option", { value: ROAD }, t("board.on_the_road_option")),
    h("option", { value: ALL }, t("board.any_status")),
    STATUSES.map((s) => h("option", { value: s }, label(s))),
  );
  statusSelect.value = filters.status;
  // ISO days (2022-06-14) in every language: a browser's date picker would show its own locale's
  // order (mm/dd/yyyy beside a Ukrainian page), the one thing no reader can be sure of
  const dayInput = (id, name, value) =>
    h("input", { id, name, type: "text", value, autocomplete: "off", size: 10, pattern: "\\d{4}-\\d{2}-\\d{2}", placeholder: t("board.date_format"), title: t("board.date_format") });
  const fromInput = dayInput("filter-from", "from", filters.from);
  const toInput = dayInput("filter-to", "to", filters.to);
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": t("board.filter") },
    h("div", { class: "field" }, h("label", { for: "filter-organisation" }, t("board.organisation")), orgSelect),
    h("div", { class: "field" }, h("label", { for: "filter-status" }, t("board.status")), statusSelect),
    h("div", { class: "field" }, h("label", { for: "filter-from" }, t("board.departing_from")), fromInput),
    h("div", { class: "field" }, h("label", { for: "filter-to" }, t("board.departing_until")), toInput),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, t("board.apply"))),
    h("p", { class: "hint zone-hint" }, t("board.days_in_zone", { zone: zone() })),
  );
  form.addEventListener("submit", (event) => {
    // reloads in place (focus stays on the filter); the address keeps the filters for sharing
    event.preventDefault();
    Object.assign(filters, { status: statusSelect.value, organisation: orgSelect.value, from: fromInput.value, to: toInput.value });
    const next = query({
      status: filters.status === ROAD ? "" : filters.status,
      organisation: filters.organisation,
      from: filters.from,
      to: filters.to,
    });
    history.replaceState(null, "", `#/board${next}`);
    load();
  });
  for (const control of [orgSelect, statusSelect]) {
    control.addEventListener("change", () => form.requestSubmit());
  }

  const count = h("p", { class: "count", id: "board-count" });
  const body = h("tbody", {});
  const table = h(
    "table",
    { class: "board", "aria-describedby": "board-count" },
    h("caption", { class: "visually-hidden" }, t("board.caption")),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        COLUMNS.map((key) => h("th", { scope: "col" }, t(key))),
      ),
    ),
    body,
  );
  const content = h("div", { class: "board-content" }, loading(t("what.convoys")));
  const heading = h("h1", { tabindex: "-1" });
  replace(main, heading, form, content);

  // -- rows ------------------------------------------------------------------------------
  function ageCell(convoy) {
    const age = ageOf(convoy);
    const stale = isStale(convoy);
    return [
      h("span", { class: "age" }, age === null ? t("board.no_news_yet") : ago(age)),
      convoy.last_news ? h("span", { class: "muted" }, ` · ${label(convoy.last_news.kind)}`) : null,
      stale ? h("span", { class: "badge stale-badge" }, t("board.stale")) : null,
    ];
  }

  function row(convoy) {
    const tr = h(
      "tr",
      { "data-convoy-id": convoy.convoy_id, class: isStale(convoy) ? "stale" : null },
      h(
        "td",
        { "data-label": t("col.convoy") },
        h("a", { href: `#/convoys/${encodeURIComponent(convoy.convoy_id)}` }, convoy.reference || convoy.convoy_id),
        h("span", { class: "sub" }, t("board.carrier", { carrier: nameOf(convoy.carrier_id) }), convoy.weight_kg ? ` · ${t("unit.weight_kg", { n: Number(convoy.weight_kg) })}` : ""),
      ),
      h("td", { "data-label": t("col.from_to") }, `${nameOf(convoy.origin_id)} → ${nameOf(convoy.destination_id)}`),
      h("td", { "data-label": t("col.status") }, statusBadge(convoy.status)),
      h(
        "td",
        { "data-label": t("col.last_checkpoint"), class: "checkpoint" },
        place(convoy.position),
        convoy.position ? h("span", { class: "sub" }, time(convoy.position.occurred_at)) : null,
      ),
      h("td", { "data-label": t("col.custody") }, party(convoy.custody)),
      h("td", { "data-label": t("col.last_news"), class: "news" }, ageCell(convoy)),
    );
    return tr;
  }

  function sortKey(convoy) {
    // on the road: stalest news first, as dispatchers read it; otherwise newest departure first
    return filters.status === ROAD ? newsAt(convoy) ?? 0 : -(new Date(departs(convoy) || 0).getTime());
  }

  function insertSorted(tr, convoy) {
    const key = sortKey(convoy);
    const after = [...rows.values()].filter((r) => r.tr !== tr && r.tr.isConnected && sortKey(r.convoy) > key);
    const before = after.length ? after.reduce((a, b) => (sortKey(a.convoy) < sortKey(b.convoy) ? a : b)).tr : null;
    body.insertBefore(tr, before);
  }

  function showCount() {
    const n = rows.size;
    const stale = [...rows.values()].filter((r) => isStale(r.convoy)).length;
    count.textContent =
      n === 0
        ? t("board.none")
        : stale
          ? t("board.count_stale", { count: n, n, stale, hours: STALE_AFTER_SECONDS / 3600 })
          : t("board.count", { count: n, n });
  }

  /** The rows shown, in their order, as CSV: the same columns, instants in UTC. */
  function boardCsv() {
    const shown = [...body.querySelectorAll("tr")].map((tr) => rows.get(tr.dataset.convoyId)?.convoy).filter(Boolean);
    const header = [t("col.convoy"), t("col.reference"), t("col.from"), t("col.to"), t("col.status"), t("col.last_checkpoint"), t("col.last_checkpoint_at"), t("col.custody"), t("col.last_news_at"), t("col.stale")];
    return [
      header,
      shown.map((c) => [
        c.convoy_id,
        c.reference || "",
        nameOf(c.origin_id),
        nameOf(c.destination_id),
        c.status,
        c.position?.place || "",
        c.position?.occurred_at ? new Date(c.position.occurred_at).toISOString() : "",
        party(c.custody),
        c.last_news?.occurred_at ? new Date(c.last_news.occurred_at).toISOString() : "",
        isStale(c) ? "yes" : "no",
      ]),
    ];
  }

  function upsert(convoy, { flash = false } = {}) {
    const had = rows.get(convoy.convoy_id);
    if (had && (had.convoy.version ?? 0) > (convoy.version ?? 0)) return false; // older news
    if (!matches(convoy, filters)) {
      if (had) {
        had.tr.remove();
        rows.delete(convoy.convoy_id);
      }
      return !!had;
    }
    const tr = row(convoy);
    if (had) had.tr.replaceWith(tr);
    else insertSorted(tr, convoy);
    rows.set(convoy.convoy_id, { convoy, tr });
    if (flash) tr.classList.add("updated");
    return true;
  }

  // live updates first, so nothing that happens while the list loads is missed
  const pending = [];
  let loaded = false;
  const unsubscribe = subscribe((update) => {
    if (update.resync) {
      load();
      return;
    }
    if (!update.convoy) return;
    if (!loaded) {
      pending.push(update);
      return;
    }
    if (upsert(update.convoy, { flash: true })) {
      showCount();
      const what = eventSummary(update.event_type, update.data);
      announce(t("announce.update", { convoy: update.convoy.reference || update.convoy_id, event: what ? `${eventName(update.event_type)}, ${what}` : eventName(update.event_type) }));
    }
  });

  /** The convoys on the road, their pages followed (up to MAX_ROWS, as the other lists). */
  async function inTransit(organisation) {
    const items = [];
    let cursor = null;
    do {
      const answer = await api("shipments", `/v1/tracking/in-transit${query({ organisation, limit: 200, cursor })}`);
      if (!items.length) skew = new Date(answer.as_of).getTime() - Date.now();
      items.push(...answer.items);
      cursor = answer.next_cursor;
    } while (cursor && items.length < MAX_ROWS);
    return items;
  }

  let generation = 0;
  async function load() {
    const mine = ++generation;
    loaded = false;
    heading.textContent = filters.status === ROAD ? t("board.title_road") : t("board.title");
    replace(content, loading(t("what.convoys")));
    try {
      const [directory, items] = await Promise.all([
        loadDirectory(),
        filters.status === ROAD
          ? inTransit(filters.organisation)
          : all("shipments", "/v1/convoys", {
              status: filters.status === ALL ? "" : filters.status,
              organisation: filters.organisation,
              departs_from: startOfDay(filters.from)?.toISOString(),
              departs_to: startOfDay(filters.to, 1)?.toISOString(),
            }),
      ]);
      if (mine !== generation) return; // filters changed again meanwhile
      if (orgSelect.options.length === 1) organisationOptions(orgSelect, filters.organisation, items, directory);
      rows.clear();
      body.replaceChildren();
      for (const convoy of items) upsert(convoy);
      loaded = true;
      for (const update of pending.splice(0)) upsert(update.convoy, { flash: true });
      replace(content, h("div", { class: "count-bar" }, count, csvButton(fileName("convoys", filters.status, filters.organisation), boardCsv, { id: "board-csv" })), h("div", { class: "table-wrap" }, table));
      showCount();
    } catch (error) {
      if (mine === generation) replace(content, errorBox(error, t("what.convoys")));
    }
  }

  await load();
  timer = setInterval(() => {
    for (const { convoy, tr } of rows.values()) {
      tr.classList.toggle("stale", isStale(convoy));
      replace(tr.querySelector("td.news"), ageCell(convoy));
    }
    showCount();
  }, 30_000);

  return () => {
    unsubscribe();
    if (timer) clearInterval(timer);
  };
}
