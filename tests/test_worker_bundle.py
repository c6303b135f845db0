"""The compute worker runs a real MONAI bundle: the network stays warm, cancel stops at a window.

The bundle is in the model-zoo layout with the spleen bundle's transforms and inferer, shrunk (a
two-level UNet, 64 x 64 x 32 windows at 3 mm) so each run takes seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundles import build_deepgrow_bundle, spleen_config

from ctseg_gui.io import read_image
from ctseg_gui.worker import ComputeClient, JobEvent

WAIT = 300
TINY_UNET = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    import torch
    from monai.bundle import ConfigParser

    root = tmp_path_factory.mktemp("tiny_spleen")
    config = spleen_config()
    config["network_def"] = TINY_UNET
    config["inferer"].update(roi_size=[64, 64, 32], sw_batch_size=1)
    for transform in config["preprocessing"]["transforms"]:
        if transform["_target_"] == "Spacingd":
            transform["pixdim"] = [3.0, 3.0, 3.0]
    (root / "configs").mkdir()
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    (root / "configs" / "metadata.json").write_text(
        json.dumps(
            {
                "name": "tiny spleen",
                "version": "0.0.1",
                "network_data_format": {
                    "outputs": {"pred": {"channel_def": {"0": "background", "1": "spleen"}}}
                },
            }
        )
    )
    torch.manual_seed(0)
    network = ConfigParser({"net": TINY_UNET}).get_parsed_content("net")
    torch.save(network.state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def client():
    with ComputeClient() as compute:
        assert compute.wait_ready(WAIT)
        yield compute


def _warm_networks(client) -> list[int]:
    job = client.submit("status")
    assert job.wait(WAIT) and job.state == "finished"
    return [n["object_id"] for n in job.result.info["networks"]]


def test_bundle_runs_and_its_network_stays_warm(client, tiny_bundle, small_ct):
    volume = read_image(small_ct)
    first = client.submit_segment(volume, None, bundle=tiny_bundle, device="cpu")
    assert first.wait(WAIT) and first.state == "finished", first.error
    labels = first.result
    assert labels.image is volume and labels.array.shape == volume.array.shape
    assert 0 < (labels.array == 1).sum() < labels.array.size  # a real, non-trivial label map
    warm = _warm_networks(client)
    assert len(warm) == 1

    events: list[JobEvent] = []
    second = client.submit_segment(
        volume, None, bundle=tiny_bundle, device="cpu", on_event=events.append
    )
    assert second.wait(WAIT) and second.state == "finished", second.error
    np.testing.assert_array_equal(second.result.array, labels.array)
    assert _warm_networks(client) == warm, "the network object was reused, not reloaded"
    assert second.info["worker_pid"] == first.info["worker_pid"]
    inference = [e.fraction for e in events if e.kind == "progress" and e.stage == "inference"]
    assert len(inference) > 3 and inference == sorted(inference)


def test_cancel_stops_at_the_next_window_batch(client, tiny_bundle, small_ct):
    volume = read_image(small_ct)
    pid = client.pid
    events: list[JobEvent] = []

    def cancel_at_first_window(event: JobEvent) -> None:
        events.append(event)
        if event.kind == "progress" and event.stage == "inference":
            job.cancel()

    job = client.submit_segment(
        volume, None, bundle=tiny_bundle, device="cpu", on_event=cancel_at_first_window
    )
    assert job.wait(WAIT) and job.state == "cancelled" and job.result is None
    windows = [e for e in events if e.kind == "progress" and e.stage == "inference"]
    assert len(windows) == 1, "no further window was reported after the cancel"
    assert events[-1].kind == "cancelled"
    # The worker is still the same process, with the network still loaded.
    assert client.pid == pid and len(_warm_networks(client)) == 1
    again = client.submit_segment(volume, None, bundle=tiny_bundle, device="cpu")
    assert again.wait(WAIT) and again.state == "finished", again.error


def test_clicks_run_in_the_worker_with_the_image_sent_once(client, small_ct, tmp_path, monkeypatch):
    from ctseg_gui.interactive.clicks import Click
    from ctseg_gui.interactive.deep import refine_with_model
    from ctseg_gui.worker import client as client_module

    bundle = tmp_path / "deepgrow"
    build_deepgrow_bundle(bundle)
    volume = read_image(small_ct)
    written: list[str] = []
    real_write = client_module.write_array
    monkeypatch.setattr(
        client_module,
        "write_array",
        lambda path, a: written.append(path.name) or real_write(path, a),
    )
    mask = np.zeros(volume.array.shape, bool)
    results, refiners = [], []
    for clicks in ([Click((60, 50, 15), True)], [Click((60, 50, 15)), Click((70, 55, 15), False)]):
        job = client.submit_clicks(volume, mask, clicks, bundle, device="cpu")
        assert job.wait(WAIT) and job.state == "finished", job.error
        region, values = job.result
        expected = refine_with_model(volume, mask, clicks, str(bundle), device="cpu")
        assert region == expected[0] and np.array_equal(values, expected[1])
        results.append(values)
        status = client.submit("status")
        assert status.wait(WAIT)
        refiners.append(status.result.info["click_models"])
    assert results[0].any()
    assert len(refiners[0]) == 1 and refiners[1] == refiners[0], "one warm click model, reused"
    # The image went to the worker once; each click sent only the mask.
    assert written == ["in-image.npy", "in-mask.npy", "in-mask.npy"]
    warm = _warm_networks(client)
    assert len(warm) == 1  # the segmentation network is still warm beside the click model


def test_backend_check_job_then_auto_segment(client, tiny_bundle, small_ct):
    from ctseg_gui.worker.requests import CheckBackendsRequest, ImageGeometry

    volume = read_image(small_ct)
    request = CheckBackendsRequest(
        ImageGeometry.of(volume), bundle=str(tiny_bundle), device="cpu", windows=1
    )
    events: list[JobEvent] = []
    job = client.submit(request, None, {"image": volume.array}, on_event=events.append)
    assert job.wait(WAIT) and job.state == "finished", job.error
    results = job.result.info["results"]
    assert results["torch/fp32"]["passed"] and "openvino/fp32" in results
    assert any(e.kind == "progress" and e.stage.startswith("checking") for e in events)
    passed = {k: v["seconds_per_batch"] for k, v in results.items() if v["passed"]}
    fastest = min(passed, key=passed.get).split("/")[0]
    run = client.submit_segment(volume, None, bundle=tiny_bundle, device="cpu", backend="auto")
    assert run.wait(WAIT) and run.state == "finished", run.error
    assert run.result.run_info["backend"] == fastest
