// Versions: the table of every version, a version's plots and per-class scores, activation
// (rollback) and deletion, each confirmed first; and the store's retention setting.

import { bytes, call, element, percent, plural, when } from "/web/api.js";
import * as compare from "/web/compare.js";
import { announce, authFailed, confirmAction, showError } from "/web/ui.js";

const tbody = () => document.querySelector("#versions tbody");
const detail = () => document.getElementById("detail");
let plotUrls = [];
let shown = null; // the version whose details are open

export async function load() {
  const answer = await call("/admin/models", { admin: true });
  if (authFailed(answer)) return;
  showError("versions-error", answer);
  if (answer.ok) render(answer.data);
}

function render(list) {
  describeRetention(list);
  compare.offer(list);
  const rows = [...list.versions].reverse().map(row); // newest first
  tbody().replaceChildren(...rows);
  if (!rows.length) {
    tbody().append(element("tr", {}, [element("td", { colspan: "7", text: "No version yet: start a retrain below." })]));
  }
}

function describeRetention(list) {
  const total = list.versions.reduce((sum, version) => sum + version.size_bytes, 0);
  const size = `${plural(list.versions.length, "version")} ${list.versions.length === 1 ? "uses" : "use"} ${bytes(total)}.`;
  const rule = list.keep_versions
    ? `Retention: after each publish the newest ${list.keep_versions} and the active version are ` +
      `kept, older ones deleted (FLOWERS_KEEP_VERSIONS=${list.keep_versions}).`
    : "Retention: every version is kept (FLOWERS_KEEP_VERSIONS=0); delete old ones here, or set " +
      "FLOWERS_KEEP_VERSIONS.";
  document.getElementById("retention").textContent = `${size} ${rule}`;
}

export function describeEvaluation(evaluation) {
  if (!evaluation) return "on its validation split";
  if (typeof evaluation === "string") return evaluation;
  const method = evaluation.method || evaluation.kind || evaluation.name || "";
  return method || JSON.stringify(evaluation);
}

// Its accuracy on the evaluation folder: photos never trained on (FLOWERS_EVAL_DIR).
function heldOut(version) {
  return `${percent(version.eval_accuracy)} on the evaluation folder's ${version.eval_photos} photos`;
}

function row(version) {
  const status = [];
  if (version.active) status.push(element("span", { class: "badge active", text: "active" }));
  if (version.serving) status.push(element("span", { class: "badge serving", text: "serving" }));
  const accuracy = version.val_accuracy === null ? "not measured" : percent(version.val_accuracy);
  const number = version.version;
  // data-label: the column's name, shown beside each value where a phone stacks the cells.
  return element("tr", { "data-version": number }, [
    element("th", { scope: "row", "data-label": "Version" }, [
      number,
      version.note ? element("span", { class: "muted small block note", text: version.note }) : null,
    ]),
    element("td", { text: when(version.created_at), "data-label": "Created" }),
    element("td", { "data-label": "Accuracy" }, [
      element("span", { class: "accuracy", text: accuracy }),
      element("span", { class: "muted small block evaluation", text: describeEvaluation(version.evaluation) }),
      version.eval_accuracy === null || version.eval_accuracy === undefined
        ? null
        : element("span", { class: "small block held-out", text: heldOut(version) }),
    ]),
    element("td", { class: "classes", text: `${version.classes.length}: ${version.classes.join(", ")}`, "data-label": "Classes" }),
    element("td", { class: "number", text: bytes(version.size_bytes), "data-label": "Size" }),
    element("td", { "data-label": "Status" }, status.length ? status : [element("span", { class: "muted", text: "—" })]),
    element("td", { class: "row-actions" }, actions(version)),
  ]);
}

function actions(version) {
  const number = version.version;
  const details = element("button", {
    type: "button",
    class: "secondary small",
    text: "Details",
    "aria-controls": "detail",
    "aria-label": `Details of version ${number}`,
  });
  details.addEventListener("click", () => showDetail(number));
  const activate = element("button", {
    type: "button",
    class: "small",
    text: "Activate",
    "aria-label": `Activate version ${number}`,
    disabled: version.active && version.serving,
  });
  activate.addEventListener("click", () => activateVersion(number));
  const inUse = version.active || version.serving;
  const remove = element("button", {
    type: "button",
    class: "danger small",
    text: "Delete",
    "aria-label": `Delete version ${number}`,
    disabled: inUse,
    title: inUse ? "The active or serving version cannot be deleted" : null,
  });
  remove.addEventListener("click", () => deleteVersion(version));
  return [details, activate, remove];
}

