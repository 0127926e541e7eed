// A route sketch: the convoy's origin and destination (where the registry places them) with
// the coordinates recorded on the road; inline SVG, no map tiles (no internet needed).

import { nameOf } from "./api.js";
import { h, svg, when } from "./dom.js";
import { number, t, term } from "./i18n.js";

const WIDTH = 640;
const PAD = 36;

/** Places with coordinates from timeline entries, in the order they happened. */
export function stops(entries) {
  const out = [];
  for (const e of entries) {
    const c = e.data && e.data.coordinates;
    if (!c || typeof c.lat !== "number" || typeof c.lon !== "number") continue;
    out.push({
      place: e.data.place || e.data.crossing_point || t("route.unnamed"),
      lat: c.lat,
      lon: c.lon,
      kind: e.event_type === "shipments.border-crossed" ? "border" : "checkpoint",
      outcome: e.data.outcome || null,
      occurred_at: e.occurred_at,
    });
  }
  return out;
}

function project(points) {
  const lats = points.map((p) => p.lat);
  const lons = points.map((p) => p.lon);
  const mid = ((Math.min(...lats) + Math.max(...lats)) / 2) * (Math.PI / 180);
  const k = Math.cos(mid); // equirectangular, true to scale at the middle latitude
  const xs = lons.map((l) => l * k);
  const ys = lats.map((l) => -l);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const aspect = (y1 - y0) / Math.max(x1 - x0, 1e-6);
  // as tall as the route's shape asks, within reason
  const HEIGHT = Math.round(Math.max(180, Math.min(380, aspect * (WIDTH - 2 * PAD) + 2 * PAD)));
  const span = Math.max(x1 - x0, (y1 - y0) * ((WIDTH - 2 * PAD) / (HEIGHT - 2 * PAD)), 0.05);
  const scale = (WIDTH - 2 * PAD) / span;
  const offX = (WIDTH - (x1 - x0) * scale) / 2;
  const offY = (HEIGHT - (y1 - y0) * scale) / 2;
  return {
    height: HEIGHT,
    at: (p) => [offX + (p.lon * k - x0) * scale, offY + (-p.lat - y0) * scale],
    lonLine: (lon) => offX + (lon * k - x0) * scale,
    latLine: (lat) => offY + (-lat - y0) * scale,
    bounds: [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)],
  };
}

function graticule(projection) {
  const HEIGHT = projection.height;
  const [latMin, latMax, lonMin, lonMax] = projection.bounds;
  const step = Math.max(latMax - latMin, lonMax - lonMin) > 12 ? 5 : Math.max(latMax - latMin, lonMax - lonMin) > 3 ? 2 : 1;
  const lines = [];
  for (let lon = Math.floor((lonMin - 10) / step) * step; lon <= lonMax + 10; lon += step) {
    const x = projection.lonLine(lon);
    if (x < 0 || x > WIDTH) continue;
    lines.push(svg("line", { x1: x, y1: 0, x2: x, y2: HEIGHT, class: "grid" }));
    lines.push(svg("text", { x: x + 3, y: HEIGHT - 4, class: "grid-label" }, `${lon}°E`));
  }
  for (let lat = Math.floor((latMin - 10) / step) * step; lat <= latMax + 10; lat += step) {
    const y = projection.latLine(lat);
    if (y < 0 || y > HEIGHT) continue;
    lines.push(svg("line", { x1: 0, y1: y, x2: WIDTH, y2: y, class: "grid" }));
    lines.push(svg("text", { x: 3, y: y - 3, class: "grid-label" }, `${lat}°N`));
  }
  return lines;
}

function located(location) {
  return location && typeof location.lat === "number" && typeof location.lon === "number" ? location : null;
}

/** The origin and destination of a convoy view that carries their coordinates, else null. */
export function ends(convoy) {
  if (!convoy) return { origin: null, destination: null };
  const origin = located(convoy.origin_location);
  const destination = located(convoy.destination_location);
  return {
    origin: origin ? { place: nameOf(convoy.origin_id), lat: origin.lat, lon: origin.lon, kind: "origin" } : null,
    destination: destination ? { place: nameOf(convoy.destination_id), lat: destination.lat, lon: destination.lon, kind: "destination" } : null,
  };
}

const REACHED = ["arrived", "delivered", "closed"];

function endMark(p, [x, y], anchorRight) {
  // a square for the origin, a square with a ring for the destination: not a stop of the road
  const shape =
    p.kind === "origin"
      ? svg("rect", { x: x - 7, y: y - 7, width: 14, height: 14, class: "end origin" })
      : [svg("circle", { cx: x, cy: y, r: 10, class: "end destination-ring" }), svg("rect", { x: x - 5, y: y - 5, width: 10, height: 10, class: "end destination" })];
  return svg(
    "g",
    { class: `end-mark ${p.kind}`, "data-place": p.place },
    svg("title", {}, t(`route.${p.kind}_title`, { place: p.place })),
    shape,
    svg("text", { x: x + (anchorRight ? -12 : 12), y: y + (p.kind === "origin" ? 18 : -12), class: `stop-label end-label ${p.kind}`, "text-anchor": anchorRight ? "end" : "start" }, p.place),
  );
}

