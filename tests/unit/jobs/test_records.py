"""Job records on their own: saved atomically, read back newest first, unknown or unsafe ids
refused, progress folded from the trainer's events, interrupted jobs recorded as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.events import Event, EventKind
from app.jobs.records import (
    GUESS_S,
    INTERRUPTED,
    LOG_PAGE_BYTES,
    LOG_TAIL_LINES,
    Job,
    JobNotFound,
    JobRecords,
    JobState,
    plan_phases,
)


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


def test_a_plan_takes_the_recorded_timings_and_guesses_the_rest() -> None:
    recorded = {"scan": 0.1, "features": 127.4, "evaluate": 19.6, "train_head": 5.0, "x": 3}
    plan = plan_phases(recorded, fine_tune=False)
    assert list(plan) == ["scan", "weights", "features", "evaluate", "train_head", "publish"]
    assert plan["features"] == 127.4 and plan["weights"] == GUESS_S["weights"]
    assert "fine_tune" in plan_phases({}, fine_tune=True)


def test_the_whole_jobs_progress_weighs_phases_by_plan_then_by_their_real_time() -> None:
    job = _job("j1", "2026", JobState.RUNNING)
    job.plan = {"scan": 10.0, "features": 50.0, "evaluate": 40.0}
    job.apply(Event(EventKind.PHASE, {"phase": "scan"}, time=1000.0))
    assert job.progress["overall"] == 0.0 and job.progress["remaining_s"] == 100.0
    job.apply(Event(EventKind.PHASE, {"phase": "features"}, time=1030.0))  # scan took 30 s
    assert job.phase_seconds == {"scan": 30.0}
    job.apply(Event(EventKind.PROGRESS, {"done": 1, "total": 2, "fraction": 0.5}))
    # 30 s done and 25 of features' 50: 55 of 120 expected; 25 + 40 s still to go.
    assert job.progress["overall"] == round(55 / 120, 4) and job.progress["remaining_s"] == 65.0
    job.apply(Event(EventKind.PHASE, {"phase": "evaluate"}, time=1070.0))
    job.apply(Event(EventKind.EPOCH, {"epoch": 1, "epochs": 4}))
    assert job.phase_seconds == {"scan": 30.0, "features": 40.0}
    assert job.progress["overall"] == round((70 + 10) / 110, 4)
    assert job.progress["remaining_s"] == 30.0


def test_without_a_plan_the_progress_is_the_phases_own() -> None:
    job = _job("j1", "2026", JobState.RUNNING)
    job.apply(Event(EventKind.PHASE, {"phase": "scan"}, time=1.0))
    assert "overall" not in job.progress


def test_the_whole_log_comes_in_pages_of_bounded_size(tmp_path: Path) -> None:
    records = JobRecords(tmp_path)
    records.save(_job("j1", "2026"))
    records.log_path("j1").write_text("".join(f"line {n}\n" for n in range(250)))
    assert records.log_page("j1", 0, 100) == ([f"line {n}" for n in range(100)], 100, 250)
    assert records.log_page("j1", 200, 100) == ([f"line {n}" for n in range(200, 250)], 250, 250)
    assert records.log_page("j1", 900, 10) == ([], 900, 250)
    wide = "x" * 100_000
    records.log_path("j1").write_text(f"{wide}\n" * 10)
    lines, following, total = records.log_page("j1", 0, 10)
    assert len(lines) == 3 and following == 3 and total == 10  # 256 KB: three 100 KB lines
    assert len(lines) * 100_001 >= LOG_PAGE_BYTES
    with pytest.raises(JobNotFound):
        records.log_page("nope", 0, 10)


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
