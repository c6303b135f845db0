"""Benchmark: one ``ctseg segment FOLDER`` run against five single-CT ``ctseg segment`` runs.

Five CTs: the two tests/data NIfTI CTs as stored, the tests/data DICOM series (a series folder
case), and the two NIfTI CTs resampled onto finer grids (SimpleITK, linear). The model is the
spleen_ct_segmentation-style bundle of tests/bundles.py (UNet 16-256, 96^3 windows, fixed-seed
weights). Each command runs as its own subprocess, so wall times include start-up (imports,
bundle parsing, weights) as a user pays it. Both ways run in this one benchmark run, in rounds
whose order alternates (singles then batch, batch then singles: a load that drifts favours
neither); wall seconds and CPU seconds (user + system of the child processes, which other
processes on shared cores disturb far less) are printed for each. The batch's outputs are checked
voxel for voxel against the single runs'.

    python benchmarks/bench_batch.py [--device cpu|cuda] [--rounds 2] [--order singles-first]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

STAGES = ("read_s", "preprocess_s", "network_s", "invert_s", "postprocess_s", "write_s")


def make_cases(folder: Path) -> list[Path]:
    """The five CTs of the benchmark, in ``folder``."""
    from bench_wholebody import make_large_ct

    data = ROOT / "tests" / "data"
    folder.mkdir()
    shutil.copy(data / "ct" / "abdomen_3mm.nii.gz", folder / "abdomen_3mm.nii.gz")
    shutil.copy(data / "ct" / "abdomen_3mm_30slices.nii.gz", folder / "crop_3mm.nii.gz")
    shutil.copytree(data / "dicom" / "abdomen_ct_20", folder / "dicom_20")
    # 122 x 101 x 112 at 3 mm -> 2 mm; the 30-slice crop -> 1.5 x 1.5 x 2 mm (the network's grid)
    make_large_ct(
        data / "ct" / "abdomen_3mm.nii.gz", folder / "abdomen_2mm.nii.gz", (183, 152, 168)
    )
    make_large_ct(
        data / "ct" / "abdomen_3mm_30slices.nii.gz", folder / "crop_1p5mm.nii.gz", (244, 202, 45)
    )
    return sorted(folder.iterdir())


def timed(command: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds user + system, stdout) of one child process.

    CPU seconds say what the work cost even when other processes share the cores (the wall time
    then also counts waiting for a core).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"command failed: {' '.join(command)}\n{done.stderr[-3000:]}{done.stdout[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'case':<14}" + "".join(f"{s[:-2]:>12}" for s in (*STAGES, "total_s")))
    for row in rows:
        print(
            f"{row['case']:<14}" + "".join(f"{float(row[s]):>12.3f}" for s in (*STAGES, "total_s"))
        )
    sums = [sum(float(r[s]) for r in rows) for s in (*STAGES, "total_s")]
    print(f"{'sum':<14}" + "".join(f"{v:>12.3f}" for v in sums))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--order",
        default="singles-first",
        choices=["singles-first", "batch-first"],
        help="order of the first round (later rounds alternate)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the order")
    args = parser.parse_args()

    from bundles import build_spleen_bundle

    from ctseg_gui.io import read_image

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        bundle = build_spleen_bundle(tmp / "spleen_ct_segmentation")
        cases = make_cases(tmp / "cts")
        env = dict(os.environ, CTSEG_DATA_DIR=str(tmp / "data"))
        base = [sys.executable, "-m", "ctseg_gui.cli", "segment", "--bundle", str(bundle)]
        base += ["--device", args.device, "-q"]

        def run_batch(r: int) -> tuple[float, float, str]:
            # a fresh output folder: the batch would skip the cases of an earlier round
            return timed([*base, str(tmp / "cts"), "-o", str(tmp / f"batch{r}"),
                          "--timings", str(tmp / f"batch{r}.csv")], env)  # fmt: skip

        def run_singles(r: int) -> list[tuple[float, float]]:
            walls = []
            for case in cases:
                name = case.name.removesuffix(".nii.gz")
                wall, cpu, _ = timed([*base, str(case), "-o", str(tmp / "single" / f"{name}.nii.gz"),
                                      "--timings", str(tmp / f"single{r}_{name}.csv")], env)  # fmt: skip
                walls.append((wall, cpu))
            return walls

        (tmp / "single").mkdir()
        print(f"{len(cases)} CTs, spleen test bundle, device {args.device}, "
              f"{os.cpu_count()} CPU cores, {args.rounds} round(s)")  # fmt: skip
        for case in cases:
            volume = read_image(case)
            print(f"  {case.name:<22} {'x'.join(map(str, volume.size))} voxels, "
                  f"{'x'.join(f'{s:.2f}' for s in volume.spacing)} mm")  # fmt: skip
        rounds = []
        for r in range(args.rounds):
            # ABBA: the order alternates, so a load that drifts during the run favours neither
            batch_first = (r % 2 == 1) != (args.order == "batch-first")
            if batch_first:
                batch = run_batch(r)
                singles = run_singles(r)
            else:
                singles = run_singles(r)
                batch = run_batch(r)
            rounds.append((batch, singles, "batch first" if batch_first else "singles first"))
            batch_out, names = batch[2], [c.name for c in cases]
            print(f"\n=== round {r + 1} ({rounds[-1][2]}) ===")
            print("batch run's own output:")
            print(batch_out.rstrip())
            print_table("per-stage seconds, one `ctseg segment FOLDER` run (its CSV)",
                        read_rows(tmp / f"batch{r}.csv"))  # fmt: skip
            single_rows = [
                read_rows(tmp / f"single{r}_{n.removesuffix('.nii.gz')}.csv")[0] for n in names
            ]
            print_table("per-stage seconds, five `ctseg segment CT` runs (their CSVs)", single_rows)
            print(f"\n{'process wall / CPU seconds':<44}{'wall s':>10}{'CPU s':>10}")
            for name, (wall, cpu) in zip(names, singles, strict=True):
                print(f"{'  single: ' + name:<44}{wall:>10.1f}{cpu:>10.1f}")

        print(f"\n{'workflow':<32}{'round':>6}{'wall s':>10}{'CPU s':>10}")
        totals = np.zeros(4)
        for r, (batch, singles, order) in enumerate(rounds):
            s_wall, s_cpu = sum(w for w, _ in singles), sum(c for _, c in singles)
            totals += (batch[0], batch[1], s_wall, s_cpu)
            print(f"{'five single-CT processes':<32}{r + 1:>6}{s_wall:>10.1f}{s_cpu:>10.1f}")
            print(f"{'one batch process':<32}{r + 1:>6}{batch[0]:>10.1f}{batch[1]:>10.1f}")
            print(f"{'ratio batch / singles':<32}{r + 1:>6}{batch[0] / s_wall:>10.2f}"
                  f"{batch[1] / s_cpu:>10.2f}   ({order})")  # fmt: skip
        if len(rounds) > 1:
            print(f"{'ratio batch / singles, all':<32}{'':>6}{totals[0] / totals[2]:>10.2f}"
                  f"{totals[1] / totals[3]:>10.2f}")  # fmt: skip
        print(f"{'saved by the batch per round':<32}{'':>6}"
              f"{(totals[2] - totals[0]) / len(rounds):>10.1f}"
              f"{(totals[3] - totals[1]) / len(rounds):>10.1f}")  # fmt: skip
        load = os.getloadavg()
        print(f"load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        same = 0
        for case in cases:
            name = case.name.removesuffix(".nii.gz")
            a = read_image(tmp / "batch0" / f"{name}.nii.gz").array
            b = read_image(tmp / "single" / f"{name}.nii.gz").array
            same += int(np.array_equal(a, b))
        print(f"batch outputs identical to the single runs': {same} of {len(cases)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
