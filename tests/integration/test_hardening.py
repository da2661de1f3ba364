"""Security headers, CORS, and the admin token comparison."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.http import auth
from app.store.versions import ModelStore
from tests.support.apps import make_settings, running

ORIGIN = "https://dashboard.example.com"


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/classes", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_configured_origins_only(store: ModelStore) -> None:
    with running(make_settings(store.root, cors_origins=[ORIGIN])) as client:
        allowed = client.get("/classes", headers={"Origin": ORIGIN})
        other = client.get("/classes", headers={"Origin": "https://evil.example.com"})
        preflight = client.options(
            "/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200


def test_error_responses_carry_the_security_headers_too(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("x.jpg", b"junk", "image/jpeg")})
    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/admin/jobs/abc")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"


def test_the_token_is_compared_as_fixed_length_digests_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    secret = "s3cret-token-value-0123456789"
    for given in ("", "s", secret[:-1], secret, secret + "x" * 1000):
        auth._same_secret(given, secret)
    assert seen == [(32, 32)] * 5  # SHA-256 digests: length and prefix of the guess do not matter
    assert auth._same_secret(secret, secret) and not auth._same_secret(secret[:-1], secret)
