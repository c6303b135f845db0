"""Per-class Dice of a model on cases with reference labels (``ctseg evaluate``).

Each case's CT is segmented with :func:`ctseg_gui.inference.engine.segment_volume` (what
``ctseg segment`` and the GUI run), on the CT's own grid; the reference label map is read onto the
same grid (a mismatch is an error naming the file), its values mapped onto the model's classes,
and MONAI's ``compute_dice`` scores each class. A class absent from a case's reference gives no
score for that case; the per-class figure is the mean over the cases that have the class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path


def _dice(prediction, reference, classes: list[int]) -> dict[int, float]:
    import torch
    from monai.metrics import compute_dice

    scores = {}
    pred = torch.from_numpy(prediction)
    ref = torch.from_numpy(reference)
    for c in classes:
        y = (ref == c)[None, None]
        y_pred = (pred == c)[None, None]
        value = compute_dice(y_pred, y, include_background=True, ignore_empty=True)
        scores[c] = float(value.reshape(-1)[0])
    return scores


def evaluate_model(
    model,
    cases: list[dict],
    label_map: dict[str, int] | None = None,
    *,
    device: str = "auto",
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """``{"model", "mean_dice", "per_class", "cases"}`` for ``model`` (a ModelRef) on ``cases``.

    ``label_map`` maps reference values onto model classes (``{"<value>": class}``); values it
    does not name are ignored; None keeps values as they are.
    """
    import numpy as np

    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.inference.engine import _plan, label_table_for, segment_volume
    from ctseg_gui.io import read_image, read_label_map

    table = label_table_for(model, None if model.builtin else _plan(model))
    names = {entry.value: entry.name for entry in table}
    classes = sorted(v for v in names if v != 0)
    rows = []
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case["image"])
        volume = read_image(case["image"])
        require_ct(volume, case["image"])
        reference = read_label_map(case["label"], volume).array
        reference = np.rint(reference).astype(np.int32)
        if label_map is not None:
            mapped = np.zeros_like(reference)
            for source, target in label_map.items():
                mapped[reference == int(source)] = int(target)
            reference = mapped
        prediction = segment_volume(volume, model, device=device).array.astype(np.int32)
        scores = _dice(prediction, reference, classes)
        rows.append({"image": case["image"], "dice": {names[c]: scores[c] for c in classes}})
    per_class = {}
    for c in classes:
        values = [r["dice"][names[c]] for r in rows if not math.isnan(r["dice"][names[c]])]
        per_class[names[c]] = sum(values) / len(values) if values else float("nan")
    present = [d for d in per_class.values() if not math.isnan(d)]
    return {
        "model": model.name,
        "mean_dice": sum(present) / len(present) if present else float("nan"),
        "per_class": per_class,
        "cases": rows,
    }


def write_csv(path: str | Path, results: list[dict]) -> Path:
    """One row per (model, case, class) plus each model's per-class means (case ``mean``)."""
    import csv

    path = Path(path)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "case", "class", "dice"])
        for result in results:
            for row in result["cases"]:
                for name, value in row["dice"].items():
                    writer.writerow([result["model"], row["image"], name, _fmt(value)])
            for name, value in result["per_class"].items():
                writer.writerow([result["model"], "mean", name, _fmt(value)])
    return path


def _fmt(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"


def table(results: list[dict]) -> str:
    """Per-class Dice of one or more models side by side (classes any reference has)."""
    names = [
        n
        for n in results[0]["per_class"]
        if any(not math.isnan(r["per_class"].get(n, float("nan"))) for r in results)
    ]
    width = max([len("class"), len("mean"), *map(len, names)])
    header = f"{'class':<{width}}  " + "  ".join(f"{r['model']:>14.14}" for r in results)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = "  ".join(
            f"{_fmt(r['per_class'].get(name, float('nan'))) or '-':>14}" for r in results
        )
        lines.append(f"{name:<{width}}  {cells}")
    means = "  ".join(f"{_fmt(r['mean_dice']) or '-':>14}" for r in results)
    lines.append(f"{'mean':<{width}}  {means}")
    return "\n".join(lines)
