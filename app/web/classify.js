// The classify page: photos in (picked, photographed, dropped or pasted), one POST /predict per
// photo, and each answer drawn as a card: thumbnail, predicted class, a bar per class, the model
// version and the time it took. A busy or unreachable server is tried again (then a Retry button);
// with an admin token in this tab, "Wrong?" files a photo under the class chosen, with an Undo.

import { RETRYABLE, adminToken, bytes, call, eachLimited, element, percent, plural } from "/web/api.js";
import { watchConnection } from "/web/connection.js";
import { showExamples } from "/web/examples.js";

const IN_FLIGHT = 4;
const RETRIES = 4; // a busy or unreachable server is tried again, after Retry-After or a back-off
const READY_POLL_MS = 5000;

const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const clearButton = document.getElementById("clear");
const dropZone = document.getElementById("drop-zone");
let cardCount = 0;
let ready = false; // a model serves: photos are accepted
let datasetClasses = null; // fetched once, when the feedback form is first needed
let limits = null; // what one upload may be (GET /model's limits)
const SHRUNK_SIDE = 2048; // the model sees 180 px: a photo shrunk to this loses nothing it uses

// Which model serves; until one does, the page says so (nothing about the server's insides) and
// takes no photo, and asks again every few seconds.
async function describeModel() {
  const line = document.getElementById("model-line");
  const answer = await call("/model");
  if (!answer.ok) {
    setReady(false);
    line.textContent =
      answer.status === 0
        ? "The classifier cannot be reached; this page will try again."
        : "The classifier is not ready yet: no model serves. This page will accept photos as soon as one does.";
    setTimeout(describeModel, READY_POLL_MS);
    return;
  }
  const model = answer.data;
  limits = model.limits || null;
  setReady(true);
  showExamples(model.examples || [], (file) => classifyAll([file]));
  line.textContent =
    `Model version ${model.version} (${model.engine} in ${arithmetic(model)} on ${model.device}) knows ` +
    `${model.classes.length} classes: ${model.classes.join(", ")}.`;
}

// "int8, its float layers in f32,": an INT8 IR's layers kept in float are f32 or bf16
function arithmetic(model) {
  if (model.precision !== "int8") return model.precision;
  return `int8, its float layers in ${model.float_precision},`;
}

function setReady(value) {
  ready = value;
  for (const id of ["pick", "camera"]) document.getElementById(id).disabled = !value;
  for (const label of dropZone.querySelectorAll("label.button")) label.setAttribute("aria-disabled", String(!value));
  for (const button of dropZone.querySelectorAll("button.example")) button.disabled = !value;
  dropZone.setAttribute("aria-disabled", String(!value));
}

function classifyAll(files) {
  const photos = [...files];
  if (!photos.length) return;
  if (!ready) {
    // dropped or pasted before a model serves: said, not silently dropped
    statusLine.textContent = "No model serves yet: these photos were not sent. Add them again once the model line says it is ready.";
    return;
  }
  clearButton.hidden = false;
  const jobs = photos.map((file) => ({ file, card: addCard(file) }));
  statusLine.textContent = `Classifying ${plural(photos.length, "photo")}…`;
  eachLimited(jobs, IN_FLIGHT, classifyOne).then(() => {
    if (jobs.length === 1) return; // the one photo's own answer stays announced
    const count = (state) => jobs.filter(({ card }) => card.dataset.state === state).length;
    const parts = [`${count("done")} classified`];
    if (count("error")) parts.push(`${count("error")} refused`);
    if (count("failed")) parts.push(`${count("failed")} not reached the model (Retry on each)`);
    statusLine.textContent = `${parts.join(", ")}.`;
  });
}

