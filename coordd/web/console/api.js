// The daemon's HTTP API, relative to the console's own URL: the console is at <base>/ui/,
// the API at <base>/api/..., so it works under any path prefix a reverse proxy adds.

const TOKEN_KEY = "coordd.writeToken";

/** The daemon's root URL (the directory above /ui/), ending with "/". */
export function baseUrl() {
  return new URL("../", document.baseURI).href;
}

/** An API URL with its query parameters (empty values left out). */
export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), baseUrl());
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  return url.href;
}

/** The WebSocket URL for /ws with these parameters. */
export function wsUrl(params = {}) {
  const url = new URL(apiUrl("ws", params));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON answer; ApiError with the server's `error` message otherwise. */
export async function getJSON(path, params, options = {}) {
  const response = await fetch(apiUrl(path, params), {headers: {Accept: "application/json"},
    signal: options.signal});
  return answer(response);
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.error) || `HTTP ${response.status}`);
  }
  return body;
}

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function saveToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Override a session's category. A 401 is an ApiError with status 401: ask for the token
 *  and call again (the saved token is sent when there is one). */
export async function patchCategory(id, category) {
  const headers = {"Content-Type": "application/json", Accept: "application/json"};
  const token = savedToken();
  if (token) headers["X-Task-Monitor-Token"] = token;
  const response = await fetch(apiUrl(`api/work-sessions/${encodeURIComponent(id)}/category`),
    {method: "PATCH", headers,
      body: JSON.stringify({collabCategory: category, updatedBy: "coordd-console"})});
  return answer(response);
}

let vocabulary = null;

/** The category vocabulary: the built-in ones and those enabled plugins declare, from
 *  /openapi.json (the PATCH body's enum), completed by /api/stats byCategory. */
export async function categories() {
  if (vocabulary) return vocabulary;
  const names = new Set();
  try {
    const doc = await getJSON("openapi.json");
    const op = doc.paths?.["/api/work-sessions/{id}/category"]?.patch;
    const schema = op?.requestBody?.content?.["application/json"]?.schema;
    for (const name of schema?.properties?.collabCategory?.enum || []) names.add(name);
  } catch {
    // The stats below are enough.
  }
  try {
    const stats = await getJSON("api/stats");
    for (const name of Object.keys(stats.byCategory || {})) names.add(name);
  } catch {
    // No stats: the vocabulary is what openapi.json said.
  }
  vocabulary = [...names].sort();
  return vocabulary;
}

export const STATUSES = ["ACTIVE", "QUIET", "ARCHIVED"];
export const ROLES = ["conversation.main", "delegation.subagent", "orchestration.task",
  "system.observability"];
