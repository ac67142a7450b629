// The one /ws connection: live events for every view, and the connection indicator.
//
// States shown: "connecting" (first connect), "live", "reconnecting" (closed; retried with a
// growing delay, at most 5 s), "resynced" (the daemon said resync_required, or the epoch
// changed: every view reloads what it shows). A reconnect resumes where it left off with
// since=<last seq>&epoch=<epoch>&notice=<last notice>, so nothing is missed while the
// replay window holds it.

import {wsUrl} from "./api.js";

const listeners = {events: new Set(), attention: new Set(), status: new Set(),
  resync: new Set(), state: new Set()};

const state = {socket: null, seq: null, epoch: null, notice: null, retry: 0, name: "connecting",
  timer: 0, resyncedUntil: 0, everConnected: false};

/** Subscribe to "events" (events, affectedWorkSessions), "attention" (data), "status"
 *  (data), "resync" () or "state" (name); returns the unsubscribe function. */
export function on(kind, fn) {
  listeners[kind].add(fn);
  return () => listeners[kind].delete(fn);
}

function emit(kind, ...args) {
  for (const fn of listeners[kind]) {
    try {
      fn(...args);
    } catch (error) {
      console.error(`live ${kind} listener failed`, error);
    }
  }
}

/** The indicator element and its text. */
function show(name) {
  state.name = name;
  const node = document.getElementById("conn");
  if (node) {
    node.dataset.state = name;
    node.textContent = name;
    node.title = name === "live"
      ? `live (epoch ${state.epoch}, seq ${state.seq})`
      : name === "reconnecting" ? "the connection to coordd was lost; retrying" : name;
  }
  emit("state", name);
}

export function connectionState() {
  return state.name;
}

export function lastSeq() {
  return state.seq;
}

/** Open the connection (once). */
export function start() {
  if (!state.socket) open();
}

function open() {
  const params = {};
  if (state.seq !== null && state.epoch) {
    params.since = state.seq;
    params.epoch = state.epoch;
    if (state.notice !== null) params.notice = state.notice;
  }
  let socket;
  try {
    socket = new WebSocket(wsUrl(params));
  } catch {
    schedule();
    return;
  }
  state.socket = socket;
  socket.onmessage = (message) => receive(message.data);
  socket.onclose = () => {
    if (state.socket === socket) {
      state.socket = null;
      schedule();
    }
  };
  socket.onerror = () => socket.close();
}

function schedule() {
  show(state.everConnected ? "reconnecting" : "connecting");
  clearTimeout(state.timer);
  const delay = Math.min(5000, 250 * 2 ** Math.min(state.retry, 5));
  state.retry += 1;
  state.timer = setTimeout(open, delay);
}

function resynced() {
  state.resyncedUntil = Date.now() + 4000;
  show("resynced");
  emit("resync");
  setTimeout(() => {
    if (state.name === "resynced" && Date.now() >= state.resyncedUntil) show("live");
  }, 4100);
}

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  const data = message.data || {};
  switch (message.type) {
    case "connected": {
      const epochChanged = state.epoch !== null && data.epoch !== state.epoch;
      const reconnect = state.everConnected;
      state.everConnected = true;
      state.retry = 0;
      if (state.seq === null || epochChanged) state.seq = data.seq ?? 0;
      state.epoch = data.epoch ?? message.epoch ?? state.epoch;
      if (epochChanged) {
        state.notice = null;
        resynced();
      } else {
        show(reconnect && state.name === "resynced" ? "resynced" : "live");
      }
      break;
    }
    case "coordination_event_new": {
      const events = data.events || [];
      for (const event of events) {
        if (typeof event.seq === "number" && event.seq > (state.seq ?? 0)) state.seq = event.seq;
      }
      emit("events", events, data.affectedWorkSessions || []);
      break;
    }
    case "resync_required":
      state.epoch = data.epoch ?? state.epoch;
      state.seq = data.seq ?? state.seq;
      state.notice = null;
      resynced();
      break;
    case "attention":
      if (typeof data.notice === "number") state.notice = data.notice;
      emit("attention", data);
      break;
    case "work_session_status":
      if (typeof data.notice === "number") state.notice = data.notice;
      emit("status", data);
      break;
    default:
      break; // event_log, continuation_event: the events come in coordination_event_new
  }
}
