// The cron page (every entry: when it runs next, when it last ran, its last
// job) and the enqueue form (its task field suggests the registered tasks).
import { ApiError, act, api, badge, can, el, go, table, when } from "./core.js";

// The job an entry last inserted, as it is now (null once pruned or expired).
async function lastJobOf(entry) {
  if (entry.last_job_id === null) return null;
  try {
    return (await api("GET", `/jobs/${entry.last_job_id}`)).data;
  } catch {
    return null;
  }
}

export async function cron() {
  const entries = (await api("GET", "/cron")).data;
  const lastJobs = await Promise.all(entries.map(lastJobOf));
  const rows = entries.map((entry, index) => {
    const last = lastJobs[index];
    const jobsOf = `#/jobs?${new URLSearchParams({ task: entry.task, queue: entry.queue })}`;
    return el("tr", { "data-cron": entry.name },
      el("td", { text: entry.name }),
      el("td", {}, el("code", { text: entry.expression }), el("span", { class: "muted", text: ` ${entry.timezone}` })),
      el("td", {}, el("a", { href: jobsOf, text: entry.task })),
      el("td", {}, el("a", { href: `#/queues/${encodeURIComponent(entry.queue)}`, text: entry.queue })),
      el("td", { text: when(entry.next_run_at) }),
      el("td", { text: entry.last_run_at ? when(entry.last_run_at) : "not yet" }),
      el("td", { "data-last-job": entry.last_job_id ?? "" }, last
        ? [el("a", { href: `#/jobs/${last.id}`, text: `#${last.id}` }), " ", badge(last.status, last.scheduled)]
        : entry.last_job_id === null ? "—" : `#${entry.last_job_id} (gone)`));
  });
  return [
    el("h1", { text: "Cron" }),
    table(["Entry", "Schedule", "Task", "Queue", "Next run", "Last run", "Last job"], rows,
      "No cron entries: declare them with service.cron(…) or [[cron]] in servcore.toml."),
  ];
}

export async function enqueue() {
  if (!can("write")) return [el("h1", { text: "Enqueue" }), el("p", { class: "empty", text: "Your token cannot submit jobs." })];
  const [tasks, queues] = await Promise.all([api("GET", "/tasks"), api("GET", "/queues")]);
  const known = new Map(tasks.data.map((task) => [task.name, task]));
  const hint = el("p", { id: "e-task-hint", class: "muted", "aria-live": "polite" });
  const explain = (name) => {
    const task = known.get(name);
    if (task) {
      hint.className = "muted";
      hint.textContent = `Runs in queue ${task.queue}, up to ${task.max_attempts} attempt(s)${task.timeout ? `, ${task.timeout} s each` : ""}.`;
    } else if (name && known.size) {
      hint.className = "warning";
      hint.textContent = `No handler for task '${name}' on this node (known: ${[...known.keys()].join(", ")}).`;
    } else {
      hint.textContent = "";
    }
  };
  const form = el("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    act("Enqueue", async () => {
      let payload;
      try { payload = JSON.parse(data.get("payload") || "{}"); } catch { throw new ApiError("the payload is not valid JSON"); }
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new ApiError("the payload must be a JSON object, like {\"to\": \"a@example.com\"}");
      }
      payload.task = data.get("task");
      const body = { payload, priority: Number(data.get("priority") || 0) };
      if (data.get("queue")) body.queue = data.get("queue");
      if (data.get("delay")) body.delay = Number(data.get("delay"));
      const { data: accepted } = await api("POST", "/jobs", body);
      go(`/jobs/${accepted.job_id}`);
    });
  } },
    el("label", { for: "e-task", text: "Task" }),
    el("input", { id: "e-task", name: "task", required: true, list: "e-tasks", autocomplete: "off",
      "aria-describedby": "e-task-hint", oninput: (event) => explain(event.target.value.trim()) }),
    el("datalist", { id: "e-tasks" }, tasks.data.map((task) => el("option", { value: task.name, label: `queue ${task.queue}` }))),
    hint,
    el("label", { for: "e-queue", text: "Queue (empty: the task's)" }),
    el("input", { id: "e-queue", name: "queue", list: "e-queues", autocomplete: "off" }),
    el("datalist", { id: "e-queues" }, queues.data.map((queue) => el("option", { value: queue.name }))),
    el("label", { for: "e-payload", text: "Payload (JSON object)" }), el("textarea", { id: "e-payload", name: "payload", text: "{}" }),
    el("label", { for: "e-delay", text: "Delay (seconds)" }), el("input", { id: "e-delay", name: "delay", type: "number", min: 0 }),
    el("label", { for: "e-priority", text: "Priority (0 first … 9)" }), el("input", { id: "e-priority", name: "priority", type: "number", min: 0, max: 9, value: 0 }),
    el("p", {}, el("button", { type: "submit", text: "Enqueue" })));
  return [el("h1", { text: "Enqueue a job" }), form];
}
