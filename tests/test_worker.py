"""The compute worker process and its client, with the real ct-tissues model on the real CT.

Waits are generous (the machine is shared); nothing here is timed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import pytest

from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.ct_tissues import segment_ct_tissues
from ctseg_gui.io import read_image
from ctseg_gui.worker import ComputeClient, JobEvent

WAIT = 120


@pytest.fixture(scope="module")
def ct(abdomen_ct) -> Volume:
    return read_image(abdomen_ct)


@pytest.fixture(scope="module")
def big_ct(ct) -> Volume:
    """The abdomen at twice the resolution (11 M voxels): ct-tissues runs long enough on it for
    a cancel or a kill to land mid-job."""
    array = ct.array.astype(np.int16)
    for axis in range(3):
        array = np.repeat(array, 2, axis=axis)
    return Volume(array, tuple(s / 2 for s in ct.spacing), ct.origin, ct.direction, ct.metadata)


@pytest.fixture(scope="module")
def client():
    statuses: list[str] = []
    with ComputeClient(on_status=statuses.append) as compute:
        compute.statuses = statuses
        assert compute.wait_ready(WAIT)
        yield compute


def _run(job):
    assert job.wait(WAIT), f"job {job} did not end"
    return job


def test_segment_in_worker_matches_in_process_and_reports_progress_in_order(client, ct):
    events: list[JobEvent] = []
    job = _run(client.submit_segment(ct, "ct-tissues", on_event=events.append))
    assert job.state == "finished", job.error
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "result"
    assert set(kinds[1:-1]) == {"progress"} and len(kinds) > 4
    fractions = [e.fraction for e in events if e.kind == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [e.stage for e in events if e.kind == "progress"]
    assert stages.index("finding the body") < stages.index("bone")

    labels = events[-1].result
    assert labels is job.result and labels.image is ct  # on the app's own volume, untouched
    expected = segment_ct_tissues(ct)
    np.testing.assert_array_equal(labels.array, expected.array)
    assert labels.table.to_json() == expected.table.to_json()
    assert job.info["worker_pid"] == client.pid != os.getpid()


@pytest.mark.parametrize(
    "array",
    [
        np.arange(-1000, 1400, dtype=np.int16).reshape(4, 24, 25),
        np.random.default_rng(1).normal(size=(3, 5, 7)).astype(np.float32),
        np.array([[[np.nan, np.inf, -0.0, 1e-300]]]),
        np.random.default_rng(2).integers(0, 2**32, (9, 9, 9), dtype=np.uint32)[:, ::2, ::-1],
        np.zeros((0, 4, 4), dtype=np.uint8),
    ],
    ids=["int16", "float32", "float64-special", "uint32-strided", "empty"],
)
def test_arrays_round_trip_exactly(client, array):
    job = _run(client.submit("echo", {}, {"x": array}))
    assert job.state == "finished", job.error
    back = job.result.arrays["x"]
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert job.result.info["x"]["shape"] == list(array.shape)


def test_cancel_stops_the_job_and_the_worker_stays_up(client, big_ct, ct):
    pid = client.pid
    done_before = _run(client.submit("echo", {}, {})).info["jobs_done"]
    events: list[JobEvent] = []
    asked_at: list[int] = []

    def cancel_when_busy(event: JobEvent) -> None:
        events.append(event)
        if event.kind == "progress" and event.stage == "finding the body":
            asked_at.append(len(events))
            job.cancel()

    job = client.submit_segment(big_ct, on_event=cancel_when_busy)
    _run(job)
    assert job.state == "cancelled" and job.result is None
    assert events[-1].kind == "cancelled"
    assert "result" not in [e.kind for e in events]
    assert [e.kind for e in events[asked_at[0] :]] == ["cancelled"]

    # Same process, and the cancelled job never completed in it (it stopped at a poll point).
    nxt = _run(client.submit_segment(ct))
    assert nxt.state == "finished" and nxt.info["worker_pid"] == pid == client.pid
    assert nxt.info["jobs_done"] == done_before + 1


def test_cancel_a_queued_job_never_runs_it(client, big_ct, ct):
    first = client.submit_segment(big_ct)
    queued_events: list[JobEvent] = []
    queued = client.submit_segment(ct, on_event=queued_events.append)
    queued.cancel()
    assert _run(queued).state == "cancelled"
    assert [e.kind for e in queued_events] == ["cancelled"]
    assert _run(first).state == "finished"


def test_image_is_sent_once_per_worker(client, ct, monkeypatch):
    from ctseg_gui.worker import client as client_module

    written: list[str] = []
    real_write = client_module.write_array
    monkeypatch.setattr(
        client_module,
        "write_array",
        lambda path, a: written.append(path.name) or real_write(path, a),
    )
    first = _run(client.submit_segment(ct))
    second = _run(client.submit_segment(ct))
    assert first.state == second.state == "finished"
    np.testing.assert_array_equal(first.result.array, second.result.array)
    assert written.count("in-image.npy") <= 1  # none at all when an earlier test sent it


def test_errors_come_back_as_messages(client, small_ct):
    pid = client.pid
    volume = read_image(small_ct)
    mr_like = volume.with_array((volume.array - volume.array.min()).astype(np.int16))
    events: list[JobEvent] = []
    job = _run(client.submit_segment(mr_like, on_event=events.append))
    assert job.state == "failed" and events[-1].kind == "error"
    assert "do not look like CT Hounsfield units" in job.error
    assert "Traceback" not in job.error and "\n" not in job.error

    job = _run(client.submit_segment(volume, "no-such-model"))
    assert job.state == "failed" and "no-such-model" in job.error

    job = _run(client.submit("no-such-job"))
    assert job.state == "failed" and "no job called 'no-such-job'" in job.error
    assert client.pid == pid and client.restarts == 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_worker_is_reported_and_restarted(big_ct, ct):
    statuses: list[str] = []
    restarted = threading.Event()

    def on_status(message: str) -> None:
        statuses.append(message)
        if message.startswith("compute worker started") and len(statuses) > 1:
            restarted.set()

    with ComputeClient(on_status=on_status) as compute:
        assert compute.wait_ready(WAIT)
        pid = compute.pid
        events: list[JobEvent] = []

        def kill_when_busy(event: JobEvent) -> None:
            events.append(event)
            if event.kind == "progress" and event.stage == "finding the body":
                os.kill(pid, signal.SIGKILL)

        job = _run(compute.submit_segment(big_ct, on_event=kill_when_busy))
        assert job.state == "failed" and events[-1].kind == "error"
        assert "stopped unexpectedly" in job.error and "SIGKILL" in job.error
        assert "untouched" in job.error
        assert big_ct.array.shape == (224, 202, 244)  # the app's image is still there

        # The same image again: the new worker does not hold it, so the client sends it anew.
        nxt = _run(compute.submit_segment(big_ct))
        assert nxt.state == "finished", nxt.error
        assert nxt.info["worker_pid"] != pid and compute.restarts == 1
        assert restarted.wait(WAIT) and any("SIGKILL" in s for s in statuses)


def test_close_stops_the_worker_and_removes_exchange_files(ct):
    compute = ComputeClient()
    assert compute.wait_ready(WAIT)
    pid = compute.pid
    job = _run(compute.submit_segment(ct))
    roots = list(compute._exchange._roots.values())
    assert roots and all(r.exists() for r in roots)
    assert not any(roots[0].iterdir()), "job files are removed when the job ends"
    compute.close()
    assert job.state == "finished"
    assert not any(r.exists() for r in roots)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_close_during_a_job_ends_it_as_cancelled(big_ct):
    compute = ComputeClient()
    started = threading.Event()
    job = compute.submit_segment(big_ct, on_event=lambda e: e.kind == "progress" and started.set())
    assert started.wait(WAIT)
    compute.close()
    assert job.wait(WAIT) and job.state == "cancelled"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell stand-in for the frozen app")
def test_frozen_app_starts_the_worker_through_its_own_entry(tmp_path, monkeypatch, ct):
    # In the frozen app sys.executable is the app and cannot run `-m`; the worker must come up as
    # `<app> worker --connect ...`. A shell script that runs app/ctseg_app.py stands in for it.
    from pathlib import Path

    entry = Path(__file__).resolve().parent.parent / "app" / "ctseg_app.py"
    app = tmp_path / "ctseg-app"
    app.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{entry}" "$@"\n')
    app.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app))
    with ComputeClient() as compute:
        assert compute.wait_ready(WAIT)
        job = _run(compute.submit_segment(ct))
        assert job.state == "finished", job.error
        cmdline = Path(f"/proc/{compute.pid}/cmdline")
        if cmdline.exists():
            argv = cmdline.read_bytes().split(b"\0")
            assert argv[1].endswith(b"ctseg_app.py") and argv[2:4] == [b"worker", b"--connect"]


def test_a_worker_that_cannot_start_fails_jobs_with_a_message(monkeypatch, ct):
    import ctseg_gui.launch

    broken = [sys.executable, "-c", "import sys; sys.exit(3)"]
    monkeypatch.setattr(ctseg_gui.launch, "self_command", lambda *args: broken)
    statuses: list[str] = []
    with ComputeClient(on_status=statuses.append, autostart=False) as compute:
        job = _run(compute.submit_segment(ct))
        assert job.state == "failed"
        assert "could not start" in job.error and "exit code 3" in job.error
        assert not compute.wait_ready(0.5)
        assert any("could not start" in s for s in statuses)
