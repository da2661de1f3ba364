"""Prometheus metrics: one observe() for every protocol, the refusals by reason, the batches and
the loaded model, each app in a registry of its own."""

from __future__ import annotations

from app.observability.metrics import Metrics


def test_requests_of_every_protocol_are_observed_alike() -> None:
    metrics = Metrics()
    metrics.observe("/predict", "POST", 200, 0.02)
    metrics.observe("/inference.GRPCInferenceService/ModelInfer", "GRPC", 503, 0.001)
    text = metrics.render().decode()
    assert 'flowers_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    grpc = 'method="GRPC",route="/inference.GRPCInferenceService/ModelInfer",status="503"'
    assert f"flowers_http_requests_total{{{grpc}}} 1.0" in text
    assert f'flowers_http_request_duration_seconds_bucket{{le="0.005",{grpc}}} 1.0' in text


def test_batches_count_images_and_the_loaded_model_replaces_the_last() -> None:
    metrics = Metrics()
    metrics.batch_done(6, 0.1)
    metrics.queue_depth(3)
    metrics.model_loaded(1, "openvino", "CPU", "int8", "bf16")
    metrics.model_loaded(2, "tensorflow", "GPU:0 (H200)", "f32", "f32")
    text = metrics.render().decode()
    assert "flowers_images_predicted_total 6.0" in text
    assert "flowers_batch_queue_depth 3.0" in text
    assert 'version="1"' not in text
    loaded = 'device="GPU:0 (H200)",engine="tensorflow",float_precision="f32",precision="f32"'
    assert f'flowers_model_info{{{loaded},version="2"}} 1.0' in text


def test_each_instance_keeps_its_own_counts() -> None:
    first, second = Metrics(), Metrics()
    first.refused("overloaded")
    assert "overloaded" not in second.render().decode()
