"""Benchmark: whole-body (105-class SegResNet) lowres / highres, ours against MONAI's workflow.

The abdomen CT is resampled onto a 512 x 512 x 400 grid (about 0.71 x 0.59 x 0.84 mm, a typical
thin-slice CT); the bundle is wholeBody_ct_segmentation's real network and configs from
tests/bundles.py with fixed-seed weights, or with ``--fitted-steps N`` weights fitted N steps to the
CT's tissue classes (tests/fitted_weights.py; cached after the first run): only those have class
margins like a trained model's, so only they say what reduced precision does to the labels. Each
run is a subprocess; peak memory is its ru_maxrss.
MONAI's high-res run needs about 26 GB on CPU, so it only runs with ``--monai-highres`` (a
failure or kill is reported as the result).

    python benchmarks/bench_wholebody.py [--variants lowres highres] [--monai-highres]
        [--precisions auto reduced] [--repeat N] [--fitted-steps N]

With ``--repeat N`` every workflow runs N times, alternating MONAI's and ours, and the table gives
the median wall time (with the range) and the largest peak: a single run on a shared 2-core VM
varies by a few percent, as much as the margins being measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctseg_gui.inference.precision import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def run_measured(
    command: list[str], env: dict, memory_limit: int | None = None
) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit code, stderr tail) of one child process.

    ``memory_limit`` (bytes) caps the child's address space, so a run that needs more than the
    machine has fails with its own out-of-memory error instead of waking the kernel's OOM killer.
    """

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit if memory_limit else None,
    )
    _, status, usage = os.wait4(process.pid, 0)
    err = process.stderr.read().decode(errors="replace")
    return (
        time.perf_counter() - start,
        usage.ru_maxrss / 1024.0,
        os.waitstatus_to_exitcode(status),
        err[-400:],
    )


