// durable dashboard: one ES module, no build step, no dependency. Every URL is relative
// to <base>, so the app works wherever it is mounted. Text is always set with
// textContent (never innerHTML), so run data cannot inject markup.

const API = "api/workflows";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATUSES = ["pending", "running", "suspended", "completed", "failed", "cancelled"];
const main = document.getElementById("main");

// -- helpers ----------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function token() { return localStorage.getItem("durable.token") || ""; }

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => null);
  if (r.status === 401) { askToken(); }
  if (!r.ok) {
    const err = new Error((data && data.message) || `${r.status} ${r.statusText}`);
    err.status = r.status;
    err.code = data && data.error;
    throw err;
  }
  return data;
}

function askToken() {
  const dlg = document.getElementById("auth");
  if (!dlg.open) dlg.showModal();
}

document.getElementById("auth-form").addEventListener("submit", () => {
  localStorage.setItem("durable.token", document.getElementById("auth-token").value.trim());
  connectLive();
  route();
});

const UNITS = [["y", 31536e6], ["mo", 2592e6], ["d", 864e5], ["h", 36e5], ["m", 6e4], ["s", 1e3]];

function ago(iso) {
  if (!iso) return "—";
  const diff = Date.now() - new Date(iso).getTime();
  const abs = Math.abs(diff);
  if (abs < 5000) return diff >= 0 ? "just now" : "in a moment";
  for (const [u, ms] of UNITS) {
    if (abs >= ms) {
      const n = Math.floor(abs / ms);
      return diff >= 0 ? `${n}${u} ago` : `in ${n}${u}`;
    }
  }
  return "just now";
}

function dur(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return "";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)}s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
  return `${Math.floor(ms / 3600000)}h ${Math.round((ms % 3600000) / 60000)}m`;
}

function time(iso) {
  return iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString(), "data-ago": iso }, ago(iso)) : "—";
}

function pill(status) { return h("span", { class: `pill s-${status}`, "data-status": status }, status); }

function json(value, cls = "json") { return h("pre", { class: cls }, JSON.stringify(value, null, 2)); }

function parseJson(text) {
  const t = text.trim();
  if (!t) return null;
  return JSON.parse(t);
}

function tagChips(tags, onRemove) {
  const keys = Object.keys(tags || {});
  if (!keys.length) return h("span", { class: "muted" }, "—");
  return keys.sort().map((k) => h("span", { class: "tag" }, `${k}:${tags[k]}`,
    onRemove ? h("button", { type: "button", title: `remove ${k}`, onclick: () => onRemove(k) }, "×") : null));
}

function notice(text, bad = false) {
  const el = h("div", { class: `notice${bad ? " bad" : ""}`, role: "status" }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), bad ? 8000 : 4000);
}

function runDuration(run) {
  const start = run.started_at || run.created_at;
  const end = run.finished_at || (TERMINAL.has(run.status) ? run.updated_at : null);
  return end ? dur(new Date(end) - new Date(start)) : "";
}

// Refresh relative times every 15 s without refetching anything.
setInterval(() => {
  for (const el of document.querySelectorAll("time[data-ago]")) el.textContent = ago(el.dataset.ago);
}, 15000);

// -- live updates (server-sent events over fetch, so the bearer header can be sent) -----

const listeners = new Set();
let liveAbort = null;

async function connectLive() {
  if (liveAbort) liveAbort.abort();
  const ctrl = new AbortController();
  liveAbort = ctrl;
  const badge = document.getElementById("live");
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  try {
    const r = await fetch(`${API}/live`, { headers, signal: ctrl.signal });
    if (!r.ok) throw new Error(String(r.status));
    badge.textContent = "live"; badge.classList.add("on");
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) { const n = JSON.parse(data); for (const fn of listeners) fn(n); }
      }
    }
  } catch (e) {
    if (ctrl.signal.aborted) return;
  }
  badge.textContent = "offline"; badge.classList.remove("on");
  if (liveAbort === ctrl) setTimeout(connectLive, 2000);
}