// While a version loads and warms up (seconds, or more for a large one), the table is busy: every
// row's buttons are disabled, so nothing else is activated or deleted meanwhile.
function setBusy(busy) {
  const table = document.getElementById("versions");
  table.setAttribute("aria-busy", String(busy));
  for (const button of table.querySelectorAll("button")) {
    if (busy) {
      button.dataset.wasDisabled = String(button.disabled);
      button.disabled = true;
    } else if (button.dataset.wasDisabled !== undefined) {
      button.disabled = button.dataset.wasDisabled === "true";
      delete button.dataset.wasDisabled;
    }
  }
}

async function activateVersion(number) {
  const serving = document.querySelector("#versions tr .badge.serving")?.closest("tr")?.dataset.version;
  const question = serving
    ? `Version ${number} will answer every prediction from now on, instead of version ${serving}.`
    : `Version ${number} will answer every prediction from now on.`;
  if (!(await confirmAction(`Activate version ${number}?`, question, `Activate version ${number}`))) return;
  announce(`Loading and warming up version ${number}…`);
  setBusy(true);
  const answer = await call(`/admin/models/${number}/activate`, { method: "POST", admin: true });
  setBusy(false);
  if (authFailed(answer)) return;
  showError("versions-error", answer);
  if (!answer.ok) {
    announce(`Version ${number} was not activated.`);
    focusRow(number);
    return;
  }
  render(answer.data);
  announce(`Version ${number} is active and serving.`);
  focusRow(number);
}

// Focus after a row's action: the row's Details button (the Activate just pressed is disabled or
// re-drawn), else the table itself (the row was deleted).
function focusRow(number) {
  const details = document.querySelector(`#versions tr[data-version="${number}"] button`);
  (details || document.querySelector("#versions").closest(".table-wrap")).focus();
}

async function deleteVersion(version) {
  const number = version.version;
  const text = `Its files (${bytes(version.size_bytes)}) are removed from the store. This cannot be undone.`;
  if (!(await confirmAction(`Delete version ${number}?`, text, `Delete version ${number}`))) return;
  const answer = await call(`/admin/models/${number}`, { method: "DELETE", admin: true });
  if (authFailed(answer)) return;
  showError("versions-error", answer);
  if (!answer.ok) return;
  if (shown === number) closeDetail();
  render(answer.data);
  announce(`Version ${number} was deleted.`);
  focusRow(number);
}

async function showDetail(number) {
  const answer = await call(`/admin/models/${number}`, { admin: true });
  if (authFailed(answer)) return;
  showError("versions-error", answer);
  if (!answer.ok) return;
  releasePlots();
  shown = number;
  const version = answer.data;
  const close = element("button", { type: "button", class: "secondary small", text: "Close details" });
  close.addEventListener("click", closeDetail);
  const panel = detail();
  panel.replaceChildren(
    element("div", { class: "detail-head" }, [element("h3", { text: `Version ${number}` }), close]),
    facts(version),
    noteForm(version),
    await plots(version),
    scores(version),
  );
  panel.hidden = false;
  panel.focus();
}

// The recipe's options that shaped this version: the head's own (l2 for a linear head; epochs,
// learning rate, dropout and batch size for the mlp), fine-tuning only where it ran.
const RECIPE = {
  common: ["head", "features", "input_size", "flips", "folds", "seed"],
  linear: ["l2"],
  mlp: ["epochs", "learning_rate", "dropout", "batch_size"],
  fineTune: ["fine_tune_epochs", "fine_tune_in_folds", "fine_tune_learning_rate"],
};

function recipe(training) {
  const keys = [...RECIPE.common, ...(RECIPE[training.head] || RECIPE.mlp)];
  if (training.fine_tune_epochs) keys.push(...RECIPE.fineTune);
  return keys
    .filter((key) => key in training)
    .map((key) => `${key.replaceAll("_", " ")} ${training[key]}`)
    .join(", ");
}

function facts(version) {
  const metadata = version.metadata;
  const recipeText = recipe(metadata.training || {});
  const counts = metadata.dataset?.counts;
  const entries = [
    ["Created", when(version.created_at)],
    [
      "Accuracy",
      version.val_accuracy === null
        ? "not measured"
        : `${percent(version.val_accuracy)} (${describeEvaluation(version.evaluation)})${headAlone(metadata)}`,
    ],
    ["Evaluation folder", version.eval_accuracy === null || version.eval_accuracy === undefined ? null : heldOut(version)],
    ["Activation", metadata.activation?.reason],
    ["Training", recipeText],
    ["Dataset", counts ? Object.entries(counts).map(([name, n]) => `${name} ${n}`).join(", ") : null],
    ["Retrain job", metadata.job?.id],
  ].filter(([, value]) => value);
  return element(
    "dl",
    { class: "facts" },
    entries.flatMap(([term, value]) => [element("dt", { text: term }), element("dd", { text: value })]),
  );
}

