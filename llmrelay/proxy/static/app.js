// The llmrelay admin page: plain DOM, no dependencies, no build step.
// Every value from the server becomes a text node (el() never parses HTML), so nothing a
// client sent (an alias, a prompt, a model name) can run as markup here.
"use strict";

const KEY_SLOT = "llmrelay.admin-key";
const PAGES = {
  models: ["Models", renderModels],
  keys: ["Keys", renderKeys],
  teams: ["Teams", renderTeams],
  spend: ["Spend", renderSpend],
  requests: ["Requests", renderRequests],
  jobs: ["Background jobs", renderJobs],
  response: ["Response", renderResponse],
};

// -- talking to the proxy ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, body, key = sessionStorage.getItem(KEY_SLOT)) {
  const init = { method: body === undefined ? "GET" : "POST", headers: { authorization: `Bearer ${key || ""}` } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The proxy could not be reached.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

async function keyNames() {
  const data = await api("/key/list?return_full_object=true&size=100");
  return new Map(data.keys.map((k) => [k.key_id, k.key_alias || k.key_name]));
}

// -- shell -------------------------------------------------------------------------------------

let flashTimer = 0;

function flash(message, tone = "ok") {
  const box = $("flash");
  box.textContent = message;
  box.className = `flash ${tone}`;
  box.hidden = false;
  clearTimeout(flashTimer);
  if (tone === "ok") flashTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

function showLogin(message) {
  sessionStorage.removeItem(KEY_SLOT);
  $("app").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("login-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("login-key").value.trim();
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await api("/key/list?size=1", undefined, key);
    sessionStorage.setItem(KEY_SLOT, key);
    $("login-key").value = "";
    $("login").hidden = true;
    $("app").hidden = false;
    if (!location.hash) location.hash = "#/models";
    else route();
  } catch (err) {
    const why = err.status === 401 ? "That key was not accepted."
      : err.status === 403 ? "This key may not manage the proxy: use the master key or a proxy_admin's key."
        : err.message;
    showLogin(why);
  } finally {
    button.disabled = false;
  }
}

let rendering = 0;

async function route() {
  if (!sessionStorage.getItem(KEY_SLOT)) return showLogin();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const [title, render] = PAGES[name] || PAGES.models;
  const ticket = ++rendering;
  for (const link of document.querySelectorAll(".sidebar a")) {
    link.classList.toggle("active", link.dataset.page === (name === "response" ? "requests" : name || "models"));
  }
  $("page-title").textContent = title;
  $("page-actions").replaceChildren();
  $("page").replaceChildren(el("div", { class: "loading", text: "Loading…" }));
  $("page").setAttribute("aria-busy", "true");
  try {
    const parts = await render(...rest.map(decodeURIComponent));
    if (ticket !== rendering) return; // the user moved on meanwhile
    $("page").replaceChildren();
    appendAll($("page"), [parts]);
  } catch (err) {
    if (ticket !== rendering) return;
    if (err.status === 401) return showLogin("Your key is no longer accepted; sign in again.");
    $("page").replaceChildren(el("div", { class: "empty error", text: err.message }));
  } finally {
    if (ticket === rendering) $("page").setAttribute("aria-busy", "false");
  }
}

function actions(...buttons) {
  $("page-actions").replaceChildren(...buttons);
}

// Runs `work`, reports how it went, and draws the page again.
async function act(work, done) {
  try {
    await work();
    if (done) flash(done);
    await route();
  } catch (err) {
    flash(err.message, "bad");
  }
}

// A button that asks for a second click before doing something that cannot be undone.
function confirmButton(label, confirmLabel, work) {
  let armed = false;
  const button = el("button", { type: "button", class: "small danger-ghost", text: label });
  button.addEventListener("click", () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add("armed");
      return;
    }
    button.disabled = true;
    work();
  });
  button.addEventListener("blur", () => {
    armed = false;
    button.textContent = label;
    button.classList.remove("armed");
  });
  return button;
}

function field(label, input, hint) {
  return el("label", { class: "field" }, el("span", { text: label }), input, hint ? el("small", { text: hint }) : null);
}

// The values of a form's named inputs, blank ones left out, numbers as numbers.
function formValues(form) {
  const out = {};
  for (const input of form.querySelectorAll("[name]")) {
    const value = input.value.trim();
    if (!value) continue;
    if (input.dataset.kind === "list") out[input.name] = value.split(",").map((s) => s.trim()).filter(Boolean);
    else if (input.type === "number") out[input.name] = Number(value);
    else out[input.name] = value;
  }
  return out;
}

