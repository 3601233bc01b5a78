// The ragline playground: plain JavaScript, no framework, no build step.
// Every API call sends the key typed once (kept in this tab's sessionStorage) as a bearer token.
// Server text only ever reaches the page as text nodes (textContent, createTextNode).
"use strict";

const KEY_STORAGE = "ragline.apiKey";
const CITATION_MARK = /\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]/g; // as rag.chains.answer.CITATION_MARK
const FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"];
const LOGICAL_OPERATORS = ["$and", "$or", "$not"];

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

// -- the key ---------------------------------------------------------------------------------
function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

/** The message of an error response ({"error": {"message", "fields"}}), with its status. */
async function errorMessage(response) {
  let text = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && error.message) {
      text = `${response.status}: ${error.message}`;
    }
  } catch (_) {
    /* not JSON: keep the status line */
  }
  return text;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function checkKey() {
  const status = $("key-status");
  const response = await api("/v1/stats");
  if (!apiKey() && response.status === 401) {
    status.textContent = "no key: enter one to ask, search and list reports";
    return;
  }
  if (!response.ok) {
    status.textContent = "key refused";
    showError(await errorMessage(response));
    return;
  }
  const stats = await response.json();
  showError("");
  // an empty index answers every search with nothing: say so where the counts are shown
  const empty = stats.chunks === 0
    ? " · the index is empty: ingest first (rag ingest FILES --config FILE, or POST /v1/documents)"
    : "";
  if (!apiKey()) {
    status.textContent = `this server needs no key (rag serve --no-auth)${empty}`;
    return;
  }
  const chunks = stats.chunks === null ? "?" : stats.chunks;
  const sources = stats.sources === null ? "?" : stats.sources;
  status.textContent = `key accepted · ${chunks} chunks from ${sources} sources (${stats.store || "store"})${empty}`;
}

// -- filters: checked here for JSON and operator names; the server checks the rest ------------
function checkFilterNode(value, path, errors) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    errors.push(`${path}: expected a filter object such as {"source": "a.md"}`);
    return;
  }
  if (Object.keys(value).length === 0) errors.push(`${path}: empty filter object`);
  for (const [key, condition] of Object.entries(value)) {
    const where = `${path}.${key}`;
    if (key.startsWith("$")) {
      if (!LOGICAL_OPERATORS.includes(key)) {
        errors.push(`${where}: unknown operator '${key}' here; known: ${LOGICAL_OPERATORS.join(" ")}` +
          (FIELD_OPERATORS.includes(key) ? ` ('${key}' applies to a field: {"year": {"${key}": ...}})` : ""));
      } else if (key === "$not") {
        checkFilterNode(condition, where, errors);
      } else if (!Array.isArray(condition) || condition.length === 0) {
        errors.push(`${where}: '${key}' takes a non-empty list of filter objects`);
      } else {
        condition.forEach((item, i) => checkFilterNode(item, `${where}[${i}]`, errors));
      }
    } else if (typeof condition === "object" && condition !== null && !Array.isArray(condition)) {
      for (const op of Object.keys(condition)) {
        if (!FIELD_OPERATORS.includes(op)) {
          errors.push(`${where}.${op}: unknown operator '${op}' on field '${key}'; known: ${FIELD_OPERATORS.join(" ")}`);
        }
      }
    }
  }
}

/** The parsed filter (undefined when empty) or throws an Error naming what is wrong. */
function readFilter(textarea, errorBox) {
  errorBox.textContent = "";
  textarea.classList.remove("invalid");
  const text = textarea.value.trim();
  if (!text) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`filter is not valid JSON: ${err.message}`);
  }
  const errors = [];
  checkFilterNode(value, "filter", errors);
  if (errors.length) throw new Error(errors.join("\n"));
  return value;
}

function filterFailed(textarea, errorBox, message) {
  textarea.classList.add("invalid");
  errorBox.textContent = message;
}

// -- highlighting --------------------------------------------------------------------------
/** UTF-16 offsets of Python (code point) offsets into text. */
function utf16Range(text, start, end) {
  const points = Array.from(text);
  const a = points.slice(0, start).join("").length;
  const b = a + points.slice(start, end).join("").length;
  return [a, b];
}

function sentenceRanges(text) {
  const ranges = [];
  const pattern = /[^.!?\n]+(?:[.!?]+|\n|$)/g;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    if (!match[0].trim()) continue;
    const lead = match[0].length - match[0].trimStart().length;
    ranges.push([match.index + lead, match.index + match[0].trimEnd().length]);
    if (match[0].length === 0) pattern.lastIndex++;
  }
  return ranges;
}

