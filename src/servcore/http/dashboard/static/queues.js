// The overview (counts, the last hour, every queue, the live nodes) and one
// queue's page (its counts, rates, limits, nodes and last hour).
import { act, api, badge, can, chart, el, perMinute, table, when } from "./core.js";

const COUNTS = ["queued", "scheduled", "running", "done", "failed", "cancelled"];

function rateOf(history, name) {
  return history.queues[name] || { done_per_minute: 0, failed_per_minute: 0 };
}

function pauseButton(queue) {
  if (!can("admin")) return "";
  const verb = queue.paused ? "Resume" : "Pause";
  return el("button", {
    type: "button", class: "secondary", "aria-label": `${verb} queue ${queue.name}`,
    onclick: () => act(verb, () => api("POST", `/queues/${encodeURIComponent(queue.name)}/${verb.toLowerCase()}`)),
  }, verb);
}

function age(seconds) {
  return seconds === null ? "—" : `${seconds.toFixed(1)} s`;
}

export async function overview() {
  const [stats, queues, nodes, history] = await Promise.all([
    api("GET", "/stats"), api("GET", "/queues"), api("GET", "/nodes"), api("GET", "/stats/history"),
  ]);
  const span = history.data.rate_minutes;
  const queueRows = queues.data.map((queue) => {
    const rate = rateOf(history.data, queue.name);
    return el("tr", { "data-queue": queue.name },
      el("td", {}, el("a", { href: `#/queues/${encodeURIComponent(queue.name)}`, text: queue.name })),
      el("td", {}, queue.paused ? el("span", { class: "status paused", text: "paused" }) : "running"),
      el("td", { text: queue.depth }), el("td", { text: queue.scheduled }),
      el("td", { text: queue.running }),
      el("td", { text: queue.done }), el("td", { class: "muted", text: perMinute(rate.done_per_minute) }),
      el("td", { text: queue.failed }), el("td", { class: "muted", text: perMinute(rate.failed_per_minute) }),
      el("td", { text: age(queue.oldest_job_age) }),
      el("td", {}, pauseButton(queue)));
  });
  const nodeRows = nodes.data.map((node) => el("tr", {},
    el("td", { text: node.node }), el("td", { text: node.queues.join(", ") }),
    el("td", { text: node.leader ? "yes" : "" }), el("td", { text: when(node.heartbeat_at) }),
  ));
  return [
    el("h1", { text: "Overview" }),
    el("div", { class: "cards" }, COUNTS.map((name) => el("div", { class: "card", "data-count": name },
      el("div", { class: "muted", text: name }), el("div", { class: "n", text: stats.data[name] })))),
    el("h2", { text: "Last hour" }),
    chart(history.data.minutes),
    el("h2", { text: "Queues" }),
    table(["Queue", "State", "Ready", "Scheduled", "Running", "Done", `Done/min (${span} min)`,
      "Failed", `Failed/min (${span} min)`, "Oldest ready", ""],
      queueRows, "No queues yet: submit a job and its queue appears here."),
    el("h2", { text: "Live nodes" }),
    table(["Node", "Queues", "Leader", "Last heartbeat"], nodeRows,
      "No worker node is running: jobs wait until one starts."),
  ];
}

export async function queuePage(name) {
  const encoded = encodeURIComponent(name);
  const [queues, nodes, history] = await Promise.all([
    api("GET", "/queues"), api("GET", "/nodes"), api("GET", `/stats/history?queue=${encoded}`),
  ]);
  const queue = queues.data.find((q) => q.name === name);
  const title = el("h1", {}, `Queue ${name} `, queue && queue.paused ? badge("paused") : null);
  if (!queue) {
    return [title, el("p", { class: "empty", text: `No queue is called ${name}: it has no jobs and no node runs it.` }),
      el("p", {}, el("a", { href: "#/", text: "Back to the overview" }))];
  }
  const rate = rateOf(history.data, name);
  const serving = nodes.data.filter((node) => node.queues.includes(name)).map((node) => node.node);
  const jobsOf = (status) => `#/jobs?${new URLSearchParams({ status, queue: name })}`;
  const facts = [
    ["State", queue.paused ? "paused: jobs are accepted, none starts" : "running"],
    ["Concurrency (this node)", queue.concurrency === null ? "this node does not run it" : `${queue.concurrency} at once`],
    ["Nodes running it", serving.length ? serving.join(", ") : "none: its jobs wait until a node runs it"],
    [`Done per minute (last ${history.data.rate_minutes} min)`, perMinute(rate.done_per_minute)],
    [`Failed per minute (last ${history.data.rate_minutes} min)`, perMinute(rate.failed_per_minute)],
    ["Oldest ready job", age(queue.oldest_job_age)],
  ];
  const counts = [["Ready", queue.depth, "available"], ["Scheduled", queue.scheduled, "scheduled"],
    ["Running", queue.running, "running"], ["Done", queue.done, "done"], ["Failed", queue.failed, "failed"],
    ["Cancelled", queue.cancelled, "cancelled"]];
  return [
    title,
    el("div", { class: "actions" }, pauseButton(queue)),
    el("div", { class: "cards" }, counts.map(([label, n, status]) => el("a", { class: "card", href: jobsOf(status), "data-count": status },
      el("div", { class: "muted", text: label }), el("div", { class: "n", text: n })))),
    el("h2", { text: "Rates and limits" }),
    el("dl", { class: "fields", "data-facts": "queue" },
      facts.flatMap(([label, value]) => [el("dt", { text: label }), el("dd", { text: value })])),
    el("h2", { text: "Last hour" }),
    chart(history.data.minutes, `Queue ${name}, last hour`),
  ];
}
