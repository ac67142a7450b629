// One work session as a conversation: every event of its threads in time order, messages
// as bubbles (who → whom, the turn, how long the reply took), outcomes and the task,
// plan and continuation events between them as thin lines. Live: events of this session
// that arrive on /ws are appended at once, and the session is fetched again (debounced)
// for its header (status, counts, category).

import {getJSON, patchCategory, categories, saveToken, savedToken} from "../api.js";
import * as live from "../live.js";
import {h, iso, replace, clock, fullTime, duration, label, clip, debounce, outcomeOf,
  sessionAgents} from "../util.js";

const MESSAGE_TYPES = new Set(["a2a.send", "a2a.spawn", "a2a.response", "a2a.auto_route"]);

/** A key that tells the same event apart from another when it has no seq (the detail
 *  route's events carry none, the live ones do). */
function keyOf(event) {
  const d = event.data || {};
  return [event.type, event.ts, event.agentId, d.fromAgent, d.toAgent, d.turn, d.taskId,
    String(d.message || d.replyPreview || d.summary || "").slice(0, 64)].join("|");
}

function threadOf(event) {
  const d = event.data || {};
  const from = d.fromAgent || event.agentId || "unknown";
  const to = d.toAgent || "unknown";
  return d.conversationId ? `conv:${d.conversationId}` : `pair:${[from, to].sort().join("_")}`;
}