def make_large_ct(source: Path, target: Path, size=(512, 512, 400)) -> Path:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    spacing = [e / n for e, n in zip(extent, size, strict=True)]
    origin = image.TransformContinuousIndexToPhysicalPoint(
        [-0.5 + s / (2 * o) for s, o in zip(spacing, image.GetSpacing(), strict=True)]
    )
    resampled = sitk.Resample(
        image,
        list(size),
        sitk.Transform(),
        sitk.sitkLinear,
        origin,
        spacing,
        image.GetDirection(),
        -1024,
        sitk.sitkInt16,
    )
    sitk.WriteImage(resampled, str(target), useCompression=True, compressionLevel=1)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "tests/data/ct/abdomen_3mm.nii.gz"))
    parser.add_argument("--variants", nargs="+", default=["lowres", "highres"])
    parser.add_argument("--monai-highres", action="store_true", help="also run MONAI's highres")
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["auto", "reduced"],
        choices=PRECISIONS,
        help="run ours once per precision (auto = float32 on the CPU; reduced = bfloat16)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per workflow (median reported)")
    parser.add_argument(
        "--fitted-steps",
        type=int,
        default=0,
        help="weights fitted this many steps to the CT's tissue classes (0: fixed-seed weights, "
        "whose near-tied class scores make any rounding change move many voxels)",
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        help="cap each run's address space (report an out-of-memory instead of swapping/killing)",
    )
    args = parser.parse_args()

    from bundles import build_wholebody_bundle

    from ctseg_gui.io import read_image

    with tempfile.TemporaryDirectory(prefix="bench-wholebody-") as tmp:
        tmp = Path(tmp)
        ct = make_large_ct(Path(args.image), tmp / "ct512.nii.gz")
        bundle = build_wholebody_bundle(
            tmp / "wholeBody_ct_segmentation", num_workers=1, fitted_steps=args.fitted_steps
        )
        env = dict(os.environ, CTSEG_DATA_DIR=str(tmp / "data"), CUDA_VISIBLE_DEVICES="")
        runs, outputs = {}, {}  # (workflow, variant) -> [(wall, rss, code, err)]
        cap = int(args.memory_limit_gb * 2**30) if args.memory_limit_gb else None
        for variant in args.variants:
            highres = variant == "highres"
            jobs = []
            if not args.skip_monai and (not highres or args.monai_highres):
                out = tmp / f"monai_{variant}"
                cmd = [sys.executable, "-m", "monai.bundle", "run",
                       "--config_file", str(bundle / "configs/inference.json"),
                       "--bundle_root", str(bundle), "--datalist", f"['{ct}']",
                       "--output_dir", str(out), "--displayable_configs#highres", str(highres)]  # fmt: skip
                jobs.append(("MONAI bundle run", "monai", cmd, out))
            for precision in [] if args.skip_ours else args.precisions:
                ours = tmp / f"ours_{variant}_{precision}.nii.gz"
                cmd = [sys.executable, "-m", "ctseg_gui.cli", "segment", str(ct), "-o", str(ours),
                       "--bundle", str(bundle), "--variant", variant, "--device", "cpu",
                       "--precision", precision, "-q"]  # fmt: skip
                jobs.append((f"ctseg segment {precision}", precision, cmd, ours))
            for _ in range(args.repeat):  # alternating, so a slow spell hits both workflows
                for name, key, cmd, out in jobs:
                    result = run_measured(cmd, env, cap)
                    runs.setdefault((name, variant), []).append(result)
                    found = list(out.rglob("*.nii.gz")) if out.is_dir() else [out]
                    if result[2] == 0 and found and found[0].exists():
                        outputs[(key, variant)] = found[0]
        rows = []
        for (name, variant), results in runs.items():
            walls = [r[0] for r in results]
            failed = [r for r in results if r[2] != 0]
            code, err = (failed[0][2], failed[0][3]) if failed else (0, "")
            rows.append((name, variant, statistics.median(walls), min(walls), max(walls),
                         max(r[1] for r in results), code, err))  # fmt: skip
        weights = (
            f"weights fitted {args.fitted_steps} steps to the CT's tissue classes"
            if args.fitted_steps
            else "fixed-seed weights"
        )
        print(
            f"CT 512 x 512 x 400 resampled from {Path(args.image).name}; CPU, "
            f"{os.cpu_count()} cores; {weights}"
        )
        spread = args.repeat > 1
        print(f"{'workflow':<26}{'variant':<10}{'wall s':>9}{'(range)':>16}{'peak RSS MiB':>15}  "
              f"result{f'  [median of {args.repeat} runs; largest peak]' if spread else ''}")  # fmt: skip
        for name, variant, wall, low, high, rss, code, err in rows:
            result = (
                "ok"
                if code == 0
                else f"FAILED (exit {code}): {err.strip().splitlines()[-1] if err.strip() else ''}"
            )
            span = f"({low:.1f}-{high:.1f})" if spread else ""
            print(f"{name:<26}{variant:<10}{wall:>9.1f}{span:>16}{rss:>15.0f}  {result}")
        for variant in args.variants:
            monai = [r for r in rows if r[1] == variant and r[0].startswith("MONAI") and r[6] == 0]
            for precision in args.precisions:
                ours = [r for r in rows if r[1] == variant and r[0].endswith(f" {precision}")]
                if monai and ours and ours[0][6] == 0:
                    print(f"{variant} {precision}: time ratio ours/MONAI "
                          f"{ours[0][2] / monai[0][2]:.2f}, "
                          f"memory ratio {ours[0][5] / monai[0][5]:.2f}")  # fmt: skip
                if ("monai", variant) in outputs and (precision, variant) in outputs:
                    a = read_image(outputs[(precision, variant)]).array.astype(np.int64)
                    b = np.rint(read_image(outputs[("monai", variant)]).array).astype(np.int64)
                    scores = []
                    for value in np.unique(b):
                        n = int((b == value).sum())
                        if n >= 100:
                            x, y = a == value, b == value
                            scores.append(2 * float((x & y).sum()) / float(x.sum() + n))
                    print(f"{variant} {precision}: mean Dice vs MONAI over {len(scores)} classes "
                          f"with >= 100 voxels: {np.mean(scores):.5f} "
                          f"(min {np.min(scores):.5f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
