// Attention: the open items (awaiting a reply, failed, a silent session), live, with their
// age and links to their session and thread. The store is kept from the start of the page
// (the badge in the navigation counts them); the view renders it. A daemon without
// /api/attention (404) shows that it is not available.

import {getJSON} from "../api.js";
import * as live from "../live.js";
import {h, replace, duration, label, clip, fullTime} from "../util.js";

const store = {items: new Map(), available: null, error: "", listeners: new Set()};

function changed() {
  const badge = document.getElementById("attention-count");
  if (badge) {
    badge.hidden = !store.items.size;
    badge.textContent = String(store.items.size);
  }
  for (const fn of store.listeners) fn();
}

async function load() {
  try {
    const body = await getJSON("api/attention", {state: "open", limit: 500});
    store.items = new Map((body.items || []).map((item) => [item.id, item]));
    store.available = true;
    store.error = "";
  } catch (error) {
    store.available = error.status === 404 ? false : store.available;
    store.error = error.status === 404 ? "" : error.message;
  }
  changed();
}

/** Start keeping the open items (once per page). */
export function startAttention() {
  live.on("attention", (data) => {
    const item = data.item;
    if (!item) return;
    store.available = true;
    if (data.op === "open") store.items.set(item.id, item);
    else store.items.delete(item.id);
    changed();
  });
  live.on("resync", load);
  load();
}

export function mountAttention(root) {
  const list = h("ul#attention-list.attention", {"aria-label": "Open attention items"});
  const note = h("div.note");
  replace(root, h("section.attention-view", {}, h("h1", {}, "Attention"), note, list));

  function render() {
    if (store.available === false) {
      replace(note, h("p#attention-unavailable.empty", {},
        "Attention is not available on this daemon (it has no /api/attention)."));
      replace(list);
      return;
    }
    replace(note, store.error ? h("p.error", {}, store.error) : null);
    const now = Date.now();
    const items = [...store.items.values()].sort((a, b) => (b.since ?? 0) - (a.since ?? 0));
    replace(list, items.length ? items.map((item) => {
      const ws = encodeURIComponent(item.workSessionId || "");
      const thread = item.threadId ? `?thread=${encodeURIComponent(item.threadId)}` : "";
      return h(`li.item.k-${item.kind}`, {dataset: {id: item.id, kind: item.kind}},
        h("span.kind", {}, label(item.kind)),
        h("a", {href: `#/session/${ws}${thread}`}, clip(item.workSessionId, 32)),
        h("span.agents", {}, [item.fromAgent, item.toAgent].filter(Boolean).join(" → ")),
        h("span.detail", {}, clip(typeof item.detail === "string" ? item.detail
          : JSON.stringify(item.detail ?? ""), 140)),
        h("span.age", {title: fullTime(item.since)},
          duration(Math.max(0, now - (item.since ?? now)))));
    }) : h("li.empty", {}, store.available === null ? "Loading…" : "Nothing needs attention."));
  }

  store.listeners.add(render);
  const tick = setInterval(render, 1000);
  render();
  return () => {
    store.listeners.delete(render);
    clearInterval(tick);
  };
}
