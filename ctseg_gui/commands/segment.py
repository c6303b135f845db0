"""``ctseg segment CT|FOLDER|DATALIST -o OUT [-m ID | --bundle DIR] [--timings T.csv] ...``.

One CT writes the label map ``OUT``; a folder of CTs, an MSD folder or a datalist writes
``OUT/<case>.nii.gz`` (and its label table) per case, with the model loaded once for all of them,
skipping cases already finished (``--overwrite`` redoes them) and going on past a bad case.
"""

from __future__ import annotations

import argparse
import sys
import time

from ctseg_gui.inference.backends import BACKENDS
from ctseg_gui.inference.precision import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        help="a CT (DICOM folder or file, NIfTI, NRRD or MetaImage), a folder of CTs (files and "
        "DICOM series folders, or an MSD folder with imagesTs/imagesTr) or a datalist JSON",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="label map to write (.nii.gz, .nrrd, .mha); for a folder or datalist, the folder "
        "that gets one <case>.nii.gz per case",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "-m", "--model", default=None, help="model id (default ct-tissues; see `ctseg models list`)"
    )
    source.add_argument("--bundle", metavar="DIR", help="run this MONAI bundle folder as is")
    parser.add_argument("--variant", help="model variant, e.g. highres or lowres")
    parser.add_argument(
        "--trust",
        action="store_true",
        help="accept a bundle whose configs or scripts would run code not known to be safe "
        "(remembered for these exact files); without it such a bundle is refused",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="network arithmetic: auto = as the bundle's own workflow (float16 AMP on CUDA when "
        "the bundle asks, float32 on the CPU); reduced = fast mode (bfloat16 on the CPU: 2-2.7x "
        "faster networks on CPUs with AVX-512 BF16 or AMX, labels may differ at near-tied "
        "voxels); fp32",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="inference runtime: auto = the fastest that passed `ctseg backends check` for this "
        "model here (torch when none did); torch, onnxruntime, openvino (CPU), tensorrt (GPU)",
    )
    parser.add_argument("--series", metavar="UID", help="DICOM series to use from a folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--timings",
        metavar="T.csv",
        help="write the seconds of each stage per case (read, preprocess, network, invert, "
        "postprocess, write, total) as CSV",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="segment cases whose output already exists again"
    )
    parser.add_argument(
        "--datalist-key",
        metavar="KEY",
        help="list of a MONAI datalist to segment (default: testing, test, validation, training: "
        "the first present)",
    )


