// The pages' only way to the server: the public API, with the admin token (when given) sent as
// `Authorization: Bearer`. The token lives in this tab's sessionStorage and nowhere else: never in
// a URL, localStorage, a cookie or a log.

const TOKEN_KEY = "flowers.adminToken";

export const adminToken = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// Answers worth another try: the server is starting or busy (503, 429: their Retry-After says
// when), a proxy's blip (502, 504), or no answer at all (status 0: the network, or a server down).
export const RETRYABLE = new Set([0, 429, 502, 503, 504]);
const RETRY_AFTER_CAP_S = 30; // a longer Retry-After is shown to the user, not waited out

// One API call. Resolves (never rejects) to {ok, status, data, message, attempts}: `data` is the
// parsed JSON (or a Blob for `as: "blob"`), `message` the API's own error text when not ok.
// With `retries`, a retryable answer is tried again after its Retry-After (capped), else after
// a back-off of 0.5, 1, 2, 4 … s with jitter; only the last answer is returned. Every answer,
// or its absence, is announced to the page as a "reachable" event (the connection banner).
// `onUpload(fraction)`, where given, follows the request body as it is sent (XMLHttpRequest: fetch
// cannot report an upload's progress).
export async function call(path, { method = "GET", json, form, admin = false, as = "json", retries = 0, onUpload } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const answer = onUpload
      ? await sendWithProgress(path, { method, form, admin, onUpload })
      : await callOnce(path, { method, json, form, admin, as });
    document.dispatchEvent(new CustomEvent("reachable", { detail: answer.status !== 0 }));
    answer.attempts = attempt + 1;
    if (answer.ok || !RETRYABLE.has(answer.status) || attempt >= retries) return answer;
    if (answer.retryAfter > RETRY_AFTER_CAP_S) return answer;
    const backoff = answer.retryAfter ?? Math.min(8, 0.5 * 2 ** attempt) * (0.75 + Math.random() / 2);
    await sleep(backoff * 1000);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function callOnce(path, { method, json, form, admin, as }) {
  const headers = { Accept: { blob: "image/png", text: "text/plain" }[as] || "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const token = adminToken.get();
  if (admin && token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
  } catch (error) {
    return { ok: false, status: 0, data: null, message: `The server cannot be reached (${error.message}).` };
  }
  const isJson = (response.headers.get("content-type") || "").includes("json");
  let data = null;
  try {
    data = response.ok && as === "blob" ? await response.blob() : isJson ? await response.json() : await response.text();
  } catch {
    data = null;
  }
  const message = response.ok ? "" : errorMessage(data, response.status);
  return { ok: response.ok, status: response.status, data, message, retryAfter: retryAfterOf(response.headers.get("retry-after")) };
}

function sendWithProgress(path, { method, form, admin, onUpload }) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open(method, path);
    request.setRequestHeader("Accept", "application/json");
    const token = adminToken.get();
    if (admin && token) request.setRequestHeader("Authorization", `Bearer ${token}`);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onUpload(event.loaded / event.total);
    });
    request.addEventListener("error", () =>
      resolve({ ok: false, status: 0, data: null, message: "The server cannot be reached (the upload failed)." }),
    );
    request.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(request.responseText);
      } catch {
        data = request.responseText;
      }
      const ok = request.status >= 200 && request.status < 300;
      resolve({
        ok,
        status: request.status,
        data,
        message: ok ? "" : errorMessage(data, request.status),
        retryAfter: retryAfterOf(request.getResponseHeader("retry-after")),
      });
    });
    request.send(form);
  });
}

// A Retry-After header's seconds (this API sends delta-seconds), or undefined.
function retryAfterOf(header) {
  const seconds = Number.parseInt(header || "", 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

// The API's error text: {"detail": "..."} or FastAPI's 422 list of {loc, msg}.
export function errorMessage(data, status) {
  const detail = data && typeof data === "object" ? data.detail : null;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const where = (item.loc || []).filter((part) => part !== "body").join(".");
        return where ? `${where}: ${item.msg}` : item.msg;
      })
      .join("; ");
  }
  return `The server answered HTTP ${status}.`;
}

// Small DOM helper: element(tag, {class, text, attrs...}, children). Text is always set as text,
// never parsed as HTML, so file and class names from users cannot inject markup.
export function element(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export function percent(value, digits = 1) {
  return `${(value * 100).toFixed(digits)}%`;
}

// "1 version", "2 versions".
export function plural(count, noun, many = `${noun}s`) {
  return `${count} ${count === 1 ? noun : many}`;
}

export function bytes(count) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function when(iso) {
  if (!iso) return "unknown";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

// Run `work` on each item with at most `limit` running at once.
export async function eachLimited(items, limit, work) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await work(queue.shift());
  });
  await Promise.all(workers);
}