const coordinates = (p) => `${number(p.lat, { minimumFractionDigits: 3, maximumFractionDigits: 3 })}, ${number(p.lon, { minimumFractionDigits: 3, maximumFractionDigits: 3 })}`;

/** The sketch and, beside it, the same stops as a list (for screen readers and small screens).
 * With `convoy` (its view: origin_location, destination_location), its ends are drawn too. */
export function routeSketch(entries, { id = "route", convoy = null } = {}) {
  const points = stops(entries);
  const { origin, destination } = ends(convoy);
  if (!points.length && !origin && !destination) {
    return h("p", { class: "muted" }, t("route.nothing"));
  }
  const all = [origin, ...points, destination].filter(Boolean);
  const projection = project(all);
  const HEIGHT = projection.height;
  const xy = points.map(projection.at);
  const last = points.length - 1;
  const labelled = new Set([origin?.place, destination?.place].filter(Boolean));
  let nth = 0;
  const marks = points.map((p, i) => {
    const [x, y] = xy[i];
    const shape =
      p.kind === "border"
        ? svg("rect", { x: x - 5, y: y - 5, width: 10, height: 10, transform: `rotate(45 ${x} ${y})`, class: "stop border" })
        : svg("circle", { cx: x, cy: y, r: i === last ? 7 : 5, class: i === last ? "stop last" : "stop" });
    // one label per place (a border waited at and then cleared is one place), alternately
    // above and below the track so that neighbours do not overlap
    const text = labelled.has(p.place)
      ? null
      : svg(
          "text",
          { x: x + (x > WIDTH - 120 ? -8 : 8), y: y + (nth++ % 2 ? 18 : -10), class: "stop-label", "text-anchor": x > WIDTH - 120 ? "end" : "start" },
          p.place,
        );
    labelled.add(p.place);
    return svg("g", {}, svg("title", {}, `${p.place}, ${when(p.occurred_at)}`), shape, text);
  });
  const line = (pts) => pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  // the road recorded, from the origin; the rest to the destination is drawn as still to go
  const road = [origin ? projection.at(origin) : null, ...xy].filter(Boolean);
  const reached = convoy && REACHED.includes(convoy.status);
  const toGo = destination ? [road.length ? road[road.length - 1] : null, projection.at(destination)].filter(Boolean) : [];
  if (reached && toGo.length === 2) road.push(toGo[1]);
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const description = [
    origin && destination ? t("route.desc_ends", { origin: origin.place, destination: destination.place }) : "",
    points.length ? t("route.desc", { first: points[0].place, last: points[last].place, count: points.length, n: points.length }) : t("route.desc_no_stop"),
  ].filter(Boolean).join(" ");
  return h(
    "figure",
    { class: "route" },
    svg(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${titleId} ${descId}`, class: "route-svg", id },
      svg("title", { id: titleId }, origin || destination ? t("route.title_ends") : t("route.title")),
      svg("desc", { id: descId }, description),
      svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: "sea" }),
      graticule(projection),
      road.length > 1 ? svg("polyline", { points: line(road), class: "track" }) : null,
      !reached && toGo.length === 2 ? svg("polyline", { points: line(toGo), class: "to-go" }) : null,
      marks,
      origin ? endMark(origin, projection.at(origin), projection.at(origin)[0] > WIDTH - 120) : null,
      destination ? endMark(destination, projection.at(destination), projection.at(destination)[0] > WIDTH - 120) : null,
    ),
    h(
      "figcaption",
      {},
      h("span", { class: "muted" }, t(origin || destination ? "route.caption_ends" : "route.caption")),
      origin || destination
        ? h(
            "p",
            { class: "ends" },
            origin ? [h("span", { class: "origin" }, t("route.from"), " ", h("strong", {}, origin.place)), h("span", { class: "muted" }, ` · ${coordinates(origin)}`)] : null,
            origin && destination ? h("br") : null,
            destination ? [h("span", { class: "destination" }, t("route.to"), " ", h("strong", {}, destination.place)), h("span", { class: "muted" }, ` · ${coordinates(destination)}`)] : null,
          )
        : null,
      points.length
        ? h(
            "ol",
            { class: "stops" },
            points.map((p, i) =>
              h(
                "li",
                {},
                h("strong", {}, p.place),
                p.kind === "border" ? ` (${p.outcome ? t("route.border_outcome", { outcome: term(p.outcome) }) : t("route.border")})` : "",
                i === last ? ` — ${t("route.last_seen")}` : "",
                " · ",
                h("time", { datetime: p.occurred_at }, when(p.occurred_at)),
                h("span", { class: "muted" }, ` · ${coordinates(p)}`),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("route.no_stop")),
    ),
  );
}
