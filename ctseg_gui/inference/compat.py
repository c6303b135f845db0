"""Network arguments that newer MONAI releases retired, rewritten so older bundles still build.

Model-zoo bundles are frozen at the MONAI version they were trained with; the installed MONAI
moves on. ``swin_unetr_btcv_segmentation``'s config, for one, still passes ``img_size`` to
SwinUNETR, which MONAI 1.5 removed (it only fed a shape check; the weights do not depend on it),
so the bundle's own workflow fails to build the network with MONAI >= 1.5. An argument is
rewritten only when the installed class no longer accepts it.
"""

from __future__ import annotations

import inspect

# (network class, retired argument) -> its replacement (None: dropped, it changed nothing)
RETIRED_ARGUMENTS: dict[tuple[str, str], str | None] = {
    ("SwinUNETR", "img_size"): None,
    ("UNETR", "pos_embed"): "proj_type",
    ("ViT", "pos_embed"): "proj_type",
}


def _installed_parameters(target: str) -> set[str] | None:
    from monai.networks import nets

    network_class = getattr(nets, target.rsplit(".", 1)[-1], None)
    if not inspect.isclass(network_class):
        return None
    return set(inspect.signature(network_class.__init__).parameters)


def adapt_network_config(parser) -> list[str]:
    """Rewrite retired arguments of the bundle's network in ``parser``; returns what changed."""
    changes = []
    config = parser.get()
    for key in ("network_def", "network"):
        node = config.get(key) if isinstance(config, dict) else None
        target = node.get("_target_") if isinstance(node, dict) else None
        if not isinstance(target, str):
            continue
        name = target.rsplit(".", 1)[-1]
        retired = [(arg, new) for (cls, arg), new in RETIRED_ARGUMENTS.items() if cls == name]
        if not any(arg in node for arg, _ in retired):
            continue
        accepted = _installed_parameters(target)
        if accepted is None:
            continue
        for arg, new in retired:
            if arg in node and arg not in accepted:
                value = node.pop(arg)
                if new is not None and new in accepted and new not in node:
                    node[new] = value
                    changes.append(f"{name}: '{arg}' passed as '{new}'")
                else:
                    changes.append(f"{name}: '{arg}' dropped (retired by MONAI)")
        parser[key] = node
    return changes