function durationSelect(name) {
  return el("select", { name },
    el("option", { value: "", text: "never resets" }),
    ["1d", "7d", "30d"].map((d) => el("option", { value: d, text: `every ${d}` })));
}

function toggleForm(form, button) {
  button.addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) form.querySelector("input")?.focus();
  });
}

// -- pages -------------------------------------------------------------------------------------

async function renderModels() {
  const info = await api("/model/info");
  const health = new Map();
  const check = el("button", { type: "button", class: "primary", text: "Check health" });
  actions(check);
  const rows = () => info.data.map((m) => {
    const state = health.get(m.model_info.id);
    return el("tr", {},
      el("td", {}, el("strong", { text: m.model_name })),
      el("td", { class: "mono", text: m.litellm_params.model }),
      el("td", { text: `${perMillion(m.model_info.input_cost_per_token)} / ${perMillion(m.model_info.output_cost_per_token)}` }),
      el("td", { text: m.model_info.max_input_tokens ? count(m.model_info.max_input_tokens) : "—" }),
      el("td", { "data-health": m.model_info.id },
        state ? [badge(state.error ? "unhealthy" : "healthy"), state.error ? el("div", { class: "muted small", text: state.error }) : null]
          : el("span", { class: "muted", text: "not checked" })));
  });
  const body = el("div", {}, modelsTable(rows()));
  check.addEventListener("click", async () => {
    check.disabled = true;
    check.textContent = "Checking…";
    try {
      const report = await api("/health");
      for (const e of report.healthy_endpoints) health.set(e.model_id, {});
      for (const e of report.unhealthy_endpoints) health.set(e.model_id, { error: e.error });
      body.replaceChildren(modelsTable(rows()));
      flash(`${report.healthy_count} healthy, ${report.unhealthy_count} unhealthy`, report.unhealthy_count ? "bad" : "ok");
    } catch (err) {
      flash(err.message, "bad");
    } finally {
      check.disabled = false;
      check.textContent = "Check health";
    }
  });
  return [el("p", { class: "muted intro", text: "Each deployment of each model name. A health check sends every deployment a minimal request." }), body];
}

function modelsTable(rows) {
  return table(["Model", "Deployment", "Price in / out (1M tokens)", "Max input", "Health"], rows, "No models are configured.");
}

async function renderKeys() {
  const [keys, teams] = await Promise.all([api("/key/list?return_full_object=true&size=100"), api("/team/list?size=100")]);
  const teamNames = new Map(teams.teams.map((t) => [t.team_id, t.team_alias || t.team_id]));
  const newButton = el("button", { type: "button", class: "primary", text: "New key" });
  actions(newButton);
  const created = el("div");
  const form = el("form", { class: "card form-grid", id: "key-form", hidden: true },
    field("Alias", el("input", { name: "key_alias", placeholder: "my-service" })),
    field("Team", el("select", { name: "team_id" }, el("option", { value: "", text: "no team" }),
      teams.teams.map((t) => el("option", { value: t.team_id, text: t.team_alias || t.team_id })))),
    field("Models", el("input", { name: "models", "data-kind": "list", placeholder: "all models" }), "comma separated"),
    field("Budget (USD)", el("input", { name: "max_budget", type: "number", min: "0", step: "any", placeholder: "no budget" })),
    field("Budget resets", durationSelect("budget_duration")),
    field("Requests / minute", el("input", { name: "rpm_limit", type: "number", min: "0", step: "1", placeholder: "no limit" })),
    field("Tokens / minute", el("input", { name: "tpm_limit", type: "number", min: "0", step: "1", placeholder: "no limit" })),
    field("Expires after", el("input", { name: "duration", placeholder: "never (e.g. 30d)" })),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "primary", text: "Create key" })));
  toggleForm(form, newButton);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("/key/generate", formValues(form));
      form.reset();
      form.hidden = true;
      created.replaceChildren(newKeyNotice(made));
      await refreshKeys(list, teamNames);
    } catch (err) {
      flash(err.message, "bad");
    }
  });
  const list = el("div");
  list.append(keysTable(keys.keys, teamNames, list));
  return [form, created, list];
}

function newKeyNotice(made) {
  const value = el("input", { class: "mono", readOnly: true, value: made.key, id: "new-key" });
  const copy = el("button", { type: "button", class: "small", text: "Copy" });
  copy.addEventListener("click", async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(made.key);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Select and copy";
    }
  });
  return el("div", { class: "card notice" },
    el("strong", { text: `Key ${made.key_alias || made.key_name} created.` }),
    el("p", { class: "muted", text: "Copy it now: it is shown only once. llmrelay keeps only its hash." }),
    el("div", { class: "copy-row" }, value, copy));
}

