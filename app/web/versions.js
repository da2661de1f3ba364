// Versions: the table of every version, a version's plots and per-class scores, activation
// (rollback) and deletion, each confirmed first; and the store's retention setting.

import { bytes, call, element, percent, when } from "/web/api.js";
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
  const rows = [...list.versions].reverse().map(row); // newest first
  tbody().replaceChildren(...rows);
  if (!rows.length) {
    tbody().append(element("tr", {}, [element("td", { colspan: "7", text: "No version yet: start a retrain below." })]));
  }
}

function describeRetention(list) {
  const total = list.versions.reduce((sum, version) => sum + version.size_bytes, 0);
  const size = `${list.versions.length} versions use ${bytes(total)}.`;
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

function row(version) {
  const status = [];
  if (version.active) status.push(element("span", { class: "badge active", text: "active" }));
  if (version.serving) status.push(element("span", { class: "badge serving", text: "serving" }));
  const accuracy = version.val_accuracy === null ? "not measured" : percent(version.val_accuracy);
  const number = version.version;
  return element("tr", { "data-version": number }, [
    element("th", { scope: "row", text: number }),
    element("td", { text: when(version.created_at) }),
    element("td", {}, [
      element("span", { class: "accuracy", text: accuracy }),
      element("span", { class: "muted small block", text: describeEvaluation(version.evaluation) }),
    ]),
    element("td", { class: "classes", text: `${version.classes.length}: ${version.classes.join(", ")}` }),
    element("td", { class: "number", text: bytes(version.size_bytes) }),
    element("td", {}, status.length ? status : [element("span", { class: "muted", text: "—" })]),
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

async function activateVersion(number) {
  const serving = document.querySelector("#versions tr .badge.serving")?.closest("tr")?.dataset.version;
  const question = serving
    ? `Version ${number} will answer every prediction from now on, instead of version ${serving}.`
    : `Version ${number} will answer every prediction from now on.`;
  if (!(await confirmAction(`Activate version ${number}?`, question, `Activate version ${number}`))) return;
  announce(`Loading and warming up version ${number}…`);
  const answer = await call(`/admin/models/${number}/activate`, { method: "POST", admin: true });
  if (authFailed(answer)) return;
  showError("versions-error", answer);
  if (!answer.ok) {
    announce(`Version ${number} was not activated.`);
    return;
  }
  render(answer.data);
  announce(`Version ${number} is active and serving.`);
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
    await plots(version),
    scores(version),
  );
  panel.hidden = false;
  panel.focus();
}

function facts(version) {
  const metadata = version.metadata;
  const training = metadata.training || {};
  const recipe = ["epochs", "fine_tune_epochs", "learning_rate", "batch_size", "seed", "activate"]
    .filter((key) => key in training)
    .map((key) => `${key} ${training[key]}`)
    .join(", ");
  const counts = metadata.dataset?.counts;
  const entries = [
    ["Created", when(version.created_at)],
    [
      "Accuracy",
      version.val_accuracy === null
        ? "not measured"
        : `${percent(version.val_accuracy)} (${describeEvaluation(version.evaluation)})`,
    ],
    ["Activation", metadata.activation?.reason],
    ["Training", recipe],
    ["Dataset", counts ? Object.entries(counts).map(([name, n]) => `${name} ${n}`).join(", ") : null],
    ["Retrain job", metadata.job?.id],
  ].filter(([, value]) => value);
  return element(
    "dl",
    { class: "facts" },
    entries.flatMap(([term, value]) => [element("dt", { text: term }), element("dd", { text: value })]),
  );
}

const PLOT_TITLES = { "history.png": "Training curves", "confusion.png": "Confusion matrix (validation)" };

async function plots(version) {
  const figures = element("div", { class: "plots" });
  for (const [name, url] of Object.entries(version.plots)) {
    const title = `${PLOT_TITLES[name] || name} of version ${version.version}`;
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
  const header = ["Class", "Precision", "Recall", "F1", "Support"].map((text) => element("th", { scope: "col", text }));
  return element("div", { class: "table-wrap" }, [
    element("table", { class: "scores" }, [
      element("caption", { text: `Validation scores per class, version ${version.version}` }),
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
