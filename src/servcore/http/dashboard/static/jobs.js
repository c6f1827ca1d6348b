// The jobs list: filters, pages, the last attempt's run time and error, and
// acting on jobs together — those selected, or every job the filter matches
// (one call, after a confirmation that says how many).
import {
  ApiError, act, api, badge, can, duration, el, go, lastLine, runTime, table, tell, when,
} from "./core.js";

const PER_PAGE = 25;
// Page numbers reach this far (the API's count cap); beyond, filters narrow.
const DEEPEST = 10000;
const STATUSES = ["", "queued", "scheduled", "available", "running", "done", "failed", "cancelled"];
const FILTERS = ["status", "queue", "task", "q"];
// What "all matching" does for a status filter: retry what ended badly,
// cancel what waits.
const BULK_BY_STATUS = {
  failed: "retry", cancelled: "retry", queued: "cancel", scheduled: "cancel", available: "cancel",
};

const selected = new Set(); // kept across pages and refreshes until acted on
let confirming = null; // { verb, filter (its text) } while a bulk action waits for a yes

export function forgetSelection() {
  selected.clear();
  confirming = null;
}

// A question asked on one view is not asked again on the next; the selection
// lasts while the jobs (their pages, one of them) are being looked at.
export function navigated(path) {
  confirming = null;
  if (!path.startsWith("/jobs")) selected.clear();
}

function filterOf(params) {
  const filter = {};
  for (const name of FILTERS) if (params.get(name)) filter[name] = params.get(name);
  return filter;
}

function describe(filter) {
  const names = { status: "status", queue: "queue", task: "task", q: "text" };
  return Object.entries(filter).map(([key, value]) => `${names[key]} ${JSON.stringify(value)}`).join(", ");
}

function filters(params) {
  const field = (name, label, input) => el("div", {}, el("label", { for: `f-${name}`, text: label }), input);
  return el("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(event.target)) if (value) next.set(key, value);
    forgetSelection();
    go("/jobs", next);
  } },
    field("status", "Status", el("select", { id: "f-status", name: "status" },
      STATUSES.map((s) => el("option", { value: s, selected: s === (params.get("status") || ""), text: s || "any" })))),
    field("queue", "Queue", el("input", { id: "f-queue", name: "queue", value: params.get("queue") || "", size: 10 })),
    field("task", "Task", el("input", { id: "f-task", name: "task", value: params.get("task") || "", size: 12 })),
    field("q", "Id or payload text", el("input", { id: "f-q", name: "q", type: "search", value: params.get("q") || "", size: 16 })),
    el("button", { type: "submit", text: "Filter" }));
}

function row(job) {
  // A job that ended done has put its errors behind it.
  const error = job.errors.length && job.status !== "done"
    ? lastLine(job.errors[job.errors.length - 1].error) : "";
  return el("tr", { "data-job": job.id },
    can("write") ? el("td", {}, el("input", {
      type: "checkbox", "aria-label": `Select job ${job.id}`, checked: selected.has(job.id),
      onchange: (event) => { if (event.target.checked) selected.add(job.id); else selected.delete(job.id); },
    })) : null,
    el("td", {}, el("a", { href: `#/jobs/${job.id}`, text: `#${job.id}` })),
    el("td", { text: job.task || "—" }), el("td", { text: job.queue }),
    el("td", {}, badge(job.status, job.scheduled)), el("td", { text: `${job.attempt}/${job.max_attempts}` }),
    el("td", { class: "duration", text: duration(runTime(job)) }),
    el("td", { text: when(job.inserted_at) }), el("td", { text: when(job.finished_at) }),
    el("td", { class: "error-line", title: error || null, text: error }),
  );
}

function selectedActions() {
  const bulk = (verb) => act(`Bulk ${verb}`, async () => {
    if (!selected.size) throw new ApiError("select jobs first");
    const { data } = await api("POST", `/jobs/${verb}`, { ids: [...selected] });
    selected.clear();
    tell(data.message);
  });
  return [
    el("span", { class: "muted", text: `${selected.size} selected` }),
    el("button", { type: "button", class: "secondary", onclick: () => bulk("retry") }, "Retry selected"),
    el("button", { type: "button", class: "danger", onclick: () => bulk("cancel") }, "Cancel selected"),
  ];
}

// "Retry all failed matching this filter" / "Cancel all queued matching …":
// a first click asks, saying how many and which; the second does it in one call.
function matchingActions(params, total, estimated) {
  const filter = filterOf(params);
  const verb = BULK_BY_STATUS[filter.status];
  if (!verb) {
    return [el("span", { class: "muted", text: "Filter by status to retry or cancel every matching job." })];
  }
  const key = JSON.stringify(filter);
  const noun = `${filter.status} job${total === 1 ? "" : "s"}`;
  const count = estimated ? `about ${total}` : String(total); // past the count cap
  const label = verb === "retry" ? "Retry" : "Cancel";
  if (confirming && confirming.filter === key && confirming.verb === verb) {
    const run = () => act(`${label} all matching`, async () => {
      confirming = null;
      const { data } = await api("POST", `/jobs/${verb}`, { filter });
      selected.clear();
      tell(data.message);
    });
    return [el("div", { class: "confirm", role: "group", "aria-label": "Confirm" },
      el("span", { text: `${label} all ${count} ${noun} matching ${describe(filter)}?` }),
      el("button", { type: "button", class: verb === "retry" ? "" : "danger", onclick: run, "data-autofocus": true },
        `${label} ${count} ${noun}`),
      el("button", { type: "button", class: "secondary", onclick: () => { confirming = null; act("Keep", async () => {}); } },
        "Keep them"))];
  }
  return [el("button", {
    type: "button", class: verb === "retry" ? "secondary" : "danger", disabled: total === 0,
    onclick: () => { confirming = { verb, filter: key }; act(label, async () => {}); },
  }, `${label} all ${count} ${noun} matching this filter…`)];
}

export async function jobs(params) {
  const page = Math.max(1, Number(params.get("page") || 1));
  const query = new URLSearchParams({ page, per_page: PER_PAGE, ...filterOf(params) });
  const listed = await api("GET", `/jobs?${query}`);
  const total = Number(listed.headers.get("x-total-count") || 0);
  const estimated = listed.headers.get("x-total-count-estimate") === "true";
  const pages = Math.max(1, Math.ceil(Math.min(total, DEEPEST) / PER_PAGE));
  const turn = (to) => () => { params.set("page", to); go("/jobs", params); };
  return [
    el("h1", { text: "Jobs" }), filters(params),
    can("write") ? el("div", { class: "actions" }, selectedActions(), matchingActions(params, total, estimated)) : null,
    table([...(can("write") ? [""] : []), "Job", "Task", "Queue", "Status", "Attempt", "Duration",
      "Inserted", "Finished", "Last error"], listed.data.map(row), "No jobs match these filters."),
    el("div", { class: "pager" },
      el("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: turn(page - 1) }, "← Newer"),
      el("span", { class: "muted", text: `page ${page} of ${pages} · ${estimated ? "about " : ""}${total} job(s)` }),
      el("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: turn(page + 1) }, "Older →")),
  ];
}
