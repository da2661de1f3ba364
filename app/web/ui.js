// What the console's sections share: the status line, the confirmation dialog, and what happens
// when the API refuses the token.

const announcer = () => document.getElementById("announce");

// Say something to everyone, screen readers included (a polite live region).
export function announce(text) {
  announcer().textContent = text;
}

// A modal confirmation (the native <dialog>: focus is trapped and Escape cancels).
export function confirmAction(title, text, confirmLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "cancel";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// True (and the console signs out, showing the API's message) when the token was refused.
export function authFailed(answer) {
  if (answer.status !== 401 && answer.status !== 403) return false;
  document.dispatchEvent(new CustomEvent("auth-failed", { detail: answer.message }));
  return true;
}

// Show an API error in a section's alert line, or clear it. No answer at all is not shown here:
// the page's one connection banner says it (three sections, three red lines, said nothing more).
export function showError(id, answer) {
  const line = document.getElementById(id);
  line.textContent = answer && !answer.ok && answer.status !== 0 ? answer.message : "";
}
