// Mend's dashboard: one page, routed by the URL's hash (#/, #/jobs?status=failed,
// #/jobs/<id>), talking to the same /api/v1 routes as any client. The API key lives in
// sessionStorage (this tab only) and travels only as the X-API-Key header; job data is
// put on the page with textContent, never as HTML.

const KEY = "mend.key";
const ADMIN = "mend.admin";
const REFRESH_MS = 2000;
const PAGE_SIZE = 20;
const STATES = ["pending", "processing", "completed", "failed", "cancelled"];

const $ = (id) => document.getElementById(id);
let leaveView = () => {};  // stops the current view's timer or stream
let enums = null;  // the status and type names, from the OpenAPI document
let signingIn = false;
let pendingFlash = null;  // shown by the next route(), e.g. why the user was signed out

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {"X-API-Key": sessionStorage.getItem(KEY) || ""};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await answer.json().catch(() => ({}));
  if (answer.status === 401 && !signingIn) {
    signOut("The key is no longer accepted; sign in again.");
  }
  if (!answer.ok) throw new ApiError(answer.status, data.error || `HTTP ${answer.status}`);
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells, header = false) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = cell instanceof Node ? el(header ? "th" : "td") : el(header ? "th" : "td", cell);
    if (cell instanceof Node) td.append(cell);
    if (typeof cell === "number") td.className = "num";
    tr.append(td);
  }
  return tr;
}

function jobLink(id) {
  const a = el("a", id);
  a.href = `#/jobs/${encodeURIComponent(id)}`;
  return a;
}

function statusText(status) {
  return el("span", status, `status status-${status}`);
}

function when(stamp) {
  return stamp ? new Date(stamp).toLocaleString() : "";
}

function flash(message, isError = false) {
  const box = $("flash");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = !message;
}

function show(section) {
  for (const id of ["login", "overview", "jobs", "job"]) $(id).hidden = id !== section;
  const signedIn = Boolean(sessionStorage.getItem(KEY));
  $("nav").hidden = !signedIn;
  $("who").hidden = !signedIn;
  $("role").textContent = sessionStorage.getItem(ADMIN) === "1" ? "admin key" : "tenant key";
}

// ------------------------------------------------------------------------ signing in

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  signingIn = true;
  try {
    await api("GET", "/api/v1/queue/stats");
    // An admin key may list every tenant's jobs; a tenant key is refused (403).
    try {
      await api("GET", "/api/v1/jobs?all_tenants=true&page_size=1");
      sessionStorage.setItem(ADMIN, "1");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 403)) throw err;
      sessionStorage.setItem(ADMIN, "0");
    }
  } catch (err) {
    sessionStorage.removeItem(KEY);
    throw err;
  } finally {
    signingIn = false;
  }
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ADMIN);
  pendingFlash = message ? {message, isError: true} : null;
  if (location.hash && location.hash !== "#/") location.hash = "#/";  // routes on hashchange
  else route();
}

// -------------------------------------------------------------------------- overview

function countsTable(table, head, rows) {
  table.tHead.replaceChildren(row(head, true));
  table.tBodies[0].replaceChildren(...rows.map((cells) => row(cells)));
}

function renderOverview(stats) {
  const totals = stats.totals || {};
  const byType = Object.entries(stats.by_type || {}).sort();
  countsTable($("counts"), ["", ...STATES], [
    ["all types", ...STATES.map((s) => totals[s] || 0)],
    ...byType.map(([type, counts]) => [type, ...STATES.map((s) => counts[s] || 0)]),
  ]);

  const buckets = stats.throughput || [];
  const peak = Math.max(1, ...buckets.map((b) => (b.completed || 0) + (b.failed || 0)));
  const done = buckets.reduce((n, b) => n + (b.completed || 0), 0);
  const failed = buckets.reduce((n, b) => n + (b.failed || 0), 0);
  $("throughput-total").textContent = `${done} completed, ${failed} failed`;
  $("throughput").replaceChildren(...buckets.map((b) => {
    const bar = el("div", null, "bar");
    bar.title = `${new Date(b.start).toLocaleTimeString()}: ` +
      `${b.completed || 0} completed, ${b.failed || 0} failed`;
    for (const part of ["completed", "failed"]) {
      const piece = el("div", null, part);
      piece.style.height = `${100 * (b[part] || 0) / peak}%`;
      bar.append(piece);
    }
    return bar;
  }));

  const workers = stats.workers_detail || [];
  $("workers").tBodies[0].replaceChildren(...(workers.length ? workers.map((w) => row([
    w.worker_id,
    w.job_id ? jobLink(w.job_id) : "idle",
    w.job_id ? w.job_type : "",
    when(w.started_at),
  ])) : [row(["no live workers", "", "", ""])]));

  const tenants = Object.entries(stats.by_tenant || {}).sort();
  $("tenants-block").hidden = tenants.length === 0;
  countsTable($("tenants"), ["tenant", ...STATES],
    tenants.map(([name, counts]) => [name, ...STATES.map((s) => counts[s] || 0)]));
}

