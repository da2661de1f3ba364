// The operator's console: sign in with the admin token, then versions, retraining and the
// dataset, each through the admin API.

import { adminToken, call } from "/web/api.js";
import { watchConnection } from "/web/connection.js";
import * as dataset from "/web/dataset.js";
import * as live from "/web/live.js";
import * as retrain from "/web/retrain.js";
import * as review from "/web/review.js";
import * as versions from "/web/versions.js";

const signInSection = document.getElementById("sign-in");
const consoleSection = document.getElementById("console");
const signInError = document.getElementById("sign-in-error");
const tokenInput = document.getElementById("token");

async function signIn(event) {
  event.preventDefault();
  signInError.textContent = "";
  adminToken.set(tokenInput.value.trim());
  const answer = await call("/admin/models", { admin: true });
  if (!answer.ok) {
    adminToken.clear();
    signInError.textContent = answer.message; // the API's own words, e.g. "the admin token is wrong"
    tokenInput.focus();
    return;
  }
  tokenInput.value = "";
  await open();
  // The form that had focus is gone: focus goes to the first thing the console shows.
  document.getElementById("versions-title").focus();
}

async function open() {
  signInSection.hidden = true;
  consoleSection.hidden = false;
  live.start();
  await Promise.all([versions.load(), dataset.load(), retrain.setup(), review.load()]);
}

function signOut(message = "") {
  adminToken.clear();
  retrain.stopWatching();
  live.stop();
  consoleSection.hidden = true;
  signInSection.hidden = false;
  signInError.textContent = message;
  tokenInput.focus();
}

watchConnection();
document.getElementById("sign-in-form").addEventListener("submit", signIn);
document.getElementById("sign-out").addEventListener("click", () => signOut());
document.addEventListener("auth-failed", (event) => signOut(event.detail));
document.addEventListener("version-published", () => {
  versions.load();
  dataset.load();
});
document.addEventListener("dataset-changed", () => dataset.load());

if (adminToken.get()) open();
