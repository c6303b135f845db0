"""The training panel: a real short fine-tuning run started, followed, stopped and resumed from the
GUI; bad cases refused; the open case added to a training set; the GPU hand-over shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bundles import build_spleen_bundle  # noqa: E402
from training_data import spleen_slab_case  # noqa: E402

from ctseg_gui.qt.training_panel import QtTrainingPanel  # noqa: E402
from ctseg_gui.training.run_model import TrainingRun  # noqa: E402

RUN_MS = 240_000  # a run's start (torch, MONAI, caching) takes 10-20 s on this VM


@pytest.fixture
def data_dir_env(tmp_path, monkeypatch):
    # Installed models (the run's "install as") go to a throwaway folder, never the user's.
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def panel(qtbot):
    widget = QtTrainingPanel()
    qtbot.addWidget(widget)
    widget.resize(520, 900)
    widget.show()
    yield widget
    if widget.run is not None and widget.run.running:
        widget.run.stop()
        widget.run.job.wait(60)


def _add(qtbot, panel, image, label) -> tuple[str, str]:
    """Add a pair; returns ("added", case) or ("refused", message)."""
    outcome = []
    panel.case_added.connect(lambda case: outcome.append(("added", case)))
    panel.failed.connect(lambda text: outcome.append(("refused", text)))
    panel.add_case(image, label)
    qtbot.waitUntil(lambda: bool(outcome), timeout=30_000)
    panel.case_added.disconnect()
    panel.failed.disconnect()
    return outcome[0]


def test_bad_cases_are_refused_with_a_clear_line_and_the_good_ones_stay(qtbot, panel, tmp_path):
    case = spleen_slab_case(tmp_path / "case")
    assert _add(qtbot, panel, case["image"], case["label"])[0] == "added"

    label = sitk.ReadImage(case["label"])
    off_grid = tmp_path / "off_grid.nii.gz"
    sitk.WriteImage(label[:, :, 2:], str(off_grid))
    ct = sitk.ReadImage(case["image"])
    mr = sitk.GetImageFromArray(
        np.clip(sitk.GetArrayFromImage(ct) + 1024, 0, None).astype(np.int16)
    )
    mr.CopyInformation(ct)
    mr_path = tmp_path / "t1_mr.nii.gz"
    sitk.WriteImage(mr, str(mr_path))
    unreadable = tmp_path / "unreadable.nii.gz"
    unreadable.write_bytes(b"\x1f\x8b not really gzip")

    for image, bad_label, named, problem in (
        (case["image"], off_grid, "off_grid.nii.gz", "differs from the image's"),
        (mr_path, case["label"], "t1_mr.nii.gz", "CT"),
        (case["image"], unreadable, "unreadable.nii.gz", "cannot read"),
    ):
        kind, message = _add(qtbot, panel, image, bad_label)
        assert kind == "refused", message
        assert named in message and problem in message and "\n" not in message
        assert panel.status.text() == message  # shown in the panel, in the error colour
        assert "color" in panel.status.styleSheet()
        assert panel.case_list.count() == 1 and panel.dataset.cases == [case]

    panel.remove_case(0)
    assert panel.case_list.count() == 0 and not panel.start_button.isEnabled()


def test_a_real_run_shows_its_curves_stops_and_resumes(qtbot, panel, tmp_path, data_dir_env):
    bundle = build_spleen_bundle(tmp_path / "bundle", pixdim=(4.0, 4.0, 4.0), train_config=True)
    case = spleen_slab_case(tmp_path / "case")
    assert _add(qtbot, panel, case["image"], case["label"])[0] == "added"
    panel.form.base_model.setText(str(bundle))
    panel.form.max_iterations.setValue(12)
    panel.form.val_interval.setValue(4)
    panel.form.checkpoint_interval.setValue(2)
    panel.form.batch_size.setValue(1)
    panel.form.patch_size.setText("32, 32, 16")
    panel.form.device.setCurrentIndex(panel.form.device.findData("cpu"))
    run_dir = tmp_path / "run"
    panel.form.run_dir.setText(str(run_dir))

    with qtbot.waitSignal(panel.run_started, timeout=10_000):
        panel.start_button.click()
    run = panel.run
    assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    # Curves from the run's own events: the first validation (iteration 4) and its checkpoint.
    qtbot.waitUntil(lambda: len(run.dice) >= 1 and run.checkpoint is not None, timeout=RUN_MS)
    qtbot.waitUntil(lambda: len(panel.dice_curve.getData()[0] or []) >= 1, timeout=10_000)
    x, y = panel.loss_curve.getData()
    assert list(x) == [n for n, _ in run.losses][: len(x)] and len(x) >= 4
    assert np.all(np.isfinite(y)) and np.all(y > 0)
    dice_x, dice_y = panel.dice_curve.getData()
    assert dice_x[0] == 4 and 0.0 <= dice_y[0] <= 1.0
    assert panel.eta_label.text().startswith("ETA")

    with qtbot.waitSignal(panel.run_ended, timeout=RUN_MS) as ended:
        panel.stop_button.click()
    assert ended.args == ["cancelled"]
    stopped_at = run.checkpoint.iteration
    assert 0 < stopped_at < 12 and run.can_resume
    assert panel.resume_button.isEnabled() and not panel.stop_button.isEnabled()
    assert "cancelled" in panel.log.toPlainText()
    # Another session opens the stopped run: the same curve, and Resume is offered.
    other = QtTrainingPanel()
    qtbot.addWidget(other)
    reopened = other.open_run(run_dir)
    assert reopened is not None and reopened.can_resume and other.resume_button.isEnabled()
    assert list(other.loss_curve.getData()[0]) == [n for n, _ in run.losses]
    assert other.form.base_model.text() == str(bundle)

    with qtbot.waitSignal(panel.run_ended, timeout=RUN_MS) as ended:
        panel.resume_button.click()
    assert ended.args == ["finished"], panel.status.text()
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    resumed = [r for r in records if r["event"] == "started" and r["resumed"]]
    assert resumed and resumed[0]["iteration"] == stopped_at
    x, _ = panel.loss_curve.getData()
    assert list(x) == list(range(1, 13))  # one continuous curve across stop and resume
    assert list(panel.dice_curve.getData()[0]) == [4, 8, 12]
    assert run.done is not None and Path(run.done.bundle).is_dir()

    assert panel.install_button.isEnabled()
    panel.form.install_as.setText("spleen-finetuned")
    with qtbot.waitSignal(panel.model_installed, timeout=60_000) as installed:
        panel.install_button.click()
    assert installed.args == ["spleen-finetuned"]
    assert (data_dir_env / "models" / "spleen-finetuned" / "configs").is_dir()

    # The installed model is in the Models dock's picker and segments there (in the worker).
    from ctseg_gui.io import read_image
    from ctseg_gui.qt.models_panel import QtModelPanel

    models = QtModelPanel(show_dialogs=False)
    qtbot.addWidget(models)
    try:
        models.select_model("spleen-finetuned")
        assert models.model_box.currentData() == "spleen-finetuned"
        volume = read_image(case["image"])
        models.set_volume(volume)
        with qtbot.waitSignal(models.result_ready, timeout=RUN_MS) as ready:
            models.run_button.click()
        labels = ready.args[0]
        assert labels.array.shape == volume.array.shape
        assert set(np.unique(labels.array)) <= {0, 1}
    finally:
        models.bridge.close()


def test_the_window_docks_the_panel_and_hands_model_runs_to_the_cpu_while_training_holds_the_gpu(
    qtbot, viewer, tmp_path
):
    assert viewer.training_panel is None  # made on first use, not at start-up
    viewer.training_action.setChecked(True)
    panel = viewer.training_panel
    assert panel is not None and viewer.training_dock.isVisible()
    models = viewer.model_panel
    assert models.device == "auto"
    # A recorded run whose started event names a CUDA device (replayed: no GPU here).
    records = [
        {
            "event": "started",
            "iteration": 0,
            "max_iterations": 8,
            "resumed": False,
            "device": "cuda:0",
        },
        {"event": "iteration", "iteration": 1, "epoch": 1, "loss": 1.5, "eta_s": 70.0},
        {"event": "cancelled", "iteration": 1, "path": str(tmp_path / "checkpoint.pt")},
    ]
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records))
    seen = []  # (claimed, model panel's device, its note shown) after the window reacted
    panel.gpu_claimed.connect(
        lambda on: seen.append((on, models.device, not models.gpu_note.isHidden()))
    )
    run = TrainingRun({"run_dir": str(tmp_path)})
    with qtbot.waitSignal(panel.run_ended, timeout=10_000) as ended:
        panel.follow(run, run.replay_job(log))
    assert ended.args == ["cancelled"]
    assert seen == [(True, "cpu", True), (False, "auto", False)]
    assert "cuda:0" in panel.log.toPlainText() and "GPU" in panel.gpu_label.text()
    assert list(panel.loss_curve.getData()[0]) == [1]

    viewer.training_action.setChecked(False)
    assert not viewer.training_dock.isVisible()


def test_the_open_case_and_its_corrected_labels_join_a_training_set(
    qtbot, viewer, open_and_wait, abdomen_ct, reference_labels, tmp_path
):
    open_and_wait(viewer, abdomen_ct, reference_labels)
    viewer.show_training_panel()
    panel = viewer.training_panel
    # A correction: the spleen (1) loses its top slab, as if the user had erased it.
    editor = viewer.document.editor
    before = viewer.document.labels.array.copy()
    spleen_z = np.nonzero((before == 1).any(axis=(1, 2)))[0]  # arrays are (z, y, x)
    _, ny, nx = before.shape
    region = (slice(int(spleen_z[-3]), int(spleen_z[-1]) + 1), slice(0, ny), slice(0, nx))
    editor.apply(region, np.where(before[region] == 1, 0, before[region]), "erase")
    corrected = viewer.document.labels.array.copy()
    assert not np.array_equal(corrected, before)

    folder = tmp_path / "my training set"
    with qtbot.waitSignal(panel.case_added, timeout=60_000) as added:
        panel.add_current_case(folder)
    case = added.args[0]
    assert Path(case["image"]).parent == folder / "imagesTr"
    saved = sitk.GetArrayFromImage(sitk.ReadImage(case["label"]))
    np.testing.assert_array_equal(saved, corrected)  # the corrected labels, not the file's
    listing = json.loads((folder / "datalist.json").read_text())["training"]
    assert listing == [{"image": "imagesTr/case_001.nii.gz", "label": "labelsTr/case_001.nii.gz"}]
    assert panel.dataset.cases == [case] and panel.case_list.count() == 1


def test_defaults_come_from_the_models_template(qtbot, panel, tmp_path):
    bundle = build_spleen_bundle(tmp_path / "bundle")
    panel.form.patch_size.setText("8, 8, 8")
    panel.form.max_iterations.setValue(7)
    with qtbot.waitSignal(panel.defaults_loaded, timeout=RUN_MS):
        panel.form.base_model.setText(str(bundle))
        panel.form.defaults_button.click()
    # The spleen bundle's sliding-window ROI and the contract's defaults.
    assert panel.form.patch_size.text() == "96, 96, 96"
    assert panel.form.max_iterations.value() == 1000
    assert panel.form.optimizer.currentText() == "Adam"

    with qtbot.waitSignal(panel.failed, timeout=RUN_MS) as failed:
        panel.load_defaults(str(tmp_path / "no-such-model"))
    assert failed.args[0].startswith("no defaults for ") and "no-such-model" in failed.args[0]
