"""Settings: one pydantic-settings class, read from ``FLOWERS_*`` environment variables.

Every field is documented here; the configuration page's table (docs/configuration.md) is checked
against this class by ``tests/unit/test_config.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import tokens
from app.imaging import DEFAULT_MAX_PIXELS

# Room for a multipart body's boundaries and part headers beyond its files' bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class Settings(BaseSettings):
    """Service and training settings (env prefix ``FLOWERS_``)."""

    model_config = SettingsConfigDict(env_prefix="FLOWERS_", extra="ignore")

    model_store: Path = Field(Path("model_store"), description="Folder of model versions.")
    data_dir: Path | None = Field(
        None,
        description="Dataset folder (class sub-folders) for training, retraining and "
        "/admin/dataset; unset: the TensorFlow flower_photos download.",
    )
    eval_dir: Path | None = Field(
        None,
        description="Evaluation folder (class sub-folders) of labelled photos never trained on: "
        "every version is scored on it at publishing, and if_better compares on it; unset: none.",
    )
    feature_cache: Path | None = Field(
        None, description="Backbone feature cache; unset: <model_store>/.cache/features."
    )
    engine: Literal["auto", "tensorflow", "openvino"] = Field(
        "auto", description="Inference engine; auto: OpenVINO on CPU when available."
    )
    tta: Literal["off", "flip"] = Field(
        "off",
        description="Test-time augmentation: flip averages each photo's probabilities with its "
        "mirror image's (twice the compute; each version's cross-validation measures the gain, "
        "metrics.tta_flip).",
    )
    engine_precision: Literal["auto", "f32", "bf16", "int8"] = Field(
        "auto",
        description="OpenVINO's arithmetic: auto (int8 where the version has an INT8 IR that "
        "kept the accuracy and the CPU has VNNI or AMX, else bf16 where the CPU has it, else "
        "f32), f32 (matches Keras to 1e-5), bf16 (faster where supported; same classes, "
        "probabilities within 0.08), or int8 (the version's INT8 IR; an error without one; its "
        "layers kept in float run in bf16 only where publishing checked them in bf16, else f32).",
    )
    engine_streams: Annotated[int, Field(ge=0, le=16)] | Literal["auto"] = Field(
        1,
        description="OpenVINO's streams: batches computed at once, each on its share of the "
        "cores. 1: its latency mode, one batch at a time on every core; 0: its throughput mode "
        "with the streams it picks for this CPU (2 on 2 cores); n: n streams; auto: both (the IR "
        "compiled twice), a batch that runs alone on every core, batches that overlap one stream "
        "each. On 2 cores, INT8, with FLOWERS_MAX_BATCH_SIZE=4: auto served 13-18% more images/s "
        "than 1 at 16 clients and up to 2% fewer at 1 client, where 0 served a third fewer "
        "(docs/benchmarks.md).",
    )
    max_batch_size: int = Field(16, ge=1, le=256, description="Largest batch the batcher forms.")
    max_batch_delay_ms: float = Field(
        4.0, ge=0, le=1000, description="Longest wait after a batch's first image before it runs."
    )
    decode_turns_ms: float = Field(
        50.0,
        ge=0,
        le=1000,
        description="An engine on the CPU computing one batch at a time (FLOWERS_ENGINE_STREAMS="
        "1): decodes wait while a batch computes, and a batch waits up to this long after its "
        "first image for the decodes under way, so that the two take turns on the cores instead "
        "of slowing each other. 0: side by side. On 2 cores, INT8, 16 clients: 14% more images/s "
        "than 0, the same at 1 client (docs/benchmarks.md).",
    )
    queue_limit: int = Field(
        256, ge=1, description="Images that may wait for the model; beyond it: 503 + Retry-After."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="A request waiting longer for its predictions gets 504."
    )
    max_upload_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted image file, in bytes (413)."
    )
    upload_timeout_s: float = Field(
        15.0, gt=0, description="Longest pause between two chunks of an upload; slower: 408."
    )
    upload_min_rate_bytes_s: int = Field(
        16 * 1024,
        ge=0,
        description="Slowest average rate of an upload, in bytes per second, past its first "
        "FLOWERS_UPLOAD_TIMEOUT_S: a body that arrives slower is cut (408, connection closed); "
        "0: no minimum.",
    )
    max_files_per_request: int = Field(16, ge=1, le=1024, description="Most images per request.")
    header_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="A request's line and headers must arrive within this time of its first "
        "byte; slower: 408, connection closed.",
    )
    max_connections: int = Field(
        2048,
        ge=16,
        description="Open connections at most; a complete request arriving at the limit closes "
        "the connections that waited longest with no request in progress.",
    )
    max_inflight_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory budget for upload bodies in flight; a request whose declared size "
        "does not fit is refused at once (503 + Retry-After), before its body is read.",
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="Largest image (width x height) decoded (413)."
    )
    max_request_pixels: int = Field(
        64_000_000,
        ge=1,
        description="Most pixels the images of one request may take to decode (a JPEG counts "
        "at the reduced scale it is decoded at); more: 413.",
    )
    decode_budget_pixels: int = Field(
        160_000_000,
        ge=1,
        description="Pixels the decode pool may owe, every request together; an image that "
        "does not fit: 503 + Retry-After, so the decoding queued ahead of any image is bounded.",
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin/*; unset: the admin API is disabled (403)."
    )
    retrain_weights: str = Field(
        "imagenet",
        description="Backbone weights for retrain jobs: imagenet, none, or a .h5 path.",
    )
    keep_versions: int = Field(
        0,
        ge=0,
        description="Retention: after each publish, keep the newest N versions plus the active "
        "one and delete the rest; 0: keep every version.",
    )
    max_flags: int = Field(
        200,
        ge=0,
        le=100_000,
        description="Most flags (photos anyone says are misclassified) waiting for review; "
        "beyond it: 503; 0: flagging is off.",
    )
    flags_per_minute: int = Field(
        10, ge=1, le=10_000, description="Most flags one client (IP address) may send a minute."
    )
    poll_interval_s: float = Field(
        5.0, ge=0, description="How often the store's active pointer is re-read; 0: never."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list); empty: CORS off."
    )
    grpc_max_connections: int = Field(
        256,
        ge=1,
        description="Open connections to the gRPC port at most (its own cap: they never take "
        "HTTP's file descriptors); a connection idle for 60 s, or whose HTTP/2 handshake takes "
        "longer than FLOWERS_HEADER_TIMEOUT_S, is closed.",
    )
    grpc_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the Open Inference Protocol gRPC server; unset or empty: no gRPC "
        "server.",
    )
    shutdown_drain_s: float = Field(
        10.0, ge=0, description="On SIGTERM, how long queued images may take to finish."
    )

    @field_validator("grpc_port", mode="before")
    @classmethod
    def _empty_port_is_off(cls, port: object) -> object:
        # The container image sets a port; FLOWERS_GRPC_PORT= (empty) turns gRPC off again.
        return None if isinstance(port, str) and not port.strip() else port

    @field_validator("engine_streams", mode="before")
    @classmethod
    def _streams_are_auto_or_a_count(cls, streams: object) -> object:
        # a union's first error would say "a valid integer" and hide auto
        if isinstance(streams, str):
            streams = streams.strip()
            if streams != "auto" and not streams.isdigit():
                raise ValueError(f"auto or a number of streams from 0 to 16, not {streams!r}")
            return streams if streams == "auto" else int(streams)
        return streams

    @field_validator("admin_token")
    @classmethod
    def _refuse_placeholder_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value():
            return None
        weak = tokens.weakness(token.get_secret_value())
        if weak is not None:
            raise ValueError(
                f"FLOWERS_ADMIN_TOKEN is too weak ({weak}): it must be a random secret of at "
                f"least {tokens.MIN_LENGTH} characters, e.g. `openssl rand -hex 32`"
            )
        return token

    @model_validator(mode="after")
    def _decode_budget_fits_one_full_request(self) -> Settings:
        if self.decode_budget_pixels < self.max_request_pixels:
            raise ValueError(
                f"FLOWERS_DECODE_BUDGET_PIXELS ({self.decode_budget_pixels:,}) must hold at least "
                f"one full request: FLOWERS_MAX_REQUEST_PIXELS = {self.max_request_pixels:,}"
            )
        return self

    @model_validator(mode="after")
    def _budget_fits_one_full_request(self) -> Settings:
        largest = self.max_files_per_request * self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        if self.max_inflight_bytes < largest:
            raise ValueError(
                f"FLOWERS_MAX_INFLIGHT_BYTES ({self.max_inflight_bytes:,}) must hold at least one "
                "full request: FLOWERS_MAX_FILES_PER_REQUEST x FLOWERS_MAX_UPLOAD_BYTES + 64 KiB "
                f"= {largest:,}"
            )
        return self

    def feature_cache_dir(self, model_store: Path | None = None) -> Path:
        """The feature cache folder: the setting, else ``.cache/features`` inside the store."""
        return self.feature_cache or (model_store or self.model_store) / ".cache" / "features"


class SettingsError(ValueError):
    """A FLOWERS_* variable holds a value the service refuses; the message says which and why."""


def load_settings() -> Settings:
    """The settings from the environment, or SettingsError naming the first bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = f"FLOWERS_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        named = message.startswith("FLOWERS_")
        raise SettingsError(message if named else f"{name}: {message}") from None


def documented_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else json.dumps(default, default=str).strip('"')
        rows.append((f"FLOWERS_{name.upper()}", shown, field.description or ""))
    return rows


def help_epilog() -> str:
    """The settings as ``--help`` lists them: each variable with its default."""
    lines = ["settings (environment variables; docs/configuration.md says more):"]
    lines += [f"  {env}={default}" for env, default, _ in documented_settings()]
    return "\n".join(lines)


def markdown_table() -> str:
    lines = ["| Environment variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {text} |" for env, default, text in documented_settings()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