/** Mount the session `id`; returns the unmount. */
export function mountTimeline(root, id, query) {
  const st = {session: null, events: [], keys: new Set(), thread: query.get("thread") || "",
    error: "", generation: 0, lastByThread: new Map()};
  const header = h("div.session-head");
  const chips = h("div.chips", {role: "toolbar", "aria-label": "Threads"});
  const stream = h("ol.timeline", {id: "timeline", "aria-label": "Events"});
  replace(root, h("section.session", {},
    h("a.back", {href: "#/sessions"}, "← Sessions"), header, chips, stream));

  async function load() {
    const generation = ++st.generation;
    try {
      const body = await getJSON(`api/work-sessions/${encodeURIComponent(id)}`);
      if (generation !== st.generation) return;
      st.session = body.session;
      st.error = "";
    } catch (error) {
      st.error = error.status === 404 ? `No work session ${id} (yet).` : error.message;
      renderHead();
      return;
    }
    const events = [];
    for (const t of st.session.threads || []) {
      for (const e of t.events || []) events.push({...e, thread: t.id});
    }
    // Live events the fetch did not have yet stay.
    const fetched = new Set(events.map(keyOf));
    for (const e of st.events) if (!fetched.has(keyOf(e))) events.push(e);
    events.sort((a, b) => a.ts - b.ts || (a.seq ?? 0) - (b.seq ?? 0));
    st.events = events;
    st.keys = new Set(events.map(keyOf));
    renderHead();
    renderChips();
    renderStream();
  }

  function renderHead() {
    const s = st.session;
    if (!s) {
      replace(header, st.error ? h("p.error", {}, st.error) : h("p", {}, "Loading…"));
      return;
    }
    const agents = sessionAgents(s);
    replace(header,
      h("h1", {}, h("span.sid", {}, s.workSessionId)),
      h("div.facts", {},
        h(`span.status.s-${String(s.status).toLowerCase()}`, {id: "session-status"}, s.status),
        h("span", {}, `${s.threadCount} threads · ${s.eventCount} events`),
        h("span", {title: fullTime(s.startTime)}, `${clock(s.startTime)} – ${clock(s.lastTime)}`),
        h("span", {}, duration(s.durationMs)),
        h("a", {href: `#/agents?session=${encodeURIComponent(s.workSessionId)}`},
          `Agents graph (${agents.length})`)),
      categoryEditor(s));
  }

  function categoryEditor(s) {
    const select = h("select#category-select", {"aria-label": "Category"});
    const save = h("button#category-save", {type: "button"}, "Save");
    const token = h("input#token", {type: "password", placeholder: "write token",
      "aria-label": "Write token", autocomplete: "off", hidden: true});
    const message = h("span#category-message.message", {role: "status"});
    const current = h("span#session-category.cat", {}, label(s.collabCategory));
    categories().then((names) => {
      const all = names.includes(s.collabCategory) ? names : [...names, s.collabCategory];
      replace(select, all.map((n) => h("option", {value: n, selected: n === s.collabCategory},
        label(n))));
    });
    async function submit() {
      if (!token.hidden && token.value.trim()) saveToken(token.value.trim());
      save.disabled = true;
      message.textContent = "saving…";
      try {
        const body = await patchCategory(s.workSessionId, select.value);
        const value = body.override?.collabCategory || select.value;
        s.collabCategory = value;
        current.textContent = label(value);
        message.textContent = "saved";
        token.hidden = true;
      } catch (error) {
        if (error.status === 401) {
          if (savedToken() && !token.hidden) saveToken("");
          token.hidden = false;
          token.focus();
          message.textContent = savedToken() ? error.message
            : "This daemon needs its write token to change a category: enter it and Save.";
        } else {
          message.textContent = error.message;
        }
      } finally {
        save.disabled = false;
      }
    }
    save.type = "submit";
    const form = h("form.category-edit", {onsubmit: (e) => { e.preventDefault(); submit(); }},
      h("input", {type: "text", name: "username", value: "coordd", autocomplete: "username",
        hidden: true}), select, token, save);
    return h("div.category", {}, h("span.k", {}, "Category"), current, form, message,
      s.categorySource ? h("span.muted", {}, `(${s.categorySource})`) : null);
  }

  function renderChips() {
    const threads = st.session?.threads || [];
    replace(chips,
      h("button.chip", {type: "button", "aria-pressed": st.thread ? "false" : "true",
        onclick: () => setThread("")}, `All (${st.events.length})`),
      threads.map((t) => h("button.chip", {type: "button",
        "aria-pressed": st.thread === t.id ? "true" : "false", onclick: () => setThread(t.id),
        title: t.id}, `${t.fromAgent} → ${t.toAgent} (${t.eventCount})`)));
  }

  function setThread(thread) {
    st.thread = thread;
    renderChips();
    renderStream();
  }

  function item(e) {
    const d = e.data || {};
    const from = d.fromAgent || e.agentId || "unknown";
    const to = d.toAgent || "";
    const thread = e.thread || threadOf(e);
    const time = h("time", {datetime: iso(e.ts), title: fullTime(e.ts)},
      clock(e.ts));
    const attrs = {dataset: {type: e.type, thread, ...(e.seq ? {seq: String(e.seq)} : {})}};
    if (MESSAGE_TYPES.has(e.type)) {
      const reply = e.type === "a2a.response";
      const previous = st.lastByThread.get(thread);
      const waited = reply && previous && previous.from !== from ? e.ts - previous.ts : null;
      st.lastByThread.set(thread, {from, ts: e.ts});
      const turn = d.turn ? `turn ${d.turn}${d.maxTurns ? "/" + d.maxTurns : ""}` : "";
      return h(`li.msg${reply ? ".reply" : ""}`, attrs,
        h("div.who", {}, h("b", {}, from), " → ", h("b", {}, to || "?"),
          h("span.kind", {}, e.type.replace("a2a.", "")), turn ? h("span.turn", {}, turn) : null,
          waited !== null ? h("span.waited", {title: "time from the message to this reply"},
            `replied after ${duration(waited)}`) : null, time),
        h("div.text", {lang: ""}, d.message || d.replyPreview || ""));
    }
    const outcome = outcomeOf(e.type, d);
    const bits = [d.title, d.summary, d.status, d.reason, d.error, d.label, d.taskId]
      .filter(Boolean).map((x) => clip(x, 140));
    if (d.actualTurns !== undefined) bits.unshift(`${d.actualTurns} turns`);
    return h(`li.sys${outcome ? ".o-" + outcome : ""}`, attrs,
      h("span.kind", {}, e.type), h("span.agent", {}, from + (to ? ` → ${to}` : "")),
      h("span.detail", {}, bits.join(" · ")), time);
  }

  function shown(e) {
    return !st.thread || (e.thread || threadOf(e)) === st.thread;
  }

  function renderStream() {
    st.lastByThread = new Map();
    const items = st.events.filter(shown).map(item);
    replace(stream, items.length ? items : h("li.empty", {}, "No events."));
  }

  function nearBottom() {
    const doc = document.scrollingElement || document.documentElement;
    return doc.scrollTop + window.innerHeight >= doc.scrollHeight - 120;
  }

  const refetch = debounce(load, 1000);
  const off = live.on("events", (events, affected) => {
    if (!affected.includes(id)) return;
    const stick = nearBottom();
    let added = 0;
    const empty = stream.querySelector("li.empty");
    for (const e of events) {
      if ((e.data || {}).workSessionId !== id) continue;
      const key = keyOf(e);
      if (st.keys.has(key)) continue;
      st.keys.add(key);
      st.events.push(e);
      if (shown(e)) {
        if (empty) empty.remove();
        stream.append(item(e));
        added += 1;
      }
    }
    if (added) {
      performance.mark("coordd:timeline-appended");
      if (stick) window.scrollTo(0, document.documentElement.scrollHeight);
    }
    refetch();
  });
  const offResync = live.on("resync", load);
  load();
  return () => {
    off();
    offResync();
    st.generation += 1;
  };
}
