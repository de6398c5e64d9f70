// kubectl bluegreen dashboard: the page. Plain JavaScript, no build step, nothing fetched
// from elsewhere. The server pushes the whole model over server-sent events after every
// change the watches see; the page renders it and never polls. Text goes in as text
// (textContent), never as HTML.
"use strict";

const page = {
  model: null, // the last model the server sent
  stream: false, // whether the event stream to this server is open
  skew: 0, // server clock minus this browser's, from the model's "now"
};

// --- building blocks ---------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function appId(app) {
  return `${app.namespace}/${app.name}`;
}

function slug(text) {
  return text.replace(/[^a-zA-Z0-9-]/g, "-");
}

function colorChip(color, revision) {
  if (!color) return h("span", { class: "none" }, "none");
  return h(
    "span",
    { class: "chip" },
    h("span", { class: `swatch ${color}`, "aria-hidden": "true" }),
    h("span", { class: "color-name" }, color),
    revision ? [" ", h("code", { class: "revision" }, revision)] : null,
  );
}

function localTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  return isNaN(when) ? iso : when.toLocaleString();
}

function timeCell(iso) {
  return h("time", { datetime: iso }, localTime(iso));
}

// --- the views ---------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/app\/([^/]+)\/([^/]+)$/);
  return match ? { namespace: decodeURIComponent(match[1]), name: decodeURIComponent(match[2]) } : null;
}

function render() {
  const main = document.getElementById("main");
  const model = page.model;
  renderConnection();
  if (!model) return;
  const focused = document.activeElement && document.activeElement.id;
  const chosen = route();
  let content;
  if (chosen) {
    const app = model.apps.find((a) => a.namespace === chosen.namespace && a.name === chosen.name);
    content = app ? detailView(app) : h("p", { class: "empty" }, `No BlueGreenApp ${chosen.namespace}/${chosen.name} (any more).`);
  } else {
    content = listView(model);
  }
  main.replaceChildren(content);
  main.setAttribute("aria-busy", model.loading ? "true" : "false");
  document.title = chosen ? `${chosen.name} · BlueGreenApps` : "BlueGreenApps · kubectl bluegreen dashboard";
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  tick();
}

function listView(model) {
  if (model.loading) return h("p", { class: "empty" }, "Loading the apps…");
  if (!model.apps.length) {
    const where = model.namespace === null ? "any namespace" : `namespace ${model.namespace}`;
    return h("p", { class: "empty" }, `No BlueGreenApps in ${where}.`);
  }
  return h(
    "section",
    { "aria-labelledby": "apps-title" },
    h("h2", { id: "apps-title", class: "visually-hidden" }, "Apps"),
    h("ul", { class: "apps" }, model.apps.map((app) => h("li", {}, appCard(app, false)))),
  );
}

function detailView(app) {
  return h(
    "div",
    { class: "detail" },
    h("p", {}, h("a", { href: "#/" }, "← All apps")),
    appCard(app, true),
    h(
      "section",
      { class: "panel", "aria-labelledby": "switches-title" },
      h("h3", { id: "switches-title" }, "Switch history"),
      switchHistory(app),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "conditions-title" },
      h("h3", { id: "conditions-title" }, "Conditions"),
      table(
        "Conditions",
        ["Type", "Status", "Reason", "Since", "Message"],
        app.conditions.map((c) => [c.type, c.status, c.reason, timeCell(c.lastTransitionTime), c.message]),
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "events-title" },
      h("h3", { id: "events-title" }, "Recent Events"),
      eventsTable(app.events),
    ),
  );
}

function appCard(app, detailed) {
  const id = slug(appId(app));
  const heading = detailed
    ? h("h2", { id: `app-${id}` }, app.name)
    : h("h3", { id: `app-${id}` }, h("a", { href: `#/app/${encodeURIComponent(app.namespace)}/${encodeURIComponent(app.name)}` }, app.name));
  return h(
    "article",
    { class: "app", "aria-labelledby": `app-${id}`, dataset: { app: appId(app), phase: app.phase } },
    h(
      "div",
      { class: "app-head" },
      heading,
      h("span", { class: "namespace" }, app.namespace),
      h("span", { class: `phase phase-${app.phase}`, dataset: { role: "phase" } }, app.phase),
      app.gitops ? h("span", { class: "badge gitops", title: app.gitops }, "GitOps") : null,
    ),
    h("p", { class: "message", dataset: { role: "message" } }, app.message || "—"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Live"),
      h("dd", { dataset: { role: "live" } }, app.active ? colorChip(app.active.color, app.active.revision) : "none"),
      h("dt", {}, "Preview"),
      h("dd", { dataset: { role: "preview" } }, app.preview ? colorChip(app.preview.color, app.preview.revision) : "none waiting"),
      h("dt", {}, "Promote"),
      h("dd", {}, app.promote ? "true: every ready revision goes live" : "false: a new revision waits on the preview"),
      h("dt", {}, "Rollback"),
      h("dd", { dataset: { role: "rollback" } }, rollbackText(app)),
      app.next ? [h("dt", {}, "Next"), h("dd", {}, h("code", {}, app.next))] : null,
      app.observed ? null : [h("dt", {}, "Observed"), h("dd", {}, `generation ${app.generation} waits for the operator`)],
    ),
    colorsTable(app),
    app.checks.length ? checksTable(app) : null,
    actionsBar(app),
  );
}

