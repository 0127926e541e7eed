// A route sketch from checkpoint coordinates: inline SVG, no map tiles (no internet needed).

import { h, svg, when } from "./dom.js";

const WIDTH = 640;
const PAD = 36;

/** Places with coordinates from timeline entries, in the order they happened. */
export function stops(entries) {
  const out = [];
  for (const e of entries) {
    const c = e.data && e.data.coordinates;
    if (!c || typeof c.lat !== "number" || typeof c.lon !== "number") continue;
    out.push({
      place: e.data.place || e.data.crossing_point || "(unnamed)",
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

/** The sketch and, beside it, the same stops as a list (for screen readers and small screens). */
export function routeSketch(entries, { id = "route" } = {}) {
  const points = stops(entries);
  if (!points.length) {
    return h("p", { class: "muted" }, "No checkpoint with coordinates yet: nothing to draw.");
  }
  const projection = project(points);
  const HEIGHT = projection.height;
  const xy = points.map(projection.at);
  const last = points.length - 1;
  const labelled = new Set();
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
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const description = `From ${points[0].place} to ${points[last].place} through ${points.length} recorded points; last seen at ${points[last].place}.`;
  return h(
    "figure",
    { class: "route" },
    svg(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${titleId} ${descId}`, class: "route-svg", id },
      svg("title", { id: titleId }, "Route sketch from checkpoint coordinates"),
      svg("desc", { id: descId }, description),
      svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: "sea" }),
      graticule(projection),
      svg("polyline", { points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "track" }),
      marks,
    ),
    h(
      "figcaption",
      {},
      h("span", { class: "muted" }, "Sketch, not a map: straight lines between recorded coordinates. "),
      h(
        "ol",
        { class: "stops" },
        points.map((p, i) =>
          h(
            "li",
            {},
            h("strong", {}, p.place),
            p.kind === "border" ? ` (border${p.outcome ? `: ${p.outcome}` : ""})` : "",
            i === last ? " — last seen" : "",
            " · ",
            h("time", { datetime: p.occurred_at }, when(p.occurred_at)),
            h("span", { class: "muted" }, ` · ${p.lat.toFixed(3)}, ${p.lon.toFixed(3)}`),
          ),
        ),
      ),
    ),
  );
}