class ProgressBar:
    """One self-rewriting line on stderr: stage, bar, percent, elapsed time."""

    def __init__(self, stream=None, width: int = 30) -> None:
        # sys.stderr looked up now, not at import: it may have been replaced since
        self.stream, self.width = stream or sys.stderr, width
        self.start = time.monotonic()
        self.stage = None

    def __call__(self, stage: str, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if stage != self.stage and self.stage is not None:
            self.stream.write("\n")
        self.stage = stage
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.start
        self.stream.write(f"\r{stage:<14} [{bar}] {fraction * 100:5.1f}%  {elapsed:6.1f} s")
        self.stream.flush()

    def close(self) -> None:
        if self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()


def _check_trust(bundle, trust: bool) -> None:
    """Refuse a bundle that needs trust before anything reads the CT (``--trust`` accepts it)."""
    from ctseg_gui.inference.trust import check_or_accept

    review = check_or_accept(bundle, trust=trust, hint="run with --trust to accept it")
    if review.needs_trust:
        print(f"trusted {bundle} (sha256 {review.checksum}), which runs:", file=sys.stderr)
        for finding in review.findings:
            print(f"  {finding.line()}", file=sys.stderr)


class CaseBar:
    """One self-rewriting line on stderr for a batch: cases done, bar, current case, ETA."""

    # Share of a case's time each engine stage roughly ends at (for the bar, not the ETA).
    STAGE_END = {"reading": 0.05, "loading": 0.1, "preprocessing": 0.15, "inference": 0.9}

    def __init__(self, total: int, stream=None, width: int = 24, clock=time.monotonic) -> None:
        self.stream, self.width, self.total = stream or sys.stderr, width, total
        self.clock = clock
        self.start = clock()
        self.finished = 0  # cases segmented or failed in this run (their time counts for the ETA)
        self.passed = 0  # all cases behind us, skipped ones included
        self.case_start = self.start
        self.case_seconds = 0.0
        self.shown = False

    def __call__(self, index: int, case, stage: str, fraction: float) -> None:
        if stage == "reading" and fraction == 0.0:
            self.case_start = self.clock()
        if stage == "resampling":
            low, high = self.STAGE_END["inference"], 1.0
        elif stage in self.STAGE_END:
            names = list(self.STAGE_END)
            index_ = names.index(stage)
            low = self.STAGE_END[names[index_ - 1]] if index_ else 0.0
            high = self.STAGE_END[stage]
        else:  # the built-in model's own steps: its whole work is the "network"
            low, high = self.STAGE_END["preprocessing"], self.STAGE_END["inference"]
        within = low + (high - low) * min(max(fraction, 0.0), 1.0)
        done = (self.passed + within) / max(self.total, 1)
        filled = int(round(done * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = self.clock() - self.start
        eta = "--"
        if self.finished:
            mean = self.case_seconds / self.finished
            left = mean * (self.total - self.passed) - (self.clock() - self.case_start)
            eta = _clock(max(left, 0.0))
        text = (
            f"\r[{bar}] {index + 1}/{self.total} {case.name[:28]:<28} {stage:<13} "
            f"{fraction * 100:3.0f}%  elapsed {_clock(elapsed)}  ETA {eta}"
        )
        self.stream.write(text)
        self.stream.flush()
        self.shown = True

    def case_done(self, result) -> None:
        self.passed += 1
        if result.status != "skipped":
            self.finished += 1
            self.case_seconds += self.clock() - self.case_start

    def clear(self) -> None:
        """Wipe the line so a result line can be printed in its place."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.batch import BatchRunner
    from ctseg_gui.inference.engine import preload_libraries
    from ctseg_gui.io.cases import Case, CaseList, case_name, find_cases
    from ctseg_gui.io.images import FORMATS, image_suffix

    model = resolve_model(args.model, args.bundle, args.variant)
    if model.bundle is not None:
        _check_trust(model.bundle, args.trust)
    output = Path(args.output)
    if args.series:
        # A series UID names one CT: the input is a DICOM folder (tree) to pick it from.
        found = CaseList([Case(case_name(Path(args.input)), Path(args.input))], False, "image")
    else:
        found = find_cases(args.input, exclude=output, datalist_key=args.datalist_key)
    if found.batch:
        if image_suffix(output) in FORMATS or output.is_file():
            raise CtsegError(
                f"{args.input} holds {len(found.cases)} cases: -o must name a folder, not a file",
                output,
            )
        if output.resolve() == Path(args.input).resolve():
            raise CtsegError("write the outputs to another folder than the input's", output)
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CtsegError(f"cannot create: {error.strerror or error}", output) from error
        outputs = [output / f"{case.name}.nii.gz" for case in found.cases]
    else:
        outputs = [output]
    if not model.builtin:
        preload_libraries()  # overlaps with reading the first CT
    runner = BatchRunner(model, args.device, args.precision, args.series, args.backend)
    if found.batch:
        return _run_batch(args, found, outputs, runner)
    bar = None if args.quiet else ProgressBar()
    try:
        # a single CT is written even when the output exists: the user named that file
        result = runner.run_case(found.cases[0], output, bar)
    finally:
        if bar is not None:
            bar.close()
    names = result.labels
    print(
        f"{result.output}: {len(names)} labels from {model.name}{result.ran} "
        f"({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
    )
    if args.timings:
        from ctseg_gui.inference.batch import format_table, write_timings_csv

        print(format_table([result], None if model.builtin else runner.load_seconds))
        write_timings_csv([result], args.timings)
    return 0


def _run_batch(args, found, outputs, runner) -> int:
    from ctseg_gui.inference.batch import format_table, read_timings_csv, write_timings_csv

    model = runner.model
    previous = read_timings_csv(args.timings) if args.timings else {}
    print(f"{args.input}: {len(found.cases)} cases ({found.source}), model {model.name}")
    bar = None if args.quiet else CaseBar(len(found.cases))
    results = []
    started = time.perf_counter()
    try:
        debug = bool(getattr(args, "debug", False))
        for result in runner.run(
            found.cases, outputs, overwrite=args.overwrite, progress=bar, reraise=debug
        ):
            results.append(result)
            if bar is not None:
                bar.case_done(result)
                bar.clear()
            print(_result_line(result), flush=True)
            if args.timings and result.status == "done":
                write_timings_csv(results, args.timings, previous)
    finally:
        if bar is not None:
            bar.clear()
    wall = time.perf_counter() - started
    done = [r for r in results if r.status == "done"]
    failed = [r for r in results if r.status == "failed"]
    skipped = len(results) - len(done) - len(failed)
    if done:
        print()
        print(format_table(results, None if model.builtin else runner.load_seconds))
    if args.timings:
        write_timings_csv(results, args.timings, previous)
    reuse = (
        "built-in model, no network to load"
        if model.builtin
        else f"network built {runner.networks_built} time(s) for {len(done)} case(s)"
    )
    print(
        f"{len(done)} segmented, {skipped} skipped, {len(failed)} failed in {wall:.1f} s; {reuse}"
    )
    if failed:
        names = ", ".join(r.case.name for r in failed)
        print(
            f"ctseg: error: {len(failed)} of {len(results)} cases failed: {names}", file=sys.stderr
        )
        return 1
    return 0


def _result_line(result) -> str:
    name = result.case.name
    if result.status == "skipped":
        return f"{name}: skipped, {result.output} exists (--overwrite to redo it)"
    if result.status == "failed":
        return f"{name}: failed: {result.message}"
    labels = ", ".join(result.labels[:4]) + (", ..." if len(result.labels) > 4 else "")
    return (
        f"{name}: {result.output.name}, {len(result.labels)} labels ({labels}) "
        f"in {result.total:.1f} s"
    )
