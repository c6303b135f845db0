"""Engine failures the user can cause: clear CtsegErrors naming the file; cancel; fallback path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from bundles import SPLEEN_NETWORK, _seeded_state_dict, build_spleen_bundle

from ctseg_gui.cli import main
from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference import (
    BundleError,
    JobCancelled,
    ModelNotFoundError,
    estimate_resources,
    resolve_model,
    segment_volume,
)
from ctseg_gui.inference.engine import clear_model_cache
from ctseg_gui.io import read_image


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    clear_model_cache()


@pytest.fixture(scope="module")
def spleen_bundle(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("bundles") / "spleen")


@pytest.fixture
def bundle_copy(tmp_path, spleen_bundle):
    target = tmp_path / "spleen_copy"
    shutil.copytree(spleen_bundle, target)
    return target


@pytest.fixture(scope="module")
def small_volume(small_ct):
    return read_image(small_ct)


def test_missing_weights_names_the_file(bundle_copy, small_volume):
    (bundle_copy / "models" / "model.pt").unlink()
    with pytest.raises(BundleError, match="weights file is missing") as info:
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")
    assert info.value.path == bundle_copy / "models" / "model.pt"


def test_corrupt_weights(bundle_copy, small_volume):
    (bundle_copy / "models" / "model.pt").write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(BundleError, match="damaged or not a PyTorch file"):
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")


def test_mismatched_weights_say_which_keys(bundle_copy, small_volume):
    other = dict(SPLEEN_NETWORK, out_channels=3)
    torch.save({"model": _seeded_state_dict(other, 1)}, bundle_copy / "models" / "model.pt")
    with pytest.raises(
        BundleError, match=r"do not fit the network: .*shape mismatch.*\(3,"
    ) as info:
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")
    assert "model.pt" in str(info.value)


def test_corrupt_config(bundle_copy, small_volume):
    config = bundle_copy / "configs" / "inference.json"
    config.write_text(config.read_text()[:-40])
    with pytest.raises(BundleError) as info:
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")
    assert "inference.json" in str(info.value)


def test_config_with_unknown_network(bundle_copy, small_volume):
    config_file = bundle_copy / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["network_def"]["_target_"] = "NoSuchNet"
    config_file.write_text(json.dumps(config))
    with pytest.raises(BundleError, match="cannot build the network"):
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")


def test_multi_image_bundle_is_refused_before_running(bundle_copy, small_volume):
    # e.g. renalStructures_CECT_segmentation reads three contrast phases per case
    config_file = bundle_copy / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["preprocessing"]["transforms"][0]["keys"] = ["artery", "vein", "excret"]
    config_file.write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"reads 3 images per case \(artery, vein, excret\)"):
        segment_volume(small_volume, resolve_model(bundle=bundle_copy), device="cpu")


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="configs/inference.json is missing"):
        resolve_model(bundle=tmp_path)


def test_unknown_and_uninstalled_models(spleen_bundle):
    with pytest.raises(ModelNotFoundError, match="known models: ct-tissues"):
        resolve_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="not installed"):
        resolve_model("spleen_ct_segmentation")
    with pytest.raises(BundleError, match="no variant 'highres'"):
        resolve_model(bundle=spleen_bundle, variant="highres")


def test_cancel_stops_at_the_next_batch(spleen_bundle, small_volume):
    stages = []

    def cancelled() -> bool:  # the user presses Cancel once the first batch has finished
        return any(stage == "inference" for stage, _ in stages)

    with pytest.raises(JobCancelled):
        segment_volume(
            small_volume,
            resolve_model(bundle=spleen_bundle),
            device="cpu",
            progress=lambda stage, f: stages.append((stage, f)),
            cancelled=cancelled,
        )
    inference = [f for s, f in stages if s == "inference"]
    assert len(inference) == 1 and inference[0] < 1.0  # no window ran after the cancel
    assert not any(s == "resampling" for s, _ in stages)
    assert issubclass(JobCancelled, CtsegError)


def test_fallback_chain_matches_fast_path(bundle_copy, small_volume):
    # With a foreground crop in the chain: our crop + zero-padded inversion against MONAI's own
    # transforms and Invertd (the fallback path runs exactly those).
    config_file = bundle_copy / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["preprocessing"]["transforms"].insert(
        5, {"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "margin": 2}
    )
    config_file.write_text(json.dumps(config))
    ref = resolve_model(bundle=bundle_copy)
    stages = []
    fast = segment_volume(small_volume, ref, device="cpu", progress=lambda s, f: stages.append(s))
    slow = segment_volume(small_volume, ref, device="cpu", fast_path=False)
    assert stages[0] == "loading" and stages[-1] == "resampling"
    assert fast.array.shape == small_volume.array.shape
    agree = float(np.mean(fast.array == slow.array))
    assert agree > 0.999, agree
    assert 0.02 < float(np.mean(fast.array == 1)) < 0.9  # the bias tweak gives a real structure
    assert fast.table[1].name == "spleen"


def test_estimate_resources(spleen_bundle, small_volume):
    estimate = estimate_resources(small_volume, resolve_model(bundle=spleen_bundle), "cpu")
    assert estimate["network_shape"] == (243, 201, 44)
    assert estimate["windows"] == 20
    assert estimate["classes"] == 2
    assert 50e6 < estimate["peak_bytes"] < 4e9


def test_estimate_counts_the_channels_the_window_blends(tmp_path, spleen_bundle):
    from bundles import build_wholebody_bundle

    from ctseg_gui.inference.engine import _blended_channels, _plan

    wholebody = build_wholebody_bundle(tmp_path / "wholeBody_ct_segmentation")
    # labels only, from a SegResNet: its 32 features (heads.py), not its 105 classes
    assert _blended_channels(_plan(resolve_model(bundle=wholebody, variant="lowres")), 105) == 32
    # probabilities resampled before the argmax: the class scores themselves
    assert _blended_channels(_plan(resolve_model(bundle=spleen_bundle)), 2) == 2


def test_cli_refuses_non_ct(tmp_path, spleen_bundle, small_volume):
    from ctseg_gui.io import write_image

    mr = small_volume.with_array((small_volume.array.astype(np.float32) + 1024) / 10)
    path = write_image(mr, tmp_path / "mr.nii.gz")
    code = main(
        ["segment", str(path), "-o", str(tmp_path / "x.nii.gz"), "--bundle", str(spleen_bundle)]
    )
    assert code == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_cuda_without_gpu_is_a_clear_error(spleen_bundle, small_volume):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BundleError, match="no CUDA GPU"):
        segment_volume(small_volume, resolve_model(bundle=spleen_bundle), device="cuda")


def test_gpu_out_of_memory_retries_on_cpu(spleen_bundle, small_volume, monkeypatch):
    # No GPU here: pretend the device is CUDA and that the GPU attempt runs out of memory; the
    # retry on the CPU is the real engine.
    from ctseg_gui.core.errors import CtsegWarning
    from ctseg_gui.inference import engine

    real = engine._segment_bundle
    tried = []

    def fake(volume, ref, device, *rest):
        tried.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
        return real(volume, ref, device, *rest)

    monkeypatch.setattr(engine, "_segment_bundle", fake)
    monkeypatch.setattr(engine, "resolve_device", lambda device: torch.device("cuda"))
    stages = []
    with pytest.warns(CtsegWarning, match="GPU ran out of memory; running on the CPU"):
        labels = segment_volume(
            small_volume,
            resolve_model(bundle=spleen_bundle),
            device="cuda",
            progress=lambda s, f: stages.append(s),
        )
    assert tried == ["cuda", "cpu"]
    assert "GPU out of memory: retrying on CPU" in stages
    assert labels.array.shape == small_volume.array.shape


def test_cli_default_model_is_ct_tissues(tmp_path, small_ct):
    out = tmp_path / "tissues.nii.gz"
    assert main(["segment", str(small_ct), "-o", str(out), "-q"]) == 0
    labels = read_image(out)
    assert labels.same_grid(read_image(small_ct))
    assert len(np.unique(labels.array)) >= 4  # body tissues, not one class


def test_segment_bad_input_exits_cleanly_while_libraries_load(tmp_path, spleen_bundle, abdomen_ct):
    # `ctseg segment` starts importing torch and MONAI on a thread before it reads the CT; an
    # unreadable CT must still end in one line, at once, with no noise from that thread
    import subprocess
    import sys

    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(abdomen_ct.read_bytes()[:500000])
    out = tmp_path / "x.nii.gz"
    result = subprocess.run(
        [sys.executable, "-m", "ctseg_gui.cli", "segment", str(truncated), "-o", str(out),
         "--bundle", str(spleen_bundle)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(truncated) in lines[0] and "truncated" in lines[0], lines
    assert not out.exists()


def test_preload_imports_torch_and_monai_in_the_background_without_unused_packages():
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from ctseg_gui.inference.engine import preload_libraries\n"
        "assert 'torch' not in sys.modules\n"
        "preload_libraries()\n"
        "[t.join() for t in threading.enumerate() if t.name == 'ctseg-preload']\n"
        "print('torch' in sys.modules, 'monai.bundle' in sys.modules)\n"
        "print(any(m.split('.')[0] in ('ignite', 'matplotlib') for m in sys.modules))\n"
        "print('scipy.signal' in sys.modules)\n"
        "from monai.networks.nets import SegResNet\n"
        "import torch\n"
        "net = SegResNet(spatial_dims=3, in_channels=1, out_channels=3, init_filters=8)\n"
        "print(tuple(net(torch.zeros(1, 1, 16, 16, 16)).shape))\n"
        "import scipy.signal\n"  # the hook is gone once MONAI is in: a later import works
        "print('scipy.signal' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split("\n")[:5] == [
        "True True",
        "False",
        "False",
        "(1, 3, 16, 16, 16)",
        "True",
    ], result.stderr
