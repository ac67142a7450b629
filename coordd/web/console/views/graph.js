// Who talks to whom, as an SVG graph: one node per agent on a circle, one arrow per
// direction between two agents, its width the number of messages, its colour the outcome
// that ended most of those exchanges. For one session (its threads) or for a time range
// (the work sessions active in it, summarised).

import {getJSON} from "../api.js";
import {h, replace, label, summariseSession, outcomeOf} from "../util.js";

const RANGES = [["15m", 15 * 60e3], ["1h", 3600e3], ["6h", 6 * 3600e3], ["24h", 86400e3],
  ["all", 0]];
const OUTCOMES = ["ok", "failed", "blocked", "cancelled", "no_reply", "retry", ""];

const MESSAGES = new Set(["a2a.send", "a2a.response", "a2a.spawn", "a2a.auto_route"]);

/** Edges from threads: one per direction {from, to, weight, outcomes: {outcome: n}}. With
 *  events (a session's detail), each message counts for its own direction (a reply goes
 *  back); a summary counts the thread's events for its direction. The thread's outcome
 *  colours its own direction. */
export function edgesOf(threads) {
  const edges = new Map();
  const edge = (from, to) => {
    const key = `${from}→${to}`;
    if (!edges.has(key)) edges.set(key, {from, to, weight: 0, outcomes: {}});
    return edges.get(key);
  };
  for (const t of threads) {
    const from = t.fromAgent || "unknown";
    const to = t.toAgent || "unknown";
    let outcome = t.lastOutcome || "";
    if (t.events) {
      for (const e of t.events) {
        const d = e.data || {};
        outcome = outcomeOf(e.type, d) || outcome;
        const a = d.fromAgent || e.agentId;
        const b = d.toAgent;
        if (MESSAGES.has(e.type) && a && b && a !== b) edge(a, b).weight += 1;
      }
    } else if (from !== to) {
      edge(from, to).weight += t.eventCount || 0;
    }
    if (from !== to) {
      const own = edge(from, to);
      own.outcomes[outcome] = (own.outcomes[outcome] || 0) + 1;
    }
  }
  return [...edges.values()].filter((e) => e.weight > 0);
}

function dominant(outcomes) {
  let best = "";
  let n = -1;
  for (const o of OUTCOMES) {
    if ((outcomes[o] || 0) > n && (o !== "" || n <= 0)) {
      best = o;
      n = outcomes[o] || 0;
    }
  }
  return best || "none";
}

/** The SVG for `edges`. */
export function graphSvg(edges, size = 640) {
  const degree = new Map();
  for (const e of edges) {
    degree.set(e.from, (degree.get(e.from) || 0) + e.weight);
    degree.set(e.to, (degree.get(e.to) || 0) + e.weight);
  }
  const names = [...degree.keys()].sort((a, b) => degree.get(b) - degree.get(a) || a.localeCompare(b));
  const c = size / 2;
  const r = size / 2 - 90;
  const at = new Map(names.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, names.length) - Math.PI / 2;
    return [n, [c + r * Math.cos(a), c + r * Math.sin(a)]];
  }));
  const max = Math.max(1, ...edges.map((e) => e.weight));
  const markers = ["ok", "failed", "blocked", "cancelled", "no_reply", "retry", "none"].map((o) =>
    h("marker", {id: `arrow-${o}`, viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse"},
    h(`path.o-${o}`, {d: "M0,0 L10,5 L0,10 z"})));
  const lines = edges.map((e) => {
    const [x1, y1] = at.get(e.from);
    const [x2, y2] = at.get(e.to);
    const dx = x2 - x1;
    const dy = y2 - y1;
    const len = Math.hypot(dx, dy) || 1;
    // Bend to the right of the direction, so A→B and B→A are two arcs; stop at the node.
    const mx = (x1 + x2) / 2 - (dy / len) * 28;
    const my = (y1 + y2) / 2 + (dx / len) * 28;
    const ex = x2 - ((x2 - mx) / Math.hypot(x2 - mx, y2 - my)) * 22;
    const ey = y2 - ((y2 - my) / Math.hypot(x2 - mx, y2 - my)) * 22;
    const o = dominant(e.outcomes);
    const width = 1 + 7 * Math.sqrt(e.weight / max);
    const outcomes = Object.entries(e.outcomes).map(([k, v]) => `${k || "open"}: ${v}`).join(", ");
    return h(`path.edge.o-${o}`, {d: `M${x1},${y1} Q${mx},${my} ${ex},${ey}`,
      "stroke-width": width.toFixed(1), "marker-end": `url(#arrow-${o})`,
      dataset: {from: e.from, to: e.to, weight: String(e.weight)}},
    h("title", {}, `${e.from} → ${e.to}: ${e.weight} messages (${outcomes})`));
  });
  const nodes = names.map((n) => {
    const [x, y] = at.get(n);
    const outside = [c + (x - c) * 1.18, c + (y - c) * 1.18];
    return h("g.node", {dataset: {agent: n}},
      h("circle", {cx: x.toFixed(1), cy: y.toFixed(1), r: "18"}),
      h("text", {x: outside[0].toFixed(1), y: outside[1].toFixed(1), "text-anchor": "middle",
        "dominant-baseline": "middle"}, n),
      h("title", {}, `${n}: ${degree.get(n)} messages`));
  });
  return h("svg.graph", {viewBox: `0 0 ${size} ${size}`, role: "img",
    "aria-label": `${names.length} agents, ${edges.length} directions`},
  h("defs", {}, markers), h("g", {}, lines), h("g", {}, nodes));
}

function legend() {
  return h("ul.legend", {}, ["ok", "failed", "blocked", "cancelled", "no_reply", "retry", "none"]
    .map((o) => h("li", {}, h(`span.swatch.o-${o}`), label(o === "none" ? "open / no outcome" : o))));
}

/** Mount the graph; `session` in the query picks one session, else `range`. */
export function mountAgents(root, query) {
  const session = query.get("session") || "";
  const range = query.get("range") || "1h";
  const picker = h("div.toolbar", {},
    session ? h("span", {}, "Session ", h("a", {href: `#/session/${encodeURIComponent(session)}`},
      session), " · ") : null,
    RANGES.map(([name]) => h("a.chip", {href: `#/agents?range=${name}`,
      "aria-pressed": !session && name === range ? "true" : "false"}, name)));
  const body = h("div.graph-box", {}, h("p", {}, "Loading…"));
  replace(root, h("section.agents", {}, h("h1", {}, "Agents"), picker, body, legend()));
  let alive = true;

  (async () => {
    try {
      let threads;
      if (session) {
        const detail = await getJSON(`api/work-sessions/${encodeURIComponent(session)}`);
        threads = detail.session.threads || [];
      } else {
        const span = RANGES.find(([n]) => n === range)?.[1] ?? 3600e3;
        const list = await getJSON("api/work-sessions", {view: "summary", limit: 500,
          since: span ? Math.round(Date.now() - span) : undefined});
        threads = (list.sessions || []).flatMap((s) => summariseSession(s).threads);
      }
      if (!alive) return;
      const edges = edgesOf(threads);
      replace(body, edges.length ? graphSvg(edges)
        : h("p.empty", {}, "No messages between agents here."));
    } catch (error) {
      if (alive) replace(body, h("p.error", {}, error.message));
    }
  })();
  return () => { alive = false; };
}
