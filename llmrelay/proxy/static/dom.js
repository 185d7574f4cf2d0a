// The admin page's building blocks: DOM construction and formatting. Loaded before app.js.
// el() and svg() only ever make text nodes of values: nothing here parses HTML.
"use strict";

// -- DOM helpers -------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  appendAll(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  appendAll(node, children);
  return node;
}

function applyProps(node, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else if (name === "class") node.className = value;
    else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the page's CSP
    else if (name === "text") node.textContent = String(value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const $ = (id) => document.getElementById(id);

// -- formatting --------------------------------------------------------------------------------

function usd(value) {
  const v = Number(value) || 0;
  if (v === 0) return "$0.00";
  if (Math.abs(v) >= 0.01) return "$" + v.toFixed(2);
  return "$" + v.toFixed(6).replace(/0+$/, "");
}

const pad = (n) => String(n).padStart(2, "0");

function when(seconds) {
  if (!seconds) return "—";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// Long ids shortened in tables; the whole id stays in the link and its tooltip.
const shortId = (id) => (id.length > 24 ? `${id.slice(0, 13)}…${id.slice(-6)}` : id);

function responseLink(id) {
  return el("a", { href: `#/response/${encodeURIComponent(id)}`, class: "mono", title: id, text: shortId(id) });
}

const count = (n) => (Number(n) || 0).toLocaleString("en-US");
const perMillion = (perToken) => (perToken ? usd(perToken * 1e6) : "—");

function badge(status) {
  const tone = { completed: "ok", healthy: "ok", active: "ok", in_progress: "busy", queued: "busy",
    cancelled: "muted", incomplete: "warn", expired: "warn", blocked: "bad", failed: "bad", unhealthy: "bad" };
  return el("span", { class: `badge ${tone[status] || "muted"}`, text: String(status).replace("_", " ") });
}

function table(headers, rows, empty) {
  if (!rows.length) return el("div", { class: "empty", text: empty });
  return el("div", { class: "table-wrap" },
    el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)));
}

function budgetBar(spend, budget) {
  const text = budget === null || budget === undefined ? `${usd(spend)} · no budget` : `${usd(spend)} of ${usd(budget)}`;
  const share = budget ? Math.min(1, spend / budget) : 0;
  const shown = spend > 0 ? Math.max(share, 0.015) : 0; // any spend at all shows as a sliver
  const tone = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "ok";
  return el("div", { class: "budget" },
    el("span", { text }),
    budget ? el("div", { class: "bar" }, el("div", { class: `fill ${tone}`, style: { width: `${(shown * 100).toFixed(1)}%` } })) : null);
}