function words(text) {
  return new Set((text.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || []));
}

/** The answer's sentences that cite context n, without their citation marks. */
function citingSentences(answerText, n, onlyOneCited) {
  const found = [];
  for (const [a, b] of sentenceRanges(answerText)) {
    const sentence = answerText.slice(a, b);
    const cites = [...sentence.matchAll(CITATION_MARK)].some((m) =>
      m[1].split(",").some((x) => Number(x.trim()) === n));
    if (cites || onlyOneCited) found.push(sentence.replace(CITATION_MARK, "").trim());
  }
  return found.filter((s) => s);
}

/**
 * Ranges of context n's text (UTF-16 [start, end]) that the answer cites, and how they were found:
 * the answer's character offsets when it has them, else the passage sentence that shares the most
 * words with the answer sentence citing it.
 */
function highlightRanges(answer, context) {
  const n = context.index;
  const ranges = [];
  const seen = new Set(); // "span" repeats "spans"[0]: count each range once
  const fromOffsets = (item) => {
    if (item && Number.isInteger(item.start) && Number.isInteger(item.end) && item.end > item.start) {
      const key = `${item.start}:${item.end}`;
      if (seen.has(key)) return;
      seen.add(key);
      ranges.push(utf16Range(context.text, item.start, item.end));
    }
  };
  if (answer.span && answer.span.index === n) fromOffsets(answer.span);
  for (const span of answer.spans || []) if (span.index === n) fromOffsets(span);
  for (const citation of answer.citations || []) {
    if (citation.index !== n) continue;
    fromOffsets(citation);
    for (const span of citation.spans || []) fromOffsets(span);
  }
  if (ranges.length) return { ranges, how: "offsets" };

  const cited = (answer.citations || []).length;
  const claims = citingSentences(answer.answer || "", n, cited === 1);
  const text = context.text;
  for (const claim of claims) {
    const at = text.toLowerCase().indexOf(claim.toLowerCase());
    if (claim.length >= 3 && at >= 0) ranges.push([at, at + claim.length]);
  }
  if (ranges.length) return { ranges, how: "text" };
  const claimWords = words(claims.join(" "));
  let best = null;
  let bestScore = 0;
  for (const [a, b] of sentenceRanges(text)) {
    const sentenceWords = words(text.slice(a, b));
    let shared = 0;
    for (const w of sentenceWords) if (claimWords.has(w)) shared++;
    if (shared > bestScore) {
      bestScore = shared;
      best = [a, b];
    }
  }
  return best ? { ranges: [best], how: "words" } : { ranges: [], how: "none" };
}

/**
 * The passage text with ranges wrapped in <mark>, as text nodes. Where ranges nest (a factoid span
 * inside its sentence) the inner part is marked "strong".
 */
function markedText(text, ranges) {
  const cuts = new Set([0, text.length]);
  for (const [start, end] of ranges) {
    cuts.add(Math.max(0, Math.min(start, text.length)));
    cuts.add(Math.max(0, Math.min(end, text.length)));
  }
  const points = [...cuts].sort((x, y) => x - y);
  const nodes = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    const piece = text.slice(a, b);
    const depth = ranges.filter(([start, end]) => start <= a && b <= end).length;
    if (!piece) continue;
    if (depth === 0) nodes.push(piece);
    else nodes.push(el("mark", { class: depth > 1 ? "cited-span strong" : "cited-span" }, piece));
  }
  return nodes;
}

// -- passages --------------------------------------------------------------------------------
function metadataTable(metadata) {
  const rows = Object.entries(metadata || {}).map(([key, value]) =>
    el("tr", {}, el("th", { text: key }),
      el("td", { text: typeof value === "string" ? value : JSON.stringify(value) })));
  return rows.length ? el("details", { class: "metadata" }, el("summary", { text: `metadata (${rows.length})` }),
    el("table", {}, rows)) : null;
}

function passageCard({ domId, index, id, source, score, text, metadata, cited, trimmed }) {
  return el("li", { class: `passage${cited ? " cited" : ""}`, id: domId, "data-id": id },
    el("div", { class: "passage-head" },
      index ? el("span", { class: "num", text: `[${index}]` }) : null,
      el("span", { class: "source", text: source || (metadata && metadata.source) || "" }),
      el("span", { class: "score", title: "retrieval score", text: `score ${fmt(score)}` }),
      cited ? el("span", { class: "badge", text: "cited" }) : null,
      trimmed ? el("span", { class: "badge warn", text: "trimmed" }) : null),
    el("p", { class: "passage-text" }, text),
    el("div", { class: "passage-foot" }, el("code", { class: "chunk-id", text: id }), metadataTable(metadata)));
}

