// A municipality: its partnerships (registry), open needs with coverage and money by currency
// (pledges).

import { all, api, loadDirectory, nameOf, organisation, session } from "./api.js";
import { day, errorBox, h, label, loading, money, quantity, replace } from "./dom.js";

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

function partnerships(network) {
  if (!network.partners.length) return h("p", { class: "muted" }, "No partnership recorded.");
  const heads = ["Partner", "Kind", "Status", "Since", "Programme"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "stacked" },
      h("caption", { class: "visually-hidden" }, "Partnerships"),
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        network.partners.map((p) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "Partner" }, p.name, h("span", { class: "sub" }, `${label(p.kind)} · ${p.country || ""}`)),
            h("td", { "data-label": "Kind" }, label(p.partnership.kind)),
            h("td", { "data-label": "Status" }, h("span", { class: `badge partnership-${p.partnership.status}` }, label(p.partnership.status))),
            h("td", { "data-label": "Since" }, day(p.partnership.signed_at || p.partnership.changed_at || p.partnership.proposed_at)),
            h("td", { "data-label": "Programme" }, [p.partnership.programme, p.partnership.phase].filter(Boolean).join(", ") || "—"),
          ),
        ),
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
  const words = `Pledged ${fmt(pledged)}, committed ${fmt(committed)}, delivered ${fmt(delivered)}, gap ${fmt(gap)}, of ${fmt(target)}`;
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
      h("span", {}, `Pledged ${fmt(pledged)}`),
      h("span", {}, `Committed ${fmt(committed)}`),
      h("span", {}, `Delivered ${fmt(delivered)}`),
      h("span", { class: gap > 0 ? "gap" : null }, `Gap ${fmt(gap)}`),
      h("span", { class: "muted" }, `of ${fmt(target)}`),
    ),
  );
}

function needs(items, units) {
  const open = items.filter((n) => OPEN.includes(n.status));
  if (!open.length) return h("p", { class: "muted" }, `No open need (${items.length} in all).`);
  return [
    h(
      "p",
      { class: "legend", "aria-hidden": "true" },
      h("span", { class: "key delivered" }), "delivered ",
      h("span", { class: "key committed" }), "committed ",
      h("span", { class: "key pledged" }), "pledged ",
      h("span", { class: "key gap" }), "gap",
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
          h("p", { class: "muted" }, `${n.need_id} · posted ${day(n.posted_at)}${n.deadline ? ` · deadline ${day(n.deadline)}` : ""}`),
          coverageBar(n, units[n.target.currency] ?? 2),
        ),
      ),
    ),
  ];
}

function moneyTable(report, units) {
  const rows = report.rows.filter((r) => r.kind === "money");
  if (!rows.length) return h("p", { class: "muted" }, "No money requested or pledged.");
  const cols = [
    ["requested", "Requested"],
    ["pledged", "Pledged"],
    ["committed", "Committed"],
    ["received", "Received"],
    ["outstanding", "Outstanding"],
    ["funding_gap", "Funding gap"],
  ];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "stacked money" },
      h("caption", { class: "visually-hidden" }, "Money by currency"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Currency"), cols.map(([, t]) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", "data-label": "Currency" }, r.currency),
            cols.map(([k, t]) => h("td", { "data-label": t, class: "num" }, money(r[k], r.currency, units[r.currency] ?? 2))),
          ),
        ),
      ),
    ),
  );
}

export async function municipalityPage(main, _params, id) {
  const directory = await loadDirectory();
  const municipalities = directory.filter((o) => o.kind === "municipality").sort((a, b) => a.name.localeCompare(b.name));
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
  const partnersBox = h("div", {}, loading("partnerships"));
  const needsBox = h("div", {}, loading("needs"));
  const moneyBox = h("div", {}, loading("money"));
  replace(
    main,
    h("h1", { tabindex: "-1" }, nameOf(chosen)),
    h("div", { class: "field inline" }, h("label", { for: "municipality-picker" }, "Municipality"), picker),
    facts,
    section("partnerships", "Partnerships", partnersBox),
    section("needs", "Open needs", needsBox),
    section("money", "Money by currency", moneyBox),
    h("p", {}, h("a", { href: `#/board?status=all&organisation=${encodeURIComponent(chosen)}` }, `Convoys of ${nameOf(chosen)} on the board`)),
  );
  document.title = `${nameOf(chosen)} · twinaid convoys`;

  const org = organisation(chosen);
  if (org) {
    replace(facts, h("p", { class: "muted" }, [label(org.kind), org.region, org.country].filter(Boolean).join(" · "), org.aliases?.length ? ` · also ${org.aliases.join(", ")}` : ""));
  }
  const enc = encodeURIComponent(chosen);
  await Promise.all([
    api("registry", `/v1/organisations/${enc}/network`)
      .then((network) => replace(partnersBox, partnerships(network)))
      .catch((error) => replace(partnersBox, errorBox(error, "the partnerships"))),
    Promise.all([all("pledges", "/v1/needs", { recipient: chosen }), currencies()])
      .then(([items, units]) => replace(needsBox, needs(items, units)))
      .catch((error) => replace(needsBox, errorBox(error, "the needs"))),
    Promise.all([api("pledges", `/v1/reports/totals?recipient=${enc}`), currencies()])
      .then(([report, units]) => replace(moneyBox, moneyTable(report, units)))
      .catch((error) => replace(moneyBox, errorBox(error, "the money"))),
  ]);
  return () => {};
}
