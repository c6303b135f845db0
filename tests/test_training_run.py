"""Fine-tuning runs as a user starts them: ``ctseg train`` on the real abdomen CT slab.

Each run is short (32^3 patches, a handful of iterations on a 3 mm spleen-format bundle); what is
checked is the event contract, the exported bundle, kill -9 and resume, cancel, and DDP.
"""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bundles import build_spleen_bundle
from training_data import spleen_slab_case, write_spec

from ctseg_gui.training.events import read_events

ITERATION_KEYS = {"event", "iteration", "epoch", "loss", "lr", "sec_per_iter", "eta_s"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("base") / "spleen3mm", pixdim=(3.0,) * 3)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return spleen_slab_case(tmp_path_factory.mktemp("slab"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One user data folder (model store) for the module; runs install distinct model ids."""
    folder = tmp_path_factory.mktemp("userdata")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CTSEG_DATA_DIR", str(folder))
        yield folder


def ctseg(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "ctseg_gui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spec_file(path, base, case, **values):
    settings = {
        "base_model": str(base),
        "train": [case],
        "val": [case],
        "label_map": {"1": 1},
        "max_iterations": 6,
        "val_interval": 3,
        "checkpoint_interval": 2,
        "batch_size": 1,
        "patch_size": [32, 32, 32],
        "lr": 1e-3,
        "device": "cpu",
        "seed": 0,
    }
    settings.update(values)
    return write_spec(path, **settings)


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, base, case, data_dir):
    """One process, batch 2: the contract run, and the reference for the DDP comparison."""
    folder = tmp_path_factory.mktemp("single")
    spec = spec_file(folder / "spec.json", base, case, batch_size=2, install_as="spleen-ft")
    result = ctseg("train", spec, "--json")
    assert result.returncode == 0, result.stderr
    return folder, events_of(result.stdout)


def test_run_emits_the_contract_events_and_installs_a_bundle_that_segments(
    tmp_path, base, case, single_run
):
    from ctseg_gui.inference.manager import list_installed

    folder, events = single_run
    assert events == read_events(folder / "spec-run")  # stdout and events.jsonl agree
    assert [e["event"] for e in events[:2]] == ["warning", "started"]  # liver etc. unmapped
    started = events[1]
    assert started["resumed"] is False and started["classes"] == {"1": "spleen"}
    assert 0 < started["cache_bytes"] < 10e6
    iterations = [e for e in events if e["event"] == "iteration"]
    assert [e["iteration"] for e in iterations] == [1, 2, 3, 4, 5, 6]
    assert all(set(e) == ITERATION_KEYS and math.isfinite(e["loss"]) for e in iterations)
    assert iterations[-1]["eta_s"] == 0 and iterations[0]["lr"] == pytest.approx(1e-3)
    validations = [e for e in events if e["event"] == "validation"]
    assert [v["iteration"] for v in validations] == [3, 6]
    assert all(0 <= v["dice"]["spleen"] <= 1 == len(v["dice"]) for v in validations)
    assert {e["iteration"] for e in events if e["event"] == "checkpoint"} == {2, 3, 4, 6}
    done = events[-1]
    assert done["event"] == "done" and done["model_id"] == "spleen-ft"

    metadata = json.loads((Path(done["bundle"]) / "configs" / "metadata.json").read_text())
    record = metadata["ctseg_finetune"]
    assert record["parent_model"] == "spleen3mm" and record["data"]["train_cases"] == 1
    assert metadata["version"].startswith("0.0.1+ft")
    assert record["metrics"]["last_validation"]["iteration"] == 6
    new = torch.load(os.path.join(done["bundle"], "models", "model.pt"), weights_only=True)
    old = torch.load(base / "models" / "model.pt", weights_only=True)
    assert set(new) == set(old) and any(not torch.equal(new[k], old[k]) for k in old)

    assert "spleen-ft" in [m.model_id for m in list_installed()]  # the GUI's model picker list
    segmented = ctseg(
        "segment", case["image"], "-m", "spleen-ft", "-o", tmp_path / "s.nii.gz", "-q"
    )
    assert segmented.returncode == 0, segmented.stderr
    assert (tmp_path / "s.nii.gz").is_file()

    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([case]))
    evaluated = ctseg(
        "evaluate",
        "spleen-ft",
        cases,
        "--json",
        "--label-map",
        '{"1": 1}',
        "-o",
        tmp_path / "m.csv",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert set(report["per_class"]) == {"spleen"} and 0 <= report["mean_dice"] <= 1
    assert report["cases"][0]["image"] == case["image"]
    assert report["baseline"]["model"] == "spleen3mm"  # the parent bundle, side by side
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert rows[0] == "model,case,class,dice" and len(rows) == 5


def _iterate_until(process, iteration):
    """Read events from a running ``ctseg train --json`` until iteration ``iteration``."""
    seen = []
    for line in process.stdout:
        event = json.loads(line)
        seen.append(event)
        if event["event"] == "iteration" and event["iteration"] >= iteration:
            return seen
    raise AssertionError(f"run ended early: {seen[-3:]} {process.stderr.read()[-2000:]}")


def test_kill_minus_9_mid_epoch_then_resume_continues_the_curve(tmp_path, base, case, data_dir):
    # three training entries: an epoch is three iterations, so iteration 5 is mid-epoch
    spec = spec_file(
        tmp_path / "spec.json", base, case, train=[case] * 3, max_iterations=9, val_interval=100
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "ctseg_gui.cli", "train", str(spec), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = _iterate_until(process, 5)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert before[-1]["epoch"] == 2
    checkpoint = torch.load(tmp_path / "spec-run" / "checkpoint.pt", weights_only=False)
    at = checkpoint["iteration"]
    assert at in (4, 5)  # the last one written before the kill (every 2 iterations)
    adam_steps = {int(s["step"]) for s in checkpoint["optimizer"]["state"].values()}
    assert adam_steps == {at}

    refused = ctseg("train", spec)  # a started run is not silently overwritten
    assert refused.returncode == 1 and "--resume" in refused.stderr
    again = ctseg("train", spec, "--resume", "--json")
    assert again.returncode == 0, again.stderr
    resumed = events_of(again.stdout)
    started = next(e for e in resumed if e["event"] == "started")
    assert started["resumed"] is True and started["iteration"] == at
    first = next(e for e in resumed if e["event"] == "iteration")
    assert first["iteration"] == at + 1 and first["epoch"] == checkpoint["epoch"] + 1
    # the cosine schedule continues where it stopped, it does not restart at the full rate
    assert first["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * at / 9)), rel=1e-6)
    history = [
        e["iteration"] for e in read_events(tmp_path / "spec-run") if e["event"] == "iteration"
    ]
    assert history == list(range(1, 10))  # one continuous curve; the killed run's tail is gone
    final = torch.load(tmp_path / "spec-run" / "checkpoint.pt", weights_only=False)
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {9}
    assert resumed[-1]["event"] == "done"


def test_sigterm_cancels_with_a_checkpoint_and_status_0(tmp_path, base, case, data_dir):
    spec = spec_file(tmp_path / "spec.json", base, case, max_iterations=50, checkpoint_interval=100)
    process = subprocess.Popen(
        [sys.executable, "-m", "ctseg_gui.cli", "train", str(spec), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _iterate_until(process, 2)
    process.send_signal(signal.SIGTERM)
    rest = [json.loads(line) for line in process.stdout]
    assert process.wait(timeout=120) == 0
    assert rest[-1]["event"] == "cancelled" and rest[-2]["event"] == "checkpoint"
    checkpoint = torch.load(tmp_path / "spec-run" / "checkpoint.pt", weights_only=False)
    assert checkpoint["iteration"] == rest[-1]["iteration"] < 50


#: Validation Dice difference allowed between 2 DDP processes x batch 1 and 1 process x batch 2
#: after the same number of samples (crops differ in their random draws, and batch norm sees one
#: patch per process instead of two); benchmarks/bench_finetune.py measures it over longer runs.
DDP_TOLERANCE = 0.05


def test_torchrun_two_gloo_processes_match_one_process(tmp_path, base, case, single_run):
    ddp = spec_file(tmp_path / "ddp.json", base, case, batch_size=1, nproc=2)
    two = ctseg("train", ddp, "--json")
    assert two.returncode == 0, two.stderr
    events = events_of(two.stdout)
    started = next(e for e in events if e["event"] == "started")
    assert started["nproc"] == 2  # one set of events, from rank 0
    assert [e["iteration"] for e in events if e["event"] == "iteration"] == list(range(1, 7))
    assert events[-1]["event"] == "done"
    dice = [
        [e for e in run if e["event"] == "validation"][-1]["dice"]["spleen"]
        for run in (single_run[1], events)
    ]
    print(f"validation Dice after 6 iterations: 1 process {dice[0]:.4f}, 2 processes {dice[1]:.4f}")
    assert abs(dice[0] - dice[1]) <= DDP_TOLERANCE, dice
