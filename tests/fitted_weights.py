"""Briefly fitted whole-body weights: the SegResNet trained a few minutes on one CT.

A fixed-seed network's 105 class scores are nearly tied everywhere, so any rounding difference
(bfloat16, a different summation order) moves many voxels; a trained network's are not. These
weights come from fitting ``wholeBody_ct_segmentation``'s network on the variant's own grid to
the abdomen CT's tissue classes (body, air/lung, fat, soft tissue, bone from the built-in
``ct-tissues`` model), which it learns in a few minutes on two cores: 150 steps on the 104
TotalSegmentator structures left it predicting background everywhere. The result has confident
class margins away from tissue boundaries, like a trained model, and near-ties at them. Benchmarks
use it to measure what reduced precision does to labels; it is not a usable model.

The fit is cached (``CTSEG_FIT_CACHE``, default ``~/.cache/ctseg-gui-fits``) by its settings and
the torch and MONAI versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CT = DATA / "ct" / "abdomen_3mm.nii.gz"
#: Grid spacing (mm) of each whole-body variant, as the bundle's ``pixdim``.
VARIANT_SPACING = {"highres": 1.5, "lowres": 3.0}


def _training_pair(spacing: float, folder: Path):
    """(image, target) tensors ``(1, X, Y, Z)`` preprocessed as the bundle's inference chain."""
    from monai import transforms as T

    from ctseg_gui.inference.ct_tissues import segment_ct_tissues
    from ctseg_gui.io import read_image, write_label_map

    target = folder / "tissues.nii.gz"
    write_label_map(segment_ct_tissues(read_image(CT)), target)
    keys = ["image", "label"]
    chain = T.Compose(
        [
            T.LoadImaged(keys=keys),
            T.EnsureChannelFirstd(keys=keys),
            T.Orientationd(keys=keys, axcodes="RAS"),
            T.Spacingd(keys=keys, pixdim=[spacing] * 3, mode=("bilinear", "nearest")),
            T.NormalizeIntensityd(keys="image", nonzero=True),
            T.ScaleIntensityd(keys="image", minv=-1.0, maxv=1.0),
        ]
    )
    sample = chain({"image": str(CT), "label": str(target)})
    return sample["image"].as_tensor().float(), sample["label"].as_tensor().round().long()


def fit_state_dict(
    network_config: dict, variant: str, steps: int = 150, patch: int = 64, seed: int = 0
) -> dict:
    """State dict of ``network_config`` (a SegResNet config) after ``steps`` Adam steps.

    Each step takes one random ``patch``-cubed crop of the CT on ``variant``'s grid and its tissue
    classes (cross-entropy loss, bfloat16 autocast for speed).
    """
    import tempfile

    import torch
    from monai.bundle import ConfigParser

    cache = _cache_file(network_config, variant, steps, patch, seed)
    if cache.exists():
        return torch.load(cache, map_location="cpu", weights_only=True)
    torch.manual_seed(seed)
    network = ConfigParser({"net": dict(network_config)}).get_parsed_content("net")
    with tempfile.TemporaryDirectory(prefix="ctseg-fit-") as folder:
        image, label = _training_pair(VARIANT_SPACING[variant], Path(folder))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimiser = torch.optim.Adam(network.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(seed)
    network.train()
    started = time.perf_counter()
    for step in range(steps):
        corner = [
            int(torch.randint(0, max(1, s - patch + 1), (1,), generator=generator))
            for s in image.shape[1:]
        ]
        crop = tuple(slice(c, c + patch) for c in corner)
        x = image[(slice(None), *crop)][None]
        y = label[0][crop][None]  # (1, X, Y, Z) class indices
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = network(x)
        loss = loss_fn(out.float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 25 == 0 or step == steps - 1:
            print(
                f"fit {variant}: step {step + 1}/{steps} loss {float(loss.detach()):.3f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    state = network.state_dict()
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, cache)
    return state


def fit_head_state_dict(
    network_config: dict, variant: str, crops: int = 4, patch: int = 64, seed: int = 0
) -> dict:
    """State dict of ``network_config`` (a SegResNet) with only its 1x1x1 output layer fitted.

    The fixed-seed trunk's features on ``crops`` random ``patch``-cubed crops of the CT (on
    ``variant``'s grid) are classified into its tissue classes by a multinomial logistic
    regression (L-BFGS), whose weights become the output convolution. A few forward passes
    instead of hundreds of training steps (4 minutes on this shared 2-core VM under a load of
    11, where 100 steps of the full fit were heading for 50). The scores then have real margins
    between the tissue classes (the regression's: cross-entropy 0.86, 61% of voxels right on the
    lowres grid, from 1.79 for even odds), and near-ties only where the features cannot tell the
    tissues apart.
    """
    import tempfile

    import torch
    from monai.bundle import ConfigParser

    from ctseg_gui.inference.heads import split_pointwise_head

    cache = _cache_file(network_config, variant, -crops, patch, seed)
    if cache.exists():
        return torch.load(cache, map_location="cpu", weights_only=True)
    torch.manual_seed(seed)
    network = ConfigParser({"net": dict(network_config)}).get_parsed_content("net").eval()
    trunk, head = split_pointwise_head(network)
    with tempfile.TemporaryDirectory(prefix="ctseg-fit-") as folder:
        image, label = _training_pair(VARIANT_SPACING[variant], Path(folder))
    generator = torch.Generator().manual_seed(seed)
    features, targets = [], []
    with torch.inference_mode():
        for _ in range(crops):
            corner = [
                int(torch.randint(0, max(1, s - patch + 1), (1,), generator=generator))
                for s in image.shape[1:]
            ]
            crop = tuple(slice(c, c + patch) for c in corner)
            f = trunk(image[(slice(None), *crop)][None])[0]
            features.append(f.reshape(f.shape[0], -1).T)
            targets.append(label[0][crop].reshape(-1))
    x, y = torch.cat(features), torch.cat(targets)
    keep = torch.randperm(len(x), generator=generator)[:200_000]
    x, y = x[keep], y[keep]
    linear = torch.nn.Linear(x.shape[1], head.columns.shape[1])
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure():
        optimiser.zero_grad()
        loss = loss_fn(linear(x), y)
        loss.backward()
        return loss

    started = time.perf_counter()
    optimiser.step(closure)
    with torch.no_grad():
        accuracy = float((linear(x).argmax(1) == y).float().mean())
    print(
        f"fit {variant} head: loss {float(closure().detach()):.3f}, voxel accuracy {accuracy:.3f} "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    state = network.state_dict()
    (weight_key,) = [k for k in state if k.startswith("conv_final") and k.endswith("weight")][-1:]
    bias_key = weight_key[: -len("weight")] + "bias"
    state[weight_key] = linear.weight.detach().reshape(state[weight_key].shape).clone()
    state[bias_key] = linear.bias.detach().clone()
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, cache)
    return state


def _cache_file(network_config: dict, variant: str, steps: int, patch: int, seed: int) -> Path:
    import monai
    import torch

    settings = json.dumps(
        [
            "tissues",
            network_config,
            variant,
            steps,
            patch,
            seed,
            torch.__version__,
            monai.__version__,
        ],
        sort_keys=True,
    )
    digest = hashlib.sha256(settings.encode()).hexdigest()[:16]
    root = Path(os.environ.get("CTSEG_FIT_CACHE", Path.home() / ".cache" / "ctseg-gui-fits"))
    return root / f"wholebody-{variant}-{digest}.pt"