function colorsTable(app) {
  return table(
    `Colors of ${app.name}`,
    ["Color", "Role", "Revision", "Pods ready", "Image"],
    app.colors.map((c) => [
      colorChip(c.color),
      h("span", { class: `role role-${c.role}` }, c.role),
      c.revision ? h("code", {}, c.revision) : "—",
      h(
        "span",
        { class: "pods", dataset: { color: c.color } },
        h("meter", { min: 0, max: Math.max(c.desired, 1), value: c.ready, "aria-hidden": "true" }),
        ` ${c.ready}/${c.desired}`,
      ),
      c.image || "—",
    ]),
    "colors",
  );
}

function checksTable(app) {
  return table(
    `Checks of ${app.name}`,
    ["Check", "Stage", "Revision", "State", "OK in a row", "Failed in a row", "Last answer"],
    app.checks.map((c) => [
      c.name,
      c.stage,
      h("code", {}, c.revision),
      h("span", { class: `state state-${c.state}` }, c.state),
      String(c.successes ?? 0),
      String(c.failures ?? 0),
      c.message || "—",
    ]),
    "checks",
  );
}

function table(caption, headers, rows, kind) {
  if (!rows.length) return h("p", { class: "none" }, `No ${caption.toLowerCase()}.`);
  return h(
    "table",
    { class: kind ? `table ${kind}` : "table" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
  );
}

function eventsTable(events) {
  return table(
    "Events",
    ["When", "Type", "Reason", "Message"],
    events.map((e) => [
      timeCell(e.time),
      h("span", { class: `event-${e.type}` }, e.type),
      e.reason,
      e.count > 1 ? `${e.message} (×${e.count})` : e.message,
    ]),
    "events",
  );
}

function switchHistory(app) {
  if (!app.switches.length) {
    const last = app.lastSwitchTime ? `Last switch at ${localTime(app.lastSwitchTime)}; its Event has expired.` : "No switch yet.";
    return h("p", { class: "none" }, last);
  }
  return h(
    "ol",
    { class: "history", reversed: true },
    app.switches.map((s) => h("li", {}, timeCell(s.time), " ", h("strong", {}, s.reason), ": ", s.message)),
  );
}

function rollbackText(app) {
  const r = app.rollback;
  if (!r.possible) return h("span", { class: "none", title: r.reason }, "nothing to roll back to");
  return h(
    "span",
    {},
    "to ",
    colorChip(r.color, r.revision),
    " ",
    r.instantUntil ? h("span", { class: "countdown", dataset: { until: r.instantUntil, color: r.color } }) : null,
  );
}

function actionsBar(app) {
  const id = slug(appId(app));
  const button = (action, label) =>
    h("button", { type: "button", id: `${action}-${id}`, class: "action", "aria-describedby": `app-${id}`, dataset: { action }, onclick: () => confirmAction(app, action) }, label);
  return h(
    "div",
    { class: "actions", role: "group", "aria-label": `Actions on ${app.name}` },
    button("promote", "Promote"),
    button("rollback", "Roll back"),
    button("retry", "Retry checks"),
  );
}

// The countdowns run here, from the server's clock: no request per second.
function tick() {
  const now = Date.now() + page.skew;
  for (const el of document.querySelectorAll(".countdown")) {
    const left = Math.round((Date.parse(el.dataset.until) - now) / 1000);
    el.textContent = left > 0
      ? `instant for ${left} s more (${el.dataset.color} still runs)`
      : `the window passed: ${el.dataset.color} is scaled up again first`;
    el.classList.toggle("passed", left <= 0);
  }
}

// --- connection ----------------------------------------------------------------------------

function renderConnection() {
  const banner = document.getElementById("banner");
  const status = document.getElementById("connection");
  const main = document.getElementById("main");
  const model = page.model;
  let problem = null;
  if (!page.stream) {
    problem = "Disconnected from the dashboard server (is kubectl bluegreen dashboard still running?). Reconnecting…";
  } else if (model && !model.connected && !model.loading) {
    const since = model.disconnectedSince ? ` since ${localTime(model.disconnectedSince)}` : "";
    problem = `Disconnected from the Kubernetes API server${since}: ${model.error}. Reconnecting; what you see is what was last known.`;
  }
  document.body.dataset.connection = problem ? "disconnected" : model && model.loading ? "loading" : "connected";
  banner.hidden = !problem;
  banner.textContent = problem || "";
  status.textContent = problem ? "Disconnected" : model && model.loading ? "Connecting…" : "Live";
  status.className = `connection ${problem ? "down" : "up"}`;
  main.classList.toggle("stale", Boolean(problem));
  const scope = document.getElementById("scope");
  if (model) scope.textContent = model.namespace === null ? "all namespaces" : `namespace ${model.namespace}`;
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    page.stream = true;
    renderConnection();
  });
  source.addEventListener("state", (event) => {
    page.stream = true;
    page.model = JSON.parse(event.data);
    page.skew = Date.parse(page.model.now) - Date.now();
    render();
  });
  source.addEventListener("error", () => {
    page.stream = false; // the browser reconnects by itself (the server said: retry 2000)
    renderConnection();
  });
}

