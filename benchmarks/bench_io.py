"""Load time of a DICOM series and of NIfTI CTs: ours (``read_image``) beside plain SimpleITK.

Both sides end with a numpy array in memory. Runs alternate between the two readers so that
caches and machine noise hit both alike; the median of N runs is reported with the ratio.
Goal: ours within 1.2x of SimpleITK.

    python benchmarks/bench_io.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctseg_gui.io import read_image

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def sitk_dicom(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def sitk_file(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def large_nifti(folder: Path) -> Path:
    """The abdomen CT resampled onto a 512 x 512 x 400 grid (0.71 x 0.59 x 0.84 mm)."""
    image = sitk.ReadImage(str(DATA / "ct" / "abdomen_3mm.nii.gz"), sitk.sitkInt16)
    size = (512, 512, 400)
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    spacing = [e / n for e, n in zip(extent, size, strict=True)]
    resampled = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        -1024,
        sitk.sitkInt16,
    )
    path = folder / "ct_512x512x400.nii.gz"
    sitk.WriteImage(resampled, str(path), useCompression=True)
    return path


def measure(name: str, ours, reference, repeats: int) -> tuple[str, float, float]:
    ours_times, reference_times = [], []
    ours(), reference()  # warm file cache and lazy imports on both sides
    for _ in range(repeats):
        for run, times in ((ours, ours_times), (reference, reference_times)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return name, statistics.median(ours_times), statistics.median(reference_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    dicom = DATA / "dicom" / "abdomen_ct_20"
    nifti = DATA / "ct" / "abdomen_3mm.nii.gz"
    with tempfile.TemporaryDirectory() as tmp:
        big = large_nifti(Path(tmp))
        rows = [
            measure(
                "DICOM 512x512x20 (JPEG 2000)",
                lambda: read_image(dicom).array,
                lambda: sitk_dicom(dicom),
                args.repeats,
            ),
            measure(
                "NIfTI 122x101x112 (.nii.gz)",
                lambda: read_image(nifti).array,
                lambda: sitk_file(nifti),
                args.repeats,
            ),
            measure(
                "NIfTI 512x512x400 (.nii.gz)",
                lambda: read_image(big).array,
                lambda: sitk_file(big),
                max(3, args.repeats // 2),
            ),
        ]
    print(f"{'input':32} {'ours ms':>9} {'SimpleITK ms':>13} {'ratio':>6}  goal <= 1.20")
    for name, ours, reference in rows:
        print(f"{name:32} {ours * 1e3:9.1f} {reference * 1e3:13.1f} {ours / reference:6.2f}")


if __name__ == "__main__":
    main()
