// Retrain: a form built from the API's own RetrainRequest schema (so a new training option
// appears here without editing this page), then the job watched until it ends, or cancelled.

import { RETRYABLE, call, element, percent } from "/web/api.js";
import { announce, authFailed, showError } from "/web/ui.js";

const POLL_MS = 1000;
const POLL_MAX_MS = 15000; // a watch that cannot reach the server backs off up to this, never stops
const RUNNING = new Set(["queued", "running"]);

const form = () => document.getElementById("retrain-form");
let fields = []; // [{name, kind, input}]
let watching = null; // the job id being watched
let timer = null;
let misses = 0; // polls in a row that got no usable answer

export async function setup() {
  if (!fields.length) {
    const answer = await call("/openapi.json");
    if (!answer.ok) {
      showError("retrain-error", answer);
      return;
    }
    buildForm(retrainSchema(answer.data));
    form().addEventListener("submit", start);
    document.getElementById("cancel-job").addEventListener("click", cancel);
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

function buildForm(schema) {
  fields = Object.entries(schema.properties).map(([name, property]) => field(name, property));
  form().replaceChildren(...fields.map((entry) => entry.wrapper));
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
  return { name, kind, input, wrapper };
}

function describe(property) {
  const bounds = [];
  if (property.minimum !== undefined) bounds.push(`≥ ${property.minimum}`);
  if (property.exclusiveMinimum !== undefined) bounds.push(`> ${property.exclusiveMinimum}`);
  if (property.maximum !== undefined) bounds.push(`≤ ${property.maximum}`);
  const range = bounds.length ? ` (${bounds.join(", ")})` : "";
  return `${property.description || ""}${range}`;
}

function values() {
  const body = {};
  for (const { name, kind, input } of fields) {
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
  document.getElementById("job").hidden = false;
  document.getElementById("job-title").textContent = `Job ${job.id}`;
  const state = document.getElementById("job-state");
  state.textContent = running ? `${job.state}: ${phase(job.progress)}` : outcome(job);
  state.dataset.state = job.state;
  const progress = document.getElementById("job-progress");
  progress.value = running ? job.progress.fraction || 0 : job.state === "succeeded" ? 1 : progress.value;
  document.getElementById("job-detail").textContent = job.progress.detail || "";
  document.getElementById("cancel-job").hidden = !running;
  const log = document.getElementById("job-log");
  log.textContent = job.log_tail.join("\n");
  log.scrollTop = log.scrollHeight;
}

function phase(progress) {
  if (!progress.phase) return "starting";
  const parts = [progress.phase];
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
