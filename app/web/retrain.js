// Retrain: a form built from the API's own RetrainRequest schema (so a new training option
// appears here without editing this page), then the job watched until it ends, or cancelled.

import { RETRYABLE, call, element, percent } from "/web/api.js";
import { announce, authFailed, showError } from "/web/ui.js";

const POLL_MS = 1000;
const POLL_MAX_MS = 15000; // a watch that cannot reach the server backs off up to this, never stops
const LOG_PAGE_LINES = 500;
const RUNNING = new Set(["queued", "running"]);

const form = () => document.getElementById("retrain-form");
let fields = []; // [{name, kind, input}]
let watching = null; // the job id being watched
let timer = null;
let misses = 0; // polls in a row that got no usable answer
let shownJob = null; // the job on the panel
const fullLog = { jobId: null, next: 0, loaded: false };

export async function setup() {
  if (!fields.length) {
    const answer = await call("/openapi.json");
    if (!answer.ok) {
      showError("retrain-error", answer);
      return;
    }
    buildForm(retrainSchema(answer.data));
    learnDevice();
    form().addEventListener("submit", start);
    document.getElementById("cancel-job").addEventListener("click", cancel);
    document.getElementById("job-full-log").addEventListener("toggle", (event) => {
      if (event.target.open && !fullLog.loaded) loadLogPage();
    });
    document.getElementById("job-log-more").addEventListener("click", loadLogPage);
  }
  await resumeRunningJob();
}

export function stopWatching() {
  clearTimeout(timer);
  watching = null;
  if (fields.length) startButton().disabled = false;
}

function retrainSchema(openapi) {
  const body = openapi.paths["/admin/retrain"].post.requestBody.content["application/json"].schema;
  const resolve = (schema) =>
    schema.$ref ? resolve(schema.$ref.split("/").slice(1).reduce((node, key) => node[key], openapi)) : schema;
  return resolve(body);
}

// The fields in their groups (the schema's "x-groups", each a fieldset), and a field shown only
// where it applies ("x-applies": another option's value, or a GPU on the server).
function buildForm(schema) {
  fields = Object.entries(schema.properties).map(([name, property]) => field(name, property));
  const groups = schema["x-groups"] || [];
  const sets = groups.map(({ name, title }) => {
    const members = fields.filter((entry) => entry.group === name);
    return element("fieldset", { class: "options-group", "data-group": name }, [
      element("legend", { text: title }),
      ...members.map((entry) => entry.wrapper),
    ]);
  });
  const named = new Set(groups.map(({ name }) => name));
  const loose = fields.filter((entry) => !named.has(entry.group)).map((entry) => entry.wrapper);
  form().replaceChildren(...sets, ...loose);
  form().addEventListener("change", applyConditions);
  applyConditions();
}

let serverHasGpu = false;

async function learnDevice() {
  const answer = await call("/model");
  serverHasGpu = answer.ok && /gpu/i.test(answer.data.device || "");
  if (fields.length) applyConditions();
}

function applyConditions() {
  const value = (name) => {
    const entry = fields.find((candidate) => candidate.name === name);
    if (!entry) return undefined;
    return entry.kind === "boolean" ? entry.input.checked : entry.input.value;
  };
  for (const entry of fields) {
    const conditions = Object.entries(entry.applies || {});
    entry.applicable = conditions.every(([key, wanted]) =>
      key === "gpu" ? serverHasGpu === wanted : String(value(key)) === String(wanted),
    );
    entry.wrapper.hidden = !entry.applicable;
  }
  for (const set of form().querySelectorAll("fieldset")) {
    set.hidden = [...set.querySelectorAll(".field")].every((wrapper) => wrapper.hidden);
  }
}

function field(name, property) {
  const id = `option-${name}`;
  const hintId = `${id}-hint`;
  const label = element("label", { for: id, text: property.title || name });
  const hint = element("p", { id: hintId, class: "muted small", text: describe(property) });
  let input;
  let kind = property.type;
  if (property.enum) {
    kind = "enum";
    input = element("select", { id, name, "aria-describedby": hintId });
    for (const value of property.enum) {
      input.append(element("option", { value, text: value, selected: value === property.default }));
    }
  } else if (kind === "boolean") {
    input = element("input", { id, name, type: "checkbox", checked: property.default === true, "aria-describedby": hintId });
  } else {
    const numeric = kind === "integer" || kind === "number";
    input = element("input", {
      id,
      name,
      type: numeric ? "number" : "text",
      value: property.default ?? "",
      min: property.minimum ?? null,
      max: property.maximum ?? null,
      step: kind === "integer" ? "1" : numeric ? "any" : null,
      required: true,
      "aria-describedby": hintId,
    });
  }
  const wrapper = element("div", { class: kind === "boolean" ? "field check" : "field" }, kind === "boolean" ? [input, label, hint] : [label, input, hint]);
  return { name, kind, input, wrapper, group: property["x-group"], applies: property["x-applies"], applicable: true };
}

