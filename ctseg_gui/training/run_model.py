"""A fine-tuning run as the app sees it: a child process, its events, its curves. Qt-free.

The run is ``ctseg train SPEC.json --json [--resume]`` started by the shared launcher
(:func:`ctseg_gui.launch.start_child`); a reader thread turns each JSON line of its stdout into a
typed event (:func:`parse_event`) and hands it on through a :class:`~ctseg_gui.core.jobs.Job`:
``started`` and every record as ``progress`` (the record in ``data``), ``warning`` as a warning,
``done`` as the result, ``cancelled`` and ``error`` as the job's end. Stop is SIGTERM (the child
writes a checkpoint and exits); resume starts the same spec again with ``--resume``.
:class:`TrainingRun` keeps what a panel draws (loss and Dice curves, ETA, the log) and
:class:`TrainingDataset` the (CT, label) pairs, refusing a bad pair with one clear line.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.jobs import Job
from ctseg_gui.launch import describe_exit, start_child

SPEC_FILE = "spec.json"


# ---- typed events (the contract of ``ctseg train --json``) -------------------------------------
@dataclass(frozen=True)
class Started:
    """The data are checked; training begins (at ``iteration`` when resumed)."""

    iteration: int = 0
    max_iterations: int = 0
    resumed: bool = False
    device: str = "cpu"
    record: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Iteration:
    """One optimisation step."""

    iteration: int
    epoch: int = 0
    loss: float | None = None
    lr: float | None = None
    sec_per_iter: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class Validation:
    """Dice per class on the validation cases (None where a class is absent)."""

    iteration: int
    dice: dict[str, float | None] = field(default_factory=dict)
    mean_dice: float | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint was written."""

    iteration: int
    path: str = ""


@dataclass(frozen=True)
class Done:
    """The run finished; its bundle (installed as ``model_id`` when the spec asked)."""

    iteration: int
    bundle: str = ""
    model_id: str | None = None


@dataclass(frozen=True)
class Notice:
    """``warning``, ``error`` or ``cancelled``: a line for the user."""

    kind: str
    message: str = ""
    iteration: int | None = None
    path: str | None = None


TrainingEvent = Started | Iteration | Validation | Checkpoint | Done | Notice


def parse_event(record: dict[str, Any]) -> TrainingEvent | None:
    """The typed event of one JSON record; None for a kind this app does not know."""
    kind = record.get("event")
    n = int(record.get("iteration") or 0)
    if kind == "iteration":
        return Iteration(
            n,
            int(record.get("epoch") or 0),
            record.get("loss"),
            record.get("lr"),
            record.get("sec_per_iter"),
            record.get("eta_s"),
        )
    if kind == "validation":
        return Validation(n, dict(record.get("dice") or {}), record.get("mean_dice"))
    if kind == "checkpoint":
        return Checkpoint(n, str(record.get("path", "")))
    if kind == "done":
        return Done(n, str(record.get("bundle", "")), record.get("model_id"))
    if kind == "started":
        return Started(
            n,
            int(record.get("max_iterations") or 0),
            bool(record.get("resumed")),
            str(record.get("device") or "cpu"),
            dict(record),
        )
    if kind in ("warning", "error", "cancelled"):
        message = str(record.get("message") or "")
        if kind == "cancelled" and not message:
            message = f"stopped at iteration {n}; resume continues from the checkpoint"
        return Notice(kind, message, n if "iteration" in record else None, record.get("path"))
    return None


def read_events(path: str | Path) -> list[TrainingEvent]:
    """The events of a recorded ``events.jsonl`` (lines that are not JSON are skipped)."""
    events = []
    for line in Path(path).read_text().splitlines():
        try:
            event = parse_event(json.loads(line))
        except (ValueError, TypeError, AttributeError):
            continue
        if event is not None:
            events.append(event)
    return events