// A version whose folds measured its head alone, conv5 fine-tuned for the published model only
// (--no-fine-tune-in-folds): its accuracy is a lower bound, and the metadata has what
// fine-tuning added when it was measured once, and on the fold its fine-tuning kept out.
function headAlone(metadata) {
  const tuning = metadata.metrics?.fine_tuning;
  const once = tuning?.measured_once;
  if (!once) return "";
  const points = (once.gain * 100).toFixed(1);
  const kept = tuning.held_out;
  const judged = kept
    ? `; fine-tuned, ${percent(kept.fine_tuned)} on the ${kept.photos} photos kept out of it (the head alone ${percent(kept.head_alone)})`
    : "";
  return `; the head alone: conv5 was then fine-tuned, which added ${points} points when measured once${judged}`;
}

// history.png holds training curves only for an mlp head; a linear head's shows its folds.
// The operators' note on a version ("trained after the May uploads"): PUT …/note, empty removes it.
function noteForm(version) {
  const id = `note-${version.version}`;
  const text = element("textarea", { id, name: "note", rows: "2", maxlength: "500", "aria-describedby": `${id}-hint` });
  text.value = version.note || "";
  const save = element("button", { type: "submit", class: "secondary small", text: "Save note" });
  const output = element("output", { class: "small", for: id, "aria-live": "polite" });
  const form = element("form", { class: "stack note-form" }, [
    element("label", { for: id, text: `Note on version ${version.version}` }),
    text,
    element("p", { id: `${id}-hint`, class: "muted small", text: "Up to 500 characters, for the other operators; empty removes it." }),
    element("div", { class: "inline" }, [save, output]),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    const answer = await call(`/admin/models/${version.version}/note`, {
      method: "PUT",
      json: { note: text.value },
      admin: true,
      retries: 2, // the same note written twice is the same note
    });
    save.disabled = false;
    if (authFailed(answer)) return;
    if (!answer.ok) {
      output.textContent = `Not saved (HTTP ${answer.status}): ${answer.message}`;
      return;
    }
    output.textContent = answer.data.note ? "Saved." : "Removed.";
    await load();
  });
  return form;
}

const PLOT_TITLES = {
  linear: { "history.png": "Accuracy per cross-validation fold", "confusion.png": "Confusion matrix (validation)" },
  mlp: { "history.png": "Accuracy per fold and training curves", "confusion.png": "Confusion matrix (validation)" },
};

async function plots(version) {
  const figures = element("div", { class: "plots" });
  for (const [name, url] of Object.entries(version.plots)) {
    const titles = PLOT_TITLES[version.metadata.training?.head] || PLOT_TITLES.mlp;
    const title = `${titles[name] || name} of version ${version.version}`;
    const answer = await call(url, { admin: true, as: "blob" });
    if (!answer.ok) {
      figures.append(element("p", { class: "error", text: `${title}: ${answer.message}` }));
      continue;
    }
    const source = URL.createObjectURL(answer.data); // <img> cannot send the token: fetch, then blob:
    plotUrls.push(source);
    figures.append(
      element("figure", { "data-plot": name }, [
        element("img", { src: source, alt: title }),
        element("figcaption", { text: title }),
      ]),
    );
  }
  if (!figures.children.length) figures.append(element("p", { class: "muted", text: "This version has no plots." }));
  return figures;
}

function scores(version) {
  const entries = Object.entries(version.per_class);
  if (!entries.length) return element("p", { class: "muted", text: "No per-class scores were recorded." });
  const number = (value) => (value === null || value === undefined ? "—" : value.toFixed(3));
  const rows = entries.map(([name, score]) =>
    element("tr", {}, [
      element("th", { scope: "row", text: name }),
      element("td", { class: "number", text: number(score.precision) }),
      element("td", { class: "number", text: number(score.recall) }),
      element("td", { class: "number", text: number(score.f1) }),
      element("td", { class: "number", text: score.support ?? "—" }),
    ]),
  );
  const header = ["Class", "Precision", "Recall", "F1", "Support"].map((text, index) =>
    element("th", { scope: "col", text, class: index ? "number" : null }),
  );
  const label = `Validation scores per class, version ${version.version}`;
  return element("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, [
    element("table", { class: "scores" }, [
      element("caption", { text: label }),
      element("thead", {}, [element("tr", {}, header)]),
      element("tbody", {}, rows),
    ]),
  ]);
}

function releasePlots() {
  for (const url of plotUrls) URL.revokeObjectURL(url);
  plotUrls = [];
}

function closeDetail() {
  releasePlots();
  shown = null;
  detail().hidden = true;
  detail().replaceChildren();
}