async function refreshKeys(list, teamNames) {
  const keys = await api("/key/list?return_full_object=true&size=100");
  list.replaceChildren(keysTable(keys.keys, teamNames, list));
}

function keysTable(keys, teamNames, list) {
  const redo = (work, done) => async () => {
    try {
      await work();
      flash(done);
      await refreshKeys(list, teamNames);
    } catch (err) {
      flash(err.message, "bad");
    }
  };
  const rows = keys.map((k) => {
    const expired = k.expires && new Date(k.expires) < new Date();
    const status = k.blocked ? "blocked" : expired ? "expired" : "active";
    const name = k.key_alias || k.key_name;
    const limits = [k.rpm_limit != null && `${count(k.rpm_limit)} rpm`, k.tpm_limit != null && `${count(k.tpm_limit)} tpm`,
      k.max_parallel_requests != null && `${k.max_parallel_requests} parallel`].filter(Boolean);
    const block = el("button", { type: "button", class: "small", text: k.blocked ? "Unblock" : "Block" });
    block.addEventListener("click", redo(() => api(k.blocked ? "/key/unblock" : "/key/block", { key: k.token }),
      `Key ${name} ${k.blocked ? "unblocked" : "blocked"}.`));
    const remove = confirmButton("Delete", "Really delete?", redo(() => api("/key/delete", { keys: [k.token] }), `Key ${name} deleted.`));
    return el("tr", { "data-key": k.key_alias || k.token },
      el("td", {}, el("strong", { text: k.key_alias || "—" }), el("div", { class: "mono muted small", text: k.key_name })),
      el("td", { text: k.team_id ? teamNames.get(k.team_id) || k.team_id : "—" }),
      el("td", { text: k.models && k.models.length ? k.models.join(", ") : "all" }),
      el("td", { class: "spend" }, budgetBar(k.spend, k.max_budget),
        k.budget_duration ? el("div", { class: "muted small", text: `resets every ${k.budget_duration}` }) : null),
      el("td", { text: limits.length ? limits.join(" · ") : "—" }),
      el("td", {}, badge(status)),
      el("td", { class: "row-actions" }, block, remove));
  });
  return table(["Key", "Team", "Models", "Spend", "Limits", "Status", ""], rows, "No keys yet: create one with “New key”.");
}

async function renderTeams() {
  const teams = await api("/team/list?size=100");
  const newButton = el("button", { type: "button", class: "primary", text: "New team" });
  actions(newButton);
  const form = el("form", { class: "card form-grid", hidden: true },
    field("Alias", el("input", { name: "team_alias", placeholder: "research" })),
    field("Models", el("input", { name: "models", "data-kind": "list", placeholder: "all models" }), "comma separated"),
    field("Budget (USD)", el("input", { name: "max_budget", type: "number", min: "0", step: "any", placeholder: "no budget" })),
    field("Budget resets", durationSelect("budget_duration")),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "primary", text: "Create team" })));
  toggleForm(form, newButton);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => api("/team/new", formValues(form)), "Team created.");
  });
  const rows = teams.teams.map((t) => {
    const name = t.team_alias || t.team_id;
    const block = el("button", { type: "button", class: "small", text: t.blocked ? "Unblock" : "Block" });
    block.addEventListener("click", () => act(() => api("/team/update", { team_id: t.team_id, blocked: !t.blocked }),
      `Team ${name} ${t.blocked ? "unblocked" : "blocked"}.`));
    return el("tr", {},
      el("td", {}, el("strong", { text: t.team_alias || "—" }), el("div", { class: "mono muted small", text: t.team_id })),
      el("td", { text: t.models && t.models.length ? t.models.join(", ") : "all" }),
      el("td", { class: "spend" }, budgetBar(t.spend, t.max_budget)),
      el("td", {}, badge(t.blocked ? "blocked" : "active")),
      el("td", { class: "row-actions" }, block,
        confirmButton("Delete", "Really delete?", () => act(() => api("/team/delete", { team_ids: [t.team_id] }), `Team ${name} deleted.`))));
  });
  return [form, table(["Team", "Models", "Spend", "Status", ""], rows, "No teams yet.")];
}

