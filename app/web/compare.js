// Compare two versions side by side: accuracy, per-class precision, recall and F1 with the
// difference, and both confusion matrices (as tables: readable, and read aloud), from each
// version's own metadata (GET /admin/models/{version}).

import { call, element, percent } from "/web/api.js";
import { authFailed, showError } from "/web/ui.js";

let listening = false;

// Fill the two pickers with the versions (newest first): A the serving one, B the newest other.
export function offer(list) {
  const numbers = [...list.versions].reverse().map((v) => v.version);
  const [first, second] = ["compare-a", "compare-b"].map((id) => document.getElementById(id));
  const keep = [first.value, second.value];
  for (const select of [first, second]) {
    select.replaceChildren(...numbers.map((n) => element("option", { value: n, text: `version ${n}` })));
  }
  const serving = list.serving || numbers[0];
  first.value = numbers.includes(keep[0]) ? keep[0] : serving;
  second.value = numbers.includes(keep[1]) ? keep[1] : numbers.find((n) => n !== first.value) || serving;
  document.getElementById("compare-form").hidden = numbers.length < 2;
  if (!listening) {
    document.getElementById("compare-form").addEventListener("submit", compare);
    listening = true;
  }
}

async function compare(event) {
  event.preventDefault();
  const numbers = ["compare-a", "compare-b"].map((id) => document.getElementById(id).value);
  const answers = await Promise.all(numbers.map((n) => call(`/admin/models/${n}`, { admin: true, retries: 2 })));
  const failed = answers.find((answer) => !answer.ok);
  if (failed && authFailed(failed)) return;
  showError("compare-error", failed || null);
  if (failed) return;
  const [a, b] = answers.map((answer) => answer.data);
  const panel = document.getElementById("comparison");
  panel.replaceChildren(
    element("h3", { text: `Version ${a.version} and version ${b.version}` }),
    summary(a, b),
    perClass(a, b),
    element("div", { class: "matrices" }, [confusion(a), confusion(b)]),
    element("p", {
      class: "muted small",
      text: "The photos on which the two disagree are not shown: the trainer records each fold's scores, not each photo's prediction.",
    }),
  );
  panel.hidden = false;
  panel.focus();
}

function summary(a, b) {
  const accuracy = (v) => (v.val_accuracy === null ? "not measured" : `${percent(v.val_accuracy)} (${v.evaluation || "held-out split"})`);
  return element("dl", { class: "facts" }, [
    element("dt", { text: `Version ${a.version}` }),
    element("dd", { text: accuracy(a) }),
    element("dt", { text: `Version ${b.version}` }),
    element("dd", { text: accuracy(b) }),
  ]);
}

function perClass(a, b) {
  const names = [...new Set([...Object.keys(a.per_class), ...Object.keys(b.per_class)])].sort();
  if (!names.length) return element("p", { class: "muted", text: "Neither version recorded per-class scores." });
  const cell = (score) => (score === undefined || score === null ? "—" : score.toFixed(3));
  const delta = (x, y) => (typeof x === "number" && typeof y === "number" ? `${y - x >= 0 ? "+" : ""}${(y - x).toFixed(3)}` : "—");
  const rows = names.map((name) => {
    const [x, y] = [a.per_class[name] || {}, b.per_class[name] || {}];
    return element("tr", { "data-class": name }, [
      element("th", { scope: "row", text: name }),
      ...["precision", "recall", "f1"].flatMap((key) => [
        element("td", { class: "number", text: cell(x[key]) }),
        element("td", { class: "number", text: cell(y[key]) }),
        element("td", { class: "number delta", text: delta(x[key], y[key]) }),
      ]),
    ]);
  });
  const head = ["Class"];
  for (const key of ["Precision", "Recall", "F1"]) head.push(`${key} v${a.version}`, `${key} v${b.version}`, "change");
  const label = `Per-class scores, version ${a.version} and version ${b.version}`;
  return element("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, [
    element("table", { class: "scores compare" }, [
      element("caption", { text: label }),
      element("thead", {}, [element("tr", {}, head.map((text, i) => element("th", { scope: "col", text, class: i ? "number" : null })))]),
      element("tbody", {}, rows),
    ]),
  ]);
}

function confusion(version) {
  const metrics = version.metadata.metrics || {};
  const matrix = metrics.confusion_matrix;
  const classes = version.classes;
  const label = `Confusion matrix of version ${version.version} (rows: true class, columns: predicted)`;
  if (!Array.isArray(matrix) || matrix.length !== classes.length) {
    return element("p", { class: "muted", text: `Version ${version.version} recorded no confusion matrix.` });
  }
  const rows = matrix.map((counts, i) =>
    element("tr", {}, [
      element("th", { scope: "row", text: classes[i] }),
      ...counts.map((count, j) => element("td", { class: i === j ? "number diagonal" : "number", text: String(count) })),
    ]),
  );
  return element("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, [
    element("table", { class: "confusion" }, [
      element("caption", { text: label }),
      element("thead", {}, [element("tr", {}, [element("th", { scope: "col", text: "true \\ predicted" }), ...classes.map((c) => element("th", { scope: "col", class: "number", text: c }))])]),
      element("tbody", {}, rows),
    ]),
  ]);
}
