"""Click refinement benchmark: Dice after each simulated click and latency per click.

Runs the Deepgrow/nnInteractive click protocol (``ctseg_gui.interactive.simulator``) on the
abdomen CT and its reference labels with

* ``geodesic``: our model-free fallback (the default),
* ``random-walker``: scikit-image's random walker on the same cropped region (downsampled 2x),
  seeds from the clicks, the current mask's core and tissue far from the clicked intensity,
* ``region-grow``: SimpleITK confidence-connected region growing from the positive clicks, minus
  the components of negative clicks (the classic baseline),

and, with ``--deep``, the Deepgrow-format 3D path on CPU (a small fixed-seed network: latency only,
its Dice is meaningless without trained weights).

Besides the non-contrast 3 mm abdomen it runs the 1 mm contrast-enhanced DICOM series
(``--series contrast``; labels ``tests/data/labels/abdomen_ct_20_totalseg_v2.nii.gz``: 52 aorta,
64 portal/splenic vein, 63 IVC, 1 spleen, 5 liver). Each line gives Dice after the last click, the
largest Dice drop from one click to the next, the median latency per click and the Dice curve; the
load average is printed beside the latencies because the machine may be shared.

Usage::

    python benchmarks/bench_clicks.py [--series abdomen contrast] [--clicks 10] [--methods ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ctseg_gui.interactive.clicks import Click
from ctseg_gui.interactive.geodesic import GeodesicRefiner
from ctseg_gui.interactive.simulator import simulate
from ctseg_gui.io import read_image, read_label_map

ROOT = Path(__file__).resolve().parents[1]
NAMES = json.loads((ROOT / "resources" / "totalseg_v1_104_names.json").read_text())
SERIES = {
    "abdomen": (
        "tests/data/ct/abdomen_3mm.nii.gz",
        "tests/data/labels/abdomen_3mm_totalseg_v1.nii.gz",
        [1, 5, 2, 3, 7, 8, 9, 51, 52, 95, 21, 6],
    ),
    "contrast": (
        "tests/data/dicom/abdomen_ct_20",
        "tests/data/labels/abdomen_ct_20_totalseg_v2.nii.gz",
        [52, 64, 63, 1, 5],
    ),
}


class RandomWalkerRefiner:
    """Random walker on a 2x-downsampled box around the click (all clicks, recomputed)."""

    def __init__(self, image, half_mm: float = 100.0, beta: float = 2000.0) -> None:
        self.image = image
        self.half = np.ceil(half_mm / np.asarray(image.spacing)[::-1]).astype(int)
        self.beta = beta

    def refine(self, mask, clicks):
        from skimage.segmentation import random_walker

        c = np.asarray(clicks[-1].kji)
        region = tuple(
            slice(max(0, int(x - h)), min(n, int(x + h + 1)))
            for x, h, n in zip(c, self.half, mask.shape, strict=True)
        )
        lo = np.array([s.start for s in region])
        img = self.image.array[region].astype(np.float32)[::2, ::2, ::2]
        cur = mask[region][::2, ::2, ::2]
        seeds = np.zeros(img.shape, np.int32)
        pos = [tuple((np.asarray(k.kji) - lo) // 2) for k in clicks if k.positive]
        neg = [tuple((np.asarray(k.kji) - lo) // 2) for k in clicks if not k.positive]
        inside = [p for p in pos if all(0 <= x < n for x, n in zip(p, img.shape, strict=True))]
        samples = np.concatenate([img[cur]] + [img[p].ravel() for p in inside] or [[0.0]])
        centre = float(np.median(samples))
        seeds[np.abs(img - centre) > 60] = 2
        seeds[ndi.binary_erosion(cur, iterations=2)] = 1
        for p in inside:
            seeds[p] = 1
        for p in neg:
            if all(0 <= x < n for x, n in zip(p, img.shape, strict=True)):
                seeds[p] = 2
        if not (seeds == 1).any():
            return region, mask[region]
        norm = (img - centre) / 100.0
        result = random_walker(norm, seeds, beta=self.beta, mode="cg_j", tol=1e-2) == 1
        full = np.repeat(np.repeat(np.repeat(result, 2, 0), 2, 1), 2, 2)
        shape = tuple(s.stop - s.start for s in region)
        return region, full[: shape[0], : shape[1], : shape[2]]


class RegionGrowRefiner:
    """SimpleITK confidence-connected growing from positive clicks, minus negative components."""

    def __init__(self, image) -> None:
        import SimpleITK as sitk

        self.sitk = sitk
        self.itk_image = sitk.Cast(sitk.GetImageFromArray(image.array), sitk.sitkFloat32)

    def refine(self, mask, clicks):
        sitk = self.sitk
        pos = [list(k.index) for k in clicks if k.positive]
        grown = np.zeros(mask.shape, bool)
        if pos:
            seg = sitk.ConfidenceConnected(
                self.itk_image,
                pos,
                numberOfIterations=2,
                multiplier=2.0,
                initialNeighborhoodRadius=1,
            )
            grown = sitk.GetArrayFromImage(seg) > 0
        for k in clicks:
            if not k.positive and grown[k.kji]:
                labels, _ = ndi.label(grown)
                grown &= labels != labels[k.kji]
        return tuple(slice(0, n) for n in mask.shape), grown


def deep_latency(image, roi=(128, 128, 128), clicks: int = 5) -> list[float]:
    """Per-click CPU latency of the Deepgrow-format 3D path on a fixed-seed network."""
    from ctseg_gui.interactive.deep import DeepgrowRefiner, build_test_deepgrow_network

    network = build_test_deepgrow_network(spatial_dims=3, seed=0)
    refiner = DeepgrowRefiner(image, network, roi_size=roi, spatial_dims=3)
    mask = np.zeros(image.array.shape, bool)
    times = []
    k, j, i = (n // 2 for n in image.array.shape)
    history: list[Click] = []
    for n in range(clicks):
        history.append(Click((i + 3 * n, j, k), positive=n % 3 != 2))
        start = time.perf_counter()
        region, values = refiner.refine(mask, list(history))
        mask[region] = values
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="+", default=list(SERIES), choices=list(SERIES))
    parser.add_argument("--labels", type=int, nargs="+", help="override the series' structures")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument(
        "--methods", nargs="+", default=["geodesic", "random-walker", "region-grow"]
    )
    parser.add_argument("--deep", action="store_true", help="also time the Deepgrow 3D path")
    args = parser.parse_args()
    if "random-walker" in args.methods and importlib.util.find_spec("skimage") is None:
        print("random-walker skipped: scikit-image is not installed", flush=True)
        args.methods.remove("random-walker")

    makers = {
        "geodesic": GeodesicRefiner,
        "random-walker": RandomWalkerRefiner,
        "region-grow": RegionGrowRefiner,
    }
    summary: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for series in args.series:
        path, reference_path, labels = SERIES[series]
        image = read_image(ROOT / path)
        reference = read_label_map(ROOT / reference_path, image)
        spacing = tuple(image.spacing[::-1])
        for method in args.methods:
            refiner = makers[method](image)
            finals, drops, latencies = summary.setdefault(method, ([], [], []))
            for value in args.labels or labels:
                name = reference.table[value].name if value in reference.table else "?"
                if series == "abdomen":
                    name = NAMES.get(str(value), name)
                run = simulate(refiner, reference.array == value, args.clicks, spacing)
                drop = max(
                    [0.0] + [a - b for a, b in zip(run.dice[:-1], run.dice[1:], strict=True)]
                )
                finals.append(run.dice[-1])
                drops.append(drop)
                latencies += run.latency_ms
                curve = " ".join(f"{d:.2f}" for d in run.dice)
                print(
                    f"{series:8s} {method:13s} {value:3d} {name:28s} dice@{args.clicks} "
                    f"{run.dice[-1]:.3f}  max drop {drop:.3f}  median "
                    f"{np.median(run.latency_ms):6.1f} ms (load {os.getloadavg()[0]:.1f})"
                    f"  [{curve}]",
                    flush=True,
                )
    print()
    ours = summary.get("geodesic")
    for method, (finals, drops, latencies) in summary.items():
        latency = float(np.median(latencies))
        ratio = f"  latency ratio vs geodesic {latency / np.median(ours[2]):.2f}x" if ours else ""
        print(
            f"{method:14s} mean dice@{args.clicks} {np.mean(finals):.3f} (min {np.min(finals):.3f}),"
            f" largest drop {np.max(drops):.3f}, median latency {latency:.1f} ms{ratio}"
        )
    if args.deep:
        import torch

        image = read_image(ROOT / SERIES["abdomen"][0])
        for size in (64, 96, 128):
            times = deep_latency(image, (size, size, size))
            print(
                f"deepgrow-3d CPU per-click latency ({size}^3 ROI, BasicUNet 8-64 features, "
                f"{torch.get_num_threads()} threads): median {np.median(times):.0f} ms, "
                f"all {[round(t) for t in times]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
