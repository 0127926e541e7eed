// For auditors: each service's hash chain verified, and the trace of a pledge from need to
// delivery across the three services.

import { all, api, nameOf, session } from "./api.js";
import { csvButton, fileName } from "./csv.js";
import { announce, errorBox, h, hashValue, replace, stackedTable, time, utc, when } from "./dom.js";
import { t } from "./i18n.js";
import { field } from "./forms.js";
import { eventName, eventSummary } from "./labels.js";
import { SERVICES, trace } from "./trace.js";

function section(id, title, ...content) {
  return h("section", { "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), ...content);
}

function verdictRow(service, verdict) {
  const intact = verdict.intact;
  return h(
    "tr",
    { "data-service": service, class: intact ? "intact" : "broken" },
    h("th", { scope: "row", "data-label": t("audit.service") }, service),
    h(
      "td",
      { "data-label": t("audit.chain"), class: "verdict" },
      h("span", { class: `badge ${intact ? "ok" : "warn"}` }, intact ? `✓ ${t("audit.intact")}` : `✗ ${t("audit.broken_at", { position: verdict.bad_position ?? "?" })}`),
      verdict.problem ? h("span", { class: "sub" }, verdict.problem) : null,
    ),
    h("td", { "data-label": t("audit.events_checked"), class: "num" }, String(verdict.checked)),
    h("td", { "data-label": t("audit.head"), class: "num" }, String(verdict.head_position ?? "—")),
    h("td", { "data-label": t("audit.head_hash"), class: "hash-cell" }, hashValue(verdict.head_hash, { label: t("audit.head_hash_of", { service }) })),
    h("td", { "data-label": t("audit.signed_checkpoints"), class: "num" }, String(verdict.checkpoints_checked ?? 0)),
  );
}

async function verifyAll(body, stamp) {
  replace(stamp, t("audit.verifying"));
  const rows = await Promise.all(
    SERVICES.map((service) =>
      api(service, "/v1/audit/verify")
        .then((verdict) => verdictRow(service, verdict))
        .catch((error) =>
          h(
            "tr",
            { "data-service": service, class: "broken" },
            h("th", { scope: "row", "data-label": t("audit.service") }, service),
            h("td", { colspan: "5", "data-label": t("audit.chain") }, errorBox(error)),
          ),
        ),
    ),
  );
  replace(body, rows);
  const broken = rows.filter((r) => r.classList.contains("broken")).length;
  const text = broken ? t("audit.some_broken", { broken, count: SERVICES.length, n: SERVICES.length }) : t("audit.all_intact", { count: SERVICES.length, n: SERVICES.length });
  const now = new Date().toISOString();
  replace(stamp, `${text} ${t("audit.checked_at", { at: when(now), utc: utc(now) })}`);
  announce(text);
}

const MILESTONES = [
  ["milestone.need_posted", "pledges.need-posted"],
  ["milestone.pledged", "pledges.pledge-made"],
  ["milestone.committed", "pledges.pledge-committed"],
  ["milestone.loaded", "shipments.manifest-line-loaded"],
  ["milestone.on_the_road", "shipments.convoy-dispatched"],
  ["milestone.arrived", "shipments.convoy-arrived"],
  ["milestone.delivery_confirmed", "shipments.delivery-confirmed"],
  ["milestone.delivery_recorded", "pledges.delivery-recorded"],
];

function journey(steps) {
  return h(
    "ol",
    { class: "journey" },
    MILESTONES.map(([key, type]) => {
      const name = t(key);
      const step = steps.find((s) => s.event.event_type === type);
      return h(
        "li",
        { class: step ? "reached" : "not-reached" },
        h("span", { class: "mark", "aria-hidden": "true" }, step ? "✓" : "·"),
        h("span", {}, name, step ? [" — ", time(step.event.occurred_at)] : h("span", { class: "visually-hidden" }, ` — ${t("audit.not_reached")}`)),
      );
    }),
  );
}

const TRACE_COLUMNS = ["col.occurred", "audit.service", "col.event", "col.record", "col.by", "col.recorded"];
const CHAIN_COLUMNS = ["audit.service", "audit.chain", "audit.events_checked", "audit.head", "audit.head_hash", "audit.signed_checkpoints"];

/** The trace as CSV: the table's columns, instants in UTC, and each event's chain hash. */
function traceCsv(steps) {
  const header = [t("col.occurred_utc"), t("audit.service"), t("col.event"), t("col.event_type"), t("col.what"), t("col.record"), t("col.position"), t("col.hash"), t("col.by"), t("col.recorded_utc")];
  const rows = steps.map(({ service, event }) => [
    new Date(event.occurred_at).toISOString(),
    service,
    eventName(event.event_type),
    event.event_type,
    eventSummary(event.event_type, event.data),
    event.stream_id,
    event.position,
    event.hash || "",
    nameOf(event.metadata.organisation),
    new Date(event.recorded_at).toISOString(),
  ]);
  return [header, rows];
}

function stepsTable(steps) {
  const heads = TRACE_COLUMNS.map((key) => t(key));
  return stackedTable(
    "trace",
    t("audit.trace_caption"),
    heads,
    steps.map(({ service, event }) =>
      h(
        "tr",
        { "data-event-type": event.event_type },
        h("td", { "data-label": t("col.occurred") }, time(event.occurred_at), h("span", { class: "sub utc" }, utc(event.occurred_at))),
        h("td", { "data-label": t("audit.service") }, service),
        h(
          "td",
          { "data-label": t("col.event") },
          eventName(event.event_type),
          eventSummary(event.event_type, event.data) ? h("span", { class: "what" }, `: ${eventSummary(event.event_type, event.data)}`) : null,
          h("span", { class: "sub" }, event.event_type),
        ),
        h(
          "td",
          { "data-label": t("col.record") },
          event.stream_id,
          h("span", { class: "sub" }, t("chain.position_version", { position: event.position, version: event.stream_version })),
          h("span", { class: "sub" }, hashValue(event.hash, { label: t("chain.hash_of", { position: event.position }) })),
        ),
        h("td", { "data-label": t("col.by") }, nameOf(event.metadata.organisation), h("span", { class: "sub" }, t("audit.key", { key: event.metadata.actor || "—" }))),
        h("td", { "data-label": t("col.recorded") }, time(event.recorded_at), h("span", { class: "sub utc" }, utc(event.recorded_at))),
      ),
    ),
  );
}

export async function auditPage(main, params) {
  const heading = h("h1", { tabindex: "-1" }, t("audit.title"));
  if (!session.has("auditor")) {
    replace(main, heading, h("p", {}, t("audit.not_auditor")));
    return () => {};
  }
  const verifyBody = h("tbody", {});
  const stamp = h("p", { class: "muted", role: "status" });
  const again = h("button", { type: "button" }, t("audit.verify_again"));
  again.addEventListener("click", () => verifyAll(verifyBody, stamp));

  const pledgeList = h("datalist", { id: "pledge-ids" });
  const targetField = field({ name: "target", label: t("audit.target"), required: true, list: "pledge-ids", autocomplete: "off" });
  const result = h("div", { class: "trace-result", "aria-live": "polite" });
  const form = h("form", { class: "record trace-form", novalidate: true }, targetField, pledgeList, h("button", { type: "submit" }, t("audit.trace_button")));
  const input = form.querySelector("input");

  async function run(target) {
    replace(result, h("p", { class: "loading", role: "status" }, t("audit.tracing", { target })));
    try {
      const steps = await trace(target, (what) => replace(result, h("p", { class: "loading", role: "status" }, t("audit.tracing_what", { target, what }))));
      if (!steps.length) {
        replace(result, h("p", {}, t("audit.nothing", { target })));
        return;
      }
      replace(
        result,
        h("h3", {}, t("audit.trace_heading", { target, count: steps.length, n: steps.length, services: new Set(steps.map((s) => s.service)).size })),
        journey(steps),
        h("p", { class: "exports no-print" }, csvButton(fileName("trace", target), () => traceCsv(steps), { id: "csv-trace" })),
        stepsTable(steps),
      );
      announce(t("audit.traced", { target, count: steps.length, n: steps.length }));
    } catch (error) {
      replace(result, errorBox(error, t("what.trace")));
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const target = input.value.trim();
    if (!target) {
      input.setAttribute("aria-invalid", "true");
      const message = form.querySelector(".field-error");
      message.textContent = t("audit.enter_id");
      message.hidden = false;
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    form.querySelector(".field-error").hidden = true;
    history.replaceState(null, "", `#/audit?trace=${encodeURIComponent(target)}`);
    run(target);
  });

  replace(
    main,
    heading,
    section(
      "chains",
      t("audit.chains"),
      h("p", { class: "muted" }, t("audit.chains_intro")),
      stackedTable("chains", t("audit.chains_caption"), CHAIN_COLUMNS.map((key) => t(key)), verifyBody),
      stamp,
      again,
    ),
    section("trace", t("audit.trace_title"), form, result),
  );

  all("pledges", "/v1/pledges")
    .then((pledges) => replace(pledgeList, pledges.map((p) => h("option", { value: p.pledge_id }, `${p.donor_name || p.donor_id} → ${p.recipient_name || p.recipient_id}`))))
    .catch(() => {});
  const target = params.get("trace");
  await Promise.all([verifyAll(verifyBody, stamp), target ? ((input.value = target), run(target)) : null]);
  return () => {};
}
