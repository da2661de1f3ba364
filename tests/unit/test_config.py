from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import (
    Settings,
    SettingsError,
    documented_settings,
    load_settings,
    markdown_table,
)
from tests.conftest import REPO


def test_settings_come_from_flowers_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERS_MODEL_STORE", "/srv/store")
    monkeypatch.setenv("FLOWERS_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("FLOWERS_CORS_ORIGINS", '["https://example.com"]')
    settings = Settings()
    assert settings.model_store == Path("/srv/store")
    assert settings.max_batch_size == 8
    assert settings.cors_origins == ["https://example.com"]


@pytest.mark.parametrize(
    "bad", ["changeme", "secret", "too-short", "changeme-changeme-changeme", "admin-token-123456"]
)
def test_placeholder_short_or_weak_admin_tokens_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="FLOWERS_ADMIN_TOKEN is too weak"):
        Settings(admin_token=bad)


def test_an_empty_admin_token_means_disabled() -> None:
    assert Settings(admin_token="").admin_token is None


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Settings(max_batch_size=0)


def test_feature_cache_defaults_to_the_store() -> None:
    assert Settings(model_store=Path("s")).feature_cache_dir() == Path("s/.cache/features")
    assert Settings(feature_cache=Path("/c")).feature_cache_dir() == Path("/c")


def test_every_setting_is_documented_on_the_configuration_page() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, "regenerate the table with: python -m app.config"
    assert len(documented_settings()) == len(Settings.model_fields)
    assert all(description for _, _, description in documented_settings())


def test_a_bad_variable_is_one_line_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERS_MAX_BATCH_SIZE", "0")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value) == "FLOWERS_MAX_BATCH_SIZE: Input should be greater than or equal to 1"
    monkeypatch.delenv("FLOWERS_MAX_BATCH_SIZE")
    monkeypatch.setenv("FLOWERS_ADMIN_TOKEN", "short")
    with pytest.raises(SettingsError, match=r"^FLOWERS_ADMIN_TOKEN is too weak"):
        load_settings()


def test_engine_streams_are_auto_or_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().engine_streams == 1  # the default: latency mode
    for value, parsed in (("auto", "auto"), (" 2 ", 2), ("0", 0), ("1", 1)):
        monkeypatch.setenv("FLOWERS_ENGINE_STREAMS", value)
        assert load_settings().engine_streams == parsed
    for value, error in (
        ("fast", "auto or a number of streams from 0 to 16, not 'fast'"),
        ("-1", "auto or a number of streams from 0 to 16, not '-1'"),
        ("17", "Input should be less than or equal to 16"),
    ):
        monkeypatch.setenv("FLOWERS_ENGINE_STREAMS", value)
        with pytest.raises(SettingsError) as raised:
            load_settings()
        assert str(raised.value) == f"FLOWERS_ENGINE_STREAMS: {error}"


@pytest.mark.parametrize("command", ["app.serve", "app.train"])
def test_the_clis_refuse_a_short_admin_token_in_one_line(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", command],
        env={**os.environ, "FLOWERS_ADMIN_TOKEN": "short"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: FLOWERS_ADMIN_TOKEN is too weak (shorter than 16 characters): it must be a "
        "random secret of at least 16 characters, e.g. `openssl rand -hex 32`"
    ]
