"""Job records on their own: saved atomically, read back newest first, unknown or unsafe ids
refused, progress folded from the trainer's events, interrupted jobs recorded as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.events import Event, EventKind
from app.jobs.records import INTERRUPTED, LOG_TAIL_LINES, Job, JobNotFound, JobRecords, JobState


def _job(job_id: str, created_at: str, state: JobState = JobState.SUCCEEDED) -> Job:
    return Job(id=job_id, state=state, params={"epochs": 1}, created_at=created_at)


def test_records_are_read_back_newest_first(tmp_path: Path) -> None:
    records = JobRecords(tmp_path / "jobs")
    for job_id, created in (("a1", "2026-01-01"), ("b2", "2026-03-01"), ("c3", "2026-02-01")):
        records.save(_job(job_id, created))
    assert [job.id for job in records.all()] == ["b2", "c3", "a1"]
    assert records.get("c3").created_at == "2026-02-01"


def test_a_missing_folder_holds_no_jobs(tmp_path: Path) -> None:
    assert JobRecords(tmp_path / "none").all() == []


@pytest.mark.parametrize("job_id", ["nope", "../etc", "a/b", "x" * 65, ""])
def test_an_unknown_or_unsafe_id_is_not_found(tmp_path: Path, job_id: str) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("known", "2026"))
    with pytest.raises(JobNotFound):
        records.get(job_id)


def test_a_damaged_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("good", "2026"))
    (tmp_path / "bad.json").write_text("{not json")
    assert [job.id for job in records.all()] == ["good"]


def test_a_job_comes_with_the_last_lines_of_its_log_which_is_not_copied_into_it(
    tmp_path: Path,
) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("j1", "2026"))
    lines = [f"line {i}" for i in range(LOG_TAIL_LINES + 10)]
    records.log_path("j1").write_text("\r\n".join(lines))
    assert records.get("j1").log_tail == lines[-LOG_TAIL_LINES:]
    assert '"log_tail": []' in (tmp_path / "j1.json").read_text()


def test_the_list_has_each_jobs_log_tail_as_the_job_itself_does(tmp_path: Path) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("running", "2027", JobState.RUNNING))
    records.save(_job("done", "2026"))
    records.log_path("running").write_text("[features] 1238 photos\n  [####] 512/1238\n")
    listed = {job.id: job.log_tail for job in records.all()}
    assert listed == {"running": ["[features] 1238 photos", "  [####] 512/1238"], "done": []}
    assert listed["running"] == records.get("running").log_tail


def test_a_long_log_is_read_from_its_end(tmp_path: Path) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("j1", "2026"))
    lines = [f"line {i} " + "x" * 200 for i in range(20_000)]  # 4 MB
    records.log_path("j1").write_text("\n".join(lines))
    assert records.get("j1").log_tail == lines[-LOG_TAIL_LINES:]


def test_events_fold_into_the_progress() -> None:
    job = _job("j1", "2026", JobState.RUNNING)
    job.apply(Event(EventKind.PHASE, {"phase": "features", "detail": "1238 photos"}))
    job.apply(Event(EventKind.PROGRESS, {"done": 3, "total": 4, "fraction": 0.75}))
    assert job.progress == {
        "phase": "features",
        "detail": "1238 photos",
        "fraction": 0.75,
        "done": 3,
        "total": 4,
    }
    job.apply(Event(EventKind.EPOCH, {"epoch": 1, "epochs": 4, "metrics": {"accuracy": 0.5}}))
    assert job.progress["fraction"] == 0.25 and job.progress["metrics"] == {"accuracy": 0.5}


def test_jobs_left_running_are_failed_as_interrupted_unless_alive_elsewhere(
    tmp_path: Path,
) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("done", "2026-01", JobState.SUCCEEDED))
    records.save(_job("mine", "2026-02", JobState.RUNNING))
    records.save(_job("theirs", "2026-03", JobState.QUEUED))
    interrupted = records.fail_interrupted(frozenset({"theirs"}))
    assert [job.id for job in interrupted] == ["mine"]
    mine = records.get("mine")
    assert mine.state is JobState.FAILED and mine.error == INTERRUPTED and mine.finished_at
    assert records.get("theirs").state is JobState.QUEUED
    assert records.active() is not None and records.active().id == "theirs"  # type: ignore[union-attr]
