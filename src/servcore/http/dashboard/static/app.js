// servcore dashboard: no framework, no build step (ES modules). Hash routes:
//   #/               overview (counts, the last hour, queues, nodes)
//   #/queues/NAME    one queue: counts, rates, limits, nodes, its last hour
//   #/jobs?...       jobs, filtered by status, queue, task and text; paginated
//   #/jobs/ID        one job: attempts, timeline, payload, result, errors
//   #/cron           cron entries: next run, last run, last job
//   #/enqueue        a form to submit a job
// Everything goes through the JSON API (see core.js). The overview's first
// paint uses the answers the server put in the page; views then refresh live.
import {
  actions, api, el, forgetPreloaded, route, say, saying, session, tell, BASE,
} from "./core.js";
import { cron, enqueue } from "./forms.js";
import { job } from "./job.js";
import { jobs, navigated } from "./jobs.js";
import { overview, queuePage } from "./queues.js";

const REFRESH_MS = 2000;
const main = document.getElementById("main");
const live = document.getElementById("live");
let rendering = 0; // the newest render: an older one that finishes late is dropped

function view(path, params) {
  if (path === "/" || path === "") return overview();
  if (path.startsWith("/queues/")) return queuePage(decodeURIComponent(path.slice(8)));
  if (path === "/jobs") return jobs(params);
  if (path.startsWith("/jobs/")) return job(path.slice(6));
  if (path === "/cron") return cron();
  if (path === "/enqueue") return enqueue();
  return [el("h1", { text: "Not found" }), el("p", {}, el("a", { href: "#/", text: "Back to the overview" }))];
}

function busy() {
  // The user is reading or working in the page: a refresh would undo it.
  const focus = document.activeElement;
  return (main.contains(focus) && focus !== main) || main.querySelector("details[open]") !== null
    || String(window.getSelection()) !== "";
}

function markCurrent(path) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    const name = link.dataset.nav;
    const current = (name === "overview" && (path === "/" || path.startsWith("/queues/")))
      || (name !== "overview" && path.startsWith(`/${name}`));
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
}

// moveFocus: after a navigation or an action, focus goes to the view (for
// screen readers and the keyboard; it draws no frame: see app.css) or to
// what the view asks for (data-autofocus).
async function render(moveFocus) {
  const mine = ++rendering;
  const { path, params } = route();
  markCurrent(path);
  let content;
  try {
    content = await view(path, params);
  } catch (error) {
    if (mine !== rendering) return;
    live.textContent = "not updating";
    live.className = "live down";
    say(`Cannot reach the service: ${error.message}`);
    return;
  }
  if (mine !== rendering) return; // a newer view was asked for meanwhile
  if (saying().startsWith("Cannot reach")) say(""); // it is back
  if (!moveFocus && busy()) {
    live.textContent = "paused while you read (move focus out to resume)";
    live.className = "live";
    return;
  }
  live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  live.className = "live ok";
  main.replaceChildren(...content.flat().filter(Boolean));
  if (moveFocus) (main.querySelector("[data-autofocus]") || main).focus({ preventScroll: true });
}

// -- live updates ------------------------------------------------------------
// Each source keeps the view fresh by calling `refresh`, and returns how to
// stop it, or null when it cannot run here; the first that runs wins. Today
// there is only the poll. A server-sent events source (an EventSource on the
// service's events endpoint, once there is one) goes first in this list: it
// refreshes when told something changed, and on error stops itself and
// starts the poll instead.

function poll(refresh) {
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

const UPDATE_SOURCES = [poll];

function startUpdates(refresh) {
  for (const source of UPDATE_SOURCES) {
    const stop = source(refresh);
    if (stop) return stop;
  }
  return () => {};
}

function refreshNow() {
  const { path } = route();
  // The form would lose what is typed; a hidden tab needs nothing.
  if (!document.hidden && path !== "/enqueue") render(false);
}

// -- start -------------------------------------------------------------------

async function start() {
  try {
    session.me = (await api("GET", "/dashboard/whoami")).data;
  } catch (error) {
    say(error.message);
  }
  const who = document.getElementById("who");
  if (session.me.signed_in) who.textContent = `${session.me.name} (${session.me.scope})`;
  const signout = document.getElementById("signout");
  signout.hidden = !session.me.signed_in;
  signout.addEventListener("click", async () => {
    await api("POST", "/dashboard/logout");
    window.location.assign(`${BASE}/dashboard/login`);
  });
  actions.rerender = () => render(true);
  window.addEventListener("hashchange", () => {
    say("");
    tell("");
    navigated(route().path);
    render(true);
  });
  document.addEventListener("visibilitychange", refreshNow); // back to the tab: fresh at once
  // "#main" is not a route: the skip link moves focus without changing the hash.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  await render(false);
  forgetPreloaded();
  startUpdates(refreshNow);
}

start();