async function renderSpend() {
  const [days, models, keys, names] = await Promise.all([
    api("/global/spend/report?group_by=day"), api("/global/spend/report?group_by=model"),
    api("/global/spend/report?group_by=key"), keyNames()]);
  const total = days.data.reduce((sum, d) => ({ spend: sum.spend + d.spend, requests: sum.requests + d.requests,
    tokens: sum.tokens + d.total_tokens }), { spend: 0, requests: 0, tokens: 0 });
  const stat = (label, value) => el("div", { class: "card stat" }, el("span", { class: "muted", text: label }), el("strong", { text: value }));
  const ranking = (title, rows, label) => el("div", { class: "card" }, el("h2", { text: title }),
    table([label, "Spend", "Requests", "Tokens"], rows.slice(0, 10).map((r) => el("tr", {},
      el("td", { text: r.name }), el("td", { text: usd(r.spend) }), el("td", { text: count(r.requests) }),
      el("td", { text: count(r.total_tokens) }))), "Nothing spent yet."));
  return [
    el("div", { class: "stats" }, stat("Spend", usd(total.spend)), stat("Requests", count(total.requests)), stat("Tokens", count(total.tokens))),
    el("div", { class: "card" }, el("h2", { text: "Spend per day, last 30 days (UTC)" }), spendChart(days.data, 30)),
    el("div", { class: "two-col" },
      ranking("By model", models.data.map((r) => ({ ...r, name: r.model || "—" })), "Model"),
      ranking("By key", keys.data.map((r) => ({ ...r, name: r.key ? names.get(r.key) || r.key : "master key" })), "Key")),
  ];
}

// A bar per UTC day, drawn by hand: days without spend are bars of zero.
function spendChart(rows, span) {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const days = [];
  const today = new Date();
  for (let i = span - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    const day = d.toISOString().slice(0, 10);
    days.push({ day, spend: byDay.get(day)?.spend || 0, requests: byDay.get(day)?.requests || 0 });
  }
  const W = 760, H = 220, left = 78, right = 12, top = 12, bottom = 28;
  const max = niceMax(Math.max(...days.map((d) => d.spend)));
  const step = (W - left - right) / days.length;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const parts = [];
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    parts.push(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end", class: "axis" }, axisUsd(v)));
  }
  days.forEach((d, i) => {
    const x = left + i * step + step * 0.15;
    const h = Math.max(d.spend > 0 ? 2 : 0, y(0) - y(d.spend));
    parts.push(svg("rect", { x, y: y(0) - h, width: step * 0.7, height: h, rx: 2, class: "day", "data-day": d.day },
      svg("title", {}, `${d.day}: ${usd(d.spend)}, ${count(d.requests)} requests`)));
    if (i % 5 === (days.length - 1) % 5) {
      parts.push(svg("text", { x: x + step * 0.35, y: H - 8, "text-anchor": "middle", class: "axis" }, d.day.slice(5)));
    }
  });
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "Spend per day" }, parts);
}

// Axis labels: as few digits as tell the ticks apart.
function axisUsd(v) {
  if (v === 0) return "$0";
  if (v >= 1) return "$" + v.toLocaleString("en-US", { maximumFractionDigits: 2 });
  return "$" + Number(v.toPrecision(2)).toString();
}

function niceMax(value) {
  if (!(value > 0)) return 0.01;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= value);
}

async function renderRequests() {
  const [logs, names] = await Promise.all([api("/spend/logs?limit=100"), keyNames()]);
  const refresh = el("button", { type: "button", text: "Refresh" });
  refresh.addEventListener("click", route);
  actions(refresh);
  const open = el("form", { class: "open-form" },
    el("input", { name: "response_id", placeholder: "Open a stored response by id: resp_…", "aria-label": "Response id" }),
    el("button", { type: "submit", text: "Open" }));
  open.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = open.response_id.value.trim();
    if (id) location.hash = `#/response/${encodeURIComponent(id)}`;
  });
  const rows = logs.map((r) => el("tr", { "data-request": r.request_id },
    el("td", { class: "nowrap", text: when(r.start_time) }),
    el("td", {}, responseLink(r.request_id)),
    el("td", { text: r.key_alias || (r.key ? names.get(r.key) || r.key : "master key") }),
    el("td", { text: r.model }),
    el("td", {}, badge(r.status)),
    el("td", { class: "num", text: `${Math.round(r.latency_ms)} ms` }),
    el("td", { class: "num", text: `${count(r.input_tokens)} / ${count(r.output_tokens)}` }),
    el("td", { class: "num", text: usd(r.cost) })));
  return [open, table(["Time", "Response", "Key", "Model", "Status", "Latency", "Tokens in / out", "Cost"], rows,
    "No requests yet.")];
}

