// A municipality: its partnerships (registry), open needs with coverage and money by currency
// (pledges).

import { all, api, loadDirectory, nameOf, organisation, session } from "./api.js";
import { day, errorBox, h, label, loading, money, quantity, replace, stackedTable } from "./dom.js";
import { locale, t } from "./i18n.js";

const OPEN = ["open", "partly_covered"];
let minorUnits = null;

async function currencies() {
  minorUnits ??= api("pledges", "/v1/reference")
    .then((r) => r.currencies)
    .catch(() => ({}));
  return minorUnits;
}

function section(id, title, ...content) {
  return h("section", { "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), ...content);
}

/** An organisation's network with every page of its partners followed (up to `max`). */
async function networkOf(enc, max = 1000) {
  const path = `/v1/organisations/${enc}/network?limit=200`;
  const network = await api("registry", path);
  let cursor = network.next_cursor;
  while (cursor && network.partners.length < max) {
    const page = await api("registry", `${path}&cursor=${encodeURIComponent(cursor)}`);
    network.partners.push(...page.partners);
    cursor = page.next_cursor;
  }
  return network;
}

function partnerships(network) {
  if (!network.partners.length) return h("p", { class: "muted" }, t("municipality.no_partnership"));
  const heads = ["col.partner", "col.kind", "col.status", "col.since", "col.programme"].map((key) => t(key));
  return stackedTable(
    "",
    t("municipality.partnerships"),
    heads,
    network.partners.map((p) =>
      h(
        "tr",
        {},
        h("td", { "data-label": t("col.partner") }, p.name, h("span", { class: "sub" }, `${label(p.kind)} · ${p.country || ""}`)),
        h("td", { "data-label": t("col.kind") }, label(p.partnership.kind)),
        h("td", { "data-label": t("col.status") }, h("span", { class: `badge partnership-${p.partnership.status}` }, label(p.partnership.status))),
        h("td", { "data-label": t("col.since") }, day(p.partnership.signed_at || p.partnership.changed_at || p.partnership.proposed_at)),
        h("td", { "data-label": t("col.programme") }, [p.partnership.programme ? label(p.partnership.programme) : null, p.partnership.phase].filter(Boolean).join(", ") || "—"),
      ),
    ),
  );
}

/** Pledged, committed and delivered against the target, as a bar and as words. */
export function coverageBar(need, digits) {
  const isMoney = need.kind === "money";
  const target = Number(isMoney ? need.target.amount : need.target.quantity);
  const c = need.coverage;
  const [pledged, committed, delivered, gap] = [c.pledged, c.committed, c.delivered, c.gap].map(Number);
  const fmt = (v) => (isMoney ? money(v, need.target.currency, digits) : quantity(v, need.target.unit));
  const cap = (v) => Math.max(0, Math.min(v, target));
  const pct = (v) => (target > 0 ? (100 * v) / target : 0);
  const parts = [
    ["delivered", cap(delivered)],
    ["committed", cap(committed) - cap(delivered)],
    ["pledged", cap(pledged) - cap(committed)],
  ];
  const words = t("coverage.words", { pledged: fmt(pledged), committed: fmt(committed), delivered: fmt(delivered), gap: fmt(gap), target: fmt(target) });
  const bar = h("div", { class: "bar", role: "img", "aria-label": words });
  for (const [kind, value] of parts) {
    if (value <= 0) continue;
    const seg = h("span", { class: `seg ${kind}` });
    seg.style.width = `${pct(value)}%`; // CSSOM, allowed by the page's style-src 'self'
    bar.append(seg);
  }
  return h(
    "div",
    { class: "coverage" },
    bar,
    h(
      "p",
      { class: "coverage-words" },
      h("span", {}, t("coverage.pledged", { amount: fmt(pledged) })),
      h("span", {}, t("coverage.committed", { amount: fmt(committed) })),
      h("span", {}, t("coverage.delivered", { amount: fmt(delivered) })),
      h("span", { class: gap > 0 ? "gap" : null }, t("coverage.gap", { amount: fmt(gap) })),
      h("span", { class: "muted" }, t("coverage.of", { amount: fmt(target) })),
    ),
  );
}

function needs(items, units) {
  const open = items.filter((n) => OPEN.includes(n.status));
  if (!open.length) return h("p", { class: "muted" }, t("municipality.no_open_need", { count: items.length, n: items.length }));
  return [
    h(
      "p",
      { class: "legend", "aria-hidden": "true" },
      h("span", { class: "key delivered" }), `${t("coverage.key_delivered")} `,
      h("span", { class: "key committed" }), `${t("coverage.key_committed")} `,
      h("span", { class: "key pledged" }), `${t("coverage.key_pledged")} `,
      h("span", { class: "key gap" }), t("coverage.key_gap"),
    ),
    h(
      "ul",
      { class: "needs" },
      open.map((n) =>
        h(
          "li",
          { class: "need", "data-need-id": n.need_id },
          h(
            "h3",
            {},
            label(n.category || n.kind),
            " ",
            h("span", { class: `badge priority-${n.priority}` }, label(n.priority)),
            " ",
            h("span", { class: "badge" }, label(n.status)),
          ),
          h("p", { class: "description" }, n.description),
          h("p", { class: "muted" }, `${n.need_id} · ${t("municipality.posted", { day: day(n.posted_at) })}${n.deadline ? ` · ${t("municipality.deadline", { day: day(n.deadline) })}` : ""}`),
          coverageBar(n, units[n.target.currency] ?? 2),
        ),
      ),
    ),
  ];
}

function moneyTable(report, units) {
  const rows = report.rows.filter((r) => r.kind === "money");
  if (!rows.length) return h("p", { class: "muted" }, t("municipality.no_money"));
  const cols = [
    ["requested", t("money.requested")],
    ["pledged", t("money.pledged")],
    ["committed", t("money.committed")],
    ["received", t("money.received")],
    ["outstanding", t("money.outstanding")],
    ["funding_gap", t("money.funding_gap")],
  ];
  return stackedTable(
    "money",
    t("municipality.money"),
    [t("money.currency"), ...cols.map(([, t]) => t)],
    rows.map((r) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", "data-label": t("money.currency") }, r.currency),
        cols.map(([k, t]) => h("td", { "data-label": t, class: "num" }, money(r[k], r.currency, units[r.currency] ?? 2))),
      ),
    ),
  );
}

export async function municipalityPage(main, _params, id) {
  const directory = await loadDirectory();
  const municipalities = directory.filter((o) => o.kind === "municipality").sort((a, b) => a.name.localeCompare(b.name, locale()));
  const own = session.who && organisation(session.who.organisation);
  const chosen = id || (own && own.kind === "municipality" ? own.organisation_id : municipalities[0]?.organisation_id || "kharkiv");
  if (!id) {
    history.replaceState(null, "", `#/municipalities/${encodeURIComponent(chosen)}`);
  }
  const picker = h(
    "select",
    { id: "municipality-picker" },
    municipalities.map((m) => h("option", { value: m.organisation_id, selected: m.organisation_id === chosen }, `${m.name} (${m.country})`)),
  );
  if (!municipalities.some((m) => m.organisation_id === chosen)) {
    picker.prepend(h("option", { value: chosen, selected: true }, nameOf(chosen)));
  }
  picker.addEventListener("change", () => {
    location.hash = `#/municipalities/${encodeURIComponent(picker.value)}`;
  });
  const facts = h("div", {});
  const partnersBox = h("div", {}, loading(t("what.partnerships")));
  const needsBox = h("div", {}, loading(t("what.needs")));
  const moneyBox = h("div", {}, loading(t("what.money")));
  replace(
    main,
    h("h1", { tabindex: "-1" }, nameOf(chosen)),
    h("div", { class: "field inline" }, h("label", { for: "municipality-picker" }, t("municipality.picker")), picker),
    facts,
    section("partnerships", t("municipality.partnerships"), partnersBox),
    section("needs", t("municipality.open_needs"), needsBox),
    section("money", t("municipality.money"), moneyBox),
    h("p", {}, h("a", { href: `#/board?status=all&organisation=${encodeURIComponent(chosen)}` }, t("municipality.convoys_link", { name: nameOf(chosen) }))),
  );
  document.title = `${nameOf(chosen)} · ${t("page.title")}`;

  const org = organisation(chosen);
  if (org) {
    replace(facts, h("p", { class: "muted" }, [label(org.kind), org.region, org.country].filter(Boolean).join(" · "), org.aliases?.length ? ` · ${t("municipality.also", { names: org.aliases.join(", ") })}` : ""));
  }
  const enc = encodeURIComponent(chosen);
  await Promise.all([
    networkOf(enc)
      .then((network) => replace(partnersBox, partnerships(network)))
      .catch((error) => replace(partnersBox, errorBox(error, t("what.partnerships")))),
    Promise.all([all("pledges", "/v1/needs", { recipient: chosen }), currencies()])
      .then(([items, units]) => replace(needsBox, needs(items, units)))
      .catch((error) => replace(needsBox, errorBox(error, t("what.needs")))),
    Promise.all([api("pledges", `/v1/reports/totals?recipient=${enc}`), currencies()])
      .then(([report, units]) => replace(moneyBox, moneyTable(report, units)))
      .catch((error) => replace(moneyBox, errorBox(error, t("what.money")))),
  ]);
  return () => {};
}
