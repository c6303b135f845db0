"""Segment many CTs in one process: one model load, resumable outputs, per-stage timings.

:class:`BatchRunner` reads each case, segments it with the model built once (the engine's network
cache keeps it warm between cases) and writes the labels atomically, so an output that exists is a
finished one and a second run skips it. Every case gets the seconds of its stages:

========== ==============================================================================
read        reading the CT and checking it is one
preprocess  the engine's ``loading`` (a cache hit after the first case) and ``preprocessing``
network     the engine's ``inference`` (sliding window); all of a built-in model's work
invert      the engine's ``resampling``: labels back onto the CT's grid
postprocess the engine's tail after that (label type, label table) and the voxel counts
write       the label file and its table, written to a temporary name then renamed
========== ==============================================================================

Loading the model (parsing the bundle, building the network, reading its weights) is timed apart,
once for the batch, in :attr:`BatchRunner.load_seconds`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference.modelref import ModelRef
from ctseg_gui.io.cases import Case

STAGES = ("read", "preprocess", "network", "invert", "postprocess", "write")
CSV_COLUMNS = ("case", *(f"{s}_s" for s in STAGES), "total_s")

# The engine's progress stages -> our columns; any other stage name (the built-in model's steps)
# counts as network.
ENGINE_STAGES = {
    "loading": "preprocess",
    "preprocessing": "preprocess",
    "inference": "network",
    "resampling": "invert",
}

CaseProgress = Callable[[int, Case, str, float], None]


class ModelLoadError(CtsegError):
    """The model itself cannot be loaded: no case can run, so the batch stops."""


class StageTimer:
    """Turns ``progress(stage, fraction)`` calls into seconds per column.

    The time up to a call belongs to that call's stage, except for a call that opens a stage
    (fraction 0): the gap before it still belongs to the stage before.
    """

    def __init__(self, first: str = "preprocess", clock=time.perf_counter) -> None:
        self.clock = clock
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.current = first
        self.last = clock()

    def __call__(self, stage: str, fraction: float) -> None:
        column = ENGINE_STAGES.get(stage, "network")
        now = self.clock()
        self.seconds[self.current if fraction <= 0.0 else column] += now - self.last
        self.current, self.last = column, now

    def finish(self, column: str) -> None:
        """Give the time since the last call to ``column``."""
        now = self.clock()
        self.seconds[column] += now - self.last
        self.current, self.last = column, now


@dataclass
class CaseResult:
    """What happened to one case: ``done``, ``skipped`` or ``failed``."""

    case: Case
    status: str
    output: Path | None = None
    message: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    ran: str = ""  # " [backend dtype]" that ran the network, for the summary line

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def partial_path(path: Path) -> Path:
    """The temporary name ``path`` is written under (hidden, same folder, same format suffix)."""
    from ctseg_gui.io.images import image_suffix

    return path.with_name(f".{path.name[: -len(image_suffix(path))]}.partial{image_suffix(path)}")


def is_complete(path: Path) -> bool:
    """Whether a finished output is at ``path``: the label file and its table both exist.

    Outputs are renamed into place only once fully written, table first, so this never takes the
    leftovers of a killed run for a result.
    """
    from ctseg_gui.io.labels import sidecar_path

    return path.is_file() and sidecar_path(path).is_file()


def write_atomic(labels, path: Path) -> Path:
    """:func:`~ctseg_gui.io.write_label_map` to a temporary name, then rename into place."""
    from ctseg_gui.io import write_label_map
    from ctseg_gui.io.labels import sidecar_path

    temporary = partial_path(path)
    try:
        write_label_map(labels, temporary)
        os.replace(sidecar_path(temporary), sidecar_path(path))
        os.replace(temporary, path)
    except OSError as error:
        raise CtsegError(f"cannot write: {error.strerror or error}", path) from error
    finally:
        for leftover in (temporary, sidecar_path(temporary)):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return path


class BatchRunner:
    """Runs one model over cases in this process, loading the model once.

    Parameters
    ----------
    model
        From :func:`~ctseg_gui.inference.resolve_model`.
    device, precision, backend
        As for :func:`~ctseg_gui.inference.segment_volume`.
    series_uid
        DICOM series to read from each case (single-CT runs).
    """

    def __init__(
        self,
        model: ModelRef,
        device: str = "auto",
        precision: str = "auto",
        series_uid: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.model, self.device, self.precision = model, device, precision
        self.backend = backend
        self.series_uid = series_uid
        self.load_seconds: float | None = None  # None until the model is loaded
        self.networks_built = 0

    def _load_model(self) -> None:
        from ctseg_gui.inference.bundle import network_builds
        from ctseg_gui.inference.engine import warm_model

        before = network_builds()
        started = time.perf_counter()
        warm_model(self.model, self.device)
        self.load_seconds = time.perf_counter() - started
        self.networks_built += network_builds() - before

    def run_case(self, case: Case, output: Path, progress=None) -> CaseResult:
        """Read, segment and write one case; a bad case raises :class:`CtsegError`."""
        from ctseg_gui.core.modality import require_ct
        from ctseg_gui.inference.bundle import network_builds
        from ctseg_gui.inference.engine import segment_volume
        from ctseg_gui.io import read_image

        timer = StageTimer(first="read")
        volume = read_image(case.image, series_uid=self.series_uid)
        require_ct(volume, str(case.image))
        timer.finish("read")
        if self.load_seconds is None:
            # After the first read, so reading overlaps the torch import preload_libraries began.
            try:
                self._load_model()
            except CtsegError as error:
                raise ModelLoadError(str(error)) from error
            timer.last = time.perf_counter()

        def report(stage: str, fraction: float) -> None:
            timer(stage, fraction)
            if progress is not None:
                progress(stage, fraction)

        before = network_builds()
        labels = segment_volume(
            volume,
            self.model,
            device=self.device,
            precision=self.precision,
            backend=self.backend,
            progress=report,
        )
        self.networks_built += network_builds() - before
        counts = labels.voxel_counts()
        names = [labels.table[v].name for v in sorted(counts)]
        timer.finish("postprocess")
        del volume
        write_atomic(labels, output)
        timer.finish("write")
        ran = getattr(labels, "run_info", None)
        ran = f" [{ran['backend']} {ran['dtype']}]" if ran else ""
        return CaseResult(case, "done", output, seconds=dict(timer.seconds), labels=names, ran=ran)

    def run(
        self,
        cases: list[Case],
        outputs: list[Path],
        *,
        overwrite: bool = False,
        progress: CaseProgress | None = None,
        reraise: bool = False,
    ) -> Iterator[CaseResult]:
        """Yield a :class:`CaseResult` per case, in order; a failing case does not stop the rest.

        A case whose output :func:`is_complete` is skipped unless ``overwrite``. A model that
        cannot load raises :class:`ModelLoadError`; ``reraise`` (``--debug``) raises unexpected
        errors instead of recording them as a failed case.
        """
        for index, (case, output) in enumerate(zip(cases, outputs, strict=True)):
            if not overwrite and is_complete(output):
                yield CaseResult(case, "skipped", output, "output exists")
                continue

            def forward(stage: str, fraction: float, index=index, case=case) -> None:
                if progress is not None:
                    progress(index, case, stage, fraction)

            forward("reading", 0.0)
            try:
                result = self.run_case(case, output, forward)
            except ModelLoadError:
                raise
            except CtsegError as error:
                result = CaseResult(case, "failed", output, str(error))
            except MemoryError:
                result = CaseResult(case, "failed", output, f"{case.image}: out of memory")
            except Exception as error:  # noqa: BLE001 - one case's bug must not stop the batch
                if reraise:
                    raise
                message = f"{case.image}: internal error: {type(error).__name__}: {error}"
                result = CaseResult(case, "failed", output, message)
            yield result


def read_timings_csv(path: str | Path) -> dict[str, list[str]]:
    """Rows of an earlier timings CSV by case name (empty when absent or not ours)."""
    import csv

    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        return {}
    return {row[0]: row for row in rows[1:] if len(row) == len(CSV_COLUMNS)}


def write_timings_csv(
    results: list[CaseResult], path: str | Path, previous: dict[str, list[str]] | None = None
) -> Path:
    """One row per segmented case: ``case,read_s,...,write_s,total_s`` (seconds, 3 decimals).

    Failed cases have no row; a skipped case keeps its row from ``previous`` (the CSV of the run
    that segmented it, see :func:`read_timings_csv`), so a resumed batch's CSV covers every case.
    Written whole each time (to a temporary name, then renamed), so calling it after every case
    leaves a valid file if the run is killed.
    """
    import csv

    path = Path(path)
    previous = previous or {}
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for result in results:
                if result.status == "done":
                    values = [result.seconds[s] for s in STAGES] + [result.total]
                    writer.writerow([result.case.name, *(f"{v:.3f}" for v in values)])
                elif result.status == "skipped" and result.case.name in previous:
                    writer.writerow(previous[result.case.name])
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CtsegError(f"cannot write the timings: {error.strerror or error}", path) from error
    return path


def format_table(results: list[CaseResult], load_seconds: float | None = None) -> str:
    """The per-stage seconds of each segmented case as a text table, with mean and total rows."""
    done = [r for r in results if r.status == "done"]
    width = max([len("case"), len("total")] + [len(r.case.name) for r in done])
    header = f"{'case':<{width}}" + "".join(f"{s:>12}" for s in (*STAGES, "total"))
    lines = [header, "-" * len(header)]

    def row(name: str, values: list[float]) -> str:
        return f"{name:<{width}}" + "".join(f"{v:>12.3f}" for v in values)

    for result in done:
        lines.append(row(result.case.name, [result.seconds[s] for s in STAGES] + [result.total]))
    if len(done) > 1:
        sums = [sum(r.seconds[s] for r in done) for s in STAGES]
        lines.append("-" * len(header))
        lines.append(row("mean", [v / len(done) for v in sums] + [sum(sums) / len(done)]))
        lines.append(row("total", [*sums, sum(sums)]))
    if load_seconds is not None:
        lines.append(
            f"model load (once for the batch: libraries, bundle, network): {load_seconds:.3f} s"
        )
    return "\n".join(lines)
