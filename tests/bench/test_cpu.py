"""bench.cpu: the kernel's CPU counters by thread, read before and after a load."""

from __future__ import annotations

import os
import threading
import time

import pytest

from bench import cpu

DUMP = """Process 4242: python -m app.serve
Python v3.11.2 (/usr/bin/python3.11)

Thread 4242 (idle): "MainThread"
    select (selectors.py:468)
Thread 4250 (active): "decode_0"
    load (PIL/ImageFile.py:300)
Thread 4251 (idle): "decode_1"
    _worker (concurrent/futures/thread.py:81)
Thread 4260 (active): "inference_0"
    _run (app/ml/engines.py:250)
"""


def test_python_threads_are_named_from_a_py_spy_dump_and_pools_are_grouped() -> None:
    names = cpu.thread_names(DUMP)
    assert names == {4242: "MainThread", 4250: "decode_0", 4251: "decode_1", 4260: "inference_0"}
    assert {cpu.group(name) for name in names.values()} == {"MainThread", "decode", "inference"}


def test_a_thread_that_spins_shows_its_cpu_and_the_split_adds_up() -> None:
    pid = os.getpid()
    spinning: list[int] = []
    spun, measured = threading.Event(), threading.Event()

    def spin() -> None:  # then stays alive: an ended thread's counters leave /proc with it
        spinning.append(threading.get_native_id())
        deadline = time.process_time() + 0.3  # this process's CPU time: spins, never sleeps
        while time.process_time() < deadline:
            pass
        spun.set()
        measured.wait()

    before = cpu.snapshot(pid)
    started = time.perf_counter()
    worker = threading.Thread(target=spin, name="spinner_0")
    worker.start()
    spun.wait()
    after = cpu.snapshot(pid)
    seconds = time.perf_counter() - started
    measured.set()
    worker.join()

    spent = after.threads.get(spinning[0], 0.0) - before.threads.get(spinning[0], 0.0)
    assert spent >= 0.2  # clock ticks: 0.3 s of CPU reads 0.29-0.31
    assert after.own - before.own >= 0.2
    table = cpu.split(before, after, seconds, 10, {spinning[0]: "spinner_0"})
    spinner = next(line for line in table.splitlines() if line.startswith("| server: spinner |"))
    assert float(spinner.split("|")[2]) >= 0.2
    assert "| idle (the machine) |" in table and "| load generator (this process) |" in table


def test_no_images_leaves_the_per_image_column_empty() -> None:
    snap = cpu.Snapshot({1: 1.0}, {"user": 1.0, "idle": 1.0}, 0.5)
    later = cpu.Snapshot({1: 2.0}, {"user": 2.0, "idle": 3.0}, 0.5)
    table = cpu.split(snap, later, 2.0, 0, {})
    assert f"| server: {cpu.ENGINE_THREADS} | 1.00 | - | 0.50 |" in table
    assert "| idle (the machine) | 2.00 | - | 1.00 |" in table


def test_states_split_each_threads_time_into_running_waiting_and_asleep() -> None:
    before = cpu.Snapshot({}, {}, 0.0, {7: (1.0, 0.5), 8: (0.0, 0.0), 9: (2.0, 0.0)})
    after = cpu.Snapshot(
        {}, {}, 0.0, {7: (3.0, 1.5), 8: (0.05, 0.0), 9: (2.0, 0.0), 10: (1.0, 0.0)}
    )
    table = cpu.states(before, after, 10.0, {7: "decode_0", 10: "MainThread"})
    rows = table.splitlines()[2:]
    assert rows == [
        "| MainThread (10) | 0.10 | 0.00 | 0.90 |",  # new since the first snapshot: all counted
        "| decode_0 (7) | 0.20 | 0.10 | 0.70 |",
    ]  # 8 ran 0.5% of the time and 9 not at all: left out; unnamed threads are the engine's
    assert cpu.states(before, before, 10.0, {}).startswith("no scheduler counters")


def test_the_kernels_scheduler_counters_see_a_thread_spin_and_sleep() -> None:
    pid = os.getpid()
    ids: list[int] = []
    done = threading.Event()

    def spin_then_sleep() -> None:
        ids.append(threading.get_native_id())
        deadline = time.perf_counter() + 0.2
        while time.perf_counter() < deadline:
            pass
        done.wait()

    before = cpu.snapshot(pid)
    started = time.perf_counter()
    worker = threading.Thread(target=spin_then_sleep)
    worker.start()
    time.sleep(0.6)
    after = cpu.snapshot(pid)
    seconds = time.perf_counter() - started
    done.set()
    worker.join()
    if not after.scheduled:
        pytest.skip("this kernel keeps no /proc/<pid>/task/<tid>/schedstat")
    line = next(
        row
        for row in cpu.states(before, after, seconds, {ids[0]: "spinner"}).splitlines()
        if row.startswith("| spinner")
    )
    running, waiting, asleep = (float(cell) for cell in line.split("|")[2:5])
    assert running + waiting >= 0.2 / seconds - 0.05  # it spun for 0.2 s of about 0.6
    assert asleep >= 0.3  # then waited on an event
