"""Whole-body model in the model panel: High-res / Low-res switch, estimate, memory fallback."""

from __future__ import annotations

import pytest

from ctseg_gui.io import read_image

WAIT_MS = 120_000


@pytest.fixture(scope="module")
def wholebody_bundle(tmp_path_factory):
    from bundles import build_wholebody_bundle

    return build_wholebody_bundle(tmp_path_factory.mktemp("wb") / "wholeBody_ct_segmentation")


@pytest.fixture
def panel(model_panel, wholebody_bundle):
    return model_panel((wholebody_bundle, "wholeBody_ct_segmentation"))


@pytest.fixture(scope="module")
def abdomen(abdomen_ct):
    return read_image(abdomen_ct)


def _estimate_after(qtbot, panel, action):
    with qtbot.waitSignal(
        panel.estimate_changed, timeout=WAIT_MS, check_params_cb=lambda e: e is not None
    ) as blocker:
        action()
    return blocker.args[0]


def test_resolution_switch_and_estimate(qtbot, panel, abdomen):
    from PySide6.QtCore import Qt

    from ctseg_gui.inference.engine import estimate_resources
    from ctseg_gui.inference.modelref import resolve_model

    panel.select_model("wholeBody_ct_segmentation")
    assert not panel.variant_row.isHidden()
    titles = {name: b.text() for name, b in panel.variant_buttons.items()}
    assert titles == {"highres": "High-res (1.5 mm)", "lowres": "Low-res (3 mm)"}
    assert panel.variant_buttons["lowres"].isChecked()  # the catalog's default

    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    low = _estimate_after(qtbot, panel, lambda: panel.set_volume(abdomen))
    expected = estimate_resources(abdomen, resolve_model("wholeBody_ct_segmentation", None,
                                                         "lowres"), "cpu")  # fmt: skip
    assert low.peak_bytes == expected["peak_bytes"] and low.device == "cpu"
    assert low.seconds is not None and low.seconds > 0
    text = panel.estimate_label.text()
    assert text.startswith("≈ ") and "RAM" in text and "on CPU" in text and "available" in text

    # Clicking the High-res radio button re-estimates: 8x the voxels (and windows) on its grid.
    high = _estimate_after(
        qtbot,
        panel,
        lambda: qtbot.mouseClick(panel.variant_buttons["highres"], Qt.MouseButton.LeftButton),
    )
    assert panel.variant == "highres"
    assert high.peak_bytes > low.peak_bytes and high.seconds > 4 * low.seconds

    # A new image re-estimates too (a smaller CT needs less).
    from ctseg_gui.core.volume import Volume

    a = abdomen
    small = Volume(a.array[:40].copy(), a.spacing, a.origin, a.direction, dict(a.metadata))
    smaller = _estimate_after(qtbot, panel, lambda: panel.set_volume(small))
    assert smaller.peak_bytes < high.peak_bytes
    # The estimates ran in the compute worker (torch stays out of the GUI process) and planned
    # the model without loading its network.
    status = panel.bridge.client.submit("status", finish=lambda result: result.info)
    assert status.wait(120) and status.state == "finished"
    assert status.result["torch_loaded"] and status.result["networks"] == []


