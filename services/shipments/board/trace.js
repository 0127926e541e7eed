// A small `twinaid audit trace` (services/audit/trace.py) in the browser: the events about a
// pledge (or need, convoy, correlation id), every event sharing a correlation id with them,
// and the road of every convoy that carried its lines, from every service, in the order things
// happened.

import { ApiError, api, query } from "./api.js";
import { t } from "./i18n.js";

export const SERVICES = ["registry", "pledges", "shipments"];
const PAGE = 1000;
// a convoy's events about one manifest line: in a trace only when the line is the traced one's
const LINE_EVENTS = new Set(["shipments.manifest-line-loaded", "shipments.manifest-line-unloaded"]);

function mentions(value, target) {
  if (typeof value === "string") return value === target;
  if (Array.isArray(value)) return value.some((v) => mentions(v, target));
  if (value && typeof value === "object") return Object.values(value).some((v) => mentions(v, target));
  return false;
}

function about(event, target) {
  return (
    event.metadata.correlation_id === target ||
    event.stream_id === target ||
    event.stream_id.endsWith(`-${target}`) ||
    mentions(event.data, target)
  );
}

async function stream(service, streamId) {
  try {
    const events = [];
    let after = 0; // the history comes a page at a time
    for (;;) {
      const path = `/v1/audit/streams/${encodeURIComponent(streamId)}?after=${after}&limit=1000`;
      const answer = await api(service, path);
      events.push(...answer.events);
      if (answer.next_after == null) return events;
      after = answer.next_after;
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return [];
    throw error;
  }
}

async function correlated(service, correlationId) {
  const events = [];
  let after = 0;
  for (;;) {
    const page = await api(service, `/v1/events${query({ correlation_id: correlationId, after, limit: PAGE })}`);
    events.push(...page.events);
    if (page.events.length < PAGE) return events;
    after = page.next_after;
  }
}

/**
 * Steps [{service, event}] ordered by occurred_at, then recorded_at. `progress(text)` is told
 * what is being read. Raises ApiError (an auditor key is needed).
 */
export async function trace(target, progress = () => {}) {
  const found = new Map(); // service:event_id -> {service, event}
  const add = (service, events) => {
    for (const event of events) found.set(`${service}:${event.event_id}`, { service, event });
  };

  progress(t("trace.reading_records"));
  const [pledge, need, convoy] = await Promise.all([
    stream("pledges", `pledge-${target}`),
    stream("pledges", `need-${target}`),
    stream("shipments", `convoy-${target}`),
  ]);
  add("pledges", pledge);
  add("pledges", need);
  add("shipments", convoy);

  // the needs the pledge's lines answer
  const needIds = new Set();
  for (const e of pledge) for (const line of e.data.lines || []) if (line.need_id) needIds.add(line.need_id);
  for (const needId of needIds) add("pledges", await stream("pledges", `need-${needId}`));

  // the convoys that carried it: their loads of it, and their road
  const convoyIds = new Set();
  if (pledge.length) {
    const convoys = await api("shipments", `/v1/convoys${query({ pledge_id: target, limit: 200 })}`);
    for (const c of convoys.items) convoyIds.add(`convoy-${c.convoy_id}`);
  }

  const correlations = new Set([target]);
  for (const { event } of found.values()) if (event.metadata.correlation_id) correlations.add(event.metadata.correlation_id);
  for (const id of correlations) {
    progress(t("trace.reading_correlation", { id }));
    const pages = await Promise.all(SERVICES.map((s) => correlated(s, id).then((events) => [s, events])));
    for (const [service, events] of pages) add(service, events);
  }

  // the whole road of each convoy found (a need's pledges reach their convoys by correlation)
  for (const { event } of found.values()) if (event.stream_type === "convoy") convoyIds.add(event.stream_id);
  for (const convoyId of convoyIds) {
    progress(t("trace.reading_road", { id: convoyId }));
    const events = await stream("shipments", convoyId);
    add(
      "shipments",
      events.filter((e) => !LINE_EVENTS.has(e.event_type) || about(e, target) || found.has(`shipments:${e.event_id}`)),
    );
  }
  const at = (iso) => new Date(iso).getTime();
  return [...found.values()].sort(
    (a, b) =>
      at(a.event.occurred_at) - at(b.event.occurred_at) ||
      at(a.event.recorded_at) - at(b.event.recorded_at) ||
      a.event.position - b.event.position,
  );
}