function addCard(file) {
  cardCount += 1;
  const name = file.name || "pasted image";
  const thumb = element("img", { class: "thumb", alt: `Photo ${name}`, src: URL.createObjectURL(file) });
  // A file the browser cannot draw shows a line of text, not a broken-image icon.
  thumb.addEventListener(
    "error",
    () => thumb.replaceWith(element("p", { class: "muted small no-preview", text: "No preview: the browser cannot draw this file." })),
    { once: true },
  );
  const card = element("li", { class: "card", "data-state": "pending", id: `card-${cardCount}` }, [
    thumb,
    element("div", { class: "card-body" }, [element("h3", { class: "filename", text: name })]),
  ]);
  results.append(card);
  return card;
}

async function classifyOne({ file, card }) {
  const body = card.querySelector(".card-body");
  body.replaceChildren(body.querySelector(".filename"), element("p", { class: "muted", text: "Classifying…" }));
  card.dataset.state = "pending";
  const status = body.querySelector("p");
  const sent = await fitted(file, body);
  const form = new FormData();
  form.append("file", sent, file.name || "pasted.png");
  const started = performance.now();
  const onUpload = (fraction) => {
    status.textContent = fraction < 1 ? `Uploading… ${percent(fraction, 0)}` : "Classifying…";
  };
  const answer = await call("/predict", { method: "POST", form, retries: RETRIES, onUpload });
  const elapsed = performance.now() - started;
  status.remove();
  if (!answer.ok) {
    showFailure(file, card, answer);
    return;
  }
  const prediction = answer.data.predictions[0];
  card.dataset.state = "done";
  card.dataset.version = answer.data.model_version;
  body.append(...describePrediction(prediction, answer.data.model_version, elapsed));
  statusLine.textContent = `${prediction.filename}: ${prediction.class_name}, ${percent(prediction.confidence)}`;
  body.append(adminToken.get() ? await feedback(file, prediction) : flagForm(sent, file, prediction, answer.data.model_version));
}

// The photo as it will be sent: the file itself, or, where it is over the server's byte or pixel
// limit, a JPEG of it shrunk in this browser to SHRUNK_SIDE px on its longest side (a phone's
// 12 MB photo would be refused with a 413; the model sees 180 px anyway). The card says so.
async function fitted(file, body) {
  if (!limits || typeof createImageBitmap !== "function") return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file; // not an image this browser decodes: the server says what it is
  }
  const { width, height } = bitmap;
  if (file.size <= limits.max_file_bytes && width * height <= limits.max_image_pixels) {
    bitmap.close();
    return file;
  }
  const scale = Math.min(1, SHRUNK_SIDE / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  let shrunk = null;
  for (const quality of [0.9, 0.75, 0.6]) {
    shrunk = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (shrunk && shrunk.size <= limits.max_file_bytes) break;
  }
  if (!shrunk) return file;
  body.append(
    element("p", {
      class: "muted small shrunk",
      text:
        `Shrunk in this browser from ${bytes(file.size)} (${width}×${height}) to ${bytes(shrunk.size)} ` +
        `(${canvas.width}×${canvas.height}) to fit the server's limits; the model sees 180 px anyway.`,
    }),
  );
  return shrunk;
}

// A refusal (the photo itself: 4xx) is final; a busy or unreachable server, tried RETRIES times
// already, gets a Retry button on the card, which keeps its photo.
function showFailure(file, card, answer) {
  const body = card.querySelector(".card-body");
  const transient = RETRYABLE.has(answer.status);
  card.dataset.state = transient ? "failed" : "error";
  const text = transient
    ? answer.status === 0
      ? `Not classified: the server cannot be reached (tried ${plural(answer.attempts, "time")}).`
      : `Not classified: the server is busy (HTTP ${answer.status}, tried ${plural(answer.attempts, "time")}): ${answer.message}`
    : `Refused (HTTP ${answer.status}): ${answer.message}`;
  body.append(element("p", { class: "error", text }));
  statusLine.textContent = `${file.name || "pasted image"}: ${transient ? "not classified" : "refused"}, ${answer.message}`;
  if (!transient) return;
  const retry = element("button", { type: "button", class: "secondary small", text: "Retry", "aria-label": `Retry ${file.name || "pasted image"}` });
  retry.addEventListener("click", async () => {
    await classifyOne({ file, card });
    card.querySelector("button, .class-name, .error")?.focus?.();
  });
  body.append(retry);
}