def test_fallback_offers_lowres_and_run_anyway(qtbot, panel, abdomen, monkeypatch):
    from PySide6.QtCore import Qt

    from ctseg_gui.qt import resource_estimate

    panel.select_model("wholeBody_ct_segmentation", "lowres")
    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    low = _estimate_after(qtbot, panel, lambda: panel.set_volume(abdomen))
    # Pretend this machine has room for the low-res run only.
    room = int(low.peak_bytes * 1.5)
    monkeypatch.setattr(resource_estimate, "available_memory_bytes", lambda device, raw=None: room)

    with qtbot.waitSignal(panel.fallback_offered, timeout=WAIT_MS) as blocker:
        panel.select_model("wholeBody_ct_segmentation", "highres")
    assert "Low-res" in blocker.args[0] and "run anyway" in blocker.args[0]
    assert not panel.fallback_box.isHidden()
    assert not panel.lowres_button.isHidden() and panel.cpu_button.isHidden()  # already on CPU

    started: list[int] = []
    panel.run_started.connect(started.append)
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert not started and panel.stage_label.text().startswith("Not started: Needs ≈")

    fits = _estimate_after(
        qtbot, panel, lambda: qtbot.mouseClick(panel.lowres_button, Qt.MouseButton.LeftButton)
    )
    assert panel.variant == "lowres" and panel.variant_buttons["lowres"].isChecked()
    assert fits.fits and panel.fallback_box.isHidden()

    # Memory taken by something else since the estimate: Run looks again before starting.
    monkeypatch.setattr(resource_estimate, "available_memory_bytes", lambda device, raw=None: 1)
    with qtbot.waitSignal(panel.fallback_offered, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert not started and "Close other programs" in blocker.args[0]
    assert panel.lowres_button.isHidden() and panel.cpu_button.isHidden()
    monkeypatch.setattr(resource_estimate, "available_memory_bytes", lambda device, raw=None: room)

    # Back to High-res, and the user overrides.
    with qtbot.waitSignal(panel.fallback_offered, timeout=WAIT_MS):
        panel.select_model("wholeBody_ct_segmentation", "highres")
    with qtbot.waitSignal(panel.run_started, timeout=WAIT_MS):
        qtbot.mouseClick(panel.run_anyway_button, Qt.MouseButton.LeftButton)
    assert panel.running and panel.fallback_box.isHidden()
    with qtbot.waitSignal(panel.run_cancelled, timeout=WAIT_MS):
        panel.cancel()


def test_gpu_run_that_does_not_fit_offers_the_cpu(qtbot, panel, abdomen, monkeypatch):
    from ctseg_gui.qt import resource_estimate

    # The engine's own estimate on a "cuda" device needs a GPU; feed the panel one as it would
    # arrive, with little free GPU memory, and check what it offers.
    raw = {"device": "cuda:0", "windows": 12, "peak_bytes": 9_000_000_000,
           "available_bytes": 4_000_000_000, "seconds": None}  # fmt: skip
    panel.select_model("wholeBody_ct_segmentation", "highres")
    panel.set_volume(abdomen)
    panel.estimator.cancel()
    with qtbot.waitSignal(panel.fallback_offered, timeout=WAIT_MS) as blocker:
        panel._on_estimator_estimated(("wholeBody_ct_segmentation", "highres", "auto"), raw)
    assert "GPU memory" in blocker.args[0] and "the CPU" in blocker.args[0]
    assert not panel.cpu_button.isHidden() and not panel.lowres_button.isHidden()
    assert resource_estimate.available_memory_bytes("cuda:0", raw) == 4_000_000_000


def test_lowres_run_gives_grouped_labels_and_calibrates_the_time(qtbot, panel, small_ct):
    from ctseg_gui.core.volume import Volume

    ct = read_image(small_ct)
    # One 96^3 network window on the 3 mm grid: the real SegResNet takes ~10 s of CPU per window.
    crop = ct.array[:24, 10:90, 20:100].copy()
    small = Volume(crop, ct.spacing, ct.origin, ct.direction, dict(ct.metadata))
    panel.select_model("wholeBody_ct_segmentation", "lowres")
    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    first = _estimate_after(qtbot, panel, lambda: panel.set_volume(small))
    assert not first.measured_time and "rough" in panel.estimate_label.text()
    with qtbot.waitSignal(panel.result_ready, timeout=WAIT_MS) as blocker:
        panel.run()
    labels = blocker.args[0]
    assert labels.array.shape == small.array.shape
    groups = {entry.group for entry in labels.table}
    assert {"organs", "vertebrae", "ribs"} <= groups  # the panel can offer group toggles
    qtbot.waitUntil(lambda: panel.estimate is not None, timeout=WAIT_MS)
    assert panel.estimate.measured_time and "rough" not in panel.estimate_label.text()
