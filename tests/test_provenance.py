"""The provenance record: set where models run, counted through edits, carried by the document."""

from __future__ import annotations

import numpy as np
import pytest

from ctseg_gui.core.document import Document
from ctseg_gui.core.provenance import Provenance, complete, edit_summary
from ctseg_gui.io import read_image


@pytest.fixture(scope="module")
def ct(small_ct):
    return read_image(small_ct)


def test_builtin_model_run_records_model_and_arithmetic(ct):
    from ctseg_gui.inference import segment_volume

    record = segment_volume(ct, "ct-tissues").provenance
    assert (record.model_id, record.backend, record.device) == ("ct-tissues", "numpy", "cpu")
    assert record.precision == "fp32 (float32)" and record.model_version


def test_bundle_model_run_records_version_variant_backend_and_precision(tmp_path, ct):
    from bundles import build_spleen_bundle

    from ctseg_gui.inference import resolve_model, segment_volume

    bundle = build_spleen_bundle(tmp_path / "spleen")
    ref = resolve_model(None, str(bundle), None)
    record = segment_volume(ct, ref, device="cpu", precision="fp32").provenance
    assert record.model_name == "spleen" and record.backend == "torch"
    assert record.precision == "fp32 (float32)" and record.device == "cpu"
    assert record.model_version == "0.0.1"  # from the bundle's configs/metadata.json


def test_worker_job_sends_the_record_and_it_parses_back(ct):
    from ctseg_gui.worker import jobs
    from ctseg_gui.worker.requests import ImageGeometry, SegmentRequest

    request = SegmentRequest(ImageGeometry.of(ct), model_id="ct-tissues")
    _, info = jobs.segment(request, {"image": ct.array}, lambda *a: None, lambda: False)
    record = Provenance.from_json(info["provenance"])
    assert record.model_id == "ct-tissues" and record.backend == "numpy"


def test_edit_tally_counts_clicks_and_edits_and_takes_undone_steps_off(ct):
    from ctseg_gui.inference import segment_volume

    document = Document()
    document.set_image(ct)
    result = segment_volume(ct, "ct-tissues")
    document.apply_result(result)
    assert document.labels.provenance is result.provenance  # the model part travels
    editor = document.editor
    mask = np.zeros(ct.array.shape, dtype=bool)
    mask[5, 10:20, 10:20] = True
    editor.paint(mask, 9, "paint")
    editor.paint(mask, 0, "erase")
    editor.paint(mask, 9, "positive click")
    editor.undo()
    editor.undo()
    editor.redo()
    clicks, edits = edit_summary(document.labels.edit_tally)
    assert (clicks, edits) == (0, {"erase": 1, "paint": 1})  # model result is not an edit
    record = complete(document.labels.provenance, ct.metadata, document.labels.edit_tally)
    assert record.edits == {"erase": 1, "paint": 1} and "sha256" in record.input


def test_unknown_keys_in_a_stored_record_are_ignored():
    record = Provenance.from_json({"model_id": "x", "future_field": 1, "clicks": "3"})
    assert record.model_id == "x" and record.clicks == 3
    assert "x" in record.summary() and Provenance().algorithm_name == "manual"
