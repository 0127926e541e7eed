// For auditors: each service's hash chain verified, and the trace of a pledge from need to
// delivery across the three services.

import { all, api, nameOf, session } from "./api.js";
import { announce, errorBox, h, replace, short, time, when } from "./dom.js";
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
    h("th", { scope: "row", "data-label": "Service" }, service),
    h(
      "td",
      { "data-label": "Chain", class: "verdict" },
      h("span", { class: `badge ${intact ? "ok" : "warn"}` }, intact ? "✓ Intact" : `✗ Broken at position ${verdict.bad_position ?? "?"}`),
      verdict.problem ? h("span", { class: "sub" }, verdict.problem) : null,
    ),
    h("td", { "data-label": "Events checked", class: "num" }, String(verdict.checked)),
    h("td", { "data-label": "Head", class: "num" }, String(verdict.head_position ?? "—")),
    h("td", { "data-label": "Head hash" }, h("code", { title: verdict.head_hash || "" }, short(verdict.head_hash))),
    h("td", { "data-label": "Signed checkpoints", class: "num" }, String(verdict.checkpoints_checked ?? 0)),
  );
}

async function verifyAll(body, stamp) {
  replace(stamp, "Verifying…");
  const rows = await Promise.all(
    SERVICES.map((service) =>
      api(service, "/v1/audit/verify")
        .then((verdict) => verdictRow(service, verdict))
        .catch((error) =>
          h(
            "tr",
            { "data-service": service, class: "broken" },
            h("th", { scope: "row", "data-label": "Service" }, service),
            h("td", { colspan: "5", "data-label": "Chain" }, errorBox(error)),
          ),
        ),
    ),
  );
  replace(body, rows);
  const broken = rows.filter((r) => r.classList.contains("broken")).length;
  const text = broken ? `${broken} of ${SERVICES.length} chains could not be verified intact.` : `All ${SERVICES.length} chains intact.`;
  replace(stamp, `${text} Checked at ${when(new Date().toISOString())}.`);
  announce(text);
}

const MILESTONES = [
  ["Need posted", (t) => t === "pledges.need-posted"],
  ["Pledged", (t) => t === "pledges.pledge-made"],
  ["Committed", (t) => t === "pledges.pledge-committed"],
  ["Loaded on a convoy", (t) => t === "shipments.manifest-line-loaded"],
  ["On the road", (t) => t === "shipments.convoy-dispatched"],
  ["Arrived", (t) => t === "shipments.convoy-arrived"],
  ["Delivery confirmed", (t) => t === "shipments.delivery-confirmed"],
  ["Delivery recorded on the pledge", (t) => t === "pledges.delivery-recorded"],
];

function journey(steps) {
  return h(
    "ol",
    { class: "journey" },
    MILESTONES.map(([name, test]) => {
      const step = steps.find((s) => test(s.event.event_type));
      return h(
        "li",
        { class: step ? "reached" : "not-reached" },
        h("span", { class: "mark", "aria-hidden": "true" }, step ? "✓" : "·"),
        h("span", {}, name, step ? [" — ", time(step.event.occurred_at)] : h("span", { class: "visually-hidden" }, " — not reached")),
      );
    }),
  );
}

function stepsTable(steps) {
  const heads = ["Occurred", "Service", "Event", "Record", "By", "Recorded"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "stacked trace" },
      h("caption", { class: "visually-hidden" }, "Every event of the trace, in the order things happened"),
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        steps.map(({ service, event }) =>
          h(
            "tr",
            { "data-event-type": event.event_type },
            h("td", { "data-label": "Occurred" }, time(event.occurred_at)),
            h("td", { "data-label": "Service" }, service),
            h(
              "td",
              { "data-label": "Event" },
              eventName(event.event_type),
              eventSummary(event.event_type, event.data) ? h("span", { class: "what" }, `: ${eventSummary(event.event_type, event.data)}`) : null,
              h("span", { class: "sub" }, event.event_type),
            ),
            h("td", { "data-label": "Record" }, event.stream_id, h("span", { class: "sub" }, `position ${event.position} · v${event.stream_version}`)),
            h("td", { "data-label": "By" }, nameOf(event.metadata.organisation), h("span", { class: "sub" }, `key ${event.metadata.actor || "—"}`)),
            h("td", { "data-label": "Recorded" }, time(event.recorded_at)),
          ),
        ),
      ),
    ),
  );
}

export async function auditPage(main, params) {
  const heading = h("h1", { tabindex: "-1" }, "Audit");
  if (!session.has("auditor")) {
    replace(main, heading, h("p", {}, "This page is for auditors: your key has no auditor role, so the services would refuse its checks."));
    return () => {};
  }
  const verifyBody = h("tbody", {});
  const stamp = h("p", { class: "muted", role: "status" });
  const again = h("button", { type: "button" }, "Verify again");
  again.addEventListener("click", () => verifyAll(verifyBody, stamp));

  const pledgeList = h("datalist", { id: "pledge-ids" });
  const targetField = field({ name: "target", label: "Pledge id (or a need, convoy or correlation id)", required: true, list: "pledge-ids", autocomplete: "off" });
  const result = h("div", { class: "trace-result", "aria-live": "polite" });
  const form = h("form", { class: "record trace-form", novalidate: true }, targetField, pledgeList, h("button", { type: "submit" }, "Trace"));
  const input = form.querySelector("input");

  async function run(target) {
    replace(result, h("p", { class: "loading", role: "status" }, `Tracing ${target}…`));
    try {
      const steps = await trace(target, (what) => replace(result, h("p", { class: "loading", role: "status" }, `Tracing ${target}: reading ${what}…`)));
      if (!steps.length) {
        replace(result, h("p", {}, `No event of any service is about ${target}.`));
        return;
      }
      replace(
        result,
        h("h3", {}, `${target}: ${steps.length} events in ${new Set(steps.map((s) => s.service)).size} services`),
        journey(steps),
        stepsTable(steps),
      );
      announce(`Trace of ${target}: ${steps.length} events.`);
    } catch (error) {
      replace(result, errorBox(error, "the trace"));
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const target = input.value.trim();
    if (!target) {
      input.setAttribute("aria-invalid", "true");
      const message = form.querySelector(".field-error");
      message.textContent = "Enter the id to trace";
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
      "Hash chains",
      h("p", { class: "muted" }, "Each service recomputes its chain of event hashes and checks its signed checkpoints."),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "stacked chains" },
          h("caption", { class: "visually-hidden" }, "Verification of each service's event log"),
          h("thead", {}, h("tr", {}, ["Service", "Chain", "Events checked", "Head", "Head hash", "Signed checkpoints"].map((t) => h("th", { scope: "col" }, t)))),
          verifyBody,
        ),
      ),
      stamp,
      again,
    ),
    section("trace", "Trace a pledge from need to delivery", form, result),
  );

  all("pledges", "/v1/pledges")
    .then((pledges) => replace(pledgeList, pledges.map((p) => h("option", { value: p.pledge_id }, `${p.donor_name || p.donor_id} → ${p.recipient_name || p.recipient_id}`))))
    .catch(() => {});
  const target = params.get("trace");
  await Promise.all([verifyAll(verifyBody, stamp), target ? ((input.value = target), run(target)) : null]);
  return () => {};
}
