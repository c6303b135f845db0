"""Progress events of a training run: JSON lines on stdout (``--json``) and in ``events.jsonl``.

The contract (DESIGN.md) fixes four events; a GUI or script reads them line by line::

    {"event": "iteration", "iteration": N, "epoch": E, "loss": x, "lr": y,
     "sec_per_iter": s, "eta_s": t}
    {"event": "validation", "iteration": N, "dice": {"<class name>": d, ...}, "mean_dice": d}
    {"event": "checkpoint", "iteration": N, "path": "..."}
    {"event": "done", "iteration": N, "bundle": "<dir>", "model_id": "<id>"}

and these are our own:

    {"event": "started", "iteration": N, "max_iterations": M, "resumed": bool, "device": "cpu",
     "nproc": P, "train_cases": n, "val_cases": m, "classes": {"1": "spleen", ...},
     "patch_size": [...], "cache_bytes": b, "available_bytes": a}
        once the data is checked, before the data cache fills (``cache_bytes`` is the RAM
        estimate of the cache; ``available_bytes`` what the machine has free, or null);
    {"event": "warning", "message": "..."}     something the user should know (unmapped labels,
        a cache larger than the free memory);
    {"event": "cancelled", "iteration": N, "path": "<checkpoint>"}   after SIGTERM / SIGINT: the
        checkpoint is written and the process exits with status 0; ``--resume`` continues it;
    {"event": "error", "message": "..."}       the run failed (the process exits with status 1).

Dice values are null where a class is absent from every validation label. When a run resumes,
``events.jsonl`` is cut back to the checkpoint's iteration first, so the file always tells one
continuous story (a killed run's iterations after its last checkpoint are gone, as they are from
the model).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

EVENTS_FILE = "events.jsonl"


def _clean(value):
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventLog:
    """Writes events of one run (rank 0 only; other ranks get a silent log).

    Parameters
    ----------
    run_dir
        The run folder; events are appended to ``run_dir/events.jsonl``.
    json_lines
        Also print every event as one JSON line on stdout.
    human
        Stream for a short human-readable line per event (None: silent).
    enabled
        False on DDP ranks other than 0.
    """

    def __init__(self, run_dir: Path, json_lines: bool, human=None, enabled: bool = True) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self.json_lines = json_lines
        self.human = human
        self.enabled = enabled

    def emit(self, event: str, **fields) -> dict:
        """Record one event; returns it as written."""
        record = _clean({"event": event, **fields})
        if not self.enabled:
            return record
        line = json.dumps(record)
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
        if self.json_lines:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        elif self.human is not None:
            text = describe(record)
            if text:
                self.human.write(text + "\n")
                self.human.flush()
        return record

    def truncate_after(self, iteration: int) -> None:
        """Drop events of iterations after ``iteration`` (before a resume), atomically."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if int(record.get("iteration", 0) or 0) <= iteration:
                kept.append(line)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(line + "\n" for line in kept))
        os.replace(temporary, self.path)


def read_events(run_dir: str | Path) -> list[dict]:
    """All events of a run so far (lines cut short by a kill are skipped)."""
    path = Path(run_dir) / EVENTS_FILE
    events = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def describe(record: dict) -> str | None:
    """One line for people (the text output of ``ctseg train`` without ``--json``)."""
    kind = record["event"]
    n = record.get("iteration")
    if kind == "iteration":
        if n != 1 and n % 10:
            return None
        return (
            f"iteration {n}: loss {record['loss']:.4f}, lr {record['lr']:.2e}, "
            f"{record['sec_per_iter']:.2f} s/it, about {record['eta_s'] / 60:.1f} min left"
        )
    if kind == "validation":
        parts = ", ".join(
            f"{name} {'-' if d is None else f'{d:.3f}'}" for name, d in record["dice"].items()
        )
        mean = record["mean_dice"]
        return f"validation at {n}: mean Dice {'-' if mean is None else f'{mean:.3f}'} ({parts})"
    if kind == "started":
        gib = record["cache_bytes"] / 2**30
        verb = "resuming at iteration" if record["resumed"] else "starting; iterations"
        what = n if record["resumed"] else record["max_iterations"]
        return (
            f"{verb} {what} on {record['device']} x{record['nproc']}: "
            f"{record['train_cases']} training / {record['val_cases']} validation cases, "
            f"cache about {gib:.2f} GiB"
        )
    if kind == "checkpoint":
        return f"checkpoint at {n}: {record['path']}"
    if kind == "cancelled":
        return f"cancelled at iteration {n}; continue with --resume"
    if kind == "done":
        return f"done after {n} iterations: model {record['model_id']} in {record['bundle']}"
    if kind in ("warning", "error"):
        return None  # also raised as a warning / error, which the command prints once
    return None
