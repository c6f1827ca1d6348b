// servcore dashboard: no framework, no build step. Hash routes:
//   #/               overview (queues, nodes, counts, the last hour)
//   #/jobs?...       jobs, filtered by status, queue, task and text; paginated
//   #/jobs/ID        one job
//   #/enqueue        a form to submit a job
// Everything goes through the JSON API, with the session cookie; changing
// requests carry the CSRF secret in X-CSRF-Token. Views refresh every 2 s.
"use strict";

const REFRESH_MS = 2000;
// Where the service is mounted ("" at the root): every URL starts there.
const BASE = window.location.pathname.replace(/\/dashboard\/?$/, "");
const PER_PAGE = 25;
const STATUSES = ["", "queued", "scheduled", "available", "running", "done", "failed", "cancelled"];
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const notice = document.getElementById("notice");
const live = document.getElementById("live");
let me = { scope: null };
let timer = null;
let rendering = 0; // the newest render: an older one that finishes late is dropped
let selected = new Set(); // kept across pages and refreshes until acted on
// The last counts seen per queue, to show rates between refreshes.
const lastSeen = new Map();

// -- helpers -----------------------------------------------------------

function el(tag, attrs = {}, ...children) {
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

function csrf() {
  const found = document.cookie.split("; ").find((part) => part.startsWith("servcore_csrf="));
  return found ? decodeURIComponent(found.split("=")[1]) : "";
}

class ApiError extends Error {}

async function api(method, path, body) {
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

function can(scope) {
  const rank = { read: 0, write: 1, admin: 2 };
  return me.scope !== null && rank[me.scope] >= rank[scope];
}

function say(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

function when(text) {
  if (!text) return "—";
  const date = new Date(text);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function badge(status, scheduled) {
  const shown = scheduled ? "scheduled" : status;
  return el("span", { class: `status ${shown}`, text: shown });
}

function route() {
  const hash = window.location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function go(path, params) {
  const query = params ? params.toString() : "";
  window.location.hash = query ? `${path}?${query}` : path;
}

async function act(label, work) {
  try {
    await work();
    say("");
    await render(true); // show the change now, whatever had focus
  } catch (error) {
    say(`${label}: ${error.message}`);
  }
}

// -- views -------------------------------------------------------------

async function overview() {
  const [stats, queues, nodes, history] = await Promise.all([
    api("GET", "/stats"), api("GET", "/queues"), api("GET", "/nodes"),
    api("GET", "/stats/history"),
  ]);
  const counts = ["queued", "scheduled", "running", "done", "failed", "cancelled"];
  const now = Date.now();
  const rates = new Map(queues.data.map((queue) => {
    const before = lastSeen.get(queue.name);
    lastSeen.set(queue.name, { at: now, done: queue.done, failed: queue.failed });
    if (!before || now <= before.at) return [queue.name, null];
    const perMinute = (n) => Math.max(0, (n * 60000) / (now - before.at));
    return [queue.name, { done: perMinute(queue.done - before.done), failed: perMinute(queue.failed - before.failed) }];
  }));
  const rate = (name, kind) => (rates.get(name) ? `${rates.get(name)[kind].toFixed(1)}/min` : "…");
  const queueRows = queues.data.map((queue) => el("tr", { "data-queue": queue.name },
    el("td", {}, el("a", { href: `#/jobs?queue=${encodeURIComponent(queue.name)}`, text: queue.name })),
    el("td", {}, queue.paused ? el("span", { class: "status paused", text: "paused" }) : "running"),
    el("td", { text: queue.depth }), el("td", { text: queue.scheduled }),
    el("td", { text: queue.running }),
    el("td", { text: queue.done }), el("td", { class: "muted", text: rate(queue.name, "done") }),
    el("td", { text: queue.failed }), el("td", { class: "muted", text: rate(queue.name, "failed") }),
    el("td", { text: queue.oldest_job_age === null ? "—" : `${queue.oldest_job_age.toFixed(1)} s` }),
    el("td", {}, can("admin") ? el("button", {
      type: "button", class: "secondary",
      "aria-label": `${queue.paused ? "Resume" : "Pause"} queue ${queue.name}`,
      onclick: () => act(queue.paused ? "Resume" : "Pause",
        () => api("POST", `/queues/${encodeURIComponent(queue.name)}/${queue.paused ? "resume" : "pause"}`)),
    }, queue.paused ? "Resume" : "Pause") : ""),
  ));
  const nodeRows = nodes.data.map((node) => el("tr", {},
    el("td", { text: node.node }), el("td", { text: node.queues.join(", ") }),
    el("td", { text: node.leader ? "yes" : "" }), el("td", { text: when(node.heartbeat_at) }),
  ));
  return [
    el("h1", { text: "Overview" }),
    el("div", { class: "cards" }, counts.map((name) => el("div", { class: "card", "data-count": name },
      el("div", { class: "muted", text: name }), el("div", { class: "n", text: stats.data[name] })))),
    el("h2", { text: "Last hour" }),
    chart(history.data.minutes),
    el("h2", { text: "Queues" }),
    table(["Queue", "State", "Ready", "Scheduled", "Running", "Done", "Done rate", "Failed",
      "Failed rate", "Oldest ready", ""],
      queueRows, "No queues yet: submit a job and its queue appears here."),
    el("h2", { text: "Live nodes" }),
    table(["Node", "Queues", "Leader", "Last heartbeat"], nodeRows,
      "No worker node is running: jobs wait until one starts."),
  ];
}

function chart(minutes) {
  const width = 600, height = 120;
  const most = Math.max(1, ...minutes.map((m) => m.done + m.failed));
  const step = width / Math.max(minutes.length, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const done = minutes.reduce((sum, m) => sum + m.done, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  svg.setAttribute("aria-label", `Last hour: ${done} done, ${failed} failed`);
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

function table(headings, rows, emptyText) {
  if (!rows.length) return el("div", { class: "table-wrap" }, el("p", { class: "empty", text: emptyText }));
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows)));
}

async function jobs(params) {
  const page = Math.max(1, Number(params.get("page") || 1));
  const query = new URLSearchParams({ page, per_page: PER_PAGE });
  for (const name of ["status", "queue", "task", "q"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  const listed = await api("GET", `/jobs?${query}`);
  const total = Number(listed.headers.get("x-total-count") || 0);
  const pages = Math.max(1, Math.ceil(total / PER_PAGE));

  const field = (name, label, input) => el("div", {}, el("label", { for: `f-${name}`, text: label }), input);
  const filters = el("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams();
    for (const [key, value] of form) if (value) next.set(key, value);
    selected.clear();
    go("/jobs", next);
  } },
    field("status", "Status", el("select", { id: "f-status", name: "status" },
      STATUSES.map((s) => el("option", { value: s, selected: s === (params.get("status") || ""), text: s || "any" })))),
    field("queue", "Queue", el("input", { id: "f-queue", name: "queue", value: params.get("queue") || "", size: 10 })),
    field("task", "Task", el("input", { id: "f-task", name: "task", value: params.get("task") || "", size: 12 })),
    field("q", "Id or payload text", el("input", { id: "f-q", name: "q", type: "search", value: params.get("q") || "", size: 16 })),
    el("button", { type: "submit", text: "Filter" }));

  const rows = listed.data.map((job) => el("tr", { "data-job": job.id },
    can("write") ? el("td", {}, el("input", {
      type: "checkbox", "aria-label": `Select job ${job.id}`, checked: selected.has(job.id),
      onchange: (event) => { event.target.checked ? selected.add(job.id) : selected.delete(job.id); },
    })) : null,
    el("td", {}, el("a", { href: `#/jobs/${job.id}`, text: `#${job.id}` })),
    el("td", { text: job.task || "—" }), el("td", { text: job.queue }),
    el("td", {}, badge(job.status, job.scheduled)), el("td", { text: `${job.attempt}/${job.max_attempts}` }),
    el("td", { text: when(job.inserted_at) }), el("td", { text: when(job.finished_at) }),
  ));
  const bulk = (verb) => act(`Bulk ${verb}`, async () => {
    if (!selected.size) throw new ApiError("select jobs first");
    const { data } = await api("POST", `/jobs/${verb}`, { ids: [...selected] });
    selected.clear();
    notice.textContent = data.message;
  });
  return [
    el("h1", { text: "Jobs" }), filters,
    can("write") ? el("div", { class: "actions" },
      el("span", { class: "muted", text: `${selected.size} selected` }),
      el("button", { type: "button", class: "secondary", onclick: () => bulk("retry") }, "Retry selected"),
      el("button", { type: "button", class: "danger", onclick: () => bulk("cancel") }, "Cancel selected")) : null,
    table([...(can("write") ? [""] : []), "Job", "Task", "Queue", "Status", "Attempt", "Inserted", "Finished"],
      rows, "No jobs match these filters."),
    el("div", { class: "pager" },
      el("button", { type: "button", class: "secondary", disabled: page <= 1,
        onclick: () => { params.set("page", page - 1); go("/jobs", params); } }, "← Newer"),
      el("span", { class: "muted", text: `page ${page} of ${pages} · ${total} job(s)` }),
      el("button", { type: "button", class: "secondary", disabled: page >= pages,
        onclick: () => { params.set("page", page + 1); go("/jobs", params); } }, "Older →")),
  ];
}

async function job(id) {
  let found;
  try {
    found = (await api("GET", `/jobs/${id}`)).data;
  } catch (error) {
    return [el("h1", { text: `Job #${id}` }), el("p", { class: "empty", text: error.message })];
  }
  const actions = [];
  if (can("write") && ["failed", "cancelled"].includes(found.status)) {
    actions.push(el("button", { type: "button", onclick: () => act("Retry", () => api("POST", `/jobs/${id}/retry`)) }, "Retry"));
  }
  if (can("write") && ["queued", "running"].includes(found.status)) {
    actions.push(el("button", { type: "button", class: "danger", onclick: () => act("Cancel", () => api("POST", `/jobs/${id}/cancel`)) }, "Cancel"));
  }
  const timeline = [
    ["inserted", found.inserted_at], ["scheduled for", found.run_at], ["started", found.started_at],
    ...found.errors.map((e) => [`attempt ${e.attempt} failed`, e.at]), ["finished", found.finished_at],
  ].filter(([, at]) => at);
  return [
    el("h1", {}, `Job #${found.id} `, badge(found.status, found.scheduled)),
    el("div", { class: "actions" }, actions),
    el("dl", { class: "fields" },
      ...[["Task", found.task || "—"], ["Queue", found.queue], ["Priority", found.priority],
        ["Attempt", `${found.attempt} of ${found.max_attempts}`],
        ["Node", found.locked_by || "—"], ["Unique key", found.unique_key || "—"],
        ["Trace", found.trace_context || "—"]]
        .flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })])),
    el("h2", { text: "Timeline" }),
    el("ol", { class: "timeline" }, timeline.map(([what, at]) => el("li", { text: `${when(at)} — ${what}` }))),
    el("h2", { text: "Payload" }), el("pre", { text: JSON.stringify(found.payload, null, 2) }),
    el("h2", { text: "Result" }), el("pre", { text: JSON.stringify(found.result, null, 2) }),
    el("h2", { text: `Errors (${found.errors.length})` }),
    found.errors.length ? found.errors.map((e) => el("details", {},
      el("summary", { text: `Attempt ${e.attempt}, ${when(e.at)}: ${e.error}` }),
      el("pre", { text: e.traceback || "(no traceback)" }))) : el("p", { class: "muted", text: "None." }),
  ];
}

function enqueue() {
  if (!can("write")) return [el("h1", { text: "Enqueue" }), el("p", { class: "empty", text: "Your token cannot submit jobs." })];
  const form = el("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    act("Enqueue", async () => {
      let payload;
      try { payload = JSON.parse(data.get("payload") || "{}"); } catch { throw new ApiError("the payload is not valid JSON"); }
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new ApiError("the payload must be a JSON object, like {\"to\": \"a@example.com\"}");
      }
      if (data.get("task")) payload.task = data.get("task");
      const body = { payload, priority: Number(data.get("priority") || 0) };
      if (data.get("queue")) body.queue = data.get("queue");
      if (data.get("delay")) body.delay = Number(data.get("delay"));
      const { data: accepted } = await api("POST", "/jobs", body);
      go(`/jobs/${accepted.job_id}`);
    });
  } },
    el("label", { for: "e-task", text: "Task" }), el("input", { id: "e-task", name: "task", required: true }),
    el("label", { for: "e-queue", text: "Queue (empty: the task's)" }), el("input", { id: "e-queue", name: "queue" }),
    el("label", { for: "e-payload", text: "Payload (JSON object)" }), el("textarea", { id: "e-payload", name: "payload", text: "{}" }),
    el("label", { for: "e-delay", text: "Delay (seconds)" }), el("input", { id: "e-delay", name: "delay", type: "number", min: 0 }),
    el("label", { for: "e-priority", text: "Priority (0 first … 9)" }), el("input", { id: "e-priority", name: "priority", type: "number", min: 0, max: 9, value: 0 }),
    el("p", {}, el("button", { type: "submit", text: "Enqueue" })));
  return [el("h1", { text: "Enqueue a job" }), form];
}

