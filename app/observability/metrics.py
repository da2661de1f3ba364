"""Prometheus metrics, in a registry of the app's own (no global state: tests build many apps).

Every protocol reports its requests through :meth:`Metrics.observe` and its refusals through
:meth:`Metrics.refused`; the batcher and the model manager report through the other methods.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "flowers_http_requests",
            "Requests by route (a gRPC method's full name), method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "flowers_http_request_duration_seconds",
            "Request latency by route and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.images = Counter("flowers_images_predicted", "Images classified", registry=r)
        self.rejected = Counter(
            "flowers_requests_rejected", "Requests refused, by reason", ["reason"], registry=r
        )
        self.depth = Gauge("flowers_batch_queue_depth", "Images waiting for the model", registry=r)
        self.batch_size = Histogram(
            "flowers_batch_size", "Images per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "flowers_inference_seconds",
            "Model call time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model = Gauge(
            "flowers_model_info",
            "The loaded model: 1 for the version that serves",
            ["version", "engine", "device", "precision", "float_precision"],
            registry=r,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered: its route template (or gRPC method), method and status."""
        labels = {"route": route, "method": method, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)

    def refused(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def queue_depth(self, depth: int) -> None:
        self.depth.set(depth)

    def batch_done(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        self.images.inc(size)

    def model_loaded(
        self, version: int, engine: str, device: str, precision: str, float_precision: str
    ) -> None:
        labels = {
            "version": str(version),
            "engine": engine,
            "device": device,
            "precision": precision,
            "float_precision": float_precision,
        }
        self.model.clear()
        self.model.labels(**labels).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
