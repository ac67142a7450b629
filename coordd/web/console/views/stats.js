// Figures over a chosen range, as SVG charts from /api/stats: events over time by category
// (stacked bars, one /api/stats call per bucket), response time p50/p99 per bucket, and the
// range's outcomes and categories.

import {getJSON} from "../api.js";
import {h, replace, clock, duration, label} from "../util.js";

const RANGES = [["15m", 15 * 60e3], ["1h", 3600e3], ["6h", 6 * 3600e3], ["24h", 86400e3],
  ["7d", 7 * 86400e3]];
const BUCKETS = 12;
const W = 640;
const H = 220;
const PAD = 36;

/** A colour class per category, stable across charts (c0..c11). */
function colourOf(categories) {
  return new Map(categories.map((c, i) => [c, `c${i % 12}`]));
}

function stacked(buckets, categories) {
  const colours = colourOf(categories);
  const max = Math.max(1, ...buckets.map((b) => b.stats.events || 0));
  const bw = (W - PAD * 2) / buckets.length;
  const bars = buckets.flatMap((b, i) => {
    let y = H - PAD;
    return categories.map((c) => {
      const n = b.stats.byCategory?.[c] || 0;
      const height = ((H - PAD * 2) * n) / max;
      y -= height;
      return n ? h(`rect.${colours.get(c)}`, {x: (PAD + i * bw + 1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, bw - 2).toFixed(1), height: height.toFixed(1)},
      h("title", {}, `${clock(b.since)}: ${label(c)} ${n}`)) : null;
    });
  });
  return chart("Events by category", max, buckets, bars);
}

function axis(max, buckets, unit = (v) => String(v)) {
  const bw = (W - PAD * 2) / buckets.length;
  return [
    h("line.axis", {x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD}),
    h("text.tick", {x: PAD - 4, y: PAD, "text-anchor": "end"}, unit(max)),
    h("text.tick", {x: PAD - 4, y: H - PAD, "text-anchor": "end"}, unit(0)),
    ...[0, Math.floor(buckets.length / 2), buckets.length - 1].map((i) =>
      h("text.tick", {x: (PAD + i * bw + bw / 2).toFixed(1), y: H - PAD + 16,
        "text-anchor": "middle"}, clock(buckets[i].since))),
  ];
}

function chart(title, max, buckets, marks, unit) {
  return h("figure.chart", {}, h("figcaption", {}, title),
    h("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title},
      axis(max, buckets, unit), marks));
}

function lines(buckets) {
  const series = [["p50", "l-p50"], ["p99", "l-p99"]];
  const max = Math.max(1, ...buckets.map((b) => b.stats.responseTimeMs?.p99 || 0));
  const bw = (W - PAD * 2) / buckets.length;
  const marks = series.map(([key, cls]) => {
    const points = buckets.map((b, i) => [PAD + i * bw + bw / 2,
      H - PAD - ((H - PAD * 2) * (b.stats.responseTimeMs?.[key] || 0)) / max]);
    return h("g", {}, h(`polyline.${cls}`, {points: points.map((p) => p.map((v) => v.toFixed(1))
      .join(",")).join(" ")}),
    points.map(([x, y], i) => h(`circle.${cls}`, {cx: x.toFixed(1), cy: y.toFixed(1), r: "3"},
      h("title", {}, `${clock(buckets[i].since)} ${key}: ${duration(buckets[i].stats.responseTimeMs?.[key])}`))));
  });
  return chart("Response time (send → reply), p50 and p99", max, buckets, marks,
    (v) => duration(v) || "0");
}

function bars(title, counts, classOf = () => "c0") {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const rowH = 22;
  const height = Math.max(40, entries.length * rowH + 10);
  return h("figure.chart", {}, h("figcaption", {}, title),
    h("svg", {viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": title},
      entries.map(([k, v], i) => h("g", {},
        h("text.tick", {x: 170, y: i * rowH + 16, "text-anchor": "end"}, label(k)),
        h(`rect.${classOf(k)}`, {x: 178, y: i * rowH + 4,
          width: (((W - 240) * v) / max).toFixed(1), height: rowH - 6}),
        h("text.tick", {x: 182 + ((W - 240) * v) / max, y: i * rowH + 16}, String(v))))));
}

export function mountStats(root, query) {
  const range = query.get("range") || "1h";
  const span = RANGES.find(([n]) => n === range)?.[1] ?? 3600e3;
  const body = h("div.charts", {}, h("p", {}, "Loading…"));
  replace(root, h("section.stats", {}, h("h1", {}, "Stats"),
    h("div.toolbar", {}, RANGES.map(([name]) => h("a.chip", {href: `#/stats?range=${name}`,
      "aria-pressed": name === range ? "true" : "false"}, name))), body));
  let alive = true;
  (async () => {
    const until = Math.ceil(Date.now() / 1000) * 1000;
    const since = until - span;
    const step = span / BUCKETS;
    try {
      const [total, ...parts] = await Promise.all([
        getJSON("api/stats", {since, until}),
        ...Array.from({length: BUCKETS}, (_, i) => getJSON("api/stats",
          {since: Math.round(since + i * step), until: Math.round(since + (i + 1) * step)})),
      ]);
      if (!alive) return;
      const buckets = parts.map((stats, i) => ({since: since + i * step, stats}));
      const categories = Object.keys(total.byCategory || {}).sort();
      const colours = colourOf(categories);
      replace(body,
        h("p.summary", {}, `${total.events} events · ${total.sessions?.count ?? 0} sessions · ` +
          `reply p50 ${duration(total.responseTimeMs?.p50) || "—"}, p99 ` +
          `${duration(total.responseTimeMs?.p99) || "—"}`),
        stacked(buckets, categories),
        h("ul.legend", {}, categories.map((c) => h("li", {}, h(`span.swatch.${colours.get(c)}`),
          label(c)))),
        lines(buckets),
        bars("Outcomes", total.outcomes, (k) => `o-${k}`),
        bars("By category", total.byCategory, (k) => colours.get(k)));
    } catch (error) {
      if (alive) replace(body, h("p.error", {}, error.message));
    }
  })();
  return () => { alive = false; };
}
