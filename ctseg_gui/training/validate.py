"""Validation during training: sliding-window inference on the validation cases, per-class Dice.

Runs on the training grid (after the preprocessing, as MONAI's training workflows validate), with
MONAI's ``sliding_window_inference`` and ``DiceMetric``; classes absent from every validation
label give NaN (reported as null), and the mean is over the classes that are present.
"""

from __future__ import annotations

import math


def validate(network, dataset, base, patch, device, amp: bool) -> tuple[dict[str, float], float]:
    """``({class name: Dice}, mean Dice)`` of ``network`` on ``dataset`` (left in train mode)."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.metrics import compute_dice
    from monai.metrics.utils import do_metric_reduction
    from monai.networks.utils import one_hot

    classes = base.num_classes
    # compute_dice per case, not DiceMetric: under DDP only rank 0 validates, and DiceMetric's
    # aggregate() gathers its buffers from every rank (a collective the other ranks never join).
    per_case = []
    network.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            for item in dataset:
                image = item["image"].as_tensor()[None].to(device)
                label = item["label"].as_tensor()[None].to(device)
                logits = sliding_window_inference(
                    image, list(patch), sw_batch_size=4, predictor=network, overlap=0.25
                )
                prediction = one_hot(logits.argmax(dim=1, keepdim=True), classes)
                y = one_hot(label.round().long(), classes)
                per_case.append(
                    compute_dice(prediction, y, include_background=False, ignore_empty=True)
                )
        scores, _ = do_metric_reduction(torch.cat(per_case).float().cpu(), "mean_batch")
        scores = scores.tolist()
    finally:
        network.train()
    dice = {base.classes.get(c, f"class {c}"): scores[c - 1] for c in range(1, classes)}
    present = [d for d in dice.values() if not math.isnan(d)]
    return dice, (sum(present) / len(present)) if present else float("nan")