// -- ask ------------------------------------------------------------------------------------
let lastAnswer = null;

function selectCitation(n) {
  if (!lastAnswer) return;
  const context = (lastAnswer.contexts || []).find((c) => c.index === n);
  const item = $(`ctx-${n}`);
  if (!context || !item) return;
  for (const other of document.querySelectorAll(".passage.selected")) other.classList.remove("selected");
  for (const mark of document.querySelectorAll("mark.cited-span")) mark.replaceWith(mark.textContent);
  for (const p of document.querySelectorAll(".passage-text")) p.normalize();
  const { ranges, how } = highlightRanges(lastAnswer, context);
  const paragraph = item.querySelector(".passage-text");
  paragraph.replaceChildren(...markedText(context.text, ranges));
  paragraph.dataset.highlight = how;
  item.classList.add("selected");
  item.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

/** The answer text with [n] marks as links to their passages. */
function answerNodes(text, contexts) {
  const known = new Set((contexts || []).map((c) => c.index));
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(CITATION_MARK)) {
    nodes.push(text.slice(at, match.index));
    const numbers = match[1].split(",").map((x) => Number(x.trim()));
    nodes.push("[");
    numbers.forEach((n, i) => {
      if (i) nodes.push(", ");
      nodes.push(known.has(n)
        ? el("a", { href: `#ctx-${n}`, class: "cite", "data-index": n, text: String(n),
          onclick: (event) => { event.preventDefault(); selectCitation(n); } })
        : el("span", { class: "cite invalid", title: "no such passage", text: String(n) }));
    });
    nodes.push("]");
    at = match.index + match[0].length;
  }
  nodes.push(text.slice(at));
  return nodes.filter((n) => n !== "");
}

function renderAnswer(answer, browser) {
  lastAnswer = answer;
  const contexts = answer.contexts || [];
  const cited = new Set((answer.citations || []).map((c) => c.index));
  const paragraph = $("answer");
  paragraph.classList.remove("streaming");
  paragraph.replaceChildren(...answerNodes(answer.answer || "", contexts));
  // Citations the text does not mark (a grounded span is cited without "[n]") get links too.
  const marked = new Set([...paragraph.querySelectorAll("a.cite")].map((a) => Number(a.dataset.index)));
  const extra = (answer.citations || []).filter((c) => !marked.has(c.index));
  if (extra.length) {
    paragraph.append(" ", ...extra.map((c) => el("a", {
      href: `#ctx-${c.index}`, class: "cite", "data-index": c.index, text: `[${c.index}]`,
      onclick: (event) => { event.preventDefault(); selectCitation(c.index); },
    })));
  }
  const total = answer.timings && answer.timings.total;
  $("answer-meta").replaceChildren(
    el("span", { class: "badge", text: answer.answer_style || "answer" }),
    answer.grounded ? el("span", { class: "badge ok", title: "every word is proven to come from a cited passage", text: "grounded" }) : null,
    answer.finish_reason ? el("span", { class: "muted", text: `finish: ${answer.finish_reason}` }) : null,
    el("span", { class: "muted", id: "browser-timing",
      "data-first-token-ms": browser.firstToken === null ? "" : browser.firstToken.toFixed(0),
      "data-answer-ms": browser.answer.toFixed(0),
      "data-server-total-ms": typeof total === "number" ? (total * 1000).toFixed(0) : "",
      text: `first text ${browser.firstToken === null ? "–" : (browser.firstToken / 1000).toFixed(2) + " s"}` +
        ` · answer ${(browser.answer / 1000).toFixed(2)} s in this browser` +
        (typeof total === "number" ? ` · ${total.toFixed(2)} s on the server` : "") }));

  $("contexts-title").hidden = contexts.length === 0;
  $("contexts").replaceChildren(...contexts.map((c) => passageCard({ ...c, domId: `ctx-${c.index}`, cited: cited.has(c.index) })));

  $("prompt").textContent = answer.prompt || "";
  // A style that copies its answer (evidence) may record no prompt: say so.
  $("prompt").hidden = !answer.prompt;
  $("no-prompt").hidden = Boolean(answer.prompt);
  $("no-prompt").textContent = answer.prompt ? "" :
    `No prompt was recorded: the ${answer.answer_style || "answer"} style copies its answer from ` +
    "the passages rather than asking the model to write one.";
  $("messages").replaceChildren(...(answer.messages || []).map((m) =>
    el("div", { class: "message" }, el("div", { class: "role", text: m.role || "" }),
      el("pre", { text: typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2) }))));
  $("messages-count").textContent = `(${(answer.messages || []).length})`;
  $("prompt-panel").hidden = false;

  // Stages get bars on one scale; "first_token" (a moment, not a stage) and "total" do not.
  const timings = Object.entries(answer.timings || {}).filter(([, v]) => typeof v === "number");
  const moments = ["first_token", "total"];
  const stages = timings.filter(([k]) => !moments.includes(k));
  const ordered = [...stages, ...moments.map((k) => [k, (answer.timings || {})[k]]).filter(([, v]) => typeof v === "number")];
  const longest = Math.max(1e-9, ...ordered.map(([k, v]) => (k === "total" ? v : 0)), ...stages.map(([, v]) => v));
  $("timings").replaceChildren(...ordered.map(([stage, seconds]) =>
    el("tr", { class: moments.includes(stage) ? `moment ${stage}` : null },
      el("th", { text: stage === "first_token" ? "first token at" : stage }),
      el("td", { class: "num", text: `${(seconds * 1000).toFixed(1)} ms` }),
      el("td", { class: "bar-cell" }, el("span", { class: "timing-bar",
        style: `width: ${Math.max(1, Math.round((100 * seconds) / longest))}%` })))));
  $("timings-total").textContent = typeof total === "number" ? `(${(total * 1000).toFixed(0)} ms in total)` : "";
  const usage = answer.usage || {};
  $("usage").textContent = Object.values(usage).some((v) => v)
    ? `tokens: ${Object.entries(usage).map(([k, v]) => `${v} ${k.replace(/_/g, " ")}`).join(", ")}`
    : "";
  $("timings-panel").hidden = false;

  const first = (answer.citations || [])[0];
  if (first) selectCitation(first.index);
}