function onLive(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// At most one call per `ms`, the last one trailing: a steady stream of notices still
// refreshes the page (a debounce would wait for a quiet moment that may never come).
function throttle(fn, ms) {
  let last = 0, timer = null;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}

// -- runs list ----------------------------------------------------------------------------

const filters = { workflow: "", status: "", tag: "" };

async function runsPage() {
  const gen = generation;
  const table = h("table", { class: "cards", id: "runs" },
    h("thead", {}, h("tr", {}, ["Status", "Run", "Workflow", "Created", "Duration", "Tags"].map((t) => h("th", {}, t)))),
    h("tbody"));
  const more = h("div", { class: "more" });
  const wfList = h("datalist", { id: "wf-names" });
  const fWorkflow = h("input", { name: "workflow", placeholder: "any", list: "wf-names", value: filters.workflow });
  const fStatus = h("select", { name: "status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: filters.status === s }, s)));
  const fTag = h("input", { name: "tag", placeholder: "key:value", value: filters.tag });
  const fId = h("input", { name: "id", placeholder: "run id" });
  const form = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("label", {}, "Workflow", fWorkflow), h("label", {}, "Status", fStatus), h("label", {}, "Tag", fTag),
    h("button", { type: "submit" }, "Filter"));
  const search = h("form", { class: "toolbar", onsubmit: async (e) => {
    e.preventDefault();
    const id = fId.value.trim();
    if (!id) return;
    try { await api(`${API}/runs/${encodeURIComponent(id)}`); location.hash = `#/runs/${encodeURIComponent(id)}`; }
    catch (err) { notice(err.status === 404 ? `No run with id ${id}` : err.message, true); }
  } }, h("label", {}, "Find by id", fId), h("button", { type: "submit" }, "Open"));
  const tWorkflow = h("input", { name: "new-workflow", placeholder: "workflow name", list: "wf-names", required: true });
  const tInput = h("textarea", { name: "new-input", placeholder: "input as JSON (optional)", rows: 1 });
  const trigger = h("form", { class: "toolbar", id: "trigger", onsubmit: async (e) => {
    e.preventDefault();
    let input;
    try { input = parseJson(tInput.value); } catch { notice("Input is not valid JSON", true); return; }
    try {
      const r = await api(`${API}/runs`, { method: "POST", body: { workflow: tWorkflow.value.trim(), input } });
      notice(`Started ${r.run_id}`);
      await load(true);
    } catch (err) { notice(err.message, true); }
  } }, h("label", {}, "Workflow", tWorkflow), h("label", { style: "flex:1 1 220px" }, "Input", tInput),
    h("button", { class: "primary", type: "submit" }, "Start run"));

  main.replaceChildren(
    h("h1", {}, "Runs"), h("p", { class: "sub" }, "Newest first. Status changes appear live."),
    h("div", { class: "grid" }, h("div", { class: "panel" }, h("h2", {}, "Filter"), form),
      h("div", { class: "panel" }, h("h2", {}, "Start a run"), trigger), h("div", { class: "panel" }, h("h2", {}, "Open a run"), search)),
    h("div", { class: "panel" }, table, more), wfList);

  let cursor = null;
  const known = new Map();
  const names = new Set();

  function row(run) {
    const link = `#/runs/${encodeURIComponent(run.run_id)}`;
    return h("tr", { "data-run": run.run_id },
      h("td", { "data-label": "Status" }, pill(run.status)),
      h("td", { "data-label": "Run" }, h("a", { class: "id", href: link }, run.run_id)),
      h("td", { "data-label": "Workflow" }, run.workflow, h("span", { class: "muted small" }, ` v${run.version}`)),
      h("td", { "data-label": "Created" }, time(run.created_at)),
      h("td", { "data-label": "Duration", class: "hide-sm" }, runDuration(run)),
      h("td", { "data-label": "Tags" }, tagChips(run.tags)));
  }

  function query() {
    const q = new URLSearchParams();
    if (filters.workflow) q.set("workflow", filters.workflow);
    if (filters.status) q.set("status", filters.status);
    if (filters.tag) q.append("tag", filters.tag);
    return q;
  }

  async function load(reset) {
    const q = query();
    q.set("limit", "50");
    if (!reset && cursor) q.set("cursor", cursor);
    let page;
    try { page = await api(`${API}/runs?${q}`); } catch (err) { notice(err.message, true); return; }
    if (gen !== generation) return;
    const body = table.tBodies[0];
    if (reset) body.replaceChildren();
    for (const run of page.runs) {
      const old = known.get(run.run_id);
      const tr = row(run);
      if (reset && old && old !== run.status) tr.classList.add("flash");
      known.set(run.run_id, run.status);
      body.append(tr);
      if (!names.has(run.workflow)) { names.add(run.workflow); wfList.append(h("option", { value: run.workflow })); }
    }
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No runs match.")));
    cursor = page.next_cursor;
    more.replaceChildren(cursor ? h("button", { onclick: () => load(false) }, "Load more") : "");
  }

  function apply() {
    filters.workflow = fWorkflow.value.trim(); filters.status = fStatus.value; filters.tag = fTag.value.trim();
    load(true);
  }

  // Live: refetch the first page, at most twice a second however many notices come.
  const refresh = throttle(() => { if (!cursor || table.tBodies[0].children.length <= 50) load(true); }, 500);
  cleanup = onLive(() => refresh());
  await load(true);
}

// -- one run ------------------------------------------------------------------------------

function timeline(run) {
  const events = run.history || [];
  if (!events.length) return h("p", { class: "muted" }, "No history yet.");
  const start = new Date(run.started_at || run.created_at).getTime();
  const attempts = {};
  for (const e of events) if (e.kind === "step_failed") attempts[e.pos] = (attempts[e.pos] || 0) + 1;
  let prev = start;
  const total = Math.max(1, new Date(events[events.length - 1].created_at).getTime() - start);
  return h("ol", { class: "timeline" }, events.map((e) => {
    const at = new Date(e.created_at).getTime();
    const delta = at - prev; prev = at;
    const retries = e.kind === "step_completed" && attempts[e.pos] ? h("span", { class: "badge" }, `${attempts[e.pos]} failed attempt${attempts[e.pos] > 1 ? "s" : ""}`) : null;
    const showPayload = e.payload !== null && e.payload !== undefined && e.kind !== "hook_created";
    return h("li", { class: `k-${e.kind}` },
      h("div", { class: "what" }, h("span", { class: "kind" }, e.kind.replaceAll("_", " ")),
        e.name ? h("code", {}, e.name) : null, retries,
        h("span", { class: "when", title: new Date(e.created_at).toLocaleString() }, `+${dur(at - start)}`,
          e.kind.startsWith("step_") ? `  (${dur(delta)})` : "")),
      e.kind.startsWith("step_") ? h("div", { class: "bar", style: `width:${Math.min(100, (delta / total) * 100).toFixed(1)}%` }) : null,
      showPayload ? h("details", {}, h("summary", { class: "muted small" }, "payload"), json(e.payload)) : null);
  }));
}

async function runPage(id) {
  const gen = generation;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let busy = false;

  let again = false;

  async function render() {
    if (gen !== generation) return;
    if (busy) { again = true; return; }  // one more pass once this one ends
    busy = true;
    try {
      const [run, events, children, parent] = await Promise.all([
        api(`${API}/runs/${encodeURIComponent(id)}`),
        api(`${API}/runs/${encodeURIComponent(id)}/events`),
        api(`${API}/runs/${encodeURIComponent(id)}/children`),
        api(`${API}/runs/${encodeURIComponent(id)}/parent`),
      ]);
      if (gen !== generation) return;
      // Live redraws keep what the user is typing (and where the cursor is).
      const saved = {};
      if (!clearDrafts) for (const el of main.querySelectorAll("input[name], textarea[name]")) if (el.value) saved[el.name] = el.value;
      const focused = document.activeElement && main.contains(document.activeElement) ? document.activeElement.name : null;
      clearDrafts = false;
      draw(run, events, children, parent);
      for (const [name, value] of Object.entries(saved)) { const el = main.querySelector(`[name="${name}"]`); if (el) el.value = value; }
      if (focused) { const el = main.querySelector(`[name="${focused}"]`); if (el) el.focus(); }
    } catch (err) {
      if (gen !== generation) return;
      main.replaceChildren(h("h1", {}, "Run"), h("div", { class: "notice bad" }, err.message), h("a", { href: "#/" }, "← all runs"));
    } finally {
      busy = false;
      if (again) { again = false; render(); }
    }
  }

  let clearDrafts = false;

  async function act(fn, ok) {
    try { await fn(); clearDrafts = true; await render(); if (ok) notice(ok); } catch (err) { notice(err.message, true); }
  }

  function draw(run, events, children, parent) {
    const open = !TERMINAL.has(run.status);
    const waits = run.pending || [];
    const waitSignal = waits.find((w) => w.kind === "signal");
    const sigName = h("input", { name: "signal-name", placeholder: "signal name", required: true, value: waitSignal ? waitSignal.name : "" });
    const sigPayload = h("textarea", { name: "signal-payload", placeholder: "payload as JSON (optional)", rows: 2 });
    const hookToken = h("input", { name: "hook-token", placeholder: "hook token", required: true });
    const hookPayload = h("textarea", { name: "hook-payload", placeholder: "payload as JSON (optional)", rows: 2 });
    const tagKey = h("input", { name: "tag-key", placeholder: "key", required: true, size: 8 });
    const tagValue = h("input", { name: "tag-value", placeholder: "value", required: true, size: 10 });
    const withJson = (text, fn) => { let v; try { v = parseJson(text); } catch { notice("Payload is not valid JSON", true); return; } return fn(v); };

    const header = h("div", { class: "head" },
      h("div", {}, h("h1", {}, h("span", { class: "id" }, run.run_id), pill(run.status)),
        h("p", { class: "sub" }, `${run.workflow} v${run.version} · created `, time(run.created_at),
          run.finished_at ? [" · finished ", time(run.finished_at), ` · took ${runDuration(run)}`] : "")),
      h("div", { class: "actions" },
        h("a", { href: "#/" }, h("button", { type: "button" }, "← Runs")),
        open ? h("button", { class: "danger", id: "cancel", onclick: () => {
          if (confirm(`Cancel run ${run.run_id}?`)) act(() => api(`${API}/runs/${encodeURIComponent(id)}`, { method: "DELETE" }), "Run cancelled");
        } }, "Cancel run") : null));

    const facts = h("dl", { class: "kv" },
      h("dt", {}, "Status"), h("dd", {}, pill(run.status)),
      h("dt", {}, "Waiting on"), h("dd", {}, waits.length ? waits.map((w) => h("div", {}, h("code", {}, `${w.kind} ${w.name || ""}`), w.until ? [" until ", time(w.until)] : "")) : h("span", { class: "muted" }, open ? "nothing (runnable)" : "—")),
      h("dt", {}, "Started"), h("dd", {}, time(run.started_at)),
      h("dt", {}, "Updated"), h("dd", {}, time(run.updated_at)),
      h("dt", {}, "Parent"), h("dd", {}, parent ? h("a", { class: "id", href: `#/runs/${encodeURIComponent(parent.run_id)}` }, parent.run_id) : h("span", { class: "muted" }, "— (root run)")),
      h("dt", {}, "Children"), h("dd", {}, children.length ? children.map((c) => h("div", {}, pill(c.status), " ", h("a", { class: "id", href: `#/runs/${encodeURIComponent(c.run_id)}` }, c.run_id))) : h("span", { class: "muted" }, "none")),
      h("dt", {}, "Tags"), h("dd", {}, tagChips(run.tags, (k) => act(() => api(`${API}/runs/${encodeURIComponent(id)}`, { method: "PATCH", body: { tags: { [k]: null } } }))),
        h("form", { class: "row", style: "margin-top:6px", onsubmit: (e) => { e.preventDefault(); act(() => api(`${API}/runs/${encodeURIComponent(id)}`, { method: "PATCH", body: { tags: { [tagKey.value.trim()]: tagValue.value } } }), "Tag saved"); } },
          tagKey, tagValue, h("button", { type: "submit" }, "Add tag"))));

    const io = h("div", { class: "panel" }, h("h2", {}, "Input"), json(run.input),
      run.error ? [h("h2", { style: "margin-top:14px" }, "Error"), h("pre", { class: "json error" }, run.error)]
        : [h("h2", { style: "margin-top:14px" }, "Output"), TERMINAL.has(run.status) ? json(run.output) : h("p", { class: "muted" }, "Not finished yet.")]);

    const controls = open ? h("div", { class: "panel" }, h("h2", {}, "Steer"), h("div", { class: "forms" },
      h("form", { id: "signal", onsubmit: (e) => { e.preventDefault(); withJson(sigPayload.value, (payload) => act(() => api(`${API}/runs/${encodeURIComponent(id)}/signals/${encodeURIComponent(sigName.value.trim())}`, { method: "POST", body: { payload } }), "Signal sent")); } },
        h("strong", {}, "Send a signal"), sigName, sigPayload, h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, "Send signal"))),
      h("form", { id: "hook", onsubmit: (e) => { e.preventDefault(); withJson(hookPayload.value, (payload) => act(() => api(`${API}/hooks/${encodeURIComponent(hookToken.value.trim())}`, { method: "POST", body: { payload } }), "Hook completed")); } },
        h("strong", {}, "Complete a hook"), hookToken, hookPayload, h("div", { class: "row" }, h("button", { type: "submit" }, "Complete hook"))))) : null;

    const custom = h("div", { class: "panel" }, h("h2", {}, `Custom events (${events.length})`),
      events.length ? h("table", { class: "cards" }, h("thead", {}, h("tr", {}, ["#", "Type", "Payload", "When"].map((t) => h("th", {}, t)))),
        h("tbody", {}, events.map((e) => h("tr", {}, h("td", { "data-label": "#" }, e.seq), h("td", { "data-label": "Type" }, h("code", {}, e.type)),
          h("td", { "data-label": "Payload" }, h("code", {}, JSON.stringify(e.payload))), h("td", { "data-label": "When" }, time(e.created_at))))))
        : h("p", { class: "muted" }, "None."));

    main.replaceChildren(header,
      h("div", { class: "grid" }, h("div", { class: "panel" }, h("h2", {}, "Run"), facts), io),
      controls || "",
      h("div", { class: "panel" }, h("h2", {}, `History (${(run.history || []).length} events)`), timeline(run)),
      custom);
  }

  const refresh = throttle(render, 250);
  const slow = throttle(render, 2000);  // another process's NOTIFY may concern this run
  cleanup = onLive((n) => {
    if (n.run_id === id || n.what === "resync") refresh();
    else if (n.what === "wake" || n.what === "finished") slow();
  });
  await render();
}

