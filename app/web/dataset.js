// Dataset: images per class in the server's dataset folder, and labelled photos uploaded into a
// class (a new name creates it), with what was stored, duplicated or rejected, file by file.

import { bytes, call, element, plural } from "/web/api.js";
import { announce, authFailed, showError } from "/web/ui.js";

// Photos per request: well under the server's FLOWERS_MAX_FILES_PER_REQUEST default (16).
const PER_REQUEST = 8;

let listening = false;

export async function load() {
  if (!listening) {
    document.getElementById("upload-form").addEventListener("submit", upload);
    listening = true;
  }
  const answer = await call("/admin/dataset", { admin: true });
  if (authFailed(answer)) return;
  showError("dataset-error", answer);
  if (answer.ok) render(answer.data);
}

function render(summary) {
  document.getElementById("dataset-root").textContent =
    `${plural(summary.total_images, "image")} (${bytes(summary.total_bytes)}) in ` +
    `${plural(summary.classes.length, "class", "classes")}, in ${summary.root} on the server.`;
  const rows = summary.classes.map((entry) =>
    element("tr", { "data-class": entry.name }, [
      element("th", { scope: "row", text: entry.name }),
      element("td", { class: "number", text: String(entry.images) }),
      element("td", { class: "number", text: bytes(entry.bytes) }),
    ]),
  );
  document.querySelector("#dataset tbody").replaceChildren(...rows);
  const options = summary.classes.map((entry) => element("option", { value: entry.name }));
  document.getElementById("class-names").replaceChildren(...options);
}

async function upload(event) {
  event.preventDefault();
  const className = document.getElementById("upload-class").value.trim();
  const input = document.getElementById("upload-files");
  const files = [...input.files];
  const list = document.getElementById("upload-results");
  list.replaceChildren();
  showError("dataset-error", null);
  const totals = { stored: 0, duplicates: 0, rejected: 0 };
  let stopped = null; // the answer that stopped the upload, if one did
  for (let start = 0; start < files.length; start += PER_REQUEST) {
    const form = new FormData();
    for (const file of files.slice(start, start + PER_REQUEST)) form.append("files", file, file.name);
    const answer = await call(`/admin/dataset/${encodeURIComponent(className)}`, {
      method: "POST",
      form,
      admin: true,
      retries: 2, // safe to repeat: the same bytes are stored once
    });
    if (authFailed(answer)) return;
    if (!answer.ok) {
      showError("dataset-error", answer);
      stopped = answer;
      break;
    }
    report(answer.data, list, totals);
  }
  const counts = `${totals.stored} stored, ${totals.duplicates} duplicates, ${totals.rejected} rejected`;
  if (stopped) {
    // Nothing is cleared: the same files can be sent again (duplicates are recognised).
    announce(`Upload to ${className} stopped (${stopped.message}); before that: ${counts}.`);
  } else {
    input.value = "";
    announce(`Upload to ${className}: ${counts}.`);
  }
  if (totals.stored) document.dispatchEvent(new CustomEvent("dataset-changed"));
}

function report(result, list, totals) {
  for (const item of result.stored) {
    list.append(line("stored", item.filename, `stored as ${item.stored_as}`));
  }
  for (const item of result.duplicates) {
    list.append(line("duplicate", item.filename, `duplicate of ${item.existing}, not stored again`));
  }
  for (const item of result.rejected) {
    list.append(line("rejected", item.filename, `rejected (HTTP ${item.status}): ${item.reason}`));
  }
  totals.stored += result.stored.length;
  totals.duplicates += result.duplicates.length;
  totals.rejected += result.rejected.length;
}

function line(kind, filename, text) {
  return element("li", { class: `file-result ${kind}`, "data-outcome": kind }, [
    element("span", { class: "file-name", text: filename }),
    element("span", { text: ` ${text}` }),
  ]);
}
