"""The Qt-free model of a training run: typed events, curves, and the dataset's refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.training.run_model import (
    Checkpoint,
    Done,
    Iteration,
    Notice,
    Started,
    TrainingDataset,
    TrainingRun,
    Validation,
    parse_event,
    read_events,
)

RECORDS = [
    {"event": "started", "iteration": 0, "max_iterations": 4, "resumed": False, "device": "cpu"},
    {
        "event": "iteration",
        "iteration": 1,
        "epoch": 1,
        "loss": 1.6,
        "lr": 1e-4,
        "sec_per_iter": 2.0,
        "eta_s": 6.0,
    },
    {
        "event": "iteration",
        "iteration": 2,
        "epoch": 2,
        "loss": 1.4,
        "lr": 1e-4,
        "sec_per_iter": 2.0,
        "eta_s": 4.0,
    },
    {"event": "checkpoint", "iteration": 2, "path": "/runs/a/checkpoint.pt"},
    {"event": "validation", "iteration": 2, "dice": {"spleen": 0.25}, "mean_dice": 0.25},
    {
        "event": "iteration",
        "iteration": 3,
        "epoch": 3,
        "loss": 1.3,
        "lr": 1e-4,
        "sec_per_iter": 2.0,
        "eta_s": 2.0,
    },
    {"event": "something-new", "iteration": 3},
]


def test_records_become_typed_events():
    events = [parse_event(r) for r in RECORDS]
    assert isinstance(events[0], Started) and events[0].max_iterations == 4
    assert events[1] == Iteration(1, 1, 1.6, 1e-4, 2.0, 6.0)
    assert events[3] == Checkpoint(2, "/runs/a/checkpoint.pt")
    assert events[4] == Validation(2, {"spleen": 0.25}, 0.25)
    assert events[6] is None  # a kind this app does not know is ignored, not an error
    done = parse_event({"event": "done", "iteration": 4, "bundle": "/b", "model_id": "m"})
    assert done == Done(4, "/b", "m")
    stopped = parse_event({"event": "cancelled", "iteration": 2, "path": "/runs/a/checkpoint.pt"})
    assert isinstance(stopped, Notice) and "resume" in stopped.message


def test_replayed_events_fill_the_curves_and_a_resume_cuts_them_back(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\nnot json\n")
    assert len(read_events(log)) == 6
    run = TrainingRun({"run_dir": str(tmp_path)})
    run.replay()
    assert run.losses == [(1, 1.6), (2, 1.4), (3, 1.3)]
    assert run.dice == [(2, 0.25)] and run.eta_s == 2.0 and run.iteration == 3
    assert run.checkpoint == Checkpoint(2, "/runs/a/checkpoint.pt") and run.can_resume
    # The child resumes from iteration 2: the step after it is gone from the model and the curve.
    run.apply(Started(2, 4, True, "cpu"))
    assert run.losses == [(1, 1.6), (2, 1.4)] and run.dice == [(2, 0.25)]
    assert any("resumed at iteration 2" in line for line in run.log)


def test_a_spec_without_run_dir_is_refused():
    with pytest.raises(CtsegError, match="run_dir"):
        TrainingRun({"base_model": "x"})


@pytest.fixture
def pair(tmp_path, small_ct):
    image = sitk.ReadImage(str(small_ct))
    labels = sitk.Cast(image > 100, sitk.sitkUInt8)
    labels.CopyInformation(image)
    label_path = tmp_path / "label.nii.gz"
    sitk.WriteImage(labels, str(label_path))
    return small_ct, label_path


def test_dataset_refuses_bad_pairs_with_a_clear_line_and_keeps_the_rest(tmp_path, pair):
    image, label = pair
    dataset = TrainingDataset()
    assert dataset.add(image, label) == {"image": str(image), "label": str(label)}

    # grid mismatch: the label cut by a slice
    cut = sitk.ReadImage(str(label))[:, :, :-1]
    off_grid = tmp_path / "off_grid.nii.gz"
    sitk.WriteImage(cut, str(off_grid))
    with pytest.raises(CtsegError, match=r"off_grid\.nii\.gz: label size .* differs"):
        dataset.add(image, off_grid)

    # not a CT: intensities of an MR-like image (0..1000, no air at -1000)
    ct = sitk.ReadImage(str(image))
    mr = sitk.GetImageFromArray(
        np.clip(sitk.GetArrayFromImage(ct) + 1024, 0, None).astype(np.int16)
    )
    mr.CopyInformation(ct)
    mr_path = tmp_path / "mr.nii.gz"
    sitk.WriteImage(mr, str(mr_path))
    with pytest.raises(CtsegError, match=r"mr\.nii\.gz: .*CT"):
        dataset.add(mr_path, label)

    # unreadable: not an image at all
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(CtsegError, match=r"broken\.nii\.gz"):
        dataset.add(image, broken)

    # the same CT twice
    copy = tmp_path / "label_copy.nii.gz"
    shutil.copy(label, copy)
    with pytest.raises(CtsegError, match="already in the training set"):
        dataset.add(image, copy)

    assert dataset.cases == [{"image": str(image), "label": str(label)}]