function overview() {
  show("overview");
  const refresh = async () => {
    try {
      renderOverview(await api("GET", "/api/v1/queue/stats"));
    } catch (err) {
      flash(err.message, true);
    }
  };
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

// -------------------------------------------------------------------------- job list

async function loadEnums() {
  if (enums) return enums;
  const doc = await (await fetch("/api/v1/openapi.json")).json();
  const params = doc.paths["/api/v1/jobs"].get.parameters;
  const named = (name) => params.find((p) => p.name === name).schema.enum;
  enums = {status: named("status"), type: named("type")};
  return enums;
}

function fillSelect(select, values, chosen) {
  if (select.options.length === 1) {
    for (const value of values) select.append(new Option(value, value));
  }
  select.value = chosen || "";
}

// Buttons for what may be done to a job in its state; each calls `done` afterwards.
function actionButtons(job, done) {
  const buttons = [];
  const add = (label, method, path, confirmText) => {
    const button = el("button", label);
    button.type = "button";
    button.dataset.action = label.toLowerCase();
    button.addEventListener("click", async () => {
      if (confirmText && !confirm(confirmText)) return;
      button.disabled = true;
      try {
        await api(method, path, method === "POST" ? {} : undefined);
        flash(`${label}: job ${job.id}`);
      } catch (err) {
        flash(`${label} failed: ${err.message}`, true);
      }
      done();
    });
    buttons.push(button);
  };
  const id = encodeURIComponent(job.id);
  if (job.status === "pending" || job.status === "processing") {
    add("Cancel", "POST", `/api/v1/jobs/${id}/cancel`);
  }
  if (job.status === "failed" || job.status === "cancelled") {
    add("Retry", "POST", `/api/v1/jobs/${id}/retry`);
  }
  if (["completed", "failed", "cancelled"].includes(job.status)) {
    add("Delete", "DELETE", `/api/v1/jobs/${id}`, `Delete job ${job.id}?`);
  }
  return buttons;
}

function listQuery(params) {
  const query = new URLSearchParams();
  for (const name of ["status", "type", "page_token"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  if (params.get("all") === "1") query.set("all_tenants", "true");
  query.set("page_size", String(PAGE_SIZE));
  return query;
}

function jobs(params) {
  show("jobs");
  const isAdmin = sessionStorage.getItem(ADMIN) === "1";
  $("all-tenants-label").hidden = !isAdmin;
  $("filter-all").checked = isAdmin && params.get("all") !== "0";
  if (isAdmin && !params.has("all")) params.set("all", "1");
  let next = "";
  const load = async () => {
    try {
      const {status, type} = await loadEnums();
      fillSelect($("filter-status"), status, params.get("status"));
      fillSelect($("filter-type"), type, params.get("type"));
      const page = await api("GET", `/api/v1/jobs?${listQuery(params)}`);
      next = page.next_page_token || "";
      $("next-page").disabled = !next;
      $("first-page").disabled = !params.get("page_token");
      $("jobs-empty").hidden = page.jobs.length > 0;
      $("job-list").tBodies[0].replaceChildren(...page.jobs.map((job) => {
        const actions = el("span");
        actions.append(...actionButtons(job, load));
        const tr = row([jobLink(job.id), job.type, statusText(job.status),
          when(job.created_at), when(job.updated_at), job.error || "", actions]);
        tr.dataset.jobId = job.id;
        tr.dataset.status = job.status;
        return tr;
      }));
    } catch (err) {
      flash(err.message, true);
    }
  };
  const go = (changes) => {
    const query = new URLSearchParams(params);
    for (const [name, value] of Object.entries(changes)) {
      if (value) query.set(name, value); else query.delete(name);
    }
    location.hash = `#/jobs?${query}`;
  };
  $("filters").onchange = () => go({
    status: $("filter-status").value,
    type: $("filter-type").value,
    all: isAdmin ? ($("filter-all").checked ? "1" : "0") : "",
    page_token: "",
  });
  $("next-page").onclick = () => go({page_token: next});
  $("first-page").onclick = () => go({page_token: ""});
  load();
  const timer = setInterval(load, REFRESH_MS * 2);
  return () => clearInterval(timer);
}

// --------------------------------------------------------------------------- one job

function renderJob(job) {
  $("job-status").replaceChildren(statusText(job.status));
  const progress = job.progress && job.status === "processing"
    ? `${job.progress.percent || 0}% ${job.progress.message || ""}` : "";
  $("job-progress").textContent = progress;
  const fields = [
    ["type", job.type],
    ["source", `${job.source_bucket}/${job.source_key}`],
    ["destination", job.dest_bucket ? `${job.dest_bucket}/${job.dest_key}` : ""],
    ["parameters", JSON.stringify(job.parameters || {})],
    ["attempt", `${job.attempt || 0} of ${job.max_attempts || 0}`],
    ["created", when(job.created_at)],
    ["started", when(job.started_at)],
    ["finished", when(job.completed_at)],
    ["queue position", job.queue_position],
    ["result", job.result ? JSON.stringify(job.result) : ""],
    ["error", job.error],
  ];
  $("job-fields").replaceChildren(...fields.filter(([, v]) => v !== undefined && v !== "")
    .flatMap(([name, value]) => [el("dt", name), el("dd", value)]));
}

// One SSE event (Mend's shapes: status, progress, complete, error) as a timeline line.
function timelineEntry(name, data, version) {
  let text = `v${version} ${name}: ${data.status}`;
  if (name === "progress") text = `v${version} progress: ${data.percent || 0}% ${data.message || ""}`;
  else if (data.error) text += ` (${data.error})`;
  else if (data.message) text += ` (${data.message})`;
  const item = el("li", `${new Date().toLocaleTimeString()} ${text}`);
  item.dataset.event = name;
  item.dataset.version = version;
  return item;
}

function job(id) {
  show("job");
  $("job-id").textContent = id;
  $("timeline").replaceChildren();
  $("job-fields").replaceChildren();
  $("job-actions").replaceChildren();
  let source = null;
  let stopped = false;
  const path = `/api/v1/jobs/${encodeURIComponent(id)}`;

  const actions = (current) => {
    $("job-actions").replaceChildren(...actionButtons(current, async () => {
      try {
        await api("GET", path);
        follow();  // retried: a new run to watch
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) location.hash = "#/jobs";
      }
    }));
  };

  // The current state, then every change over SSE; EventSource cannot send headers, so
  // the stream is opened with a short-lived token for this job alone.
  const follow = async () => {
    if (source) source.close();
    try {
      const current = await api("GET", path);
      renderJob(current);
      actions(current);
      const {token} = await api("POST", `${path}/stream-token`, {});
      if (stopped) return;
      source = new EventSource(`${path}/stream?token=${encodeURIComponent(token)}`);
      for (const name of ["status", "progress", "complete", "error"]) {
        source.addEventListener(name, async (event) => {
          const data = JSON.parse(event.data);
          // A stream opened again (after a retry) starts with a state already listed.
          const listed = [...$("timeline").children]
            .some((li) => li.dataset.version === event.lastEventId);
          if (!listed) $("timeline").append(timelineEntry(name, data, event.lastEventId));
          if (name === "progress") {
            $("job-progress").textContent = `${data.percent || 0}% ${data.message || ""}`;
            return;
          }
          $("job-status").replaceChildren(statusText(data.status));
          $("job-progress").textContent = "";
          if (name === "complete" || name === "error") {
            source.close();
            try {
              const done = await api("GET", path);  // the whole job: result, times
              renderJob(done);
              actions(done);
            } catch (err) {
              flash(err.message, true);
            }
          }
        });
      }
    } catch (err) {
      flash(err instanceof ApiError && err.status === 404
        ? `Job ${id} not found for this key.` : err.message, true);
    }
  };
  follow();
  return () => {
    stopped = true;
    if (source) source.close();
  };
}

// --------------------------------------------------------------------------- routing

function route() {
  leaveView();
  leaveView = () => {};
  flash(pendingFlash ? pendingFlash.message : "", pendingFlash?.isError);
  pendingFlash = null;
  if (!sessionStorage.getItem(KEY)) {
    show("login");
    return;
  }
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const jobMatch = path.match(/^\/jobs\/([^/]+)$/);
  if (jobMatch) leaveView = job(decodeURIComponent(jobMatch[1]));
  else if (path === "/jobs") leaveView = jobs(params);
  else leaveView = overview();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await signIn($("key").value.trim());
    $("key").value = "";
    route();
  } catch (err) {
    flash(err instanceof ApiError && err.status === 401
      ? "This key is not accepted." : err.message, true);
  }
});
$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
