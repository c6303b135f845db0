"""The job model (ctseg_gui.core.jobs): one Future-like handle for every kind of background work."""

from __future__ import annotations

import threading
import warnings

import pytest

from ctseg_gui.core.errors import CtsegError, CtsegWarning, JobCancelled
from ctseg_gui.core.jobs import Job, JobEvent, run_in_thread

WAIT = 30


def test_thread_job_reports_progress_then_its_result_to_late_subscribers_too():
    release = threading.Event()

    def work(job: Job, n: int) -> int:
        job.progress("counting", 0.5, data={"n": n})
        release.wait(WAIT)
        return n * 2

    job = run_in_thread(work, 21, kind="count")
    seen: list[JobEvent] = []
    job.subscribe(seen.append)  # subscribed after the job started: past events are replayed
    done: list[Job] = []
    job.add_done_callback(done.append)
    release.set()
    assert job.outcome(WAIT) == 42
    assert job.state == "finished" and job.result == 42 and done == [job]
    assert [e.kind for e in seen] == ["started", "progress", "result"]
    assert seen[1].data == {"n": 21} and seen[1].stage == "counting"
    late: list[Job] = []
    job.add_done_callback(late.append)  # an ended job calls back at once
    assert late == [job]


def test_errors_become_one_line_messages_and_outcome_raises_them(tmp_path):
    def bad_input(job: Job) -> None:
        raise CtsegError("not a CT", tmp_path / "x.nii.gz")

    def bug(job: Job) -> None:
        raise ZeroDivisionError("division by zero")

    first = run_in_thread(bad_input)
    second = run_in_thread(bug)
    assert first.wait(WAIT) and second.wait(WAIT)
    assert first.state == "failed" and first.error == f"{tmp_path / 'x.nii.gz'}: not a CT"
    assert second.error == "ZeroDivisionError: division by zero"
    with pytest.raises(CtsegError, match="not a CT"):
        first.outcome()


def test_cancel_stops_a_polling_job_and_drops_a_result_that_came_too_late():
    started = threading.Event()
    finish = threading.Event()

    def polls(job: Job) -> str:
        started.set()
        while not job.cancel_requested:
            finish.wait(0.01)
        raise JobCancelled("stopped; the partial file stays")

    def ignores(job: Job) -> str:
        started.set()
        finish.wait(WAIT)
        return "too late"

    job = run_in_thread(polls)
    assert started.wait(WAIT)
    job.cancel()
    assert job.wait(WAIT) and job.state == "cancelled" and job.result is None
    assert job.events[-1].message == "stopped; the partial file stays"
    with pytest.raises(JobCancelled):
        job.outcome()

    started.clear()
    other = run_in_thread(ignores)
    assert started.wait(WAIT)
    other.cancel()
    finish.set()
    assert other.wait(WAIT) and other.state == "cancelled" and other.result is None


def test_a_canceller_runs_once_and_only_one_final_event_is_kept():
    calls: list[Job] = []
    job = Job("external", canceller=calls.append)
    job.started()
    job.cancel()
    job.cancel()
    assert calls == [job] and job.cancel_requested
    job.progress("ignored after cancel")
    job.cancelled()
    job.finish("a result after the end")  # dropped: a job ends once
    assert [e.kind for e in job.events] == ["started", "cancelled"]
    assert job.state == "cancelled" and job.result is None


def test_ctseg_warnings_become_warning_events_before_the_result():
    def warns(job: Job) -> str:
        warnings.warn("uneven slice spacing", CtsegWarning, stacklevel=1)
        return "image"

    job = run_in_thread(warns, catch_warnings=True)
    assert job.outcome(WAIT) == "image"
    assert [(e.kind, e.message) for e in job.events[1:]] == [
        ("warning", "uneven slice spacing"),
        ("result", ""),
    ]


def test_a_broken_subscriber_does_not_stop_the_job(capsys):
    job = Job("x")
    job.subscribe(lambda event: 1 / 0)
    job.finish(5)
    assert job.done and job.result == 5
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_without_catch_warnings_a_job_leaves_warnings_to_the_process():
    def warns(job: Job) -> int:
        warnings.warn("library noise", UserWarning, stacklevel=1)
        return 1

    with pytest.warns(UserWarning, match="library noise"):
        job = run_in_thread(warns)
        assert job.wait(WAIT)
    assert [e.kind for e in job.events] == ["started", "result"]
