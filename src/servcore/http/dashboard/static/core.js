// What every view of the dashboard shares: building elements, calling the
// JSON API (with the session cookie and the CSRF header), and formatting
// times, durations and errors.

// Where the service is mounted ("" at the root): every URL starts there.
export const BASE = window.location.pathname.replace(/\/dashboard\/?$/, "");

// Who is signed in (whoami), and what the pages show besides the view.
export const session = { me: { scope: null } };
const banner = document.getElementById("banner");
const notice = document.getElementById("notice");

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// -- the API -------------------------------------------------------------

export class ApiError extends Error {}

// The answers the server put in the page (the overview's reads), so the
// first paint needs no round trip. For the first render only: each is used
// once, and what it did not use is dropped (stale by the next).
const preloaded = (() => {
  const node = document.getElementById("preload");
  try {
    return new Map(Object.entries(JSON.parse((node && node.textContent) || "{}")));
  } catch {
    return new Map();
  }
})();

export function forgetPreloaded() {
  preloaded.clear();
}

function csrf() {
  const found = document.cookie.split("; ").find((part) => part.startsWith("servcore_csrf="));
  return found ? decodeURIComponent(found.split("=")[1]) : "";
}

export async function api(method, path, body) {
  if (method === "GET" && preloaded.has(path)) {
    const data = preloaded.get(path);
    preloaded.delete(path);
    return { data, headers: new Headers() };
  }
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["content-type"] = "application/json";
    headers["x-csrf-token"] = csrf();
  }
  const response = await fetch(BASE + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign(`${BASE}/dashboard/login`);
    throw new ApiError("Signed out");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(`HTTP ${response.status}: the service did not answer in JSON`);
  }
  if (!response.ok) throw new ApiError((data && data.error) || `HTTP ${response.status}`);
  return { data, headers: response.headers };
}

export function can(scope) {
  const rank = { read: 0, write: 1, admin: 2 };
  return session.me.scope !== null && rank[session.me.scope] >= rank[scope];
}

export function say(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

export function tell(message) {
  notice.textContent = message;
}

export function saying() {
  return banner.textContent;
}

// -- routes ----------------------------------------------------------------

export function route() {
  const hash = window.location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

export function go(path, params) {
  const query = params ? params.toString() : "";
  window.location.hash = query ? `${path}?${query}` : path;
}

// -- formatting -------------------------------------------------------------

export function when(text) {
  if (!text) return "—";
  return new Date(text).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

// A moment to the millisecond: a timeline's steps are often within a second.
export function instant(text) {
  const date = new Date(text);
  const day = date.toLocaleDateString(undefined, { dateStyle: "short" });
  const time = date.toLocaleTimeString(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
  });
  return `${day} ${time}`;
}

export function between(from, to) {
  if (!from || !to) return null;
  return Math.max(0, Date.parse(to) - Date.parse(from));
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// How long the job's latest attempt ran (so far, while it runs).
export function runTime(job) {
  if (!job.started_at) return null;
  if (job.status === "running") return between(job.started_at, new Date().toISOString());
  if (job.status === "queued") return null; // waiting for its next attempt
  return between(job.started_at, job.finished_at);
}

// The line of an error that says what went wrong: its last one.
export function lastLine(text) {
  const lines = String(text || "").split("\n").map((line) => line.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : "";
}

export function perMinute(rate) {
  return `${rate.toFixed(1)}/min`;
}

// -- shared pieces ------------------------------------------------------------

export function badge(status, scheduled) {
  const shown = scheduled ? "scheduled" : status;
  return el("span", { class: `status ${shown}`, text: shown });
}

export function table(headings, rows, emptyText) {
  if (!rows.length) return el("div", { class: "table-wrap" }, el("p", { class: "empty", text: emptyText }));
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows)));
}

export function chart(minutes, label = "Last hour") {
  const width = 600, height = 120;
  const most = Math.max(1, ...minutes.map((m) => m.done + m.failed));
  const step = width / Math.max(minutes.length, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const done = minutes.reduce((sum, m) => sum + m.done, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  svg.setAttribute("aria-label", `${label}: ${done} done, ${failed} failed`);
  minutes.forEach((minute, index) => {
    const doneHeight = (minute.done / most) * height;
    const failedHeight = (minute.failed / most) * height;
    for (const [kind, barHeight, y] of [["done", doneHeight, height - doneHeight],
      ["failed", failedHeight, height - doneHeight - failedHeight]]) {
      if (barHeight <= 0) continue;
      const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      bar.setAttribute("x", index * step);
      bar.setAttribute("y", y);
      bar.setAttribute("width", Math.max(step - 1, 1));
      bar.setAttribute("height", barHeight);
      bar.setAttribute("class", kind);
      svg.append(bar);
    }
  });
  return el("div", { class: "card" }, svg, el("div", { class: "legend" },
    el("span", { class: "done", text: `■ ${done} done` }), "  ",
    el("span", { class: "failed", text: `■ ${failed} failed` }), " — per minute, newest right"));
}

// The actions of a view: run one, show what went wrong, then draw the view
// again (set by the app, so views need not know how rendering works).
export const actions = { rerender: async () => {} };

export async function act(label, work) {
  try {
    await work();
    say("");
    await actions.rerender();
  } catch (error) {
    say(`${label}: ${error.message}`);
  }
}