// -- rendering and refresh ----------------------------------------------

function busy() {
  // The user is reading or working in the page: a refresh would undo it.
  const focus = document.activeElement;
  return (main.contains(focus) && focus !== main) || main.querySelector("details[open]") !== null
    || String(window.getSelection()) !== "";
}

async function render(moveFocus) {
  const mine = ++rendering;
  const { path, params } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = (link.dataset.nav === "overview" && path === "/") || path.startsWith(`/${link.dataset.nav}`);
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  let content;
  try {
    if (path === "/" || path === "") content = await overview();
    else if (path === "/jobs") content = await jobs(params);
    else if (path.startsWith("/jobs/")) content = await job(path.slice(6));
    else if (path === "/enqueue") content = enqueue();
    else content = [el("h1", { text: "Not found" }), el("p", {}, el("a", { href: "#/", text: "Back to the overview" }))];
  } catch (error) {
    if (mine !== rendering) return;
    live.textContent = "not updating";
    live.className = "live down";
    say(`Cannot reach the service: ${error.message}`);
    return;
  }
  if (mine !== rendering) return; // a newer view was asked for meanwhile
  if (banner.textContent.startsWith("Cannot reach")) say(""); // it is back
  if (!moveFocus && busy()) {
    live.textContent = "paused while you read (move focus out to resume)";
    live.className = "live";
    return;
  }
  live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  live.className = "live ok";
  main.replaceChildren(...content.flat().filter(Boolean));
  if (moveFocus) main.focus();
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    const { path } = route();
    if (!document.hidden && path !== "/enqueue") render(false);
  }, REFRESH_MS);
}

async function start() {
  try {
    me = (await api("GET", "/dashboard/whoami")).data;
  } catch (error) {
    say(error.message);
  }
  const who = document.getElementById("who");
  if (me.signed_in) who.textContent = `${me.name} (${me.scope})`;
  const signout = document.getElementById("signout");
  signout.hidden = !me.signed_in;
  signout.addEventListener("click", async () => {
    await api("POST", "/dashboard/logout");
    window.location.assign(`${BASE}/dashboard/login`);
  });
  window.addEventListener("hashchange", () => { say(""); notice.textContent = ""; render(true); });
  await render(false);
  schedule();
}

start();
