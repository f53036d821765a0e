"""The engine worker's one job API, without a model: results, failures, latest-only progress, latest-wins jobs,
loops that interleave with other jobs, cancellation, and a thread that stops."""

from __future__ import annotations

import threading

import pytest

from mmfa_studio.app.worker import JobFailure, WorkerThread


@pytest.fixture
def worker(qtbot):
    thread = WorkerThread(backend_loader=lambda: pytest.fail("these jobs need no engine"))
    yield thread.worker
    thread.stop()
    assert not thread.thread.isRunning()


def outcome(qtbot, handle):
    """Wait for the job to end; its ``returned`` value, or its JobFailure."""
    ended: list = []
    handle.returned.connect(ended.append)
    handle.errored.connect(ended.append)
    qtbot.waitUntil(lambda: bool(ended), timeout=10_000)
    return ended[0]


def test_a_callable_returns_on_the_gui_thread(worker, qtbot):
    gui = threading.current_thread()
    seen: list = []
    handle = worker.submit(lambda context: seen.append(threading.current_thread()) or 42)
    assert outcome(qtbot, handle) == 42
    assert seen and seen[0] is not gui


def test_a_failure_is_one_line_under_the_job_title(worker, qtbot):
    def broken(context):
        raise ValueError("the file is corrupt\nsecond line")

    failure = outcome(qtbot, worker.submit(broken, title="Cannot open it"))
    assert failure == JobFailure("Cannot open it", "the file is corrupt")


def test_progress_is_latest_only_and_comes_before_the_result(worker, qtbot):
    values: list = []

    def counting(context):
        for i in range(1, 2001):
            context.report_progress(i)
        return "done"

    handle = worker.submit(counting)
    handle.progress.connect(values.append)
    handle.returned.connect(lambda _: values.append("end"))
    qtbot.waitUntil(lambda: "end" in values, timeout=10_000)
    assert values[-2:] == [2000, "end"] and len(values) < 2001  # a slow GUI never queues a backlog


def test_latest_wins_runs_only_the_newest_pending_job(worker, qtbot):
    gate, ran = threading.Event(), []
    worker.submit(lambda context: gate.wait(10))
    handles = [worker.submit(lambda context, i=i: ran.append(i) or i, coalesce="render") for i in range(50)]
    assert worker.pending()[1]
    gate.set()
    assert outcome(qtbot, handles[-1]) == 49  # after the blocker: jobs run in order
    qtbot.waitUntil(lambda: worker.pending() == (0, False))
    assert ran == [49]


def test_a_loop_interleaves_with_jobs_and_stops_when_cancelled(worker, qtbot):
    order: list = []
    released = threading.Event()

    def loop(context):
        try:
            for i in range(10_000):
                order.append(f"step{i}")
                yield i
        finally:
            released.set()  # what the loop holds is released however it ends

    handle = worker.submit(loop)
    frames: list = []
    handle.progress.connect(frames.append)
    qtbot.waitUntil(lambda: len(order) >= 3, timeout=10_000)
    assert outcome(qtbot, worker.submit(lambda context: order.append("job") or "ok")) == "ok"
    qtbot.waitUntil(lambda: len(order) > order.index("job") + 2, timeout=10_000)  # the loop goes on after it
    handle.cancel()
    failure = outcome(qtbot, handle)
    assert failure.cancelled and released.is_set()
    assert frames and frames[-1] < 10_000


def test_a_loop_that_returns_reports_its_value(worker, qtbot):
    def short(context):
        yield 1
        yield 2
        return "the source ended"

    assert outcome(qtbot, worker.submit(short)) == "the source ended"


def test_stop_ends_running_loops_and_joins(qtbot):
    thread = WorkerThread(backend_loader=lambda: pytest.fail("no engine"))
    released = threading.Event()

    def forever(context):
        try:
            while True:
                yield None
        finally:
            released.set()

    thread.worker.submit(forever)
    qtbot.waitUntil(lambda: thread.worker.steps_done > 3, timeout=10_000)
    thread.stop()
    assert not thread.thread.isRunning() and released.is_set()