def describe(event: TrainingEvent) -> str:
    """One log line for ``event``."""
    if isinstance(event, Iteration):
        loss = "?" if event.loss is None else f"{event.loss:.4f}"
        return f"iteration {event.iteration}: loss {loss}"
    if isinstance(event, Validation):
        mean = "n/a" if event.mean_dice is None else f"{event.mean_dice:.3f}"
        parts = ", ".join(f"{k} {v:.3f}" for k, v in event.dice.items() if v is not None)
        return f"validation at {event.iteration}: mean Dice {mean}" + (
            f" ({parts})" if parts else ""
        )
    if isinstance(event, Checkpoint):
        return f"checkpoint at {event.iteration}: {event.path}"
    if isinstance(event, Done):
        installed = f", installed as {event.model_id}" if event.model_id else ""
        return f"done at {event.iteration}: bundle {event.bundle}{installed}"
    if isinstance(event, Started):
        how = "resumed at" if event.resumed else "started at"
        return f"{how} iteration {event.iteration} of {event.max_iterations} on {event.device}"
    return f"{event.kind}: {event.message}"


# ---- the run -----------------------------------------------------------------------------------
class TrainingRun:
    """One run folder: start, stop and resume its training process; keep its curves.

    Parameters
    ----------
    spec
        The spec as a JSON object (``run_dir`` required); written to ``run_dir/spec.json``.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        if not spec.get("run_dir"):
            raise CtsegError("the spec names no run_dir")
        self.spec = dict(spec)
        self.run_dir = Path(spec["run_dir"]).expanduser()
        self.losses: list[tuple[int, float]] = []
        self.dice: list[tuple[int, float]] = []
        self.log: list[str] = []
        self.checkpoint: Checkpoint | None = None
        self.done: Done | None = None
        self.started: Started | None = None
        self.eta_s: float | None = None
        self.iteration = 0
        self.job: Job | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)

    @property
    def running(self) -> bool:
        """Whether the training process is under way."""
        return self.job is not None and not self.job.done

    @property
    def holds_gpu(self) -> bool:
        """Whether the running process trains on a CUDA device."""
        return self.running and self.started is not None and self.started.device.startswith("cuda")

    @property
    def can_resume(self) -> bool:
        """Whether a stopped (or failed) run left a checkpoint to continue from."""
        return not self.running and self.done is None and self.checkpoint is not None

    def start(self, resume: bool = False) -> Job:
        """Start the training process (``--resume``: continue from the last checkpoint).

        Raises
        ------
        CtsegError
            A run is already under way, or the process could not be started.
        """
        if self.running:
            raise CtsegError("this training run is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.run_dir / SPEC_FILE
        spec_path.write_text(json.dumps(self.spec, indent=1))
        args = [str(spec_path), "--json"] + (["--resume"] if resume else [])
        job = Job("train", canceller=self._terminate)
        self.job, self.done = job, None
        self._stderr.clear()
        try:
            self._proc = start_child("train", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            job.fail(f"could not start the training process: {error}")
            return job
        job.started()
        proc = self._proc
        threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
        threading.Thread(
            target=self._read, args=(job, proc), name="ctseg-train", daemon=True
        ).start()
        return job

    def stop(self) -> None:
        """Ask the process to checkpoint and exit (SIGTERM); the job ends as cancelled."""
        if self.job is not None:
            self.job.cancel()

    def apply(self, event: TrainingEvent) -> None:
        """Fold ``event`` into the curves, ETA and log (the reader does this for live runs)."""
        if isinstance(event, Started):
            self.started = event
            if event.resumed:  # the child cut events.jsonl back to the checkpoint: so do we
                self.losses = [p for p in self.losses if p[0] <= event.iteration]
                self.dice = [p for p in self.dice if p[0] <= event.iteration]
        elif isinstance(event, Iteration):
            self.iteration = event.iteration
            self.eta_s = event.eta_s
            if event.loss is not None:
                self.losses.append((event.iteration, float(event.loss)))
        elif isinstance(event, Validation) and event.mean_dice is not None:
            self.dice.append((event.iteration, float(event.mean_dice)))
        elif isinstance(event, Checkpoint):
            self.checkpoint = event
        elif isinstance(event, Done):
            self.done = event
            self.eta_s = 0.0
        elif isinstance(event, Notice) and event.kind == "cancelled" and event.path:
            self.checkpoint = Checkpoint(event.iteration or self.iteration, event.path)
        if not isinstance(event, Iteration) or event.iteration % 10 == 0:
            self.log.append(describe(event))  # every step would drown the log

    def replay(self, path: str | Path | None = None) -> list[TrainingEvent]:
        """Fold a recorded ``events.jsonl`` (default: this run's) into the curves."""
        events = read_events(path or self.run_dir / "events.jsonl")
        for event in events:
            self.apply(event)
        return events

    # ---- process side (reader thread) ----------------------------------------------------------
    def replay_job(self, path: str | Path | None = None) -> Job:
        """Play a recorded ``events.jsonl`` (default: this run's) through a job, on a thread, as
        a live run would report it: the panel's development and demonstration path."""
        lines = Path(path or self.run_dir / "events.jsonl").read_text().splitlines()

        def play(job: Job) -> None:
            final = self._consume(job, lines)
            self._end(job, final, 0)

        self.job = Job("train")
        threading.Thread(target=self._start_job, args=(self.job, play), daemon=True).start()
        return self.job

    @staticmethod
    def _start_job(job: Job, body) -> None:
        job.started()
        body(job)

    def _read(self, job: Job, proc: subprocess.Popen) -> None:
        final = self._consume(job, proc.stdout)
        self._end(job, final, proc.wait())

    def _consume(self, job: Job, lines) -> TrainingEvent | None:
        """Turn JSON lines into events on ``job``; returns the final one (done / error / ...)."""
        final = None
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a library's print: not ours to show
            event = parse_event(record) if isinstance(record, dict) else None
            if event is None:
                continue
            self.apply(event)
            if isinstance(event, Notice) and event.kind == "warning":
                job.warn(event.message)
            elif isinstance(event, (Done, Notice)):
                final = event
            else:
                job.progress(describe(event), self._fraction(), data=event)
        return final

    def _end(self, job: Job, final: TrainingEvent | None, code: int) -> None:
        if isinstance(final, Done):
            job.finish(final)
        elif isinstance(final, Notice) and final.kind == "cancelled":
            job.cancelled(final.message)
        elif isinstance(final, Notice) and final.kind == "error":
            job.fail(final.message)
        elif job.cancel_requested:
            job.cancelled(f"stopped ({describe_exit(code)}) before a checkpoint was written")
        else:
            tail = " ".join(line.strip() for line in list(self._stderr)[-3:])
            reason = f"the training process stopped ({describe_exit(code)})"
            job.fail(reason + (f": {tail}" if tail else ""))

    def _drain(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:  # kept for the message when the process dies without a word
            if line.strip():
                self._stderr.append(line.rstrip())

    def _fraction(self) -> float:
        total = self.started.max_iterations if self.started else self.spec.get("max_iterations")
        return min(1.0, self.iteration / total) if total else 0.0

    def _terminate(self, _job: Job) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # SIGTERM: the run checkpoints and exits (on Windows this ends the process at once).
            proc.send_signal(signal.SIGTERM) if hasattr(signal, "SIGTERM") else proc.terminate()


# ---- the data set ------------------------------------------------------------------------------
def check_pair(image: str | Path, label: str | Path) -> dict[str, str]:
    """Check one (CT, label) pair before it joins a training set; the pair as spec entries.

    Raises
    ------
    CtsegError
        Naming the file: missing or unreadable, not a CT, or a label off the image's grid.
    """
    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.io import read_image
    from ctseg_gui.training.datasets import check_grid

    image, label = Path(image).expanduser(), Path(label).expanduser()
    for path in (image, label):
        if not path.is_file():
            raise CtsegError("no such file", path)
    check_grid(image, label)  # unreadable headers and grid mismatches, named by file
    volume = read_image(image)
    require_ct(volume, str(image))
    return {"image": str(image), "label": str(label)}


class TrainingDataset:
    """The (CT, label) pairs of a run; a refused pair leaves the others as they were."""

    def __init__(self, cases: list[dict[str, str]] | None = None) -> None:
        self.cases: list[dict[str, str]] = list(cases or [])

    def add(self, image: str | Path, label: str | Path) -> dict[str, str]:
        """Check and append a pair (see :func:`check_pair`); a pair already there is refused."""
        case = check_pair(image, label)
        if any(c["image"] == case["image"] for c in self.cases):
            raise CtsegError("is already in the training set", case["image"])
        self.cases.append(case)
        return case

    def remove(self, index: int) -> dict[str, str]:
        """Take pair ``index`` out."""
        return self.cases.pop(index)

    def __len__(self) -> int:
        return len(self.cases)