function describePrediction(prediction, version, elapsedMs) {
  const ranked = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  const bars = element("ul", { class: "bars", "aria-label": "Probability of each class" });
  for (const [name, probability] of ranked) {
    const fill = element("span", { class: "bar-fill" });
    fill.style.width = `${(probability * 100).toFixed(2)}%`; // CSSOM: allowed by the page's CSP
    bars.append(
      element("li", { class: "bar", "data-class": name }, [
        element("span", { class: "bar-label", text: name }),
        element("span", { class: "bar-track", "aria-hidden": "true" }, [fill]),
        element("span", { class: "bar-value", text: percent(probability) }),
      ]),
    );
  }
  return [
    element("p", { class: "verdict" }, [
      element("strong", { class: "class-name", text: prediction.class_name }),
      element("span", { class: "confidence", text: ` ${percent(prediction.confidence)}` }),
    ]),
    element("p", { class: "muted small" }, [
      element("span", { class: "model-version", text: `model version ${version}` }),
      element("span", { class: "latency", text: ` · ${Math.round(elapsedMs)} ms` }),
    ]),
    bars,
  ];
}

async function knownClasses(prediction) {
  if (datasetClasses === null) {
    const answer = await call("/admin/dataset", { admin: true, retries: 2 });
    datasetClasses = answer.ok ? answer.data.classes.map((entry) => entry.name) : [];
  }
  return [...new Set([...Object.keys(prediction.probabilities), ...datasetClasses])].sort();
}

// "Wrong?" and, once pressed, a class to choose (none chosen for you, the predicted one not
// offered) and a button that stays disabled until one is chosen: the start of both kinds of
// feedback below. Returns its parts; `wrap` is what goes on the card.
function wrongChooser(prediction, classes, { label, submit, note }) {
  const id = `fix-${cardCount}-${Math.random().toString(36).slice(2, 8)}`;
  const wrong = element("button", { type: "button", class: "secondary small", text: "Wrong?", "aria-expanded": "false", "aria-controls": `${id}-form` });
  const select = element("select", { id, name: "class_name", required: true });
  select.append(element("option", { value: "", text: "Choose the right class", selected: true, disabled: true }));
  for (const name of classes) {
    if (name !== prediction.class_name) select.append(element("option", { value: name, text: name }));
  }
  const button = element("button", { type: "submit", class: "secondary", text: submit, disabled: true });
  const output = element("output", { class: "small", for: id, "aria-live": "polite" });
  const form = element("form", { class: "feedback", id: `${id}-form`, hidden: true }, [
    element("label", { for: id, text: `Not ${prediction.class_name}? ${label}` }),
    element("div", { class: "inline" }, [select, button]),
    note ? element("p", { class: "muted small", text: note }) : null,
    output,
  ]);
  wrong.addEventListener("click", () => {
    form.hidden = false;
    wrong.hidden = true;
    wrong.setAttribute("aria-expanded", "true");
    select.focus();
  });
  select.addEventListener("change", () => {
    button.disabled = !select.value;
  });
  return { select, button, output, form, wrap: element("div", { class: "feedback-wrap" }, [wrong, form]) };
}

// An operator's feedback (an admin token in this tab): the photo filed in the dataset under the
// class chosen, with an Undo.
async function feedback(file, prediction) {
  const parts = wrongChooser(prediction, await knownClasses(prediction), { label: "File this photo under", submit: "Add to dataset" });
  const { select, button: add, output, form } = parts;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    add.disabled = true;
    select.disabled = true;
    output.replaceChildren("Sending…");
    const stored = await sendToDataset(file, select.value, output);
    select.disabled = stored !== null;
    add.disabled = stored !== null;
    if (stored !== null) output.append(" ", undoButton(stored, output, () => {
      select.disabled = false;
      add.disabled = !select.value;
      select.focus();
    }));
  });
  return parts.wrap;
}