// --- actions -------------------------------------------------------------------------------

const WHAT = {
  promote: {
    title: "Promote",
    text: (app) => app.preview
      ? `Prod moves to ${app.preview.color} (revision ${app.preview.revision}) as soon as it is fully ready.`
      : "No preview waits: spec.promote becomes true, so every new revision goes live once ready.",
  },
  rollback: {
    title: "Roll back",
    text: (app) => app.rollback.possible
      ? `The template of revision ${app.rollback.revision} (still on ${app.rollback.color}) is put back.` +
        (app.promote ? " Prod moves to it as soon as it is ready." : " It becomes the preview; promote it to move prod.")
      : "The plugin will say why there is nothing to roll back to.",
  },
  retry: {
    title: "Retry checks",
    text: (app) => `spec.retryChecks goes from ${app.retryChecks} to ${app.retryChecks + 1}: the checks of the current revision run again.`,
  },
};

function confirmAction(app, action) {
  const dialog = document.getElementById("confirm");
  const force = document.getElementById("confirm-force");
  document.getElementById("confirm-title").textContent = `${WHAT[action].title} ${app.namespace}/${app.name}?`;
  document.getElementById("confirm-text").textContent = WHAT[action].text(app);
  const gitops = document.getElementById("confirm-gitops");
  gitops.hidden = !app.gitops;
  gitops.textContent = app.gitops ? `A GitOps tool manages this app (${app.gitops}): the change belongs in Git, and without “force” it is refused.` : "";
  document.getElementById("confirm-force-label").hidden = !app.gitops;
  force.checked = false;
  document.getElementById("confirm-ok").textContent = WHAT[action].title;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "ok") run(app, action, force.checked);
    const back = document.getElementById(`${action}-${slug(appId(app))}`);
    if (back) back.focus();
  };
  dialog.showModal();
}

async function run(app, action, force) {
  notice("busy", `${WHAT[action].title} ${app.namespace}/${app.name}…`);
  try {
    const answer = await fetch(`/api/apps/${encodeURIComponent(app.namespace)}/${encodeURIComponent(app.name)}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ force }),
    });
    const body = await answer.json();
    if (answer.ok) {
      notice("done", body.warning ? `${body.message}. ${body.warning}` : body.message);
    } else {
      const who = body.refusedBy === "plugin" ? "Refused by the plugin's rules" : body.refusedBy === "api" ? "Refused by the Kubernetes API server" : "Refused";
      notice("refused", `${who}: ${body.error}`);
    }
  } catch (error) {
    notice("refused", `Could not reach the dashboard server: ${error}`);
  }
}

function notice(kind, text) {
  const el = document.getElementById("notice");
  el.hidden = false;
  el.dataset.kind = kind;
  el.setAttribute("role", kind === "refused" ? "alert" : "status");
  el.replaceChildren(
    h("span", {}, text),
    kind === "busy" ? null : h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: () => { el.hidden = true; } }, "×"),
  );
}

// --- theme ---------------------------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const button = document.getElementById("theme");
  button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false"); // its label stays
}

function setUpTheme() {
  const saved = localStorage.getItem("bluegreen-theme");
  const preferred = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  applyTheme(saved || preferred);
  document.getElementById("theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("bluegreen-theme", next);
    applyTheme(next);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTheme();
  window.addEventListener("hashchange", () => {
    render();
    document.getElementById("main").focus();
  });
  setInterval(tick, 1000);
  connect();
});