// -- schedules ----------------------------------------------------------------------------

async function schedulesPage() {
  const gen = generation;
  const body = h("tbody");
  main.replaceChildren(h("h1", {}, "Schedules"), h("p", { class: "sub" }, "Each tick starts one run. Paused schedules skip their ticks."),
    h("div", { class: "panel" }, h("table", { class: "cards", id: "schedules" },
      h("thead", {}, h("tr", {}, ["Name", "Workflow", "Cron", "Next fire", "Last fired", "State", ""].map((t) => h("th", {}, t)))), body)));

  async function load() {
    let rows;
    try { rows = await api(`${API}/schedules`); } catch (err) { notice(err.message, true); return; }
    if (gen !== generation) return;
    body.replaceChildren(...rows.map((s) => h("tr", { "data-schedule": s.name },
      h("td", { "data-label": "Name" }, h("strong", {}, s.name)),
      h("td", { "data-label": "Workflow" }, s.workflow),
      h("td", { "data-label": "Cron" }, h("code", {}, s.expression), h("span", { class: "muted small" }, ` ${s.timezone}`)),
      h("td", { "data-label": "Next fire" }, s.paused || !s.active ? h("span", { class: "muted" }, "—") : time(s.next_fire_at)),
      h("td", { "data-label": "Last fired" }, time(s.last_fired_at)),
      h("td", { "data-label": "State" }, !s.active ? h("span", { class: "pill s-cancelled" }, "retired") : s.paused ? h("span", { class: "pill s-suspended" }, "paused") : h("span", { class: "pill s-completed" }, "active")),
      h("td", { "data-label": "" }, s.active ? h("button", { onclick: async () => {
        try { await api(`${API}/schedules/${encodeURIComponent(s.name)}/${s.paused ? "resume" : "pause"}`, { method: "POST" }); notice(`${s.name} ${s.paused ? "resumed" : "paused"}`); load(); }
        catch (err) { notice(err.message, true); }
      } }, s.paused ? "Resume" : "Pause") : ""))));
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No schedules declared.")));
  }
  await load();
}

// -- router -------------------------------------------------------------------------------

let cleanup = null;
let generation = 0;  // bumped on every navigation: late answers for a left page are dropped

function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  generation += 1;
  const hash = location.hash || "#/";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("on", (a.dataset.nav === "schedules") === hash.startsWith("#/schedules"));
  const m = hash.match(/^#\/runs\/(.+)$/);
  if (m) return runPage(decodeURIComponent(m[1]));
  if (hash.startsWith("#/schedules")) return schedulesPage();
  return runsPage();
}

window.addEventListener("hashchange", route);
connectLive();
route();
