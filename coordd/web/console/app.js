// The console's entry point: the hash router, the navigation, the global keys and the one
// live connection. Routes: #/sessions?<filters>, #/session/<id>?thread=<id>,
// #/agents?session=<id>|range=<r>, #/attention, #/stats?range=<r>.

import * as live from "./live.js";
import {mountSessions} from "./views/sessions.js";
import {mountTimeline} from "./views/timeline.js";
import {mountAgents} from "./views/graph.js";
import {mountAttention, startAttention} from "./views/attention.js";
import {mountStats} from "./views/stats.js";

const main = document.getElementById("main");
let unmount = () => {};

function navigate(hash) {
  location.hash = hash;
}

function route() {
  const raw = location.hash.replace(/^#\/?/, "") || "sessions";
  const [path, search = ""] = raw.split("?");
  const query = new URLSearchParams(search);
  const [view, ...rest] = path.split("/");
  unmount();
  let name = view;
  if (view === "session" && rest.length) {
    unmount = mountTimeline(main, decodeURIComponent(rest.join("/")), query);
    name = "sessions";
  } else if (view === "agents") unmount = mountAgents(main, query);
  else if (view === "attention") unmount = mountAttention(main, query);
  else if (view === "stats") unmount = mountStats(main, query);
  else {
    name = "sessions";
    unmount = mountSessions(main, query, navigate);
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = view || "sessions";
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement
      || target instanceof HTMLTextAreaElement || event.ctrlKey || event.metaKey || event.altKey) {
    return;
  }
  const views = {1: "#/sessions", 2: "#/agents", 3: "#/attention", 4: "#/stats"};
  if (views[event.key]) {
    navigate(views[event.key]);
    event.preventDefault();
  } else if (event.key === "Escape" && location.hash.startsWith("#/session/")) {
    navigate("#/sessions");
    event.preventDefault();
  }
});

window.addEventListener("hashchange", route);
live.start();
startAttention();
route();
