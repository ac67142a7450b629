// The sessions list: filters, search, endless scrolling by cursor, live reordering.
//
// The list is virtualised: only the rows in view (and a few around them) are in the
// document, positioned over a spacer as tall as the whole list, so 5,000 sessions scroll
// as smoothly as 50. Pages come from /api/work-sessions?view=summary by `nextCursor`; a
// search uses /api/work-sessions/search. Live: each coordination_event_new names the
// sessions it touched; the first page is fetched again (debounced) and merged, so new and
// changed sessions appear and move to the top without a reload.

import {getJSON, categories, STATUSES, ROLES} from "../api.js";
import * as live from "../live.js";
import {h, iso, replace, clock, fullTime, ago, label, clip, debounce, sessionAgents,
  summariseSession} from "../util.js";

const ROW = 68;
const PAGE = 100;
const OVERSCAN = 6;

/** Mount the list into `root` with the filters of the hash query; returns the unmount. */
export function mountSessions(root, query, navigate) {
  const filters = {q: query.get("q") || "", status: query.get("status") || "",
    category: query.get("category") || "", role: query.get("role") || "",
    agent: query.get("agent") || ""};
  const st = {items: [], cursor: null, done: false, loading: false, total: null, selected: 0,
    generation: 0, painted: false, error: ""};

  const search = h("input#q", {type: "search", placeholder: "Search agents, category, id",
    value: filters.q, "aria-label": "Search sessions"});
  const status = select("status", "Status", STATUSES.map((s) => [s, s]), filters.status);
  const category = select("category", "Category", [], filters.category);
  const role = select("role", "Role", ROLES.map((r) => [r, r]), filters.role);
  const agent = select("agent", "Agent", [], filters.agent);
  const count = h("span.count", {id: "session-count", "aria-live": "polite"});
  const spacer = h("div.spacer");
  const windowEl = h("div.window");
  const list = h("div.vlist", {id: "session-list", role: "listbox", tabindex: "0",
    "aria-label": "Work sessions"}, spacer, windowEl);
  const note = h("div.note");
  replace(root, h("section.sessions", {},
    h("div.toolbar", {role: "search"}, search, status, category, role, agent, count),
    note, list));

  categories().then((names) => fill(category, names.map((n) => [n, label(n)]), filters.category));
  getJSON("api/stats").then((stats) => {
    const names = new Set();
    for (const pair of stats.agentPairs || []) {
      if (pair.fromAgent !== "unknown") names.add(pair.fromAgent);
      if (pair.toAgent !== "unknown") names.add(pair.toAgent);
    }
    fill(agent, [...names].sort().map((n) => [n, n]), filters.agent);
  }).catch(() => {});

  function select(name, title, options, value) {
    const node = h(`select#f-${name}`, {"aria-label": title, dataset: {filter: name}});
    fill(node, options, value, title);
    return node;
  }

  function fill(node, options, value, title = node.getAttribute("aria-label")) {
    replace(node, h("option", {value: ""}, `${title}: all`),
      options.map(([v, text]) => h("option", {value: v, selected: v === value}, text)));
  }

  function matches(s) {
    if (filters.agent && !sessionAgents(s).includes(filters.agent)) return false;
    if (!filters.q) return true;
    // A search answers without the filters: they apply here.
    if (filters.status && s.status !== filters.status) return false;
    if (filters.category && s.collabCategory !== filters.category) return false;
    if (filters.role && !(s.roleCounts && s.roleCounts[filters.role] > 0)) return false;
    return true;
  }

  function params(extra = {}) {
    return {view: "summary", status: filters.status, viewCategory: filters.category,
      role: filters.role, ...extra};
  }

  async function fetchPage(cursor, limit = PAGE) {
    if (filters.q) {
      const body = await getJSON("api/work-sessions/search",
        {q: filters.q, limit: 500, view: "summary"});
      return {sessions: body.sessions || [], nextCursor: null, total: null};
    }
    const body = await getJSON("api/work-sessions", params({limit, cursor}));
    return {sessions: body.sessions || [], nextCursor: body.nextCursor || null,
      total: body.totalMatched};
  }

  async function loadMore() {
    if (st.loading || st.done) return;
    st.loading = true;
    const generation = st.generation;
    try {
      const page = await fetchPage(st.cursor);
      if (generation !== st.generation) return;
      const known = new Set(st.items.map((s) => s.workSessionId));
      for (const s of page.sessions.map(summariseSession)) {
        if (!known.has(s.workSessionId) && matches(s)) st.items.push(s);
      }
      st.cursor = page.nextCursor;
      st.done = !page.nextCursor;
      if (page.total !== null && page.total !== undefined) st.total = page.total;
      st.error = "";
    } catch (error) {
      st.error = `Could not load sessions: ${error.message}`;
      st.done = true;
    } finally {
      st.loading = false;
    }
    if (generation === st.generation) {
      render();
      // Fill the view: a narrow filter may keep few rows of a page.
      if (!st.done && list.scrollHeight <= list.clientHeight + ROW * 4) loadMore();
    }
  }

  function reset() {
    st.generation += 1;
    st.items = [];
    st.cursor = null;
    st.done = false;
    st.loading = false;
    st.total = null;
    st.selected = 0;
    list.scrollTop = 0;
    render();
    loadMore();
  }

  function syncHash() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    const hash = `#/sessions${q.toString() ? "?" + q : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  function onFilter() {
    filters.q = search.value.trim();
    filters.status = status.value;
    filters.category = category.value;
    filters.role = role.value;
    filters.agent = agent.value;
    syncHash();
    reset();
  }

  search.addEventListener("input", debounce(onFilter, 250));
  for (const node of [status, category, role, agent]) node.addEventListener("change", onFilter);

  function row(s, index) {
    const agents = sessionAgents(s);
    const threads = s.threads || [];
    const latest = threads.reduce((a, t) => (!a || t.lastTime > a.lastTime ? t : a), null);
    return h("a.row", {href: `#/session/${encodeURIComponent(s.workSessionId)}`,
      role: "option", "aria-selected": index === st.selected ? "true" : "false",
      dataset: {id: s.workSessionId, index: String(index)}, tabindex: "-1"},
    h("div.line",
      {}, h(`span.status.s-${String(s.status).toLowerCase()}`, {}, s.status),
      h("span.cat", {}, label(s.collabCategory)),
      h("span.agents", {title: agents.join(", ")}, agents.join(" · ") || "—"),
      h("time.when", {datetime: iso(s.lastTime), title: fullTime(s.lastTime)},
        clock(s.lastTime))),
    h("div.line.sub",
      {}, h("span.sid", {}, clip(s.workSessionId, 28)),
      h("span.counts", {}, `${s.threadCount ?? threads.length} threads · ${s.eventCount} events`),
      h("span.preview", {}, latest ? clip(latest.lastMessagePreview || latest.lastEventType, 120) : "")));
  }

  function render() {
    spacer.style.height = `${st.items.length * ROW}px`;
    const top = list.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(st.items.length, Math.ceil((top + list.clientHeight) / ROW) + OVERSCAN);
    windowEl.style.transform = `translateY(${first * ROW}px)`;
    const rows = [];
    for (let i = first; i < last; i++) rows.push(row(st.items[i], i));
    replace(windowEl, rows);
    const shown = st.items.length;
    count.textContent = st.total !== null && !filters.agent && !filters.q
      ? `${shown} of ${st.total} sessions` : `${shown} sessions${st.done ? "" : "+"}`;
    replace(note, st.error ? h("p.error", {}, st.error)
      : !shown && st.done ? h("p.empty", {}, "No work session matches.") : null);
    if (!st.painted && shown) {
      st.painted = true;
      requestAnimationFrame(() => performance.mark("coordd:sessions-painted"));
    }
  }

  list.addEventListener("scroll", () => {
    render();
    if (list.scrollTop + list.clientHeight > list.scrollHeight - ROW * 10) loadMore();
  }, {passive: true});
  const resize = new ResizeObserver(() => render());
  resize.observe(list);

  function move(delta) {
    if (!st.items.length) return;
    st.selected = Math.max(0, Math.min(st.items.length - 1, st.selected + delta));
    const y = st.selected * ROW;
    if (y < list.scrollTop) list.scrollTop = y;
    else if (y + ROW > list.scrollTop + list.clientHeight) list.scrollTop = y + ROW - list.clientHeight;
    render();
    if (st.selected > st.items.length - 10) loadMore();
  }

  function onKey(event) {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "j" || event.key === "ArrowDown") move(1);
    else if (event.key === "k" || event.key === "ArrowUp") move(-1);
    else if (event.key === "Enter" && st.items[st.selected]) {
      navigate(`#/session/${encodeURIComponent(st.items[st.selected].workSessionId)}`);
    } else if (event.key === "/") search.focus();
    else return;
    event.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  // Live: refetch the first page (with the filters) and merge the sessions touched.
  const touched = new Set();
  const refresh = debounce(async () => {
    const ids = new Set(touched);
    touched.clear();
    const generation = st.generation;
    let page;
    try {
      page = await fetchPage(null, Math.min(500, Math.max(50, ids.size + 10)));
    } catch {
      return;
    }
    if (generation !== st.generation) return;
    const fresh = new Map(page.sessions.map(summariseSession).filter(matches)
      .map((s) => [s.workSessionId, s]));
    const selectedId = st.items[st.selected]?.workSessionId;
    const kept = st.items.filter((s) => !fresh.has(s.workSessionId)
      && !(ids.has(s.workSessionId) && (filters.q || filters.status || filters.category
        || filters.role || filters.agent)));
    st.items = [...fresh.values(), ...kept].sort((a, b) => b.lastTime - a.lastTime);
    if (page.total !== null && page.total !== undefined) st.total = page.total;
    const index = st.items.findIndex((s) => s.workSessionId === selectedId);
    st.selected = index >= 0 ? index : 0;
    render();
  }, 200);
  const offEvents = live.on("events", (events, affected) => {
    for (const id of affected) touched.add(id);
    if (affected.length) refresh();
  });
  const offStatus = live.on("status", (data) => {
    touched.add(data.workSessionId);
    refresh();
  });
  const offResync = live.on("resync", reset);

  reset();
  return () => {
    offEvents();
    offStatus();
    offResync();
    resize.disconnect();
    document.removeEventListener("keydown", onKey);
    st.generation += 1;
  };
}
