"""Benchmark: every inference backend and precision available here, per model, in one run.

For the spleen UNet and the whole-body SegResNet (lowres and highres), on the real abdomen CT:
``ctseg backends check`` gives seconds per window batch (two windows, the CPU's batch) and the
window labels' Dice against torch float32; then ``ctseg segment`` runs once per backend and
precision (and once with ``--backend auto``, which takes the fastest that passed the check) and
MONAI's own workflow once, each as a subprocess: wall time, peak RSS (ru_maxrss), and mean Dice
of the label map against ours in torch float32 and against MONAI's.

The whole-body bundle gets a fixed-seed trunk whose output layer is fitted to the CT's tissue
classes (tests/fitted_weights.py ``fit_head_state_dict``, cached), or with ``--fitted-steps N``
weights trained N steps: either way the class margins are real, so they say what a precision
does to the labels. The spleen bundle's weights are
tests/bundles.py's fixed-seed ones with a shifted output bias. ``--highres-slices N`` crops the
CT to N slices for the highres model (36 windows for the full CT; a crop keeps the run short),
``--spleen-slices N`` for the spleen model.

    python benchmarks/bench_backends.py [--models spleen lowres highres] [--fitted-steps N]
        [--highres-slices 60] [--spleen-slices N] [--monai-highres] [--check-windows N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

RUNS = [
    ("torch", "fp32"),
    ("torch", "reduced"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "reduced"),
    ("tensorrt", "fp32"),
    ("auto", "auto"),
]


def mean_dice(ours: Path, theirs: Path, min_voxels: int = 100) -> float:
    from ctseg_gui.inference.backends.choice import dice_scores
    from ctseg_gui.io import read_image

    a = np.rint(read_image(ours).array).astype(np.int64)
    b = np.rint(read_image(theirs).array).astype(np.int64)
    scores = dice_scores(a, b, min_voxels)
    return float(np.mean(list(scores.values()))) if scores else float("nan")


def crop_slices(source: Path, target: Path, slices: int) -> Path:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    depth = image.GetSize()[2]
    start = max(0, (depth - slices) // 2)
    sitk.WriteImage(image[:, :, start : start + slices], str(target))
    return target


def main() -> int:
    from bundles import build_spleen_bundle, build_wholebody_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "tests/data/ct/abdomen_3mm.nii.gz"))
    parser.add_argument("--models", nargs="+", default=["spleen", "lowres", "highres"])
    parser.add_argument(
        "--fitted-steps",
        type=int,
        default=0,
        help="whole-body weights trained N steps (fitted_weights.fit_state_dict); 0 (default): "
        "fixed-seed trunk with a fitted output layer (fit_head_state_dict, minutes)",
    )
    parser.add_argument("--fitted-patch", type=int, default=64, help="side of each fit crop")
    parser.add_argument("--highres-slices", type=int, default=60, help="0: the whole CT")
    parser.add_argument("--check-windows", type=int, default=2, help="windows per timed batch")
    parser.add_argument("--spleen-slices", type=int, default=0, help="0: the whole CT")
    parser.add_argument("--monai-highres", action="store_true", help="MONAI's highres (~20 GB)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        tmp = Path(tmp)
        env = dict(
            os.environ,
            CTSEG_DATA_DIR=str(tmp / "data"),
            CTSEG_CACHE_DIR=str(tmp / "cache"),  # exports and checks made in this run
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        wholebody = None
        for model in args.models:
            ct = Path(args.image)
            if model == "spleen":
                bundle, extra = build_spleen_bundle(tmp / "spleen_ct_segmentation"), []
                monai_extra = []
                if args.spleen_slices:
                    ct = crop_slices(
                        ct, tmp / f"ct_{args.spleen_slices}.nii.gz", args.spleen_slices
                    )
            else:
                if wholebody is None:
                    wholebody = build_wholebody_bundle(
                        tmp / "wholeBody_ct_segmentation",
                        fitted_steps=args.fitted_steps,
                        fitted_patch=args.fitted_patch,
                        fitted_head=args.fitted_steps == 0,
                    )
                bundle, extra = wholebody, ["--variant", model]
                monai_extra = ["--displayable_configs#highres", str(model == "highres")]
                if model == "highres" and args.highres_slices:
                    ct = crop_slices(
                        ct, tmp / f"ct_{args.highres_slices}.nii.gz", args.highres_slices
                    )
            source = ["--bundle", str(bundle), *extra]
            check = subprocess.run(
                [sys.executable, "-m", "ctseg_gui.cli", "backends", "check", str(ct), *source,
                 "--device", "cpu", "--windows", str(args.check_windows), "--json"],  # fmt: skip
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if check.returncode != 0:
                print(f"{model}: backends check failed: {check.stderr[-400:]}", flush=True)
                checks = {}
            else:
                checks = json.loads(check.stdout[check.stdout.index("{") :])
            outputs = {}
            monai_out = None
            if model != "highres" or args.monai_highres:
                out = tmp / f"monai_{model}"
                cmd = [sys.executable, "-m", "monai.bundle", "run",
                       "--config_file", str(bundle / "configs/inference.json"),
                       "--bundle_root", str(bundle), "--datalist", f"['{ct}']",
                       "--output_dir", str(out), *monai_extra]  # fmt: skip
                wall, rss, code, err, _ = run_logged(cmd, env)
                found = list(out.rglob("*.nii.gz"))
                monai_out = found[0] if code == 0 and found else None
                rows.append((model, "MONAI bundle run", "", None, wall, rss, code, err))
                print(f"{model} MONAI: {wall:.1f} s, {rss:.0f} MiB, exit {code}", flush=True)
            for backend, precision in RUNS:
                out = tmp / f"{model}_{backend}_{precision}.nii.gz"
                cmd = [sys.executable, "-m", "ctseg_gui.cli", "segment", str(ct), "-o", str(out),
                       *source, "--device", "cpu", "--backend", backend,
                       "--precision", precision, "-q"]  # fmt: skip
                wall, rss, code, err, said = run_logged(cmd, env)
                label = f"{backend} {precision}"
                if code == 0:
                    outputs[(backend, precision)] = out
                    if backend == "auto":  # what auto chose, from segment's summary line
                        ran = re.search(r"\[(\S+) (\S+)\]", said)
                        label += f" (ran {ran.group(1)} {ran.group(2)})" if ran else ""
                per_batch = checks.get(f"{backend}/{precision}", {}).get("seconds_per_batch")
                rows.append((model, label, backend, per_batch, wall, rss, code, err))
                print(f"{model} {label}: {wall:.1f} s, {rss:.0f} MiB, exit {code}", flush=True)
            reference = outputs.get(("torch", "fp32"))
            for i, row in enumerate(rows):
                if row[0] != model:
                    continue
                key = tuple(row[1].split(" ")[:2])
                ours = outputs.get(key) if key != ("MONAI", "bundle") else monai_out
                d_torch = mean_dice(ours, reference) if ours and reference else None
                d_monai = mean_dice(ours, monai_out) if ours and monai_out else None
                rows[i] = (*row, d_torch, d_monai)
            print_table(rows, args)
    return 0


def print_table(rows: list, args) -> None:
    """The table of every run so far (printed after each model, so a cut-short run still has one)."""
    print()
    header = (f"{'model':<8} {'backend precision':<40} {'s/batch':>8} {'e2e s':>7} "
              f"{'x torch':>7} {'RSS MiB':>8} {'Dice torch':>10} {'Dice MONAI':>10}")  # fmt: skip
    print(header)
    base = {r[0]: r[4] for r in rows if r[1] == "torch fp32" and r[6] == 0}
    for model, label, _, per_batch, wall, rss, code, err, *dice in rows:
        if code != 0:
            reason = err.strip().splitlines()[-1] if err.strip() else f"exit {code}"
            print(f"{model:<8} {label:<40} not run: {reason[:90]}")
            continue
        d_torch, d_monai = dice if dice else (None, None)
        speed = base[model] / wall if model in base else float("nan")
        print(
            f"{model:<8} {label:<40} {fmt(per_batch, 8, 2)} {wall:7.1f} {speed:7.2f} "
            f"{rss:8.0f} {fmt(d_torch, 10, 4)} {fmt(d_monai, 10, 4)}"
        )
    print(f"\n{os.cpu_count()} CPU cores; s/batch: {args.check_windows} window(s), best of two "
          f"(ctseg backends check); "
          f"whole-body weights: "
          + (f"fitted {args.fitted_steps} steps of {args.fitted_patch}^3 crops"
             if args.fitted_steps else "fixed-seed trunk, output layer fitted to the tissues")
          + "; Dice: mean over classes "
          "with >= 100 voxels in the reference")  # fmt: skip


def fmt(value, width: int, digits: int) -> str:
    return (
        f"{value:{width}.{digits}f}" if isinstance(value, (int, float)) else " " * (width - 1) + "-"
    )


def run_logged(command: list[str], env: dict) -> tuple[float, float, int, str, str]:
    """(wall s, peak RSS MiB, exit code, stderr tail, stdout) of one child process."""
    import time

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (
            wall,
            usage.ru_maxrss / 1024.0,
            os.waitstatus_to_exitcode(status),
            err.read().decode(errors="replace")[-400:],
            out.read().decode(errors="replace"),
        )


if __name__ == "__main__":
    sys.exit(main())