function describe(property) {
  const bounds = [];
  if (property.minimum !== undefined) bounds.push(`≥ ${property.minimum}`);
  if (property.exclusiveMinimum !== undefined) bounds.push(`> ${property.exclusiveMinimum}`);
  if (property.maximum !== undefined) bounds.push(`≤ ${property.maximum}`);
  const range = bounds.length ? ` (${bounds.join(", ")})` : "";
  return `${property.description || ""}${range}`;
}

// What is sent: the fields that apply (the server's defaults stand for the others).
function values() {
  const body = {};
  for (const { name, kind, input, applicable } of fields) {
    if (!applicable) continue;
    if (kind === "boolean") body[name] = input.checked;
    else if (kind === "integer" || kind === "number") body[name] = Number(input.value);
    else body[name] = input.value;
  }
  return body;
}

async function start(event) {
  event.preventDefault();
  showError("retrain-error", null);
  startButton().disabled = true; // no second job while this one is being started
  const answer = await call("/admin/retrain", { method: "POST", json: values(), admin: true });
  if (authFailed(answer)) return;
  showError("retrain-error", answer);
  if (!answer.ok) {
    startButton().disabled = watching !== null;
    if (answer.status === 409) await resumeRunningJob(); // another tab's job: watch it here too
    return;
  }
  announce(`Retrain job ${answer.data.job_id} started.`);
  watch(answer.data.job_id);
}

const startButton = () => document.getElementById("start-retrain");

async function resumeRunningJob() {
  const answer = await call("/admin/jobs", { admin: true, retries: 2 });
  if (!answer.ok) return;
  const running = answer.data.find((job) => RUNNING.has(job.state));
  if (running) watch(running.id);
  else if (answer.data.length) show(answer.data[0]);
}

function watch(jobId) {
  clearTimeout(timer);
  watching = jobId;
  misses = 0;
  startButton().disabled = true;
  poll(jobId);
}

// One look at the job, then the next one scheduled. A blip (no answer, 502-504, 503) does not end
// the watch: it is said on the panel and the next look comes later, backing off; only the job's
// end, a sign-out or a 404 (the job is gone) ends it.
async function poll(jobId) {
  if (watching !== jobId) return;
  const answer = await call(`/admin/jobs/${jobId}`, { admin: true });
  if (authFailed(answer) || watching !== jobId) return;
  if (!answer.ok) {
    if (!RETRYABLE.has(answer.status)) {
      showError("retrain-error", answer);
      watching = null;
      startButton().disabled = false;
      return;
    }
    misses += 1;
    const wait = Math.min(POLL_MAX_MS, POLL_MS * 2 ** misses);
    document.getElementById("job-detail").textContent =
      `Lost touch with the server (${answer.status ? `HTTP ${answer.status}` : "no answer"}); ` +
      `looking again in ${Math.round(wait / 1000)} s. The job goes on running on the server.`;
    timer = setTimeout(() => poll(jobId), wait);
    return;
  }
  misses = 0;
  show(answer.data);
  if (RUNNING.has(answer.data.state)) {
    timer = setTimeout(() => poll(jobId), POLL_MS);
    return;
  }
  watching = null;
  startButton().disabled = false;
  showError("retrain-error", null); // an earlier refusal (a second Start: 409) is stale now
  announce(`Retrain job ${jobId}: ${outcome(answer.data)}`);
  if (answer.data.result) document.dispatchEvent(new CustomEvent("version-published"));
}