async function renderJobs() {
  const [jobs, names] = await Promise.all([api("/response/jobs"), keyNames()]);
  const refresh = el("button", { type: "button", text: "Refresh" });
  refresh.addEventListener("click", route);
  actions(refresh);
  const rows = jobs.data.map((j) => {
    const cancel = el("button", { type: "button", class: "small danger-ghost", text: "Cancel" });
    cancel.addEventListener("click", () => {
      cancel.disabled = true;
      act(() => api("/response/cancel", { response_id: j.id }), `Response ${j.id} cancelled.`);
    });
    return el("tr", { "data-job": j.id },
      el("td", {}, responseLink(j.id)),
      el("td", { text: j.model }),
      el("td", { text: j.owner ? names.get(j.owner) || j.owner : "master key" }),
      el("td", {}, badge(j.runner_gone ? "failed" : j.status)),
      el("td", { class: "nowrap", text: when(j.created_at) }),
      el("td", { text: j.runner === "llmrelay" ? "llmrelay" : "upstream" }),
      el("td", { class: "row-actions" }, cancel));
  });
  return [el("p", { class: "muted intro", text: "Background responses still queued or in progress, newest first." }),
    table(["Response", "Model", "Key", "Status", "Started", "Run by", ""], rows, "No background responses are queued or running.")];
}

async function renderResponse(id) {
  const [info, names] = await Promise.all([api(`/response/info?response_id=${encodeURIComponent(id || "")}`), keyNames()]);
  const r = info.response;
  const usage = r.usage || {};
  const back = el("a", { href: "#/requests", class: "button", text: "← Requests" });
  const controls = [back];
  if (r.background && (r.status === "queued" || r.status === "in_progress")) {
    const cancel = el("button", { type: "button", class: "danger-ghost", text: "Cancel" });
    cancel.addEventListener("click", () => act(() => api("/response/cancel", { response_id: r.id }), "Response cancelled."));
    controls.push(cancel);
  }
  actions(...controls);
  const facts = [
    ["Id", el("span", { class: "mono", text: r.id })],
    ["Status", badge(r.status)],
    ["Model", r.model],
    ["Created", when(r.created_at)],
    ["Key", info.owner ? names.get(info.owner) || info.owner : "master key"],
    ["Tokens in / out", `${count(usage.input_tokens)} / ${count(usage.output_tokens)}`],
    ["Background", r.background ? "yes" : "no"],
    ["Previous response", info.previous_response_id
      ? responseLink(info.previous_response_id)
      : "—"],
  ];
  return [
    el("div", { class: "card" }, el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]))),
    r.error ? el("div", { class: "card notice bad", text: r.error.message || JSON.stringify(r.error) }) : null,
    el("div", { class: "two-col" },
      el("div", { class: "card", id: "input-items" }, el("h2", { text: `Input (${info.input_items.length})` }), items(info.input_items)),
      el("div", { class: "card", id: "output-items" }, el("h2", { text: `Output (${(r.output || []).length})` }), items(r.output || []))),
    el("details", { class: "card raw" }, el("summary", { text: "The response as JSON" }), el("pre", { text: JSON.stringify(r, null, 2) })),
  ];
}

function items(list) {
  if (!list.length) return el("div", { class: "empty", text: "None." });
  return list.map((item) => el("div", { class: "item" },
    el("div", { class: "item-head" }, el("span", { class: "role", text: item.role || item.type }),
      item.role ? el("span", { class: "muted small", text: item.type }) : null),
    itemBody(item)));
}

function itemBody(item) {
  if (item.type === "message" || item.role) {
    const content = typeof item.content === "string" ? [{ text: item.content }] : item.content || [];
    return content.map((part) => part.text !== undefined
      ? el("p", { class: "text", text: part.text })
      : el("pre", { text: JSON.stringify(part, null, 2) }));
  }
  if (item.type === "function_call") return el("pre", { text: `${item.name}(${item.arguments})` });
  if (item.type === "reasoning") {
    const summary = (item.summary || []).map((s) => s.text).join("\n");
    return el("p", { class: "text muted", text: summary || "(reasoning without a summary)" });
  }
  return el("pre", { text: JSON.stringify(item, null, 2) });
}

// -- start -------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => {
    location.hash = "";
    showLogin();
  });
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(KEY_SLOT)) {
    $("app").hidden = false;
    route();
  } else {
    showLogin();
  }
});
