// Review: the flags anyone raised on the classify page ("this is a rose, not a tulip"), each
// with its photo; an operator files it in the dataset under the class they choose, or rejects
// it. A flag is never a label until accepted here.

import { call, element } from "/web/api.js";
import { announce, authFailed, showError } from "/web/ui.js";

let photoUrls = [];

export async function load() {
  const answer = await call("/admin/flags", { admin: true, retries: 2 });
  if (authFailed(answer)) return;
  const list = document.getElementById("flags");
  if (answer.status === 409) {
    document.getElementById("flags-summary").textContent = answer.message; // flagging is off
    list.replaceChildren();
    return;
  }
  showError("flags-error", answer);
  if (!answer.ok) return;
  for (const url of photoUrls) URL.revokeObjectURL(url);
  photoUrls = [];
  const flags = answer.data;
  document.getElementById("flags-summary").textContent = flags.length
    ? `${flags.length} flag${flags.length === 1 ? "" : "s"} waiting, oldest first.`
    : "No flag waits for review.";
  list.replaceChildren(...(await Promise.all(flags.map(card))));
}

async function card(flag) {
  const photo = await call(flag.image_url, { admin: true, as: "blob" });
  const said = flag.predicted ? `version ${flag.model_version ?? "?"} said ${flag.predicted}` : "no prediction given";
  const figure = photo.ok
    ? element("img", { class: "thumb", alt: `Flagged photo ${flag.filename}`, src: remember(URL.createObjectURL(photo.data)) })
    : element("p", { class: "muted small no-preview", text: `No preview: ${photo.message}` });
  const id = `flag-class-${flag.id}`;
  const select = element("select", { id });
  for (const name of await classNames(flag)) select.append(element("option", { value: name, text: name, selected: name === flag.suggested }));
  const accept = element("button", { type: "button", class: "small", text: "Accept", "aria-label": `Accept ${flag.filename} as the chosen class` });
  const reject = element("button", { type: "button", class: "danger small", text: "Reject", "aria-label": `Reject the flag on ${flag.filename}` });
  const item = element("li", { class: "card", "data-flag": flag.id }, [
    figure,
    element("div", { class: "card-body" }, [
      element("h3", { class: "filename", text: flag.filename }),
      element("p", { class: "small", text: `Flagged as ${flag.suggested}; ${said}.` }),
      element("label", { for: id, text: "File it under" }),
      element("div", { class: "inline" }, [select, accept, reject]),
    ]),
  ]);
  accept.addEventListener("click", () => decide(flag, item, "accept", select.value));
  reject.addEventListener("click", () => decide(flag, item, "reject"));
  return item;
}

let known = null;

async function classNames(flag) {
  if (known === null) {
    const answer = await call("/admin/dataset", { admin: true });
    known = answer.ok ? answer.data.classes.map((entry) => entry.name) : [];
  }
  return [...new Set([...known, flag.suggested, ...(flag.predicted ? [flag.predicted] : [])])].sort();
}

async function decide(flag, item, action, className) {
  for (const button of item.querySelectorAll("button")) button.disabled = true;
  const answer =
    action === "accept"
      ? await call(`/admin/flags/${flag.id}/accept`, { method: "POST", json: { class_name: className }, admin: true })
      : await call(`/admin/flags/${flag.id}`, { method: "DELETE", admin: true });
  if (authFailed(answer)) return;
  showError("flags-error", answer);
  if (!answer.ok) {
    for (const button of item.querySelectorAll("button")) button.disabled = false;
    return;
  }
  const outcome =
    action === "reject"
      ? `The flag on ${flag.filename} was rejected; nothing entered the dataset.`
      : answer.data.stored_as
        ? `${flag.filename} was filed as ${answer.data.stored_as}.`
        : `${flag.filename} is already in the dataset as ${answer.data.duplicate_of}.`;
  announce(outcome);
  if (action === "accept") document.dispatchEvent(new CustomEvent("dataset-changed"));
  known = null;
  await load();
  document.getElementById("review-title").focus();
}

function remember(url) {
  photoUrls.push(url);
  return url;
}
