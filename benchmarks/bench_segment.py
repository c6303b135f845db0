"""Benchmark: ``ctseg segment`` against MONAI's own bundle workflow on a real CT.

Both run the spleen_ct_segmentation network and inferer settings (UNet 16-256, 96^3 windows,
sw_batch_size 4, overlap 0.5, 1.5 x 1.5 x 2 mm) from the same bundle folder built by
tests/bundles.py (model-zoo layout, fixed-seed weights). Each workflow runs as its own subprocess,
so wall time includes start-up (imports, config parsing, weights) exactly as a user pays it;
peak memory is the child's ru_maxrss (MONAI's DataLoader workers, if any, are not included).

The CT runs as stored (the 3 mm abdomen: start-up costs weigh most) and resampled onto the
512 x 512 x 400 grid of a thin-slice clinical CT (as bench_wholebody does).

    python benchmarks/bench_segment.py [--image CT.nii.gz] [--grids stored clinical]
        [--device cpu|cuda] [--precision auto|fp32|reduced] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctseg_gui.inference.precision import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def run_measured(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    out, err = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(
            f"command failed: {' '.join(command)}\n{err.decode()[-3000:]}{out.decode()[-500:]}"
        )
    return wall, usage.ru_maxrss / 1024.0


def dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    total = x.sum() + y.sum()
    return 1.0 if total == 0 else 2.0 * float((x & y).sum()) / float(total)


def run_pair(image: Path, bundle: Path, tmp: Path, env: dict, args) -> None:
    """Run both workflows ``args.repeat`` times on ``image`` and print their table."""
    from ctseg_gui.io import read_image

    results = {"monai": [], "ours": []}
    for r in range(args.repeat):
        out_monai = tmp / f"monai_{image.stem}{r}"
        monai_cmd = [
            sys.executable, "-m", "monai.bundle", "run",
            "--config_file", str(bundle / "configs/inference.json"),
            "--bundle_root", str(bundle),
            "--datalist", f"['{image}']",
            "--output_dir", str(out_monai),
        ]  # fmt: skip
        results["monai"].append(run_measured(monai_cmd, env))
        ours_out = tmp / f"ours_{image.stem}{r}.nii.gz"
        ours_cmd = [
            sys.executable, "-m", "ctseg_gui.cli", "segment", str(image),
            "-o", str(ours_out), "--bundle", str(bundle), "--device", args.device,
            "--precision", args.precision, "-q",
        ]  # fmt: skip
        results["ours"].append(run_measured(ours_cmd, env))
    (theirs_file,) = out_monai.rglob("*.nii.gz")
    theirs = np.rint(read_image(theirs_file).array).astype(np.int64)
    ours = read_image(ours_out).array.astype(np.int64)
    volume = read_image(image)
    best = {k: min(v, key=lambda x: x[0]) for k, v in results.items()}
    peak = {k: max(x[1] for x in v) for k, v in results.items()}
    print(f"\nimage   {image.name}  {'x'.join(map(str, volume.size))} voxels, spacing "
          f"{'x'.join(f'{s:.2f}' for s in volume.spacing)} mm; device {args.device}; "
          f"precision {args.precision}; {os.cpu_count()} CPU cores; best of {args.repeat}")  # fmt: skip
    print(f"{'workflow':<28}{'wall s':>10}{'peak RSS MiB':>16}")
    print(f"{'MONAI bundle run':<28}{best['monai'][0]:>10.1f}{peak['monai']:>16.0f}")
    print(f"{'ctseg segment':<28}{best['ours'][0]:>10.1f}{peak['ours']:>16.0f}")
    print(f"{'ratio ours / MONAI':<28}{best['ours'][0] / best['monai'][0]:>10.2f}"
          f"{peak['ours'] / peak['monai']:>16.2f}")  # fmt: skip
    for value in np.unique(theirs):
        print(f"Dice class {value}: {dice(ours, theirs, int(value)):.5f} "
              f"({int((theirs == value).sum())} voxels in MONAI's output)")  # fmt: skip
    print(f"voxel agreement: {float(np.mean(ours == theirs)):.6f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "tests/data/ct/abdomen_3mm.nii.gz"))
    parser.add_argument(
        "--grids",
        nargs="+",
        default=["stored", "clinical"],
        choices=["stored", "clinical"],
        help="stored: the image as it is; clinical: resampled onto 512 x 512 x 400",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    from bench_wholebody import make_large_ct
    from bundles import build_spleen_bundle

    image = Path(args.image).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        tmp = Path(tmp)
        # num_workers=4 as in the model zoo's spleen config
        bundle = build_spleen_bundle(tmp / "spleen_ct_segmentation", num_workers=4)
        env = dict(os.environ, CTSEG_DATA_DIR=str(tmp / "data"))
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # MONAI's config picks CUDA whenever it sees one
        for grid in args.grids:
            source = image if grid == "stored" else make_large_ct(image, tmp / "ct512.nii.gz")
            run_pair(source, bundle, tmp, env, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
