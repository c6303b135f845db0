"""``ctseg segment INPUT -o OUT.nii.gz [-m ID | --bundle DIR] [--variant V] [--device D]``."""

from __future__ import annotations

import argparse
import sys
import time

from ctseg_gui.inference.backends import BACKENDS
from ctseg_gui.inference.precision import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CT: DICOM folder or file, NIfTI, NRRD or MetaImage")
    parser.add_argument("-o", "--output", required=True, help="label map to write (.nii.gz...)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "-m", "--model", default=None, help="model id (default ct-tissues; see `ctseg models list`)"
    )
    source.add_argument("--bundle", metavar="DIR", help="run this MONAI bundle folder as is")
    parser.add_argument("--variant", help="model variant, e.g. highres or lowres")
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


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.inference import resolve_model, segment_volume
    from ctseg_gui.inference.engine import preload_libraries
    from ctseg_gui.io import read_image, write_label_map

    model = resolve_model(args.model, args.bundle, args.variant)
    if not model.builtin:
        preload_libraries()  # overlaps with reading the CT
    volume = read_image(args.input, series_uid=args.series)
    require_ct(volume, str(args.input))
    bar = None if args.quiet else ProgressBar()
    try:
        labels = segment_volume(
            volume,
            model,
            device=args.device,
            precision=args.precision,
            backend=args.backend,
            progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    path = write_label_map(labels, args.output)
    counts = labels.voxel_counts()
    ran = getattr(labels, "run_info", None)
    ran = f" [{ran['backend']} {ran['dtype']}]" if ran else ""
    print(
        f"{path}: {len(counts)} labels from {model.name}{ran} "
        f"({', '.join(labels.table[v].name for v in sorted(counts)[:6])}"
        f"{', ...' if len(counts) > 6 else ''})"
    )
    return 0
