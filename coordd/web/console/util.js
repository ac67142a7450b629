// Small DOM and formatting helpers shared by the views. No framework: `h` builds elements,
// text goes in as text nodes (never as HTML), and times are shown in the browser's zone.

/** An element: h("div#id.row.active", {title: "x", onclick: f}, child, "text", ...). */
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const node = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag || "div");
  if (id) node.id = id;
  if (classes.length) node.setAttribute("class", classes.join(" "));
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

const SVG_TAGS = new Set(["g", "line", "path", "circle", "rect", "text", "title", "defs",
  "marker", "polyline", "tspan"]);

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const timeFmt = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit",
  second: "2-digit"});
const dateFmt = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit"});

/** Epoch milliseconds from a number or an ISO string; NaN otherwise. */
export function toMs(value) {
  return typeof value === "string" ? Date.parse(value) : Number(value ?? NaN);
}

/** A time of day in the browser's zone (with the date when it is not today). */
export function clock(value) {
  const ms = toMs(value);
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateFmt.format(d);
}

/** The full date and time, for a title attribute. */
export function fullTime(value) {
  const ms = toMs(value);
  return Number.isFinite(ms) ? new Date(ms).toLocaleString() : "";
}

/** A duration: 850 ms, 12 s, 3 min 4 s, 2 h 5 min. */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** "3 min ago" from a time and now. */
export function ago(ms, now = Date.now()) {
  return Number.isFinite(ms) ? `${duration(Math.max(0, now - ms))} ago` : "";
}

/** A readable label for a category id: "planning_decision" -> "planning decision". */
export function label(id) {
  return String(id ?? "").replaceAll("_", " ");
}

/** At most n characters, with an ellipsis. */
export function clip(text, n) {
  const s = String(text ?? "");
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

/** Call `fn` once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** How an exchange ended, from an event's type (and its data's status or error), or ""
 *  when it says nothing. */
export function outcomeOf(type, data) {
  const t = String(type || "");
  if (data && (data.error || /fail|error/.test(String(data.status || "")))) return "failed";
  if (/fail|error/.test(t)) return "failed";
  if (/blocked/.test(t)) return "blocked";
  if (/cancel|abandon|zombie/.test(t)) return "cancelled";
  if (/no_reply|timeout/.test(t)) return "no_reply";
  if (/retry|backoff/.test(t)) return "retry";
  if (/complete|approved|done/.test(t)) return "ok";
  return "";
}

/** The agents of a session: every fromAgent / toAgent of its threads, sorted. */
export function sessionAgents(session) {
  const names = new Set();
  for (const t of session.threads || []) {
    if (t.fromAgent && t.fromAgent !== "unknown") names.add(t.fromAgent);
    if (t.toAgent && t.toAgent !== "unknown") names.add(t.toAgent);
  }
  return [...names].sort();
}

/** A thread in the summary view's shape, from a full one (a server that ignores
 *  `view=summary` still sends the events; the list needs only this). */
export function summariseThread(t) {
  if (!t.events) return t;
  const events = t.events;
  const last = events[events.length - 1] || {};
  let preview = "";
  let outcome = "";
  for (let i = events.length - 1; i >= 0; i--) {
    const d = events[i].data || {};
    if (!preview && (d.message || d.replyPreview)) preview = d.message || d.replyPreview;
    if (!outcome) outcome = outcomeOf(events[i].type, events[i].data);
    if (preview && outcome) break;
  }
  return {id: t.id, fromAgent: t.fromAgent, toAgent: t.toAgent, eventCount: t.eventCount,
    startTime: t.startTime, lastTime: t.lastTime, lastEventType: last.type || "",
    lastOutcome: outcome, lastMessagePreview: clip(preview, 160)};
}

/** A session with its threads summarised (see summariseThread). */
export function summariseSession(s) {
  return {...s, threads: (s.threads || []).map(summariseThread)};
}

/** An ISO time for a datetime attribute, "" when the time is not a number. */
export function iso(value) {
  const ms = toMs(value);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : "";
}