function show(job) {
  const running = RUNNING.has(job.state);
  shownJob = job;
  if (fullLog.jobId !== job.id) resetFullLog(job.id);
  document.getElementById("job").hidden = false;
  document.getElementById("job-title").textContent = `Job ${job.id}`;
  const state = document.getElementById("job-state");
  state.textContent = running ? `${job.state}: ${phase(job)}` : outcome(job);
  state.dataset.state = job.state;
  // The whole job's fraction (each phase weighted by its expected time), not the phase's own.
  const progress = document.getElementById("job-progress");
  const overall = job.progress.overall ?? job.progress.fraction ?? 0;
  progress.value = running ? overall : job.state === "succeeded" ? 1 : progress.value;
  document.getElementById("job-timing").textContent = timing(job);
  document.getElementById("job-detail").textContent = job.progress.detail || "";
  document.getElementById("cancel-job").hidden = !running;
  const log = document.getElementById("job-log");
  log.textContent = job.log_tail.join("\n");
  log.scrollTop = log.scrollHeight;
}

// "elapsed 1:05 · about 0:40 left": the time left is the plan's (the last version's phase times)
// for what is still to run, never less than nothing.
function timing(job) {
  if (!job.started_at) return "";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  const parts = [`elapsed ${clock((end - Date.parse(job.started_at)) / 1000)}`];
  if (RUNNING.has(job.state) && job.progress.remaining_s !== undefined) {
    parts.push(`about ${clock(job.progress.remaining_s)} left`);
  }
  return parts.join(" · ");
}

function clock(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, "0")}`;
}

function resetFullLog(jobId) {
  Object.assign(fullLog, { jobId, next: 0, loaded: false });
  document.getElementById("job-log-all").textContent = "";
  document.getElementById("job-log-count").textContent = "";
  document.getElementById("job-log-more").hidden = true;
  if (document.getElementById("job-full-log").open) loadLogPage();
}

async function loadLogPage() {
  const jobId = fullLog.jobId;
  const more = document.getElementById("job-log-more");
  more.disabled = true;
  const path = `/admin/jobs/${jobId}/log?offset=${fullLog.next}&limit=${LOG_PAGE_LINES}`;
  const answer = await call(path, { admin: true, retries: 2 });
  more.disabled = false;
  if (authFailed(answer) || fullLog.jobId !== jobId) return;
  const pre = document.getElementById("job-log-all");
  if (!answer.ok) {
    document.getElementById("job-log-count").textContent = `The log could not be read: ${answer.message}`;
    return;
  }
  const page = answer.data;
  if (page.lines.length) pre.textContent += (pre.textContent ? "\n" : "") + page.lines.join("\n");
  fullLog.next = page.next_offset;
  fullLog.loaded = true;
  const left = page.total_lines - page.next_offset;
  document.getElementById("job-log-count").textContent =
    `Lines 1 to ${page.next_offset} of ${page.total_lines}` +
    (RUNNING.has(shownJob?.state) ? " (the job runs: its log grows)." : ".");
  more.hidden = left <= 0 && !RUNNING.has(shownJob?.state);
}

// "evaluate (phase 4 of 6), epoch 2 of 10, 40%": the phase, where it sits in the plan, and the
// phase's own progress.
function phase(job) {
  const progress = job.progress;
  if (!progress.phase) return "starting";
  const phases = Object.keys(job.plan || {});
  const index = phases.indexOf(progress.phase);
  const parts = [index >= 0 ? `${progress.phase} (phase ${index + 1} of ${phases.length})` : progress.phase];
  if (progress.epoch) parts.push(`epoch ${progress.epoch} of ${progress.epochs}`);
  if (progress.fraction) parts.push(percent(progress.fraction, 0));
  return parts.join(", ");
}

function outcome(job) {
  if (job.state === "succeeded" && job.result) {
    const result = job.result;
    const activated = result.activated ? "activated" : `not activated (${result.reason})`;
    const serving = result.serving_error ? `; it could not serve: ${result.serving_error}` : "";
    return `succeeded: published version ${result.version}, ${activated}${serving}`;
  }
  if (job.state === "cancelled") return `cancelled: ${job.error || "by an operator"}`;
  return `${job.state}: ${job.error || ""}`;
}

async function cancel() {
  if (!watching) return;
  const jobId = watching;
  const button = document.getElementById("cancel-job");
  button.disabled = true;
  announce(`Cancelling job ${jobId}…`);
  const answer = await call(`/admin/jobs/${jobId}`, { method: "DELETE", admin: true });
  button.disabled = false;
  if (authFailed(answer)) return;
  showError("retrain-error", answer);
  if (answer.ok) {
    stopWatching();
    show(answer.data);
    announce(`Job ${jobId}: ${outcome(answer.data)}`);
    startButton().focus(); // the Cancel button that had focus is hidden now
  }
}