/** Server-sent events from a fetch response: yields {event, data}. */
async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
    if (done) return;
  }
}

async function ask(event) {
  event.preventDefault();
  showError("");
  let filters;
  try {
    filters = readFilter($("ask-filter"), $("ask-filter-error"));
  } catch (err) {
    $("ask-filter").closest("details").open = true;
    filterFailed($("ask-filter"), $("ask-filter-error"), err.message);
    return;
  }
  const body = { question: $("question").value.trim(), stream: true };
  const k = $("ask-k").value;
  if (k) body.k = Number(k);
  if (filters) body.filters = filters;
  const style = $("ask-style").value;
  if (style) body.answer_style = style;
  const button = $("ask-button");
  button.disabled = true;
  const paragraph = $("answer");
  paragraph.replaceChildren();
  paragraph.classList.add("streaming");
  lastAnswer = null; // the previous answer's passages and panels go with it
  $("contexts").replaceChildren();
  $("contexts-title").hidden = true;
  $("prompt-panel").hidden = true;
  $("timings-panel").hidden = true;
  $("answer-meta").replaceChildren(el("span", { class: "muted", text: "retrieving and generating…" }));
  $("answer-card").hidden = false;
  $("answer-card").dataset.state = "streaming";
  const started = performance.now();
  let firstToken = null;
  try {
    const response = await api("/v1/ask", { method: "POST", body });
    if (!response.ok) {
      const message = await errorMessage(response);
      if (response.status === 422 && filters) filterFailed($("ask-filter"), $("ask-filter-error"), message);
      throw new Error(message);
    }
    let finished = false;
    for await (const { event: kind, data } of serverEvents(response)) {
      if (kind === "token") {
        if (firstToken === null) firstToken = performance.now() - started;
        paragraph.append(JSON.parse(data).text);
      } else if (kind === "answer") {
        renderAnswer(JSON.parse(data), { firstToken, answer: performance.now() - started });
        finished = true;
      } else if (kind === "error") {
        const error = JSON.parse(data).error || {};
        throw new Error(error.message || "the server failed while answering");
      }
    }
    if (!finished) throw new Error("the answer stream ended before the answer arrived");
    $("answer-card").dataset.state = "done";
  } catch (err) {
    $("answer-card").dataset.state = "error";
    $("answer-card").hidden = paragraph.textContent === ""; // keep text that did stream
    paragraph.classList.remove("streaming");
    $("answer-meta").replaceChildren();
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// -- search ---------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  showError("");
  const textarea = $("search-filter");
  const errorBox = $("search-filter-error");
  let filters;
  try {
    filters = readFilter(textarea, errorBox);
  } catch (err) {
    filterFailed(textarea, errorBox, err.message);
    return;
  }
  const body = { query: $("search-query").value.trim(), k: Number($("search-k").value || 10) };
  if (filters) body.filters = filters;
  $("search-summary").textContent = "searching…";
  const started = performance.now();
  const response = await api("/v1/search", { method: "POST", body });
  if (!response.ok) {
    const message = await errorMessage(response);
    $("search-summary").textContent = "";
    if (response.status === 422 && filters) filterFailed(textarea, errorBox, message);
    else showError(message);
    return;
  }
  const result = await response.json();
  const ms = performance.now() - started;
  $("search-summary").textContent = `${result.hits.length} hits in ${ms.toFixed(0)} ms`;
  $("hits").replaceChildren(...result.hits.map((hit, i) =>
    passageCard({ domId: `hit-${i + 1}`, index: i + 1, id: hit.id, source: hit.metadata && hit.metadata.source, score: hit.score,
      text: hit.text, metadata: hit.metadata })));
}

// -- reports --------------------------------------------------------------------------------
async function openReport(report) {
  showError("");
  const response = await api(report.url);
  if (!response.ok) {
    showError(await errorMessage(response));
    return;
  }
  const html = await response.text();
  $("report-title").textContent = report.path || "(top folder)";
  // A sandboxed frame: the report's HTML runs no script and cannot reach this page or its key.
  $("report-frame").srcdoc = html;
  $("report-view").hidden = false;
  $("report-view").scrollIntoView({ block: "start" });
}

async function loadReports() {
  const summary = $("reports-summary");
  summary.textContent = "loading…";
  const response = await api("/v1/reports");
  if (!response.ok) {
    summary.textContent = response.status === 401 && !apiKey()
      ? "Enter an API key to list the evaluation reports." : "";
    if (apiKey() || response.status !== 401) showError(await errorMessage(response));
    return;
  }
  const { configured, reports } = await response.json();
  if (!configured) {
    summary.textContent = "No reports folder: start the server with `rag serve --ui --reports DIR`" +
      " (DIR: where `rag eval --out` writes).";
    $("reports").hidden = true;
    return;
  }
  summary.textContent = reports.length
    ? `${reports.length} report${reports.length === 1 ? "" : "s"}, newest first`
    : "No report.html under the reports folder yet (write one with `rag eval ... --out DIR`).";
  $("reports").hidden = reports.length === 0;
  $("reports").tBodies[0].replaceChildren(...reports.map((report) => el("tr", {},
    el("td", {}, el("code", { text: report.path || "." })),
    el("td", { text: report.dataset || "–" }),
    el("td", { text: report.primary_metric || "–" }),
    el("td", { text: (report.variants || []).map((v) => `${v.name} ${fmt(v.value)}`).join(" · ") || "–" }),
    el("td", { class: "muted", text: (report.modified || "").replace("T", " ").replace("+00:00", " UTC") }),
    el("td", {}, el("button", { type: "button", class: "open-report", onclick: () => openReport(report), text: "Open" })))));
}

// -- wiring ---------------------------------------------------------------------------------
function selectTab(button) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab === button;
    tab.setAttribute("aria-selected", String(selected));
    $(tab.dataset.panel).hidden = !selected;
  }
  if (button.id === "tab-reports") loadReports();
}

async function showVersion() {
  try {
    const response = await fetch("/v1/health");
    if (response.ok) $("version").textContent = `v${(await response.json()).version}`;
  } catch (_) {
    /* the page still works without the version */
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    $("key-input").placeholder = key ? "key set for this tab" : $("key-input").placeholder;
    checkKey();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("key-input").placeholder = "a key of RAGLINE_API_KEYS";
    checkKey();
  });
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => selectTab(tab));
  }
  $("ask-form").addEventListener("submit", ask);
  $("search-form").addEventListener("submit", search);
  $("report-close").addEventListener("click", () => {
    $("report-view").hidden = true;
    $("report-frame").srcdoc = "";
  });
  if (apiKey()) $("key-input").placeholder = "key set for this tab";
  showVersion();
  checkKey();
});
