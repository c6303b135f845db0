"""The model panel runs ct-tissues in the compute worker process and shows progress; cancel works."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.ct_tissues import segment_ct_tissues
from ctseg_gui.io import read_image

WAIT_MS = 120_000


@pytest.fixture
def panel(model_panel):
    return model_panel()


@pytest.fixture(scope="module")
def small(small_ct) -> Volume:
    return read_image(small_ct)


@pytest.fixture(scope="module")
def big(abdomen_ct) -> Volume:
    """Eight times the abdomen's voxels, so a run lasts long enough to cancel it mid-way."""
    ct = read_image(abdomen_ct)
    array = ct.array.astype(np.int16)
    for axis in range(3):
        array = np.repeat(array, 2, axis=axis)
    return Volume(array, tuple(s / 2 for s in ct.spacing), ct.origin, ct.direction, ct.metadata)


def test_run_ct_tissues_through_the_panel(qtbot, panel, small):
    from PySide6.QtCore import Qt

    assert not panel.run_button.isEnabled()  # nothing to run on yet
    assert panel.model_id == "ct-tissues" and panel.variant_row.isHidden()
    panel.set_volume(small)
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    stages: list[tuple[str, float]] = []
    panel.bridge.progressed.connect(lambda _id, stage, f: stages.append((stage, f)))

    with qtbot.waitSignal(panel.result_ready, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
        assert panel.cancel_button.isEnabled() and not panel.run_button.isEnabled()
    labels = blocker.args[0]

    assert labels.image is small
    np.testing.assert_array_equal(labels.array, segment_ct_tissues(small).array)
    assert [e.name for e in labels.table][-1] == "bone"
    assert set(labels.voxel_counts()) == {1, 2, 3, 4, 5}
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and ("bone", 0.65) in stages
    assert panel.progress.value() == 1000 and panel.stage_label.text().startswith("Done")
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.bridge.client.pid is not None  # it ran in the worker process


def test_cancel_then_run_again_in_the_same_worker(qtbot, panel, big, small):
    from PySide6.QtCore import Qt

    results: list = []
    panel.result_ready.connect(results.append)
    panel.set_volume(big)
    with qtbot.waitSignal(
        panel.bridge.progressed,
        timeout=WAIT_MS,
        check_params_cb=lambda _id, stage, _f: stage == "finding the body",
    ):
        panel.run()
    pid = panel.bridge.client.pid
    with qtbot.waitSignal(panel.run_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.stage_label.text() == "Cancelled." and panel.progress.value() == 0
    assert panel.run_button.isEnabled()

    # A later run works in the same worker, and only its result arrives.
    panel.set_volume(small)
    with qtbot.waitSignal(panel.result_ready, timeout=WAIT_MS):
        panel.run()
    qtbot.wait(200)  # let any stray queued event of the cancelled job arrive (it must not)
    assert len(results) == 1 and results[0].image is small
    assert panel.bridge.client.pid == pid


def test_new_image_cancels_the_run_on_the_old_one(qtbot, panel, big, small):
    results: list = []
    panel.result_ready.connect(results.append)
    panel.set_volume(big)
    with qtbot.waitSignal(panel.bridge.started, timeout=WAIT_MS):
        panel.run()
    with qtbot.waitSignal(panel.run_cancelled, timeout=WAIT_MS):
        panel.set_volume(small)
    assert not panel.running and not results


def test_errors_are_reported(qtbot, panel, small):
    mr_like = small.with_array((small.array - small.array.min()).astype(np.int16))
    panel.set_volume(mr_like)
    with qtbot.waitSignal(panel.failed, timeout=WAIT_MS) as blocker:
        panel.run()
    assert "do not look like CT Hounsfield units" in blocker.args[0]
    assert panel.stage_label.text().startswith("Failed:") and panel.run_button.isEnabled()


def test_installed_catalog_model_is_listed_with_its_variants(model_panel, tmp_path):
    bundle = tmp_path / "wholeBody_ct_segmentation"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    config = {"displayable_configs": {"highres": False}, "network_def": {}}
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    for name in ("model.pt", "model_lowres.pt"):
        (bundle / "models" / name).write_bytes(b"listed, never run here")
    widget = model_panel((bundle, "wholeBody_ct_segmentation"))
    ids = [widget.model_box.itemData(i) for i in range(widget.model_box.count())]
    assert ids == ["ct-tissues", "wholeBody_ct_segmentation"]
    assert widget.variant_row.isHidden()  # the built-in comes first and has no variants
    widget.select_model("wholeBody_ct_segmentation")
    assert not widget.variant_row.isHidden()
    variants = [widget.variant_box.itemData(i) for i in range(widget.variant_box.count())]
    assert variants == ["highres", "lowres"]
    assert widget.variant_box.currentData() == "lowres"  # the manifest's default
    widget.select_model("ct-tissues")
    assert widget.variant_row.isHidden()


def test_prestarted_worker_stops_with_the_panel(qtbot, small, tmp_path, monkeypatch):
    import os

    from PySide6.QtCore import QCoreApplication, QEvent

    from ctseg_gui.qt.models_panel import QtModelPanel

    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    widget = QtModelPanel(show_dialogs=False, prestart=True)
    widget.set_volume(small)  # an open image: the worker comes up before any Run
    client = widget.bridge.client
    assert client.wait_ready(WAIT_MS / 1000)
    pid = client.pid

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert not gone()
    widget.deleteLater()  # the window closing deletes its docks
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qtbot.waitUntil(gone, timeout=WAIT_MS)


def test_fast_precision_reaches_the_worker(qtbot, model_panel, small, tmp_path):
    from bundles import build_spleen_bundle
    from PySide6.QtCore import Qt

    from ctseg_gui.inference import resolve_model, segment_volume

    panel = model_panel((build_spleen_bundle(tmp_path / "spleen"), "spleen_ct_segmentation"))
    panel.select_model("spleen_ct_segmentation")
    panel.precision_box.setCurrentIndex(panel.precision_box.findData("reduced"))
    panel.set_volume(small)
    with qtbot.waitSignal(panel.result_ready, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    fast = blocker.args[0].array.astype(bool)
    exact = segment_volume(small, resolve_model("spleen_ct_segmentation"), precision="fp32")
    exact = exact.array.astype(bool)
    assert exact.sum() > 5000
    assert not np.array_equal(fast, exact)  # bfloat16 ran in the worker
    assert 2.0 * np.sum(fast & exact) / (fast.sum() + exact.sum()) >= 0.98
    # the run's measured time feeds later estimates of the fast mode only; the worker is not
    # asked again, since the precision changes the time only
    asked = []
    panel.estimator.request = lambda *args: asked.append(args)
    with qtbot.waitSignal(panel.estimate_changed, timeout=WAIT_MS):
        panel.precision_box.setCurrentIndex(panel.precision_box.findData("fp32"))
    assert panel.estimate is not None and not panel.estimate.measured_time
    with qtbot.waitSignal(panel.estimate_changed, timeout=WAIT_MS):
        panel.precision_box.setCurrentIndex(panel.precision_box.findData("reduced"))
    assert panel.estimate.measured_time
    assert asked == []


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="openvino not installed"
)
def test_backend_row_reaches_the_worker(qtbot, model_panel, small, tmp_path):
    from bundles import build_spleen_bundle
    from PySide6.QtCore import Qt

    from ctseg_gui.inference import resolve_model, segment_volume

    panel = model_panel((build_spleen_bundle(tmp_path / "spleen"), "spleen_ct_segmentation"))
    panel.select_model("spleen_ct_segmentation")
    assert panel.backend_box.currentData() == "auto"
    panel.backend_box.setCurrentIndex(panel.backend_box.findData("openvino"))
    panel.set_volume(small)
    with qtbot.waitSignal(panel.result_ready, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    labels = blocker.args[0]
    assert labels.run_info["backend"] == "openvino"  # it ran there, in the worker
    assert labels.run_info["dtype"] == "float32"
    exact = segment_volume(small, resolve_model("spleen_ct_segmentation"), backend="torch")
    assert exact.run_info["backend"] == "torch"
    assert int(exact.array.astype(bool).sum()) > 5000
    differing = int((labels.array != exact.array).sum())
    assert differing <= exact.array.size * 1e-5, differing
