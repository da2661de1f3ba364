// Compare two versions side by side: accuracy, per-class precision, recall and F1 with the
// difference, and both confusion matrices (as tables: readable, and read aloud), from each
// version's own metadata (GET /admin/models/{version}); then the photos on which their answers
// differ (GET /admin/models/{a}/disagreements/{b}), each with its thumbnail.

import { call, eachLimited, element, percent, plural } from "/web/api.js";
import { authFailed, showError } from "/web/ui.js";

let listening = false;
let photoUrls = []; // object URLs of the thumbnails shown, released at the next comparison
const SHOWN_PHOTOS = 24;

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
    await disagreements(a.version, b.version),
  );
  panel.hidden = false;
  panel.focus();
}

// The photos both were measured on where their answers differ (each version's answer out of
// sample), the ones only one of them gets right first.
async function disagreements(a, b) {
  for (const url of photoUrls) URL.revokeObjectURL(url);
  photoUrls = [];
  const title = element("h4", { text: "Photos on which they disagree" });
  const answer = await call(`/admin/models/${a}/disagreements/${b}?limit=${SHOWN_PHOTOS}`, { admin: true, retries: 2 });
  if (!answer.ok) {
    return element("section", { class: "disagreements" }, [title, element("p", { class: "muted", text: `Not shown: ${answer.message}` })]);
  }
  const d = answer.data;
  const counts = element("p", {
    class: "disagree-counts",
    text:
      `On the ${plural(d.common, "photo")} both were measured on, each out of sample: both right on ${d.both_right}, ` +
      `only version ${a} on ${d.only_a_right}, only version ${b} on ${d.only_b_right}, both wrong on ${d.both_wrong}. ` +
      `Their answers differ on ${plural(d.total, "photo")}` +
      (d.total > d.photos.length ? `; the first ${d.photos.length} are shown.` : ".") +
      (d.relabelled ? ` ${plural(d.relabelled, "photo")} changed class between the two runs and ${d.relabelled === 1 ? "is" : "are"} left out.` : ""),
  });
  const list = element("ul", { class: "disagree-list" });
  const items = d.photos.map((photo) => {
    const figure = element("figure", { class: "disagree" }, [
      element("figcaption", {}, [
        element("strong", { text: photo.label }),
        element("span", { class: "small", text: ` ${photo.source}` }),
        element("br"),
        verdict(a, photo.a, photo.label),
        element("br"),
        verdict(b, photo.b, photo.label),
      ]),
    ]);
    list.append(element("li", {}, [figure]));
    return { photo, figure };
  });
  eachLimited(items, 4, async ({ photo, figure }) => {
    const image = await call(photo.image_url, { admin: true, as: "blob", retries: 1 });
    const shown = image.ok
      ? element("img", { class: "thumb", alt: `${photo.label} photo ${photo.source}`, src: remember(URL.createObjectURL(image.data)) })
      : element("p", { class: "muted small no-preview", text: `No photo: ${image.message}` });
    figure.prepend(shown);
  });
  return element("section", { class: "disagreements" }, [title, counts, list]);
}

function verdict(version, said, label) {
  const right = said.predicted === label;
  return element("span", { class: right ? "right" : "wrong", text: `v${version}: ${said.predicted} ${percent(said.confidence, 0)} ${right ? "(right)" : "(wrong)"}` });
}

function remember(url) {
  photoUrls.push(url);
  return url;
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