// Anyone's feedback: the photo and the class chosen sent to the review queue (POST /flags),
// where an operator accepts it into the dataset or not. Never a label by itself.
function flagForm(sent, file, prediction, version) {
  const parts = wrongChooser(prediction, Object.keys(prediction.probabilities).sort(), {
    label: "It is a",
    submit: "Send for review",
    note: "An operator reviews the photo before it is used for training.",
  });
  const { select, button: send, output, form } = parts;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    send.disabled = true;
    output.textContent = "Sending…";
    const query = new URLSearchParams({ suggested: select.value, predicted: prediction.class_name, model_version: version });
    const upload = new FormData();
    upload.append("file", sent, file.name || "pasted.png");
    const answer = await call(`/flags?${query}`, { method: "POST", form: upload, retries: 1 });
    if (!answer.ok) {
      send.disabled = false;
      output.textContent = `Not sent (HTTP ${answer.status}): ${answer.message}`;
      return;
    }
    select.disabled = true;
    output.textContent = answer.data.queued
      ? `Sent for review as ${answer.data.suggested}. Thank you.`
      : "This photo already waits for review.";
  });
  return parts.wrap;
}

// The stored name ("<class>/<file>"), or null with the reason shown in `output`.
async function sendToDataset(file, className, output) {
  const form = new FormData();
  form.append("files", file, file.name || "pasted.png");
  const answer = await call(`/admin/dataset/${encodeURIComponent(className)}`, {
    method: "POST",
    form,
    admin: true,
    retries: 2, // safe to repeat: the same bytes are stored once
  });
  if (!answer.ok) {
    output.replaceChildren(`Not added (HTTP ${answer.status}): ${answer.message}`);
    return null;
  }
  const { stored, duplicates, rejected } = answer.data;
  if (stored.length) {
    output.replaceChildren("Added to the dataset as ", element("span", { class: "stored-as", text: stored[0].stored_as }), ".");
    return stored[0].stored_as;
  }
  output.replaceChildren(duplicates.length ? `Already in the dataset as ${duplicates[0].existing}.` : `Not added: ${rejected[0].reason}`);
  return null;
}

function undoButton(storedAs, output, reopen) {
  const undo = element("button", { type: "button", class: "secondary small", text: "Undo", "aria-label": `Undo: remove ${storedAs} from the dataset` });
  undo.addEventListener("click", async () => {
    undo.disabled = true;
    const [className, name] = storedAs.split("/");
    const path = `/admin/dataset/${encodeURIComponent(className)}/${encodeURIComponent(name)}`;
    const answer = await call(path, { method: "DELETE", admin: true, retries: 2 });
    if (!answer.ok && answer.status !== 404) {
      undo.disabled = false;
      output.append(` Undo failed (HTTP ${answer.status}): ${answer.message}`);
      return;
    }
    output.replaceChildren(`Removed ${storedAs} from the dataset.`);
    reopen();
  });
  return undo;
}

function clearResults() {
  for (const image of results.querySelectorAll("img.thumb")) URL.revokeObjectURL(image.src);
  results.replaceChildren();
  clearButton.hidden = true;
  statusLine.textContent = "No photo yet.";
  document.getElementById("pick").focus(); // the button that was pressed is gone
}

function listen() {
  for (const id of ["pick", "camera"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => {
      classifyAll(input.files);
      input.value = ""; // picking the same photo again classifies it again
    });
  }
  clearButton.addEventListener("click", clearResults);
  window.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (ready) dropZone.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  window.addEventListener("drop", (event) => {
    event.preventDefault(); // a photo dropped anywhere is classified, never opened by the browser
    dropZone.classList.remove("dragging");
    classifyAll(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      classifyAll(files);
    }
  });
  document.getElementById("feedback-hint").hidden = !adminToken.get();
}

watchConnection();
listen();
describeModel();
