"""The one refusal table: every error a client can cause is mapped, by its nearest base class,
to a status the API documents; what is not mapped is an internal error that leaks nothing."""

from __future__ import annotations

import logging

import pytest

from app import errors, imaging
from app.errors import INTERNAL, TABLE, refusal_of, refuse
from app.http.errors import DESCRIPTIONS
from app.inference.predictor import ImageRejected
from app.observability.metrics import Metrics
from app.v2.dataplane import UnknownModel
from app.v2.types import InvalidInferRequest


def test_every_status_in_the_table_is_documented() -> None:
    assert {refusal.status for refusal in TABLE.values()} <= set(DESCRIPTIONS)


def test_only_refusals_that_can_pass_carry_retry() -> None:
    retried = {refusal.status for refusal in TABLE.values() if refusal.retry}
    assert retried == {503, 429}  # busy, or too many flags from this client: both pass in time


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (InvalidInferRequest("bad"), 400, "malformed_upload"),  # a MalformedUpload
        (UnknownModel("resnet"), 404, "not_found"),  # a VersionNotFound
        (ImageRejected("a.jpg", imaging.ImageTooLarge("too big")), 413, "image_too_large"),
        (errors.UploadStalled("slow"), 408, "upload_stalled"),
    ],
)
def test_an_error_takes_the_entry_of_its_nearest_mapped_class(
    error: Exception, status: int, reason: str
) -> None:
    refusal = refusal_of(error)
    assert (refusal.status, refusal.reason) == (status, reason)


def test_an_unmapped_error_is_internal_and_its_words_are_not_shown() -> None:
    error = KeyError("secret internals")
    assert refusal_of(error) is INTERNAL
    assert errors.message(error, INTERNAL) == "internal server error"
    assert errors.message(errors.NotJson("send JSON"), refusal_of(errors.NotJson())) == "send JSON"


def test_a_refusal_is_counted_by_reason_and_only_server_faults_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="app.errors"):
        refuse(imaging.CorruptImage("not an image"), metrics)
        refuse(KeyError("a bug"), metrics)
    text = metrics.render().decode()
    assert 'flowers_requests_rejected_total{reason="corrupt_image"} 1.0' in text
    assert 'flowers_requests_rejected_total{reason="internal"} 1.0' in text
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert caplog.records[0].exc_info is not None  # the bug's traceback is kept
