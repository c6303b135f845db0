"""The backend seam: exports that match torch, per-backend parity on the real CT, caches, auto.

Each optional backend's tests are skipped, with the reason, where its package is not installed.
TensorRT needs a CUDA GPU and is never installed on the CPU-only test machines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bundles import build_spleen_bundle
from monai.networks.nets import SegResNet

from ctseg_gui.cli import main
from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference.backends import is_installed, make_predictor
from ctseg_gui.inference.backends.cache import cache_root
from ctseg_gui.inference.backends.choice import check_parity, choose, dice_scores, record_file
from ctseg_gui.inference.sliding import WindowSettings, sliding_window_labels
from ctseg_gui.io import read_image

EXPORTED = [
    pytest.param(
        b,
        marks=pytest.mark.skipif(not is_installed(b), reason=f"{b} is not installed here"),
    )
    for b in ("onnxruntime", "openvino")
]
ROI = (64, 64, 64)


@pytest.fixture(autouse=True)
def _folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def ct_tensor(abdomen_ct):
    """The real abdomen CT scaled to about [-1, 1], (1, X, Y, Z) as MONAI holds it."""
    array = read_image(abdomen_ct).array.transpose(2, 1, 0).astype(np.float32)
    return torch.from_numpy(np.clip(array, -1000.0, 1000.0) / 1000.0)[None]


@pytest.fixture(scope="module")
def segresnet():
    torch.manual_seed(3)
    net = SegResNet(spatial_dims=3, in_channels=1, out_channels=7, init_filters=8,
                    blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1])  # fmt: skip
    return net.eval()


def _windows(ct_tensor, n=2):
    """n windows of the real CT, from its middle."""
    x = ct_tensor[:, 20:84, 20:84, 24:88]
    return torch.stack([x, torch.roll(x, 7, 1)][:n])


@pytest.mark.parametrize("backend", EXPORTED)
@pytest.mark.parametrize("labels_only", [True, False], ids=["features", "scores"])
def test_exported_network_matches_torch(backend, labels_only, segresnet, ct_tensor):
    torch_side = make_predictor("torch", segresnet, "cpu", "fp32", roi=ROI, labels_only=labels_only)
    exported = make_predictor(backend, segresnet, "cpu", "fp32", roi=ROI, labels_only=labels_only)
    assert (exported.name, exported.dtype) == (backend, "float32")
    # with only labels wanted the SegResNet's head is left to the stitcher, for every backend
    assert (exported.head is None) == (torch_side.head is None) == (not labels_only)
    windows = _windows(ct_tensor)
    expected, got = torch_side(windows).float(), exported(windows)
    assert got.shape == expected.shape == (2, 8 if labels_only else 7, *ROI)
    scale = float(expected.abs().max())
    assert scale > 0.1
    assert float((got - expected).abs().max()) <= 1e-4 * scale + 1e-5


@pytest.mark.parametrize("backend", EXPORTED)
def test_backend_labels_match_torch_on_the_real_ct(backend, tmp_path, small_ct):
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    outputs = {}
    for name in ("torch", backend):
        out = tmp_path / f"{name}.nii.gz"
        args = ["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle), "-q"]
        assert main([*args, "--backend", name]) == 0
        outputs[name] = read_image(out).array.astype(np.int64)
    reference = outputs["torch"]
    assert np.bincount(reference.ravel(), minlength=2).min() > 5000  # both classes present
    scores = dice_scores(outputs[backend], reference)
    assert set(scores) == {0, 1}
    assert min(scores.values()) >= 0.999, scores


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino is not installed here")
def test_openvino_reduced_precision_keeps_the_labels(ct_tensor, segresnet):
    from ctseg_gui.inference.backends.ov import reduced_precision

    if reduced_precision() is None:
        with pytest.raises(CtsegError, match="bfloat16"):
            make_predictor("openvino", segresnet, "cpu", "reduced", roi=ROI)
        pytest.skip("this CPU has no bfloat16 instructions")
    predictor = make_predictor("openvino", segresnet, "cpu", "reduced", roi=ROI)
    assert predictor.dtype == "bfloat16"
    settings = WindowSettings(roi_size=ROI, sw_batch_size=2, overlap=0.25)
    expected, _ = sliding_window_labels(ct_tensor, segresnet, settings)
    labels, _ = sliding_window_labels(ct_tensor, predictor, settings)
    scores = dice_scores(labels.numpy(), expected.numpy())
    assert len(scores) >= 4
    assert float(np.mean(list(scores.values()))) >= 0.95, scores


@pytest.mark.skipif(is_installed("tensorrt"), reason="TensorRT is installed: this is for without")
def test_tensorrt_absent_is_one_line(tmp_path, small_ct, capsys):
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    args = ["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--bundle", str(bundle)]
    assert main([*args, "-q", "--backend", "tensorrt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ctseg: error: the tensorrt backend is not installed"), err


@pytest.mark.skipif(not is_installed("tensorrt"), reason="TensorRT is not installed (no GPU here)")
def test_tensorrt_matches_torch(segresnet, ct_tensor):
    network = segresnet.to("cuda")
    windows = _windows(ct_tensor).to("cuda")
    expected = make_predictor("torch", network, "cuda", "fp32", roi=ROI)(windows).float()
    got = make_predictor("tensorrt", network, "cuda", "fp32", roi=ROI)(windows)
    assert float((got - expected).abs().max()) <= 1e-3 * float(expected.abs().max())


def test_missing_backend_package_is_reported(segresnet, monkeypatch):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find(name, *a)
    )
    assert not is_installed("openvino")
    with pytest.raises(CtsegError, match=r"openvino backend is not installed.*ctseg-gui\[openvino"):
        make_predictor("openvino", segresnet, "cpu", roi=ROI)


@pytest.mark.parametrize("backend", EXPORTED)
def test_damaged_cached_export_is_rebuilt(backend, segresnet, ct_tensor):
    first = make_predictor(backend, segresnet, "cpu", "fp32", roi=ROI)
    expected = first(_windows(ct_tensor, 1))
    (export,) = (cache_root() / "onnx").glob("*.onnx")
    size = export.stat().st_size
    with open(export, "r+b") as stream:
        stream.truncate(size // 3)
    again = make_predictor(backend, segresnet, "cpu", "fp32", roi=ROI)
    assert export.stat().st_size == size  # exported anew
    assert torch.allclose(again(_windows(ct_tensor, 1)), expected, atol=1e-5)


def test_auto_takes_the_fastest_passed_check(segresnet, ct_tensor):
    candidates = [(b, "fp32") for b in ("onnxruntime", "openvino") if is_installed(b)]
    results = check_parity(
        segresnet, torch.device("cpu"), _windows(ct_tensor), candidates=candidates
    )
    assert results["torch/fp32"]["passed"]
    for backend, precision in candidates:
        entry = results[f"{backend}/{precision}"]
        assert entry["passed"] and entry["mean_dice"] >= 0.999, entry
    passed = {k: v["seconds_per_batch"] for k, v in results.items() if v["passed"]}
    fastest = min(passed, key=passed.get)
    assert choose(segresnet, torch.device("cpu"), ROI, True) == tuple(fastest.split("/"))
    predictor = make_predictor("auto", segresnet, "cpu", roi=ROI)
    assert predictor.name == fastest.split("/")[0]
    # a failed check, or one recorded for another version of the backend, is never chosen
    data = json.loads(record_file().read_text())
    (entries,) = data.values()
    for name, entry in entries.items():
        if name != "torch/fp32":
            entry["passed"] = False
    entries["torch/fp32"]["seconds_per_batch"] = 1e9
    entries["openvino/fp32"] = {**entries["torch/fp32"], "seconds_per_batch": 0.0,
                                "version": "0.0-other"}  # fmt: skip
    record_file().write_text(json.dumps(data))
    assert choose(segresnet, torch.device("cpu"), ROI, True) == ("torch", "fp32")
    record_file().write_text("{not json")  # a damaged record is no record
    assert choose(segresnet, torch.device("cpu"), ROI, True, "auto") == ("torch", "auto")
    # the record is per weights: another network has none
    other = SegResNet(spatial_dims=3, init_filters=8, out_channels=7).eval()
    assert choose(other, torch.device("cpu"), ROI, True, "fp32") == ("torch", "fp32")


def test_check_records_what_segment_auto_then_runs(tmp_path, small_ct, capsys):
    assert main(["backends", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["backends"]["onnxruntime"] == (
        None if not is_installed("onnxruntime") else listing["backends"]["onnxruntime"]
    )
    assert listing["cache"] == str(cache_root())
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    assert main(["backends", "check", str(small_ct), "--bundle", str(bundle), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert record_file().is_file()
    assert results["torch/fp32"]["passed"]
    assert results["tensorrt/fp32"]["passed"] is False  # no GPU: skipped, with the reason
    for name in ("onnxruntime/fp32", "openvino/fp32"):
        if is_installed(name.split("/")[0]):
            assert results[name]["passed"] and results[name]["mean_dice"] >= 0.999, results[name]
    passed = {k: v["seconds_per_batch"] for k, v in results.items() if v["passed"]}
    backend = min(passed, key=passed.get).split("/")[0]
    out = tmp_path / "auto.nii.gz"
    args = ["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle), "-q"]
    assert main(args) == 0  # --backend auto is the default
    assert f"[{backend} " in capsys.readouterr().out
