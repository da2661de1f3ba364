// The pages' only way to the server: the public API, with the admin token (when given) sent as
// `Authorization: Bearer`. The token lives in this tab's sessionStorage and nowhere else: never in
// a URL, localStorage, a cookie or a log.

const TOKEN_KEY = "flowers.adminToken";

export const adminToken = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// One API call. Resolves (never rejects) to {ok, status, data, message}: `data` is the parsed
// JSON (or a Blob for `as: "blob"`), `message` the API's own error text when not ok.
export async function call(path, { method = "GET", json, form, admin = false, as = "json" } = {}) {
  const headers = { Accept: as === "blob" ? "image/png" : "application/json" };
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
  return { ok: response.ok, status: response.status, data, message };
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
