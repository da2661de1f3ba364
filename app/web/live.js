// Live: the service's own /metrics (Prometheus text), read every 2 s while the console is open
// and the tab visible, turned into rates, latency quantiles and the queue depth, and drawn on a
// canvas over the last two minutes. No external service: the server's counters are the source.

import { call, element } from "/web/api.js";

const EVERY_MS = 2000;
const KEPT = 60; // samples on the chart: two minutes
// The routes that classify, whatever the protocol (REST, V2 REST, V2 gRPC).
const PREDICTING = /predict|infer/i;

let timer = null;
let previous = null; // the last scrape: {at, counters}
const history = []; // [{at, rps, ips, errors, p50, p95, depth}]

export function start() {
  stop();
  tick();
}

export function stop() {
  clearTimeout(timer);
  timer = null;
  previous = null;
  history.length = 0;
}

async function tick() {
  if (document.visibilityState === "visible") {
    const answer = await call("/metrics", { as: "text" });
    if (answer.ok) sample(parse(answer.data));
  }
  timer = setTimeout(tick, EVERY_MS);
}

// {name: [{labels, value}]} from the Prometheus text format.
export function parse(text) {
  const series = {};
  for (const line of String(text).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (series[match[1]] ||= []).push({ labels, value: Number(match[4]) });
  }
  return series;
}

// The q-quantile of a histogram's bucket counts ([[upper bound, cumulative count]], sorted),
// linearly inside its bucket, as Prometheus's histogram_quantile does; null with no count.
export function quantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lowerBound; // the +Inf bucket: its lower edge
      const inBucket = count - lowerCount;
      return inBucket ? lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / inBucket : bound;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

const status4xx = (s) => Number(s.labels.status) >= 400 && Number(s.labels.status) < 500;

function counters(series) {
  const sum = (name, keep) => (series[name] || []).filter(keep).reduce((total, s) => total + s.value, 0);
  const predicting = (s) => PREDICTING.test(s.labels.route || "");
  const buckets = {};
  for (const s of series.flowers_http_request_duration_seconds_bucket || []) {
    if (!predicting(s)) continue;
    const bound = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets[bound] = (buckets[bound] || 0) + s.value;
  }
  return {
    requests: sum("flowers_http_requests_total", predicting),
    errors: sum("flowers_http_requests_total", (s) => predicting(s) && Number(s.labels.status) >= 500),
    refused: sum("flowers_http_requests_total", (s) => predicting(s) && status4xx(s)),
    images: sum("flowers_images_predicted_total", () => true),
    buckets,
    depth: sum("flowers_batch_queue_depth", () => true),
  };
}

function sample(series) {
  const now = { at: performance.now(), counters: counters(series) };
  if (previous) {
    const seconds = (now.at - previous.at) / 1000;
    const delta = (key) => Math.max(0, now.counters[key] - previous.counters[key]);
    const bounds = Object.keys(now.counters.buckets).map(Number).sort((a, b) => a - b);
    const window = bounds.map((bound) => [bound, Math.max(0, now.counters.buckets[bound] - (previous.counters.buckets[bound] || 0))]);
    history.push({
      rps: delta("requests") / seconds,
      ips: delta("images") / seconds,
      errors: delta("errors") / seconds,
      refused: delta("refused") / seconds,
      p50: quantile(0.5, window),
      p95: quantile(0.95, window),
      depth: now.counters.depth,
    });
    if (history.length > KEPT) history.shift();
    render();
  }
  previous = now;
}

const fixed = (value, digits = 1) => (value === null || value === undefined ? "—" : value.toFixed(digits));
const ms = (seconds) => (seconds === null ? "—" : `${Math.round(seconds * 1000)} ms`);

function render() {
  const last = history[history.length - 1];
  const facts = [
    ["Requests/s", fixed(last.rps)],
    ["Images/s", fixed(last.ips)],
    ["p50 latency", ms(last.p50)],
    ["p95 latency", ms(last.p95)],
    ["Errors/s (5xx: failures, overload)", fixed(last.errors)],
    ["Refused/s (4xx: bad input)", fixed(last.refused)],
    ["Queue depth", String(last.depth)],
  ];
  document.getElementById("live-facts").replaceChildren(
    ...facts.flatMap(([term, value]) => [element("dt", { text: term }), element("dd", { text: value, "data-fact": term })]),
  );
  draw();
}

// Images/s (filled) and p95 latency (a line, its own scale) over the last two minutes.
function draw() {
  const canvas = document.getElementById("live-chart");
  const scale = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * scale;
  canvas.height = height * scale;
  const context = canvas.getContext("2d");
  context.scale(scale, scale);
  const style = getComputedStyle(document.documentElement);
  const colour = (name) => style.getPropertyValue(name).trim();
  context.clearRect(0, 0, width, height);
  const step = width / (KEPT - 1);
  const x = (index) => width - (history.length - 1 - index) * step;
  const peak = (key) => Math.max(1e-9, ...history.map((h) => h[key] || 0));
  const ipsPeak = peak("ips");
  const p95Peak = peak("p95");
  context.fillStyle = colour("--track");
  context.beginPath();
  context.moveTo(x(0), height);
  history.forEach((h, i) => context.lineTo(x(i), height - (h.ips / ipsPeak) * (height - 4)));
  context.lineTo(x(history.length - 1), height);
  context.fill();
  context.strokeStyle = colour("--accent");
  context.lineWidth = 2;
  context.beginPath();
  history.forEach((h, i) => {
    const y = height - ((h.p95 || 0) / p95Peak) * (height - 4);
    if (i) context.lineTo(x(i), y);
    else context.moveTo(x(i), y);
  });
  context.stroke();
  const last = history[history.length - 1];
  canvas.setAttribute(
    "aria-label",
    `Last two minutes: up to ${fixed(ipsPeak)} images/s (shaded) and p95 latency up to ${ms(p95Peak)} ` +
      `(line); now ${fixed(last.ips)} images/s, p95 ${ms(last.p95)}.`,
  );
}
