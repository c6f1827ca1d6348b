// One job: its fields, every attempt (start, end, duration, outcome), a
// timeline of everything that happened to it in the order it happened, its
// payload, result and errors; retry or cancel it.
import {
  act, api, badge, between, can, duration, el, instant, lastLine, table, when,
} from "./core.js";

// Every attempt the job has made: the failed ones from its errors (each
// keeps its start and end), then the latest one if it is not among them
// (running, done, or cancelled while it ran).
export function attemptsOf(job) {
  const attempts = job.errors.map((error) => ({
    attempt: error.attempt, started: error.started_at, ended: error.at,
    outcome: `failed: ${lastLine(error.error)}`, failed: true,
  }));
  const recorded = new Set(job.errors.map((error) => error.attempt));
  if (job.attempt > 0 && job.started_at && !recorded.has(job.attempt)) {
    const running = job.status === "running";
    attempts.push({
      attempt: job.attempt, started: job.started_at, ended: running ? null : job.finished_at,
      outcome: running ? "running" : job.status, failed: false,
    });
  }
  return attempts;
}

// What happened, oldest first; steps at the same moment keep this order.
export function timelineOf(job) {
  const steps = [{ at: job.inserted_at, what: "inserted" }];
  const waiting = job.status === "queued";
  const delayed = Date.parse(job.run_at) - Date.parse(job.inserted_at) >= 1000;
  if (waiting || delayed || job.errors.length) {
    // run_at is the latest due time: of the next attempt while it waits,
    // else of the last one that started.
    const attempt = waiting ? job.attempt + 1 : job.attempt;
    steps.push({ at: job.run_at, what: `attempt ${attempt} due${waiting && job.scheduled ? " (scheduled)" : ""}` });
  }
  for (const attempt of attemptsOf(job)) {
    if (attempt.started) steps.push({ at: attempt.started, what: `attempt ${attempt.attempt} started` });
    if (attempt.ended) {
      const took = attempt.started ? ` after ${duration(between(attempt.started, attempt.ended))}` : "";
      steps.push({ at: attempt.ended, what: `attempt ${attempt.attempt} ${attempt.outcome}${took}` });
    }
  }
  if (job.finished_at) steps.push({ at: job.finished_at, what: `finished: ${job.status}` });
  return steps
    .map((step, index) => ({ ...step, index, ms: Date.parse(step.at) }))
    .sort((a, b) => a.ms - b.ms || a.index - b.index);
}

function actionsFor(job) {
  const buttons = [];
  if (can("write") && ["failed", "cancelled"].includes(job.status)) {
    buttons.push(el("button", { type: "button", onclick: () => act("Retry", () => api("POST", `/jobs/${job.id}/retry`)) }, "Retry"));
  }
  if (can("write") && ["queued", "running"].includes(job.status)) {
    buttons.push(el("button", { type: "button", class: "danger", onclick: () => act("Cancel", () => api("POST", `/jobs/${job.id}/cancel`)) }, "Cancel"));
  }
  return buttons;
}

export async function job(id) {
  let found;
  try {
    found = (await api("GET", `/jobs/${id}`)).data;
  } catch (error) {
    return [el("h1", { text: `Job #${id}` }), el("p", { class: "empty", text: error.message })];
  }
  const now = new Date().toISOString();
  const attemptRows = attemptsOf(found).map((attempt) => el("tr", { "data-attempt": attempt.attempt },
    el("td", { text: attempt.attempt }),
    el("td", { text: attempt.started ? instant(attempt.started) : "—" }),
    el("td", { text: attempt.ended ? instant(attempt.ended) : "—" }),
    el("td", { text: duration(between(attempt.started, attempt.ended || (attempt.outcome === "running" ? now : null))) }),
    el("td", { class: attempt.failed ? "error-line" : "", title: attempt.outcome, text: attempt.outcome }),
  ));
  return [
    el("h1", {}, `Job #${found.id} `, badge(found.status, found.scheduled)),
    el("div", { class: "actions" }, actionsFor(found)),
    el("dl", { class: "fields" },
      ...[["Task", found.task || "—"], ["Queue", found.queue], ["Priority", found.priority],
        ["Attempt", `${found.attempt} of ${found.max_attempts}`],
        ["Due", when(found.run_at)], ["Node", found.locked_by || "—"],
        ["Unique key", found.unique_key || "—"], ["Trace", found.trace_context || "—"]]
        .flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })])),
    el("h2", { text: "Attempts" }),
    table(["Attempt", "Started", "Ended", "Duration", "Outcome"], attemptRows, "Not started yet."),
    el("h2", { text: "Timeline" }),
    el("ol", { class: "timeline" }, timelineOf(found).map((step) => el("li", { "data-at": step.at },
      el("time", { datetime: step.at, text: instant(step.at) }), ` — ${step.what}`))),
    el("h2", { text: "Payload" }), el("pre", { text: JSON.stringify(found.payload, null, 2) }),
    el("h2", { text: "Result" }), el("pre", { text: JSON.stringify(found.result, null, 2) }),
    el("h2", { text: `Errors (${found.errors.length})` }),
    found.errors.length ? found.errors.map((e) => el("details", {},
      el("summary", { text: `Attempt ${e.attempt}, ${when(e.at)}: ${e.error}` }),
      el("pre", { text: e.traceback || "(no traceback)" }))) : el("p", { class: "muted", text: "None." }),
  ];
}
