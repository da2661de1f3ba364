// One banner for the whole page while the server cannot be reached, instead of an error in every
// section: shown when a call gets no answer at all, hidden by the next call that gets one. While
// it shows, /health/live is asked every few seconds, so it clears by itself when the server is back.

const PING_MS = 3000;
let pinging = null;

export function watchConnection() {
  const banner = document.getElementById("offline");
  document.addEventListener("reachable", (event) => {
    if (event.detail) {
      banner.hidden = true;
      clearInterval(pinging);
      pinging = null;
      return;
    }
    banner.hidden = false;
    pinging ??= setInterval(ping, PING_MS);
  });
}

async function ping() {
  try {
    await fetch("/health/live", { cache: "no-store", credentials: "omit" });
    document.dispatchEvent(new CustomEvent("reachable", { detail: true }));
  } catch {
    // still down: the banner stays
  }
}
