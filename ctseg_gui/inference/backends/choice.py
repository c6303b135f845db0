"""Parity checks of the backends against torch float32, recorded, and ``auto``'s choice.

A check runs the same windows of a real CT through torch float32 and through each candidate
(backend, precision), compares the window labels class by class (Dice), and times each. The
results are recorded in ``parity.json`` in the cache folder, per network weights, device and
window shape, with the backend's version. ``auto`` then takes the fastest candidate that passed
and whose backend is still installed at the recorded version; with no record it is torch.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

#: mean Dice over classes (against torch float32) a candidate needs to pass
PASS_DICE = 0.99
#: classes with fewer voxels in the reference windows are not scored
MIN_CLASS_VOXELS = 50
CANDIDATES = (
    ("torch", "reduced"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "reduced"),
    ("tensorrt", "fp32"),
    ("tensorrt", "reduced"),
)


def record_file() -> Path:
    from ctseg_gui.inference.backends.cache import cache_root

    return cache_root() / "parity.json"


def record_key(network, device, roi, labels_only: bool) -> str:
    from ctseg_gui.inference.backends.cache import weights_digest

    shape = "x".join(str(int(r)) for r in roi)
    return f"{weights_digest(network)}|{device}|{shape}|{'labels' if labels_only else 'scores'}"


def read_records() -> dict:
    """The parity record; an unreadable or malformed file counts as empty."""
    try:
        data = json.loads(record_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_records(data: dict) -> None:
    from ctseg_gui.inference.backends.cache import write_atomically

    write_atomically(record_file(), lambda tmp: tmp.write_text(json.dumps(data, indent=1)))


def choose(network, device, roi, labels_only: bool, precision: str = "auto") -> tuple[str, str]:
    """``(backend, precision)``: the fastest recorded pass, else ``("torch", precision)``.

    ``precision`` ``auto`` lets any passed precision be chosen; another value only that one.
    """
    from ctseg_gui.inference.backends import backend_version, is_installed

    entries = read_records().get(record_key(network, device, roi, labels_only), {})
    best, best_time = ("torch", precision), None
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not entry.get("passed"):
            continue
        backend, _, prec = name.partition("/")
        if precision != "auto" and prec != precision:
            continue
        if backend != "torch" and not is_installed(backend):
            continue
        if entry.get("version") != backend_version(backend):
            continue
        seconds = entry.get("seconds_per_batch")
        if isinstance(seconds, (int, float)) and (best_time is None or seconds < best_time):
            best, best_time = (backend, prec), float(seconds)
    return best


def _window_labels(predictor, windows):
    import torch

    out = predictor(windows)
    labels = []
    for scores in out.float():
        if predictor.head is not None:
            ones = torch.ones((1, *scores.shape[1:]), dtype=torch.float32, device=scores.device)
            labels.append(predictor.head.labels(scores, ones))
        elif scores.shape[0] == 1:
            labels.append((scores[0] > 0).to(torch.int16))
        else:
            labels.append(scores.argmax(0).to(torch.int16))
    return torch.stack(labels).cpu()


def dice_scores(ours, reference, min_voxels: int = MIN_CLASS_VOXELS) -> dict[int, float]:
    """Dice per class of ``reference`` (classes with at least ``min_voxels`` voxels)."""
    import numpy as np

    ours, reference = np.asarray(ours), np.asarray(reference)
    scores = {}
    for value in np.unique(reference):
        b = reference == value
        if int(b.sum()) >= min_voxels:
            a = ours == value
            scores[int(value)] = 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())
    return scores


def _timed(predictor, windows, repeat: int = 2):
    _window_labels(predictor, windows)  # warm-up: first-call allocations, lazy compilation
    best, labels = None, None
    for _ in range(repeat):
        started = time.perf_counter()
        labels = _window_labels(predictor, windows)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return labels, best


def check_parity(
    network,
    device,
    windows,
    *,
    labels_only: bool = True,
    candidates=CANDIDATES,
    bundle_amp: bool = True,
    progress=None,
    record: bool = True,
) -> dict[str, dict]:
    """Check ``candidates`` against torch float32 on ``windows`` ``(N, 1, *roi)``; record them.

    Returns ``{"backend/precision": entry}`` with ``passed``, ``mean_dice``, ``min_dice``,
    ``seconds_per_batch`` (the N windows), ``version``, ``checked``; a candidate that cannot run
    here has ``passed`` False and its ``reason``.
    """
    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.inference.backends import backend_version, is_installed, make_predictor

    roi = tuple(int(s) for s in windows.shape[2:])
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def build(backend, precision):
        return make_predictor(
            backend,
            network,
            device,
            precision,
            roi=roi,
            labels_only=labels_only,
            bundle_amp=bundle_amp,
        )

    reference, seconds = _timed(build("torch", "fp32"), windows)
    results = {
        "torch/fp32": {
            "passed": True,
            "mean_dice": 1.0,
            "min_dice": 1.0,
            "seconds_per_batch": seconds,
            "windows": len(windows),
            "version": backend_version("torch"),
            "checked": now,
        }
    }
    for i, (backend, precision) in enumerate(candidates):
        if progress is not None:
            progress(f"checking {backend} {precision}", i / max(len(candidates), 1))
        name = f"{backend}/{precision}"
        if not is_installed(backend):
            results[name] = {"passed": False, "reason": "not installed", "checked": now}
            continue
        try:
            labels, seconds = _timed(build(backend, precision), windows)
        except (CtsegError, RuntimeError, ValueError) as error:
            results[name] = {"passed": False, "reason": str(error), "checked": now}
            continue
        scores = dice_scores(labels.numpy(), reference.numpy())
        mean = sum(scores.values()) / max(len(scores), 1)
        results[name] = {
            "passed": bool(scores) and mean >= PASS_DICE,
            "mean_dice": mean,
            "min_dice": min(scores.values()) if scores else 0.0,
            "seconds_per_batch": seconds,
            "windows": len(windows),
            "version": backend_version(backend),
            "checked": now,
        }
    if record:
        data = read_records()
        data[record_key(network, device, roi, labels_only)] = results
        _write_records(data)
    return results
