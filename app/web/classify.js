// The classify page: photos in (picked, photographed, dropped or pasted), one POST /predict per
// photo, and each answer drawn as a card: thumbnail, predicted class, a bar per class, the model
// version. With an admin token in this tab, a wrong answer goes to the dataset in one gesture.

import { adminToken, call, eachLimited, element, percent } from "/web/api.js";

const IN_FLIGHT = 4;

const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const clearButton = document.getElementById("clear");
const dropZone = document.getElementById("drop-zone");
let cardCount = 0;
let datasetClasses = null; // fetched once, when the feedback form is first needed

async function describeModel() {
  const line = document.getElementById("model-line");
  const answer = await call("/model");
  if (!answer.ok) {
    line.textContent = `No model is serving yet: ${answer.message}`;
    return;
  }
  const model = answer.data;
  line.textContent =
    `Model version ${model.version} (${model.engine} on ${model.device}) knows ` +
    `${model.classes.length} classes: ${model.classes.join(", ")}.`;
}

function classifyAll(files) {
  const photos = [...files];
  if (!photos.length) return;
  clearButton.hidden = false;
  const jobs = photos.map((file) => ({ file, card: addCard(file) }));
  statusLine.textContent = `Classifying ${photos.length} photo${photos.length > 1 ? "s" : ""}…`;
  eachLimited(jobs, IN_FLIGHT, classifyOne).then(() => {
    if (jobs.length === 1) return; // the one photo's own answer stays announced
    const done = jobs.filter(({ card }) => card.dataset.state === "done").length;
    const failed = jobs.length - done;
    statusLine.textContent = `${done} classified, ${failed} refused.`;
  });
}

function addCard(file) {
  cardCount += 1;
  const name = file.name || "pasted image";
  const thumb = element("img", { class: "thumb", alt: `Photo ${name}`, src: URL.createObjectURL(file) });
  thumb.addEventListener("error", () => thumb.classList.add("broken"), { once: true });
  const card = element("li", { class: "card", "data-state": "pending", id: `card-${cardCount}` }, [
    thumb,
    element("div", { class: "card-body" }, [
      element("h3", { class: "filename", text: name }),
      element("p", { class: "muted", text: "Classifying…" }),
    ]),
  ]);
  results.append(card);
  return card;
}

async function classifyOne({ file, card }) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  const answer = await call("/predict", { method: "POST", form });
  const body = card.querySelector(".card-body");
  body.querySelector("p").remove();
  if (!answer.ok) {
    card.dataset.state = "error";
    body.append(element("p", { class: "error", text: `Refused (HTTP ${answer.status}): ${answer.message}` }));
    statusLine.textContent = `${file.name}: refused, ${answer.message}`;
    return;
  }
  const prediction = answer.data.predictions[0];
  card.dataset.state = "done";
  card.dataset.version = answer.data.model_version;
  body.append(...describePrediction(prediction, answer.data.model_version));
  statusLine.textContent = `${prediction.filename}: ${prediction.class_name}, ${percent(prediction.confidence)}`;
  if (adminToken.get()) body.append(await feedbackForm(file, prediction));
}

function describePrediction(prediction, version) {
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
    element("p", { class: "muted small model-version", text: `model version ${version}` }),
    bars,
  ];
}

async function knownClasses(prediction) {
  if (datasetClasses === null) {
    const answer = await call("/admin/dataset", { admin: true });
    datasetClasses = answer.ok ? answer.data.classes.map((entry) => entry.name) : [];
  }
  return [...new Set([...Object.keys(prediction.probabilities), ...datasetClasses])].sort();
}

async function feedbackForm(file, prediction) {
  const id = `fix-${cardCount}-${Math.random().toString(36).slice(2, 8)}`;
  const ranked = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  const guess = ranked.length > 1 ? ranked[1][0] : ranked[0][0]; // the runner-up
  const select = element("select", { id, name: "class_name" });
  for (const name of await knownClasses(prediction)) {
    select.append(element("option", { value: name, text: name, selected: name === guess }));
  }
  const output = element("output", { class: "small", for: id, "aria-live": "polite" });
  const button = element("button", { type: "submit", class: "secondary", text: "Add to dataset" });
  const form = element("form", { class: "feedback" }, [
    element("label", { for: id, text: "Wrong? File this photo under" }),
    element("div", { class: "inline" }, [select, button]),
    output,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    output.textContent = "Sending…";
    output.textContent = await sendToDataset(file, select.value);
    button.disabled = false;
  });
  return form;
}

async function sendToDataset(file, className) {
  const form = new FormData();
  form.append("files", file, file.name || "pasted.png");
  const answer = await call(`/admin/dataset/${encodeURIComponent(className)}`, {
    method: "POST",
    form,
    admin: true,
  });
  if (!answer.ok) return `Not added (HTTP ${answer.status}): ${answer.message}`;
  const { stored, duplicates, rejected } = answer.data;
  if (stored.length) return `Added to the dataset as ${stored[0].stored_as}.`;
  if (duplicates.length) return `Already in the dataset as ${duplicates[0].existing}.`;
  return `Not added: ${rejected[0].reason}`;
}

function clearResults() {
  for (const image of results.querySelectorAll("img.thumb")) URL.revokeObjectURL(image.src);
  results.replaceChildren();
  clearButton.hidden = true;
  statusLine.textContent = "No photo yet.";
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
    dropZone.classList.add("dragging");
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

listen();
describeModel();
